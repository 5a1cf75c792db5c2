"""A synthetic practice take for demos, docs and smoke tests (numpy only, deterministic).

:func:`make_demo_performance` renders about 20 s of a student playing eighth notes against a
96 BPM metronome: a plucked tone with decaying harmonics and a wandering melody, accents on
the beat, about 12 ms of human timing jitter, a rush of about 5 % over the take, the quiet
metronome click bleeding into the microphone and a little background noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from audio_engine.errors import ParameterError

__all__ = ["make_demo_performance"]

TARGET_BPM = 96.0
GRID_START_S = 0.5
SUBDIVISION = 2
DURATION_S = 20.0
RUSH_PCT = 5.0
JITTER_MS = 12.0

# A minor pentatonic over two octaves (Hz): the melody wanders through it step by step.
_SCALE_HZ = 220.0 * 2.0 ** (np.array([0, 3, 5, 7, 10, 12, 15, 17, 19, 22, 24]) / 12.0)


def make_demo_performance(
    sr: int = 44100, seed: int = 0
) -> tuple[NDArray[np.float32], int, dict[str, Any]]:
    """Render the demo practice take.

    Parameters
    ----------
    sr : int, default 44100
        Sample rate in Hz, at least 8000.
    seed : int, default 0
        Seed of the random generator; the same seed gives the same samples, bit for bit.

    Returns
    -------
    samples : ndarray of float32, shape (n,)
        Mono samples in [-1, 1], about 20 s long.
    sr : int
        The sample rate in Hz.
    info : dict
        ``target_bpm`` (96.0), ``grid_start_s`` (0.5), ``subdivision`` (2, eighth notes) —
        the arguments to analyse it with — plus ``duration_s``, ``onsets_s`` (the true note
        start times in seconds), ``rush_pct`` and ``jitter_ms`` describing how it was played.

    Raises
    ------
    ParameterError
        ``sr`` is below 8000 Hz.
    """
    if sr < 8000:
        raise ParameterError(f"sr must be at least 8000 Hz, got {sr}")
    rng = np.random.default_rng(seed)
    n = round(DURATION_S * sr)
    out = np.zeros(n, dtype=np.float64)

    onsets_s = _played_onsets(rng)
    pitch_idx = 4
    for k, t in enumerate(onsets_s):
        pitch_idx = int(np.clip(pitch_idx + rng.integers(-2, 3), 0, len(_SCALE_HZ) - 1))
        on_beat = k % SUBDIVISION == 0
        velocity = (0.9 if on_beat else 0.55) * float(rng.uniform(0.85, 1.0))
        _add_at(out, _pluck(float(_SCALE_HZ[pitch_idx]), velocity, sr, rng), round(float(t) * sr))

    beat_s = 60.0 / TARGET_BPM
    for k, t in enumerate(np.arange(GRID_START_S, DURATION_S, beat_s)):
        _add_at(out, _click(sr, downbeat=k % 4 == 0), round(float(t) * sr))

    out += rng.normal(0.0, 0.002, n)
    out *= 0.8 / max(float(np.max(np.abs(out))), 1e-9)
    info: dict[str, Any] = {
        "target_bpm": TARGET_BPM,
        "grid_start_s": GRID_START_S,
        "subdivision": SUBDIVISION,
        "duration_s": n / sr,
        "onsets_s": [round(float(t), 6) for t in onsets_s],
        "rush_pct": RUSH_PCT,
        "jitter_ms": JITTER_MS,
    }
    return out.astype(np.float32), sr, info


def _played_onsets(rng: np.random.Generator) -> NDArray[np.float64]:
    """Note start times (s): eighth notes whose tempo rises linearly by RUSH_PCT, plus jitter."""
    times = []
    t = GRID_START_S
    while t < DURATION_S - 0.6:
        times.append(t)
        bpm = TARGET_BPM * (1.0 + RUSH_PCT / 100.0 * (t - GRID_START_S) / DURATION_S)
        t += 60.0 / (bpm * SUBDIVISION)
    played = np.asarray(times) + rng.normal(0.0, JITTER_MS / 1000.0, len(times))
    played[0] = max(played[0], 0.45)
    return np.sort(played)


def _pluck(f0_hz: float, velocity: float, sr: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """A plucked-string-like note: slightly inharmonic partials, higher ones decay faster."""
    length = int(0.9 * sr)
    t = np.arange(length) / sr
    note = np.zeros(length)
    for h in range(1, 9):
        f = f0_hz * h * (1.0 + 0.0004 * h * h)
        if f >= 0.45 * sr:
            break
        decay_s = 0.45 / h**0.7
        phase = float(rng.uniform(0.0, 2.0 * np.pi))
        note += (0.8**h) * np.exp(-t / decay_s) * np.sin(2.0 * np.pi * f * t + phase)
    attack = np.minimum(t / 0.002, 1.0)  # 2 ms attack: a clean but sharp onset
    return velocity * attack * note


def _click(sr: int, *, downbeat: bool) -> NDArray[np.float64]:
    """A quiet metronome tick (2 kHz on the downbeat, 1.5 kHz otherwise), about 15 ms."""
    t = np.arange(int(0.015 * sr)) / sr
    f = 2000.0 if downbeat else 1500.0
    return 0.06 * np.exp(-t / 0.003) * np.sin(2.0 * np.pi * f * t)


def _add_at(out: NDArray[np.float64], sound: NDArray[np.float64], start: int) -> None:
    """Mix ``sound`` into ``out`` from sample ``start``, cut at the end of ``out``."""
    end = min(start + len(sound), len(out))
    if start < end:
        out[start:end] += sound[: end - start]
