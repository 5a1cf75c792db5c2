"""Peak picking on an onset-strength curve, with sub-frame refinement."""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray


@njit(cache=True, nogil=True)
def _pick_peaks_kernel(
    odf: NDArray[np.float64],
    pre_max: int,
    post_max: int,
    pre_avg: int,
    post_avg: int,
    delta: float,
    combine: int,
) -> NDArray[np.int64]:
    """Frames that are the maximum of ``odf[i-pre_max : i+post_max+1]`` and exceed the mean of
    ``odf[i-pre_avg : i+post_avg+1]`` by ``delta``; peaks within ``combine`` frames of an
    earlier one are dropped. Windows are clipped at the ends of the array."""
    n = odf.shape[0]
    out = np.empty(n, dtype=np.int64)
    count = 0
    last = -(10**9)
    for i in range(n):
        v = odf[i]
        if v <= 0.0:
            continue
        lo = max(0, i - pre_max)
        hi = min(n, i + post_max + 1)
        is_max = True
        for j in range(lo, hi):
            if odf[j] > v or (odf[j] == v and j < i):
                is_max = False
                break
        if not is_max:
            continue
        lo = max(0, i - pre_avg)
        hi = min(n, i + post_avg + 1)
        acc = 0.0
        for j in range(lo, hi):
            acc += odf[j]
        if v < acc / (hi - lo) + delta:
            continue
        if i - last <= combine:
            continue
        out[count] = i
        count += 1
        last = i
    return out[:count]


@njit(cache=True, nogil=True)
def _pick_peaks_range_kernel(
    odf: NDArray[np.float64],
    buf_start: int,
    n_total: int,
    f0: int,
    f1: int,
    pre_max: int,
    post_max: int,
    pre_avg: int,
    post_avg: int,
    delta: float,
    combine: int,
    last: int,
) -> tuple[NDArray[np.float64], int]:
    """:func:`_pick_peaks_kernel` + refinement for frames ``f0 .. f1-1`` of a stream whose
    frames ``buf_start ..`` are in ``odf`` and of which ``n_total`` exist so far (windows are
    clipped there, as at the end of a whole signal). ``last`` is the previous peak; returns
    the refined peak positions (absolute frames) and the new ``last``."""
    out = np.empty(max(0, f1 - f0), dtype=np.float64)
    count = 0
    for i in range(f0, f1):
        v = odf[i - buf_start]
        if v <= 0.0:
            continue
        lo = max(0, i - pre_max)
        hi = min(n_total, i + post_max + 1)
        is_max = True
        for j in range(lo, hi):
            w = odf[j - buf_start]
            if w > v or (w == v and j < i):
                is_max = False
                break
        if not is_max:
            continue
        lo = max(0, i - pre_avg)
        hi = min(n_total, i + post_avg + 1)
        acc = 0.0
        for j in range(lo, hi):
            acc += odf[j - buf_start]
        if v < acc / (hi - lo) + delta:
            continue
        if i - last <= combine:
            continue
        last = i
        if 0 < i < n_total - 1:
            a = odf[i - 1 - buf_start]
            c = odf[i + 1 - buf_start]
            den = a - 2.0 * v + c
            off = 0.5 * (a - c) / den if den < 0.0 else 0.0
            out[count] = i + min(0.5, max(-0.5, off))
        else:
            out[count] = float(i)
        count += 1
    return out[:count], last


@njit(cache=True, nogil=True)
def _refine_kernel(odf: NDArray[np.float64], peaks: NDArray[np.int64]) -> NDArray[np.float64]:
    """Sub-frame peak positions by parabolic interpolation over three frames."""
    out = np.empty(peaks.shape[0], dtype=np.float64)
    n = odf.shape[0]
    for k in range(peaks.shape[0]):
        i = peaks[k]
        if 0 < i < n - 1:
            a, b, c = odf[i - 1], odf[i], odf[i + 1]
            den = a - 2.0 * b + c
            off = 0.5 * (a - c) / den if den < 0.0 else 0.0
            out[k] = i + min(0.5, max(-0.5, off))
        else:
            out[k] = float(i)
    return out


def pick_peaks(
    odf: NDArray[np.float64],
    *,
    pre_max: int,
    post_max: int,
    pre_avg: int,
    post_avg: int,
    delta: float,
    combine: int,
) -> NDArray[np.float64]:
    """Peak positions (fractional frames) of an onset-strength curve.

    Parameters
    ----------
    odf : ndarray, shape (n_frames,)
        Onset strength.
    pre_max, post_max : int
        Frames before/after that the peak must dominate.
    pre_avg, post_avg : int
        Frames before/after of the moving average threshold.
    delta : float
        Required excess over the moving average.
    combine : int
        Minimum distance in frames between reported peaks.

    Returns
    -------
    ndarray, shape (n_peaks,), float64
        Peak positions in frames, refined between frames by parabolic interpolation.
    """
    odf = np.ascontiguousarray(odf, dtype=np.float64)
    idx = _pick_peaks_kernel(odf, pre_max, post_max, pre_avg, post_avg, float(delta), combine)
    return _refine_kernel(odf, idx)


def held_peaks(
    odf: NDArray[np.float64], held: NDArray[np.float64], peaks: NDArray[np.float64], ratio: float
) -> NDArray[np.bool_]:
    """Mask of the peaks whose held strength (the larger of the peak frame and the one
    before) is at least ``ratio`` times their onset strength. Causal within the hold."""
    idx = np.clip(np.round(peaks).astype(np.int64), 0, odf.shape[0] - 1)
    lo = np.clip(idx - 1, 0, held.shape[0] - 1)
    best = np.maximum(held[lo], held[idx])
    keep: NDArray[np.bool_] = best >= ratio * odf[idx]
    return keep
