"""Synthetic test signals with known answers (numpy only, deterministic for a seed).

Times are in seconds from the start of the signal; samples are float32 mono in [-1, 1].
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["click_track", "grid_times", "sine", "tone_notes"]


def grid_times(
    bpm: float, duration_s: float, *, start_s: float = 0.5, jitter_ms: float = 0.0, seed: int = 0
) -> NDArray[np.float64]:
    """Times (s) of a steady pulse at ``bpm`` from ``start_s`` until 0.2 s before the end,
    each moved by Gaussian jitter of standard deviation ``jitter_ms``."""
    period_s = 60.0 / bpm
    times = np.arange(start_s, duration_s - 0.2, period_s)
    if jitter_ms > 0:
        rng = np.random.default_rng(seed)
        times = times + rng.normal(0.0, jitter_ms / 1000.0, times.size)
    return np.clip(np.sort(times), 0.0, duration_s)


def click_track(
    bpm: float,
    duration_s: float,
    sr: int,
    jitter_ms: float = 0.0,
    seed: int = 0,
    *,
    start_s: float = 0.5,
    amplitude: float = 0.8,
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """A metronome-like click track.

    Parameters
    ----------
    bpm : float
        Clicks per minute.
    duration_s : float
        Length of the signal in seconds.
    sr : int
        Sample rate in Hz.
    jitter_ms : float, default 0
        Standard deviation of the Gaussian timing jitter of each click, in ms.
    seed : int, default 0
        Seed of the jitter (and nothing else: the clicks themselves are noise-free).
    start_s : float, default 0.5
        Time of the first click in seconds.
    amplitude : float, default 0.8
        Peak amplitude of a click.

    Returns
    -------
    samples : ndarray of float32, shape (round(duration_s * sr),)
    click_times_s : ndarray of float64, shape (n_clicks,)
        The true onset time of every click in seconds.
    """
    n = round(duration_s * sr)
    out = np.zeros(n, dtype=np.float64)
    t = np.arange(round(0.02 * sr)) / sr
    click = amplitude * np.exp(-t / 0.004) * np.sin(2 * np.pi * 1000.0 * t)
    times = grid_times(bpm, duration_s, start_s=start_s, jitter_ms=jitter_ms, seed=seed)
    for time_s in times:
        _add_at(out, click, round(float(time_s) * sr))
    return out.astype(np.float32), times


def tone_notes(
    onsets_s: NDArray[np.float64] | list[float],
    duration_s: float,
    sr: int,
    *,
    freqs_hz: list[float] | None = None,
    velocities: list[float] | None = None,
    decay_s: float = 0.25,
    seed: int = 0,
) -> NDArray[np.float32]:
    """Plucked harmonic tones starting at ``onsets_s`` (a melody-like test signal).

    Parameters
    ----------
    onsets_s : array-like of float
        Start time of each note in seconds.
    duration_s : float
        Length of the signal in seconds.
    sr : int
        Sample rate in Hz.
    freqs_hz : list of float, optional
        Fundamental of each note in Hz (cycled); default a C-major arpeggio around 262 Hz.
    velocities : list of float, optional
        Peak amplitude of each note (cycled); default 0.5.
    decay_s : float, default 0.25
        Time constant of the fundamental's exponential decay in seconds.
    seed : int, default 0
        Seed of the partials' random phases.

    Returns
    -------
    ndarray of float32, shape (round(duration_s * sr),)
    """
    freqs = freqs_hz or [261.63, 329.63, 392.0, 523.25]
    vels = velocities or [0.5]
    rng = np.random.default_rng(seed)
    n = round(duration_s * sr)
    out = np.zeros(n, dtype=np.float64)
    t = np.arange(round(min(6 * decay_s, duration_s) * sr)) / sr
    for k, onset_s in enumerate(np.asarray(onsets_s, dtype=np.float64)):
        f0 = freqs[k % len(freqs)]
        note = np.zeros_like(t)
        for h in range(1, 6):
            if f0 * h >= 0.45 * sr:
                break
            phase = rng.uniform(0, 2 * np.pi)
            note += 0.7**h * np.exp(-t * h**0.5 / decay_s) * np.sin(2 * np.pi * f0 * h * t + phase)
        note *= np.minimum(t / 0.002, 1.0)
        note *= vels[k % len(vels)] / max(float(np.max(np.abs(note))), 1e-9)
        _add_at(out, note, round(float(onset_s) * sr))
    return out.astype(np.float32)


def sine(
    freq_hz: float, duration_s: float, sr: int, *, amplitude: float = 0.5
) -> NDArray[np.float32]:
    """A pure tone of ``freq_hz`` Hz lasting ``duration_s`` seconds."""
    t = np.arange(round(duration_s * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _add_at(out: NDArray[np.float64], sound: NDArray[np.float64], start: int) -> None:
    end = min(start + sound.size, out.size)
    if 0 <= start < end:
        out[start:end] += sound[: end - start]
