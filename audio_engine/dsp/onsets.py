"""Onset strength: SuperFlux-style spectral flux on the log-frequency spectrogram.

Each band's rise is measured against the maximum of its neighbouring bands ``lag`` frames
earlier: vibrato moves energy between neighbouring bands and is not counted as a rise,
while a lag of more than one frame catches the slow rise of bowed and blown attacks.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from audio_engine.errors import ParameterError


@njit(cache=True, nogil=True)
def _max_filter_bands_kernel(S: NDArray[np.float32], half_width: int) -> NDArray[np.float32]:
    """Maximum over ``±half_width`` neighbouring bands, per frame.

    Built one offset at a time (``out[b] = max(out[b], S[b - d], S[b + d])``) so that the
    inner loops run over contiguous bands; a maximum does not depend on the order."""
    n_frames, n_bands = S.shape
    out = np.empty_like(S)
    for i in range(n_frames):
        src = S[i]
        row = out[i]
        for b in range(n_bands):
            row[b] = src[b]
        for d in range(1, min(half_width, n_bands - 1) + 1):
            for b in range(n_bands - d):  # the band d above
                row[b] = max(row[b], src[b + d])
            for b in range(d, n_bands):  # the band d below
                row[b] = max(row[b], src[b - d])
    return out


@njit(cache=True, nogil=True)
def _superflux_kernel(
    S: NDArray[np.float32], S_ref: NDArray[np.float32], lag: int, history: NDArray[np.float32]
) -> NDArray[np.float64]:
    """Positive flux of ``S[i]`` against ``S_ref[i - lag]``, summed over bands.

    ``history`` holds the ``lag`` reference frames that precede ``S`` (zeros at the start
    of a signal), so that chunks of a stream give the same values as the whole signal.
    """
    n_frames, n_bands = S.shape
    out = np.zeros(n_frames, dtype=np.float64)
    for i in range(n_frames):
        j = i - lag
        acc = 0.0
        for b in range(n_bands):
            ref = S_ref[j, b] if j >= 0 else history[lag + j, b]
            d = S[i, b] - ref
            if d > 0.0:
                acc += d
        out[i] = acc
    return out


@njit(cache=True, nogil=True)
def _stream_spectra_kernel(
    S: NDArray[np.float32],
    history: NDArray[np.float32],
    lag: int,
    slow_lag: int,
    max_bands: int,
) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64], NDArray[np.float32]]:
    """What a stream derives from new spectra ``S`` in one call: their max-filtered copy,
    the onset strength at ``lag`` and at ``slow_lag`` (an empty array for 0) and the
    per-band positive flux at ``lag``, each value as :func:`_max_filter_bands_kernel` and
    :func:`_superflux_kernel` compute it.

    ``history`` holds the max-filtered frames before ``S`` (at least ``max(lag,
    slow_lag)``, zeros before the signal)."""
    ref = _max_filter_bands_kernel(S, max_bands) if max_bands > 0 else S.copy()
    h = history.shape[0]
    odf = _superflux_kernel(S, ref, lag, history[h - lag :])
    if slow_lag > 0:
        odf_slow = _superflux_kernel(S, ref, slow_lag, history[h - slow_lag :])
    else:
        odf_slow = np.zeros(0, dtype=np.float64)
    n_frames, n_bands = S.shape
    flux = np.empty_like(S)
    zero = np.float32(0.0)
    for i in range(n_frames):
        j = i - lag
        for b in range(n_bands):
            d = S[i, b] - (ref[j, b] if j >= 0 else history[h + j, b])
            flux[i, b] = d if d > zero else zero
    return ref, odf, odf_slow, flux


def max_filter_bands(S: NDArray[np.float32], max_bands: int) -> NDArray[np.float32]:
    """``S`` max-filtered over ``±max_bands`` bands (``S`` itself for 0)."""
    S = np.ascontiguousarray(S, dtype=np.float32)
    return _max_filter_bands_kernel(S, max_bands) if max_bands > 0 else S


def onset_strength(
    S: NDArray[np.float32],
    *,
    lag_frames: int,
    max_bands: int,
    history: NDArray[np.float32] | None = None,
    ref: NDArray[np.float32] | None = None,
) -> NDArray[np.float64]:
    """Onset strength per frame from a log spectrogram.

    Parameters
    ----------
    S : ndarray, shape (n_frames, n_bands), float32
        Log-magnitude spectrogram.
    lag_frames : int
        Frames between the compared spectra (>= 1).
    max_bands : int
        Half-width of the vibrato-suppressing maximum filter across bands (>= 0).
    history : ndarray, shape (lag_frames, n_bands), optional
        Max-filtered frames preceding ``S`` (streaming); zeros (silence) by default.
    ref : ndarray, shape (n_frames, n_bands), optional
        The max-filtered ``S``, when the caller has computed it already.

    Returns
    -------
    ndarray, shape (n_frames,), float64
    """
    if lag_frames < 1:
        raise ParameterError(f"lag_frames must be >= 1, got {lag_frames}")
    if max_bands < 0:
        raise ParameterError(f"max_bands must be >= 0, got {max_bands}")
    S = np.ascontiguousarray(S, dtype=np.float32)
    if ref is None:
        ref = _max_filter_bands_kernel(S, max_bands) if max_bands > 0 else S
    if history is None:
        history = np.zeros((lag_frames, S.shape[1]), dtype=np.float32)
    return _superflux_kernel(S, ref, lag_frames, np.ascontiguousarray(history, dtype=np.float32))


@njit(cache=True, nogil=True)
def _hold_min_kernel(S: NDArray[np.float32], hold: int) -> NDArray[np.float32]:
    """Per band, the minimum of ``S[i .. i+hold]`` (clipped at the end).

    Row by row, so that the inner loop runs over contiguous bands; a minimum does not
    depend on the order."""
    n_frames, n_bands = S.shape
    out = np.empty_like(S)
    for i in range(n_frames):
        row = out[i]
        src = S[i]
        for b in range(n_bands):
            row[b] = src[b]
        for j in range(i + 1, min(n_frames, i + hold + 1)):
            nxt = S[j]
            for b in range(n_bands):
                if nxt[b] < row[b]:
                    row[b] = nxt[b]
    return out


HOLD_BLOCK_FRAMES = 8192
"""Frames whose held strength :func:`sustained_strength` computes at a time."""


def sustained_strength(
    S: NDArray[np.float32],
    *,
    lag_frames: int,
    max_bands: int,
    hold_frames: int,
    ref: NDArray[np.float32] | None = None,
) -> NDArray[np.float64]:
    """Onset strength of rises that last ``hold_frames`` frames.

    A note's attack stays up; a transient that is gone again within ``hold_frames`` frames
    (a synthesiser's release click, a knock on the instrument) does not. Same parameters as
    :func:`onset_strength`; the current frame is replaced by the minimum over the next
    ``hold_frames`` frames. ``ref`` is the max-filtered ``S`` when the caller has it already.
    """
    S = np.ascontiguousarray(S, dtype=np.float32)
    if ref is None:
        ref = _max_filter_bands_kernel(S, max_bands) if max_bands > 0 else S
    n = S.shape[0]
    out = np.zeros(n, dtype=np.float64)
    # a block of frames at a time: the held minima of a whole long recording would be one
    # more array the size of S (the values are the same: each frame's minimum looks
    # ``hold_frames`` ahead, its reference ``lag_frames`` back)
    for a in range(0, n, HOLD_BLOCK_FRAMES):
        b = min(n, a + HOLD_BLOCK_FRAMES)
        lo = max(0, a - lag_frames)
        pad = np.zeros((lag_frames - (a - lo), S.shape[1]), dtype=np.float32)
        out[a:b] = held_strength_rows(
            S[a : b + hold_frames], b - a, np.concatenate([pad, ref[lo:b]]),
            lag_frames=lag_frames, hold_frames=hold_frames,
        )
    return out


def held_strength_rows(
    S: NDArray[np.float32],
    n: int,
    ref_rows: NDArray[np.float32],
    *,
    lag_frames: int,
    hold_frames: int,
) -> NDArray[np.float64]:
    """:func:`sustained_strength` of ``n`` consecutive frames, from their spectra ``S`` and
    up to ``hold_frames`` after them (fewer at the signal's end), and the max-filtered
    spectra ``ref_rows`` of the ``lag_frames`` frames before them (zeros before the
    signal's start) and of the frames themselves: the offline analysis a block at a time,
    the stream as its frames come."""
    held = _hold_min_kernel(np.ascontiguousarray(S, dtype=np.float32), hold_frames)[:n]
    ref_rows = np.ascontiguousarray(ref_rows, dtype=np.float32)
    return _superflux_kernel(held, ref_rows[lag_frames:], lag_frames, ref_rows[:lag_frames])
