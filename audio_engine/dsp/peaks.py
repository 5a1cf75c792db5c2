"""Peak picking on an onset-strength curve, with sub-frame refinement."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from audio_engine.params import OnsetParams


@njit(cache=True, nogil=True)
def _pick_range_kernel(
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
) -> tuple[NDArray[np.int64], int]:
    """Peak frames among ``f0 .. f1-1`` of a curve whose frames ``buf_start ..`` are in
    ``odf`` and of which ``n_total`` exist (a whole signal: 0, n, 0, n; a stream: the
    frames decided so far).

    A peak is the maximum of ``odf[i-pre_max : i+post_max+1]`` that exceeds the mean of
    ``odf[i-pre_avg : i+post_avg+1]`` by ``delta``, more than ``combine`` frames after the
    previous peak ``last``; windows are clipped at 0 and ``n_total``. Returns the peak
    frames and the new ``last``."""
    out = np.empty(max(0, f1 - f0), dtype=np.int64)
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
        out[count] = i
        count += 1
        last = i
    return out[:count], last


@njit(cache=True, nogil=True)
def parabolic_offset(a: float, b: float, c: float) -> float:
    """Offset in frames (within ±0.5) of the vertex of the parabola through the strengths
    ``a, b, c`` of three consecutive frames; 0 unless the middle one is a maximum of it."""
    den = a - 2.0 * b + c
    off = 0.5 * (a - c) / den if den < 0.0 else 0.0
    return min(0.5, max(-0.5, off))


@njit(cache=True, nogil=True)
def _refine_range_kernel(
    odf: NDArray[np.float64], buf_start: int, n_total: int, peaks: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Sub-frame peak positions by parabolic interpolation over three frames (frames
    ``buf_start ..`` in ``odf``, ``n_total`` in all; the first and last stay put)."""
    out = np.empty(peaks.shape[0], dtype=np.float64)
    for k in range(peaks.shape[0]):
        i = peaks[k]
        if 0 < i < n_total - 1:
            out[k] = i + parabolic_offset(
                odf[i - 1 - buf_start], odf[i - buf_start], odf[i + 1 - buf_start]
            )
        else:
            out[k] = float(i)
    return out


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
    """Peak frames of a whole curve (see :func:`_pick_range_kernel`)."""
    n = odf.shape[0]
    peaks, _ = _pick_range_kernel(
        odf, 0, n, 0, n, pre_max, post_max, pre_avg, post_avg, delta, combine, -(10**9)
    )
    return peaks


@njit(cache=True, nogil=True)
def _refine_kernel(odf: NDArray[np.float64], peaks: NDArray[np.int64]) -> NDArray[np.float64]:
    """Sub-frame positions of peaks of a whole curve (see :func:`_refine_range_kernel`)."""
    return _refine_range_kernel(odf, 0, odf.shape[0], peaks)


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


@njit(cache=True, nogil=True)
def _distinct_peaks_kernel(
    odf: NDArray[np.float64], peaks: NDArray[np.float64], max_frames: int, dip_ratio: float
) -> NDArray[np.bool_]:
    """Mask of the peaks that are not the same attack as the one before (see
    :func:`distinct_peaks`)."""
    n = odf.shape[0]
    keep = np.ones(peaks.shape[0], dtype=np.bool_)
    last = -1
    for k in range(peaks.shape[0]):
        b = min(n - 1, max(0, int(np.floor(peaks[k] + 0.5))))
        if last >= 0 and b - last <= max_frames:
            low = odf[last]
            for j in range(last, b + 1):
                low = min(low, odf[j])
            if low >= dip_ratio * min(odf[last], odf[b]):
                keep[k] = False
                continue
        last = b
    return keep


def distinct_peaks(
    odf: NDArray[np.float64], peaks: NDArray[np.float64], *, max_frames: int, dip_ratio: float
) -> NDArray[np.bool_]:
    """Mask of the peaks that are attacks of their own, not a later swell of the one before.

    A blown note often starts with a breathy transient and swells 40-60 ms later; both are
    peaks of the onset strength. A peak at most ``max_frames`` frames after the last kept
    peak is the same attack when the strength between them never dips below ``dip_ratio``
    of the smaller of the two; two notes are parted by a dip.

    Parameters
    ----------
    odf : ndarray, shape (n_frames,)
        Onset strength.
    peaks : ndarray, shape (n_peaks,)
        Sorted peak positions in (fractional) frames.
    max_frames : int
        Peaks further apart than this are always distinct.
    dip_ratio : float
        Share of the smaller peak the strength must fall below between two peaks.

    Returns
    -------
    ndarray, shape (n_peaks,), bool
    """
    odf = np.ascontiguousarray(odf, dtype=np.float64)
    peaks = np.ascontiguousarray(peaks, dtype=np.float64)
    return _distinct_peaks_kernel(odf, peaks, int(max_frames), float(dip_ratio))


