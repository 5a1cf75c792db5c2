"""The load benchmark's audio: a synthetic practice take with known onset times.

Plucked notes (decaying harmonics over a short noise attack) on eighth notes at 120 BPM,
each moved by Gaussian timing jitter, with random pitch and loudness over a faint noise
floor. The take is *circular*: a note's tail that runs past the end wraps to the start, so
any rotation of it is a seamless take too. Every stream plays the take from its own
offset, so the streams' onsets do not coincide (real students are not in lockstep).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["SR", "Take", "practice_take", "rotated"]

SR = 44100
_PITCHES_HZ = (196.0, 220.0, 246.9, 261.6, 293.7, 329.6, 392.0, 440.0)


@dataclass(frozen=True, slots=True)
class Take:
    """A circular practice take.

    Attributes
    ----------
    pcm : ndarray of int16, shape (n_samples,)
        Mono 16-bit samples at ``sr``.
    onsets_s : ndarray of float64, shape (n_notes,)
        True note starts, seconds from the start of the take, sorted, in ``[0, loop_s)``.
    sr : int
        Sample rate in Hz.
    bpm : float
        Tempo of the grid the notes were placed on (eighth notes).
    """

    pcm: NDArray[np.int16]
    onsets_s: NDArray[np.float64]
    sr: int
    bpm: float

    @property
    def loop_s(self) -> float:
        return self.pcm.shape[0] / self.sr


def practice_take(
    *,
    sr: int = SR,
    bpm: float = 120.0,
    bars: int = 16,
    jitter_ms: float = 6.0,
    seed: int = 2024,
    align_samples: int = 1,
) -> Take:
    """Synthesise a circular take of ``bars`` 4/4 bars of eighth notes at ``bpm``.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    bpm : float
        Quarter notes per minute; notes fall on eighths (``30 / bpm`` s apart) before jitter.
    bars : int
        Length in 4/4 bars (16 bars at 120 BPM = 32 s).
    jitter_ms : float
        Standard deviation of each note's timing jitter in ms (clipped to ±3 sd).
    seed : int
        Seed of the jitter, pitches, loudness and noise.
    align_samples : int
        The length is rounded up to a multiple of this many samples (a gap of less than
        ``align_samples`` at the seam). With the engine's frame hop in input samples, every
        rotation by a multiple of it puts the same frames on the same audio.
    """
    if bpm <= 0 or bars < 1 or sr < 8000 or align_samples < 1:
        raise ValueError(
            f"invalid take: bpm={bpm!r}, bars={bars!r}, sr={sr!r}, align_samples={align_samples!r}"
        )
    rng = np.random.default_rng(seed)
    step_s = 30.0 / bpm
    n_notes = bars * 8
    n = -(-round(n_notes * step_s * sr) // align_samples) * align_samples
    limit_s = 3e-3 * jitter_ms
    jitter_s = np.clip(rng.normal(0.0, jitter_ms / 1000.0, n_notes), -limit_s, limit_s)
    onsets = np.sort((np.arange(n_notes) * step_s + jitter_s) % (n / sr))
    y = rng.normal(0.0, 10 ** (-60 / 20), n)  # noise floor at -60 dBFS
    note_len = round(0.6 * sr)
    t = np.arange(note_len) / sr
    for k, onset in enumerate(onsets):
        f0 = _PITCHES_HZ[int(rng.integers(len(_PITCHES_HZ)))]
        amp = (0.55 if k % 2 == 0 else 0.35) * float(rng.uniform(0.8, 1.0))
        note = np.zeros(note_len)
        for h in range(1, 6):
            note += (0.7**h) * np.sin(2 * math.pi * f0 * h * t) * np.exp(-t * (6.0 + 3.0 * h))
        attack = round(0.004 * sr)
        note[:attack] += rng.normal(0.0, 0.5, attack) * np.linspace(1.0, 0.0, attack)
        start = round(onset * sr)
        idx = (start + np.arange(note_len)) % n
        np.add.at(y, idx, amp * note)
    peak = float(np.max(np.abs(y)))
    pcm = np.round(y / max(peak, 1e-9) * 0.8 * 32767).astype(np.int16)
    return Take(pcm=pcm, onsets_s=onsets.astype(np.float64), sr=sr, bpm=bpm)


def rotated(take: Take, offset_samples: int, n_samples: int) -> NDArray[np.int16]:
    """``n_samples`` of the take played from ``offset_samples`` on, looping."""
    idx = (offset_samples + np.arange(n_samples)) % take.pcm.shape[0]
    return take.pcm[idx]
