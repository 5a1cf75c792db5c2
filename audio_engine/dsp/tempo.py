"""Tempo: autocorrelation tempogram of the onset strength, global tempo and local period.

Octave (half/double) errors are resolved by scoring each candidate tempo on its own
periodicity, the periodicity of its multiples (a comb), a log-normal tempo prior, and how
much stronger the onsets are on its beats than between them (metrical accent).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
from numba import njit
from numpy.typing import NDArray

from audio_engine.params import TempoParams


@dataclass(frozen=True, slots=True)
class TempoEstimate:
    """Global tempo in BPM with a 0..1 confidence, and the tempogram it came from."""

    bpm: float | None
    confidence: float
    period_frames: float | None


TEMPOGRAM_BLOCK = 256
"""Windows whose autocorrelation :func:`tempogram` computes at a time."""


def tempogram(odf: NDArray[np.float64], win: int, hop: int, max_lag: int) -> NDArray[np.float64]:
    """Normalised, window-unbiased autocorrelation of ``odf`` in overlapping windows.

    Parameters
    ----------
    odf : ndarray, shape (n_frames,)
        Onset strength.
    win, hop : int
        Window and hop in frames (a signal shorter than ``win`` gives one window).
    max_lag : int
        Largest lag in frames.

    Returns
    -------
    ndarray, shape (n_windows, max_lag + 1)
        Row ``k`` is the autocorrelation of the window starting at frame ``k * hop``,
        divided by its lag-0 value (0 for a silent window).
    """
    n = odf.shape[0]
    if n < 8:
        return np.zeros((1, max_lag + 1))
    win = max(8, min(win, n))
    starts = np.arange(0, max(1, n - win + 1), hop)
    if starts[-1] + win < n:
        starts = np.append(starts, n - win)
    w, n_fft, wacf = _window_acf(win)
    L = min(max_lag, win - 1)
    out = np.zeros((len(starts), max_lag + 1))
    denom = np.maximum(wacf[: L + 1] / wacf[0], 0.25)
    # windows a block at a time: an hour's windows at once would hold ~0.2 GB of FFTs
    for k0 in range(0, len(starts), TEMPOGRAM_BLOCK):
        block = starts[k0 : k0 + TEMPOGRAM_BLOCK]
        if block.size == 1:  # one window (a live stream's): no strided view needed
            frames = odf[None, block[0] : block[0] + win]
        else:
            frames = np.lib.stride_tricks.sliding_window_view(odf, win)[block]
        x = (frames - frames.mean(axis=1, keepdims=True)) * w
        spec = scipy.fft.rfft(x, n=n_fft, axis=1)
        acf = scipy.fft.irfft(spec.real**2 + spec.imag**2, n=n_fft, axis=1)
        a0 = acf[:, :1]
        ok = a0[:, 0] > 1e-12
        rows = out[k0 : k0 + block.size]
        rows[ok, : L + 1] = acf[ok, : L + 1] / a0[ok] / denom
    return out


@functools.lru_cache(maxsize=16)
def _window_acf(win: int) -> tuple[NDArray[np.float64], int, NDArray[np.float64]]:
    """The tempogram's analysis window of ``win`` frames, its FFT length and the window's
    own autocorrelation (the bias it puts on each lag); cached: a live stream asks for the
    same window twice a second. The arrays are read-only."""
    w = np.hanning(win + 2)[1:-1]
    n_fft = scipy.fft.next_fast_len(2 * win)
    wacf = scipy.fft.irfft(np.abs(scipy.fft.rfft(w, n=n_fft)) ** 2, n=n_fft)
    w.flags.writeable = False
    wacf.flags.writeable = False
    return w, n_fft, wacf


@njit(cache=True, nogil=True)
def _interp_kernel(a: NDArray[np.float64], lags: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.zeros(lags.shape[0])
    n = a.shape[0]
    for i in range(lags.shape[0]):
        x = lags[i]
        j = int(x)
        if 0 <= j < n - 1:
            f = x - j
            out[i] = a[j] * (1.0 - f) + a[j + 1] * f
    return out


@njit(cache=True, nogil=True)
def _peak_near_kernel(a: NDArray[np.float64], lo: float, hi: float) -> float:
    """Lag (fractional) of the largest local maximum of ``a`` in ``[lo, hi]``; -1 if none."""
    n = a.shape[0]
    i0 = max(1, int(np.ceil(lo)))
    i1 = min(n - 2, int(np.floor(hi)))
    best = -1
    bv = -1e300
    for i in range(i0, i1 + 1):
        if a[i] >= a[i - 1] and a[i] >= a[i + 1] and a[i] > bv:
            bv = a[i]
            best = i
    if best < 0:
        return -1.0
    x0, x1, x2 = a[best - 1], a[best], a[best + 1]
    den = x0 - 2.0 * x1 + x2
    off = 0.5 * (x0 - x2) / den if den < 0.0 else 0.0
    return best + min(0.5, max(-0.5, off))


@njit(cache=True, nogil=True)
def _accent_kernel(odf: NDArray[np.float64], period: float, n_sub: int) -> float:
    """How much stronger the onset strength is on beats of ``period`` than on the ``n_sub-1``
    positions that divide each beat, at the best phase: a log ratio (0 = no accent)."""
    n = odf.shape[0]
    steps = int(period)
    if steps < 2 or n < 2 * period:
        return 0.0
    best = -1e300
    n_phase = max(1, int(period))
    for ph in range(n_phase):
        on = 0.0
        off = 0.0
        c_on = 0
        c_off = 0
        t = float(ph)
        while t + period < n:
            i = int(t + 0.5)
            lo = max(0, i - 2)
            hi = min(n, i + 3)
            m = 0.0
            for j in range(lo, hi):
                if odf[j] > m:
                    m = odf[j]
            on += m
            c_on += 1
            for s in range(1, n_sub):
                k = int(t + period * s / n_sub + 0.5)
                lo = max(0, k - 2)
                hi = min(n, k + 3)
                m = 0.0
                for j in range(lo, hi):
                    if odf[j] > m:
                        m = odf[j]
                off += m
                c_off += 1
            t += period
        if c_on == 0 or c_off == 0:
            continue
        score = np.log((on / c_on + 1e-9) / (off / c_off + 1e-9))
        if score > best:
            best = score
    return best if best > -1e299 else 0.0


def estimate_tempo(
    odf: NDArray[np.float64], fps: float, params: TempoParams, tg: NDArray[np.float64]
) -> TempoEstimate:
    """Global tempo of an onset-strength curve.

    Parameters
    ----------
    odf : ndarray, shape (n_frames,)
        Onset strength at ``fps`` frames per second.
    fps : float
        Frame rate in Hz.
    params : TempoParams
        Range, prior and windows.
    tg : ndarray, shape (n_windows, max_lag + 1)
        Its tempogram (see :func:`tempogram`).
    """
    acf = tg.mean(axis=0)
    bpms = np.geomspace(params.min_bpm, params.max_bpm, 400)
    lags = 60.0 * fps / bpms
    sal = _interp_kernel(acf, lags)
    comb = sal + 0.5 * _interp_kernel(acf, 2 * lags) + 0.25 * _interp_kernel(acf, 4 * lags)
    comb = np.maximum(comb, 0.0)
    prior = np.exp(-0.5 * (np.log2(bpms / params.prior_bpm) / params.prior_octaves) ** 2)
    score = comb * prior
    if not np.any(score > 0):
        return TempoEstimate(None, 0.0, None)
    k = int(np.argmax(score))
    lag = _peak_near_kernel(acf, lags[k] * 0.94, lags[k] * 1.06)
    if lag <= 0:
        lag = float(lags[k])
    conf = float(np.clip(sal[k], 0.0, 1.0))
    return TempoEstimate(60.0 * fps / lag, conf, lag)


def _smooth_lags(
    tg: NDArray[np.float64], sigma: float, lo: float, hi: float
) -> NDArray[np.float64]:
    """``tg`` with its lags ``[lo, hi]`` (and one either side) smoothed by a Gaussian of
    ``sigma`` lags; the other lags as they were."""
    r = int(3.0 * sigma) + 1
    n = tg.shape[1]
    a = max(0, int(lo) - 2 - r)
    b = min(n, math.ceil(hi) + 3 + r)
    if b - a < 2 * r + 1:
        return tg
    ker = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    ker /= ker.sum()
    out = tg.copy()
    windows = np.lib.stride_tricks.sliding_window_view(tg[:, a:b], 2 * r + 1, axis=1)
    out[:, a + r : b - r] = windows @ ker
    return out


def local_period(
    tg: NDArray[np.float64],
    period: float,
    n_frames: int,
    win: int,
    hop: int,
    spread: float = 1.3,
    *,
    smooth: float = 0.0,
) -> NDArray[np.float64]:
    """Beat period in frames at every frame, following the tempogram near ``period``.

    Each window's autocorrelation peak within ``[period/spread, period*spread]`` gives the
    local period at the window's centre; a 3-window median removes outliers and the result
    is interpolated to every frame. ``smooth`` > 0 first smooths each window's
    autocorrelation over lags with a Gaussian of ``smooth * period`` lags, so that a few
    jittered notes (a window holds only eight beats of a slow piece) give one peak at their
    mean interval instead of a ragged cluster whose highest point is any of them.
    """
    n_win = tg.shape[0]
    win = min(win, n_frames)
    centres = np.minimum(np.arange(n_win) * hop + win / 2.0, n_frames - 1)
    if n_win > 1 and centres[-1] <= centres[-2]:
        centres[-1] = n_frames - 1
    lo, hi = period / spread, period * spread
    if smooth * period > 0.3:
        tg = _smooth_lags(tg, smooth * period, lo, hi)
    per = np.empty(n_win)
    for k in range(n_win):
        p = _peak_near_kernel(tg[k], lo, hi)
        per[k] = p if p > 0 else period
    if n_win >= 3:
        padded = np.concatenate([per[:1], per, per[-1:]])
        per = np.median(np.lib.stride_tricks.sliding_window_view(padded, 3), axis=1)
    return np.interp(np.arange(n_frames), centres, per)


def accent_ratio(odf: NDArray[np.float64], period: float, n_sub: int) -> float:
    """Log ratio of the onset strength on beats to that between them (``n_sub`` divisions)."""
    return float(_accent_kernel(np.ascontiguousarray(odf), float(period), int(n_sub)))


def _tatum_peaks(
    acf: NDArray[np.float64], fps: float, params: TempoParams
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Lags (increasing) and values of the positive local maxima of ``acf`` within the tempo
    range."""
    lo = 60.0 * fps / params.max_bpm
    hi = min(60.0 * fps / params.min_bpm, acf.shape[0] - 2)
    i0, i1 = max(1, int(np.ceil(lo))), int(np.floor(hi))
    if i1 <= i0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    seg = acf[i0 - 1 : i1 + 2]
    is_peak = (seg[1:-1] >= seg[:-2]) & (seg[1:-1] >= seg[2:]) & (seg[1:-1] > 0)
    lags = np.flatnonzero(is_peak) + i0
    return lags, acf[lags]


