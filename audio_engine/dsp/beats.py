"""Beat tracking by dynamic programming over a local tempo curve (after Ellis, 2007).

The best beat sequence maximises the onset strength at its beats minus a penalty on the
squared log-ratio of each inter-beat interval to the *local* period, so the tracker follows
rushing, dragging, rubato and sudden tempo changes that the tempogram sees.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray


@njit(cache=True, nogil=True)
def _local_score_kernel(
    odf: NDArray[np.float64], period: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Onset strength smoothed with a Gaussian of width period/32 (per frame)."""
    n = odf.shape[0]
    out = np.zeros(n)
    for t in range(n):
        sigma = max(1.0, period[t] / 32.0)
        r = int(3 * sigma)
        acc = 0.0
        for k in range(-r, r + 1):
            j = t + k
            if 0 <= j < n:
                acc += odf[j] * np.exp(-0.5 * (k / sigma) ** 2)
        out[t] = acc
    return out


@njit(cache=True, nogil=True)
def _dp_kernel(
    score: NDArray[np.float64], period: NDArray[np.float64], tightness: float
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Cumulative score and back-links of the best beat sequence ending at each frame."""
    n = score.shape[0]
    cum = np.zeros(n)
    back = np.full(n, -1, dtype=np.int64)
    max_gap = int(2.0 * period.max()) + 2 if n else 1
    log_gap = np.log(np.maximum(np.arange(max_gap + 1), 1).astype(np.float64))
    for t in range(n):
        tau = period[t]
        log_tau = np.log(tau)
        lo = int(t - 2.0 * tau)
        hi = int(t - tau / 2.0)
        best = -1e300
        arg = -1
        for p in range(max(0, lo), hi + 1):
            d = log_gap[t - p] - log_tau
            v = cum[p] - tightness * d * d
            if v > best:
                best = v
                arg = p
        if arg >= 0 and best > 0.0:
            cum[t] = score[t] + best
            back[t] = arg
        else:
            cum[t] = score[t]
    return cum, back


@njit(cache=True, nogil=True)
def _last_beat_kernel(cum: NDArray[np.float64]) -> int:
    """Last local maximum of ``cum`` above half the median of its local maxima."""
    n = cum.shape[0]
    maxima = np.zeros(n, dtype=np.bool_)
    count = 0
    for t in range(1, n - 1):
        if cum[t] > cum[t - 1] and cum[t] >= cum[t + 1]:
            maxima[t] = True
            count += 1
    if count == 0:
        return int(np.argmax(cum))
    vals = np.empty(count)
    c = 0
    for t in range(n):
        if maxima[t]:
            vals[c] = cum[t]
            c += 1
    thr = 0.5 * np.median(vals)
    for t in range(n - 1, -1, -1):
        if maxima[t] and cum[t] >= thr:
            return t
    return int(np.argmax(cum))


def beat_cumulative_score(
    odf: NDArray[np.float64], period: NDArray[np.float64], *, tightness: float
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Cumulative score and back-links of the best beat sequence ending at each frame.

    Parameters
    ----------
    odf : ndarray, shape (n_frames,)
        Onset strength (non-negative, not all zero).
    period : ndarray, shape (n_frames,)
        Local beat period in frames.
    tightness : float
        Weight of the interval penalty.

    Returns
    -------
    cum : ndarray of float64, shape (n_frames,)
        Score of the best beat sequence whose last beat is at each frame (onset strength
        in units of its standard deviation, smoothed by a Gaussian of a 32nd of the period).
    back : ndarray of int64, shape (n_frames,)
        The previous beat of that sequence, -1 where it is the first.
    """
    std = float(np.std(odf))
    norm = odf / std if std > 0 else odf
    score = _local_score_kernel(np.ascontiguousarray(norm), np.ascontiguousarray(period))
    return _dp_kernel(score, np.ascontiguousarray(period), float(tightness))


def backtrack(cum: NDArray[np.float64], back: NDArray[np.int64]) -> NDArray[np.int64]:
    """Beat frames of the best sequence: from the last strong local maximum of ``cum``
    (above half the median of its local maxima) back along ``back``.

    Parameters
    ----------
    cum, back : ndarray, shape (n_frames,)
        As returned by :func:`beat_cumulative_score`.

    Returns
    -------
    ndarray of int64
        Beat positions in frames, increasing.
    """
    t = _last_beat_kernel(cum)
    beats = []
    while t >= 0:
        beats.append(t)
        t = int(back[t])
    return np.array(beats[::-1], dtype=np.int64)


def track_beats(
    odf: NDArray[np.float64], period: NDArray[np.float64], *, tightness: float, trim_ratio: float
) -> NDArray[np.int64]:
    """Beat frames of an onset-strength curve given the local period at each frame.

    Parameters
    ----------
    odf : ndarray, shape (n_frames,)
        Onset strength (non-negative).
    period : ndarray, shape (n_frames,)
        Local beat period in frames.
    tightness : float
        Weight of the interval penalty.
    trim_ratio : float
        Leading and trailing beats weaker than this share of the median beat strength
        are dropped.

    Returns
    -------
    ndarray of int64
        Beat positions in frames, increasing.
    """
    n = odf.shape[0]
    if n < 3 or not np.any(odf > 0):
        return np.zeros(0, dtype=np.int64)
    cum, back = beat_cumulative_score(odf, period, tightness=tightness)
    return trim_weak(odf, backtrack(cum, back), period, trim_ratio)


def trim_weak(
    odf: NDArray[np.float64],
    beats: NDArray[np.int64],
    period: NDArray[np.float64],
    trim_ratio: float,
) -> NDArray[np.int64]:
    """Drop leading and trailing beats weaker than ``trim_ratio`` x the median beat strength."""
    out = np.ascontiguousarray(beats, dtype=np.int64)
    if out.size == 0 or trim_ratio <= 0:
        return out
    score = _local_score_kernel(np.ascontiguousarray(odf), np.ascontiguousarray(period))
    strength = score[out]
    thr = trim_ratio * float(np.median(strength))
    keep = np.flatnonzero(strength >= thr)
    if keep.size == 0:
        return np.zeros(0, dtype=np.int64)
    return out[keep[0] : keep[-1] + 1]
