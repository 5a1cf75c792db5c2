"""Synthetic signals for the DSP tests that ``tests/_support/signals.py`` does not cover.

Clicks at arbitrary times (tempo ramps and steps), soft-attack "bowed" tones, a vibrato tone
and onset-strength pulse trains. Deterministic for a seed; times in seconds, samples float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from tests._support.signals import tone_notes

__all__ = [
    "click_sound",
    "clicks_at",
    "pulse_train",
    "ramp_times",
    "soft_tones",
    "step_times",
    "syncopated_kit",
    "vibrato_tone",
]


def click_sound(sr: int, *, amplitude: float = 0.8) -> NDArray[np.float64]:
    """The 20 ms decaying 1 kHz click of ``tests/_support/signals.click_track``."""
    t = np.arange(round(0.02 * sr)) / sr
    return np.asarray(amplitude * np.exp(-t / 0.004) * np.sin(2 * np.pi * 1000.0 * t))


def clicks_at(
    times_s: Sequence[float] | NDArray[np.float64],
    duration_s: float,
    sr: int,
    *,
    amplitudes: Sequence[float] | NDArray[np.float64] | None = None,
) -> NDArray[np.float32]:
    """Clicks (see :func:`click_sound`) starting at ``times_s``; ``amplitudes`` per click."""
    out = np.zeros(round(duration_s * sr))
    click = click_sound(sr, amplitude=1.0)
    amps = np.full(len(times_s), 0.8) if amplitudes is None else np.asarray(amplitudes)
    for t, a in zip(times_s, amps, strict=True):
        start = round(float(t) * sr)
        end = min(start + click.size, out.size)
        if 0 <= start < end:
            out[start:end] += a * click[: end - start]
    return out.astype(np.float32)


def ramp_times(
    bpm0: float, change: float, duration_s: float, *, start_s: float = 0.5
) -> NDArray[np.float64]:
    """Beat times whose tempo changes linearly with time from ``bpm0`` by ``change``
    (0.10 = 10 % faster at ``duration_s``), until 0.2 s before the end."""
    times = [start_s]
    while True:
        bpm = bpm0 * (1.0 + change * times[-1] / duration_s)
        nxt = times[-1] + 60.0 / bpm
        if nxt > duration_s - 0.2:
            return np.array(times)
        times.append(nxt)


def step_times(
    bpm0: float, bpm1: float, step_s: float, duration_s: float, *, start_s: float = 0.5
) -> NDArray[np.float64]:
    """Beat times at ``bpm0`` until ``step_s`` seconds, then at ``bpm1``."""
    times = [start_s]
    while True:
        bpm = bpm0 if times[-1] < step_s else bpm1
        nxt = times[-1] + 60.0 / bpm
        if nxt > duration_s - 0.2:
            return np.array(times)
        times.append(nxt)


def soft_tones(
    times_s: Sequence[float] | NDArray[np.float64],
    duration_s: float,
    sr: int,
    *,
    attack_s: float = 0.05,
    note_s: float = 0.5,
    release_s: float = 0.1,
    freqs_hz: Sequence[float] = (196.0, 220.0, 246.9, 261.6, 293.7, 329.6, 370.0, 392.0),
    amplitude: float = 0.4,
    seed: int = 0,
) -> NDArray[np.float32]:
    """Harmonic tones with a raised-cosine attack of ``attack_s`` (like a bowed note),
    a sustain, and a linear release of ``release_s`` ending ``note_s`` after the start."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(duration_s * sr))
    t = np.arange(round(note_s * sr)) / sr
    env = np.where(t < attack_s, 0.5 - 0.5 * np.cos(np.pi * t / attack_s), 1.0)
    env = env * np.clip((note_s - t) / release_s, 0.0, 1.0)
    for k, onset in enumerate(times_s):
        f0 = freqs_hz[k % len(freqs_hz)]
        note = np.zeros_like(t)
        for h in range(1, 7):
            if f0 * h < 0.45 * sr:
                note += 0.6 ** (h - 1) * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
        start = round(float(onset) * sr)
        end = min(start + t.size, out.size)
        if 0 <= start < end:
            out[start:end] += (amplitude * env * note)[: end - start]
    return out.astype(np.float32)


