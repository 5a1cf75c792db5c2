"""Metrical level: which periodicity is the beat.

The tatum (fastest regular pulse) is tracked first; the beat is the grouping of tatums
(1, 2, 3 or 4 per beat) that best combines a log-normal tempo prior with the accent
contrast of the grouping: how much stronger the onsets are on the chosen tatums than on
the others, measured along the tracked tatums so that tempo changes do not blur it.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray


@njit(cache=True, nogil=True)
def _strength_at_kernel(odf: NDArray[np.float64], frames: NDArray[np.int64], half: int) -> NDArray[np.float64]:
    """Maximum of ``odf`` within ``±half`` frames of each frame index."""
    n = odf.shape[0]
    out = np.zeros(frames.shape[0])
    for k in range(frames.shape[0]):
        lo = max(0, frames[k] - half)
        hi = min(n, frames[k] + half + 1)
        m = 0.0
        for j in range(lo, hi):
            if odf[j] > m:
                m = odf[j]
        out[k] = m
    return out


def grouping_contrast(strength: NDArray[np.float64], group: int) -> tuple[float, int]:
    """Accent contrast of grouping pulses by ``group``: the best phase's log ratio of the
    median strength on the phase to the median strength elsewhere, and that phase."""
    if group == 1 or strength.size < 2 * group:
        return 0.0, 0
    idx = np.arange(strength.size)
    best, best_phase = -np.inf, 0
    for phase in range(group):
        on = strength[idx % group == phase]
        off = strength[idx % group != phase]
        c = float(np.log((np.median(on) + 1e-6) / (np.median(off) + 1e-6)))
        if c > best:
            best, best_phase = c, phase
    return best, best_phase


def choose_grouping(
    odf: NDArray[np.float64],
    tatum_frames: NDArray[np.int64],
    tatum_bpm: float,
    *,
    prior_bpm: float,
    prior_octaves: float,
    accent_weight: float,
    min_bpm: float,
) -> tuple[int, int]:
    """Number of tatums per beat (1-4) maximising prior log-likelihood + weighted contrast,
    and the phase (index of the first tatum that is a beat)."""
    strength = _strength_at_kernel(odf, tatum_frames, 2)
    best_g, best_phase, best_score = 1, 0, -np.inf
    for g in (1, 2, 3, 4):
        bpm = tatum_bpm / g
        if bpm < min_bpm:
            break
        contrast, phase = grouping_contrast(strength, g)
        score = -0.5 * (np.log2(bpm / prior_bpm) / prior_octaves) ** 2 + accent_weight * contrast
        if score > best_score:
            best_g, best_phase, best_score = g, phase, score
    return best_g, best_phase