@njit(cache=True, nogil=True)
def _rise_starts_kernel(
    odf: NDArray[np.float64],
    peaks: NDArray[np.float64],
    ratio: float,
    max_frames: int,
    rebound: float,
    lead: float,
) -> NDArray[np.float64]:
    """Peaks moved back to ``lead`` frames after the start of their rise (see
    :func:`rise_starts`)."""
    n = odf.shape[0]
    out = peaks.copy()
    prev = -1
    for k in range(peaks.shape[0]):
        i = min(n - 1, max(0, int(np.floor(peaks[k] + 0.5))))
        lo = max(0, i - max_frames, prev + 1)
        base = odf[i]
        for j in range(lo, i):
            base = min(base, odf[j])
        level = base + ratio * (odf[i] - base)
        bump = rebound * (odf[i] - base)
        j = i
        low = odf[i]
        while j - 1 >= lo and odf[j - 1] >= level and odf[j - 1] - low <= bump:
            j -= 1
            low = min(low, odf[j])
        start = float(j)
        if j > lo and odf[j - 1] < level and odf[j] > odf[j - 1]:
            start = j - 1 + (level - odf[j - 1]) / (odf[j] - odf[j - 1])
        out[k] = min(peaks[k], start + lead)
        prev = i
    return out


def rise_starts(
    odf: NDArray[np.float64],
    peaks: NDArray[np.float64],
    *,
    ratio: float,
    max_frames: int,
    rebound: float,
    lead_frames: float,
) -> NDArray[np.float64]:
    """Onset positions of slow attacks: each peak moved back towards the start of its rise.

    The peak of the onset strength is the steepest point of an attack; a blown or bowed
    note starts rising well before it (FluidSynth's clarinet 30-90 ms). The rise of a peak
    at frame ``i`` is the run of frames before it whose strength is above ``ratio`` of the
    way from the lowest strength of the ``max_frames`` frames before it to the peak's,
    back to where it crosses that level (interpolated between frames). It reaches neither
    past the previous peak nor past a dip after which the strength rose again by more than
    ``rebound`` of that height (an earlier sound, not this one's rise). A peak is moved to
    ``lead_frames`` after the start of its rise when that is earlier: a sharp attack, which
    rises within a frame or two, keeps its place.

    Parameters
    ----------
    odf : ndarray, shape (n_frames,)
        Onset strength.
    peaks : ndarray, shape (n_peaks,)
        Sorted peak positions in (fractional) frames.
    ratio : float
        Share of the peak's height (over the lowest strength before it) that marks the
        start of the rise, 0-1.
    max_frames : int
        How far back the rise may reach, in frames.
    rebound : float
        Share of the peak's height by which the strength may rise again, going back, after
        a dip within the rise.
    lead_frames : float
        Frames from the start of the rise to the reported onset.

    Returns
    -------
    ndarray, shape (n_peaks,), float64
        Onset positions in frames, never later than the peaks.
    """
    odf = np.ascontiguousarray(odf, dtype=np.float64)
    peaks = np.ascontiguousarray(peaks, dtype=np.float64)
    return _rise_starts_kernel(
        odf, peaks, float(ratio), int(max_frames), float(rebound), float(lead_frames)
    )


class PickFrames(NamedTuple):
    """The peak-picking windows of :class:`OnsetParams` in frames (:func:`pick_peaks`)."""

    pre_max: int
    post_max: int
    pre_avg: int
    post_avg: int
    combine: int


def pick_frames(o: OnsetParams, fps: float) -> PickFrames:
    """``o``'s peak-picking windows (``pre_max_s`` ... ``combine_s``) in frames at ``fps``;
    the look-backs at least one frame."""
    return PickFrames(
        pre_max=max(1, round(o.pre_max_s * fps)),
        post_max=max(0, round(o.post_max_s * fps)),
        pre_avg=max(1, round(o.pre_avg_s * fps)),
        post_avg=max(0, round(o.post_avg_s * fps)),
        combine=max(0, round(o.combine_s * fps)),
    )