def vibrato_tone(
    duration_s: float,
    sr: int,
    *,
    f0_hz: float = 440.0,
    depth_cents: float = 50.0,
    rate_hz: float = 6.0,
    amplitude: float = 0.3,
) -> NDArray[np.float32]:
    """One sustained harmonic note with sinusoidal vibrato of ``±depth_cents`` at ``rate_hz``,
    a 10 ms fade-in and a 200 ms fade-out (so neither end is a transient)."""
    t = np.arange(round(duration_s * sr)) / sr
    inst_hz = f0_hz * 2.0 ** (depth_cents / 1200.0 * np.sin(2 * np.pi * rate_hz * t))
    phase = 2 * np.pi * np.cumsum(inst_hz) / sr
    note = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    env = np.minimum(t / 0.01, 1.0) * np.clip((duration_s - t) / 0.2, 0.0, 1.0)
    return (amplitude * env * note).astype(np.float32)


def pulse_train(
    bpm: float, n_frames: int, fps: float = 100.0, *, phase_frames: float = 10.0
) -> NDArray[np.float64]:
    """An onset-strength curve of unit pulses every ``60 * fps / bpm`` frames; a pulse at a
    fractional position is split linearly between its two frames."""
    period = 60.0 * fps / bpm
    odf = np.zeros(n_frames)
    t = phase_frames
    while t < n_frames - 1:
        i = int(t)
        f = t - i
        odf[i] += 1.0 - f
        odf[i + 1] += f
        t += period
    return odf


def accented_melody(
    bpm: float, notes_per_beat: int, accent: float, *, sr: int = 16000, seed: int = 3
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """A slow practice melody in eighths or sixteenths (20 s, a random walk of pitches,
    10 % rests, 5 ms of jitter), each beat's note ``accent`` times as loud as the others;
    returns the signal and the beat times."""
    rng = np.random.default_rng(seed)
    period_s = 60.0 / bpm / notes_per_beat
    n = int(20.0 / period_s)
    grid = 0.5 + np.arange(n) * period_s
    played = rng.random(n) > 0.1
    played[0] = True
    on_beat = np.arange(n) % notes_per_beat == 0
    loudness = np.where(on_beat, 0.32 * accent, 0.32) * rng.uniform(0.9, 1.1, n)
    freqs = 220.0 * 2.0 ** (np.cumsum(rng.integers(-3, 4, n)) / 12.0)
    y = tone_notes(
        (grid + rng.normal(0.0, 0.005, n))[played],
        21.0,
        sr,
        freqs_hz=list(freqs[played]),
        velocities=list(loudness[played]),
    )
    return y, grid[on_beat]


def _kit_sounds(sr: int, seed: int) -> tuple[NDArray[np.float64], ...]:
    """A kick (a falling 50 Hz sine), a snare (band-passed noise over a 190 Hz tone) and a
    tom (a 110 Hz sine), 0.3 s each."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    t = np.arange(round(0.3 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 + 60 * np.exp(-t / 0.02)) * t) * np.exp(-t / 0.12)
    band = butter(4, [1500, 6000], btype="band", fs=sr, output="sos")
    snare = (1.5 * sosfilt(band, rng.normal(0, 1, t.size)) * np.exp(-t / 0.09)
             + 0.3 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05))
    tom = np.sin(2 * np.pi * (110 + 30 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.1)
    return kick, snare, tom


def _place(
    sounds: list[tuple[float, NDArray[np.float64]]], duration_s: float, sr: int
) -> NDArray[np.float32]:
    """The sounds mixed at their times (seconds), peaking at 0.25."""
    out = np.zeros(round(duration_s * sr))
    for time_s, sound in sounds:
        at = round(time_s * sr)
        end = min(at + sound.size, out.size)
        out[at:end] += sound[: end - at]
    return (0.25 * out / np.abs(out).max()).astype(np.float32)


def syncopated_kit(
    sr: int, *, bpm: float = 110.0, duration_s: float = 20.0, tom_gain: float = 2.5, seed: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """A drum kit in eighths whose beats alternate kick and snare (from 0.5 s) while a tom,
    ``tom_gain`` times as loud, plays every off-beat: the flux accents the off-beats, the
    backbeat places the beats. Returns the samples and the beat times (seconds)."""
    kick, snare, tom = _kit_sounds(sr, seed)
    half_beat_s = 30.0 / bpm
    times = np.arange(0.5, duration_s - 0.4, half_beat_s)
    sounds = [(float(t), tom_gain * tom if k % 2 else (kick if k // 2 % 2 == 0 else snare))
              for k, t in enumerate(times)]
    return _place(sounds, duration_s, sr), times[0::2]