def estimate_tatum(acf: NDArray[np.float64], fps: float, params: TempoParams) -> float | None:
    """Period in frames of the fastest strong periodicity (the tatum) of an averaged
    autocorrelation: the shortest-lag local maximum within the tempo range whose value is
    at least ``params.tatum_ratio`` times the highest one; None without any peak."""
    lags, vals = _tatum_peaks(acf, fps, params)
    if lags.size == 0:
        return None
    first = lags[np.flatnonzero(vals >= params.tatum_ratio * vals.max())[0]]
    p = _peak_near_kernel(acf, first - 1.0, first + 1.0)
    return p if p > 0 else float(first)


def subdivided_tatum(
    acf: NDArray[np.float64], tatum: float, fps: float, params: TempoParams
) -> float:
    """The tatum of :func:`estimate_tatum`, or a weaker, faster pulse that divides it.

    A pulse whose every other note differs (kick and snare on alternate beats) correlates
    more with itself two notes on than one, and its own autocorrelation peak can fall below
    ``tatum_ratio`` of the highest. The fastest local maximum at lag ``L`` of at least
    ``params.subdivision_ratio`` times the highest peak becomes the tatum when ``tatum`` is
    ``k`` of its periods (``k`` = 2-4, within 4 %) and the autocorrelation also peaks, as
    high, at ``(k + 1) L``: one period past the tatum, so ``L`` is a pulse of its own and
    not a partial of the slower one (an accent pattern that recurs once per tatum peaks at
    multiples of the tatum only).

    Parameters
    ----------
    acf : ndarray, shape (max_lag + 1,)
        Averaged autocorrelation (the mean of :func:`tempogram`'s rows).
    tatum : float
        Tatum period in frames from :func:`estimate_tatum`.
    fps : float
        Frame rate in Hz.
    params : TempoParams
        Tempo range and ``subdivision_ratio``.

    Returns
    -------
    float
        Tatum period in frames: ``tatum`` itself, or ``L`` (parabola-interpolated).
    """
    lags, vals = _tatum_peaks(acf, fps, params)
    if lags.size == 0:
        return tatum
    floor = params.subdivision_ratio * float(vals.max())
    for lag, val in zip(lags, vals, strict=True):
        if lag >= tatum - 1.0:
            break
        if val < floor:
            continue
        period = _peak_near_kernel(acf, lag - 1.0, lag + 1.0)
        period = period if period > 0 else float(lag)
        k = round(tatum / period)
        if not 2 <= k <= 4 or abs(tatum / (k * period) - 1.0) > 0.04:
            continue
        past = _peak_near_kernel(acf, (k + 1) * period * 0.97, (k + 1) * period * 1.03)
        if past > 0 and np.interp(past, np.arange(acf.shape[0]), acf) >= floor:
            return period
    return tatum