def swell_frames(o: OnsetParams, fps: float) -> int:
    """``o.swell_s`` in frames (:func:`distinct_peaks`'s ``max_frames``)."""
    return round(o.swell_s * fps)


def rise_frames(o: OnsetParams, fps: float) -> int:
    """``o.rise_max_s`` in frames (:func:`rise_starts`'s ``max_frames``)."""
    return round(o.rise_max_s * fps)


def slow_frames(o: OnsetParams, fps: float) -> tuple[int, int]:
    """``o.slow_post_s`` and ``o.slow_clear_s`` in frames (:func:`slow_peaks`)."""
    return round(o.slow_post_s * fps), round(o.slow_clear_s * fps)


SLOW_SNAP_BACK = 3  # a slow peak is placed on the main curve's highest frame this far before
SLOW_SNAP_AHEAD = 1  # ... to this far after it


def snap_to_main(
    odf: NDArray[np.float64], buf_start: int, n_total: int, i: int
) -> tuple[int, float]:
    """Frame and refined position of the highest frame of the main onset strength ``odf``
    (frames ``buf_start ..`` held, ``n_total`` in all) from ``SLOW_SNAP_BACK`` frames before
    frame ``i`` to ``SLOW_SNAP_AHEAD`` after it: where a slow detector's peak at ``i`` is
    placed, so that its onset is found on the curve that places every other one."""
    lo = max(0, i - SLOW_SNAP_BACK)
    hi = min(n_total - 1, i + SLOW_SNAP_AHEAD)
    j = lo + int(np.argmax(odf[lo - buf_start : hi - buf_start + 1]))
    if 0 < j < n_total - 1:
        k = j - buf_start
        return j, j + parabolic_offset(odf[k - 1], odf[k], odf[k + 1])
    return j, float(j)


def clear_of(frames: NDArray[np.int64], j: int, before: int, after: int) -> bool:
    """Whether none of ``frames`` lies in ``j - before .. j + after``."""
    return not bool(np.any((frames >= j - before) & (frames <= j + after)))


def slow_peaks(
    odf: NDArray[np.float64],
    odf_slow: NDArray[np.float64],
    main_frames: NDArray[np.int64],
    *,
    pre_max: int,
    pre_avg: int,
    post: int,
    delta: float,
    combine: int,
    clear: int,
) -> NDArray[np.float64]:
    """Positions (fractional frames of ``odf``) of the notes that only a slow detector finds.

    A legato re-articulation of a bowed or blown note rises over 50-200 ms: the flux over a
    few frames (``odf``) barely moves, the flux over more frames (``odf_slow``) peaks. Its
    peaks (the rule of :func:`pick_peaks`, ``post`` frames of look-ahead in both windows)
    are placed on ``odf`` (:func:`snap_to_main`) and kept where no peak of ``odf``
    (``main_frames``, past its hold gate) lies from ``combine`` frames before to ``clear``
    after them: those are attacks the main detector has found already. The caller applies
    the hold gate (:func:`held_peaks`) to the result.

    Parameters
    ----------
    odf, odf_slow : ndarray, shape (n_frames,)
        The main onset strength and the flux over more frames.
    main_frames : ndarray of int
        Frames of the main detector's peaks.
    pre_max, pre_avg, delta, combine : int, float
        As for :func:`pick_peaks`, applied to ``odf_slow``.
    post : int
        Look-ahead of the maximum and of the moving average, frames.
    clear : int
        Frames after a slow peak that must hold no main peak.

    Returns
    -------
    ndarray, shape (n_peaks,), float64
    """
    odf = np.ascontiguousarray(odf, dtype=np.float64)
    odf_slow = np.ascontiguousarray(odf_slow, dtype=np.float64)
    n = odf.shape[0]
    frames = _pick_peaks_kernel(odf_slow, pre_max, post, pre_avg, post, float(delta), combine)
    out: list[float] = []
    last = -(10**9)
    for i in frames:
        j, pos = snap_to_main(odf, 0, n, int(i))
        if j != last and clear_of(main_frames, j, combine, clear):
            out.append(pos)
            last = j
    return np.asarray(out, dtype=np.float64)
