"""Log-magnitude, log-frequency spectrogram.

Frames are centred: frame ``i`` covers samples ``[i*hop - n_fft//2, i*hop + n_fft//2)``
(zero outside the signal), so its time is ``i * hop / sr`` seconds. The FFT is scipy's
pocketfft on float32 frames; framing, magnitude and the filterbank are numba kernels. The
offline spectrogram runs them over blocks of ``BLOCK_FRAMES`` frames, so that frames and
spectra stay in the CPU's cache; every sum runs in a fixed order, so the result does not
depend on the block size or the chunking.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from numba import njit
from numpy.typing import NDArray

from audio_engine.params import SpectrogramParams

BLOCK_FRAMES = 64
"""Frames per block of the offline spectrogram (frames + spectra about 0.5 MB)."""


@dataclass(frozen=True, slots=True)
class FrameGeometry:
    """Frame sizes in samples at the working rate ``sr`` (Hz)."""

    sr: float
    n_fft: int
    hop_length: int

    @property
    def fps(self) -> float:
        """Frames per second."""
        return self.sr / self.hop_length


def frame_geometry(sr: float, params: SpectrogramParams) -> FrameGeometry:
    """Window and hop in samples for a working rate ``sr`` in Hz.

    The window is the FFT-friendly size nearest ``frame_s`` (not the next power of two, which
    would nearly double it at some rates and shift onset times with the sample rate)."""
    n_fft = int(scipy.fft.next_fast_len(max(16, round(params.frame_s * sr)), real=True))
    while n_fft % 2:  # even, so that frames centre on their sample
        n_fft = int(scipy.fft.next_fast_len(n_fft + 1, real=True))
    hop = max(1, round(params.hop_s * sr))
    return FrameGeometry(sr=sr, n_fft=n_fft, hop_length=hop)


def n_frames_for(n_samples: int, hop_length: int) -> int:
    """Number of centred frames for a signal of ``n_samples``."""
    return n_samples // hop_length + 1 if n_samples > 0 else 0


def head_frames(geom: FrameGeometry, lag_frames: int) -> int:
    """Number of leading frames whose flux over ``lag_frames`` sees the start of the
    recording rather than a note: a frame whose window reaches before the first sample, or
    which is compared with such a frame, holds the zeros before the signal. A recording
    rarely starts in digital silence (a microphone's room noise, an excerpt cut from
    music), so the step from those zeros to the signal is the cut, not an onset; the
    recording's start is treated like its end (:func:`tail_frames`).
    """
    reach = -(-(geom.n_fft // 2) // geom.hop_length)  # frames whose window starts before 0
    return reach + max(0, lag_frames)


def tail_frames(n_samples: int, geom: FrameGeometry) -> int:
    """Index of the first frame whose window reaches past the end of a signal of
    ``n_samples`` (its spectrum shows the cut, not the music)."""
    return max(0, (n_samples - geom.n_fft // 2) // geom.hop_length + 1)


# The framing and filterbank kernels work on 8 frames side by side ("lanes", written out in
# the kernels). Each frame's sums keep their own sequential order (no fast-math
# reassociation), so a frame gets the same bits whether it is computed among 8 or alone,
# whatever the chunking or the CPU's vector width; the lanes only let the CPU overlap
# independent additions (a single sum is bound by the adder's latency).


@njit(cache=True, nogil=True)
def _frame_one(
    y: NDArray[np.float32],
    window: NDArray[np.float32],
    s: int,
    out: NDArray[np.float32],
    i: int,
) -> None:
    """Frame ``i`` of ``out``: samples ``s .. s+n_fft`` of ``y`` (zero outside ``y``), mean
    removed (summed in sample order), windowed."""
    n_fft = window.shape[0]
    lo = max(0, -s)
    hi = max(lo, min(n_fft, y.shape[0] - s))
    row = out[i]
    for k in range(lo):
        row[k] = 0.0
    for k in range(hi, n_fft):
        row[k] = 0.0
    if hi == lo:
        return
    seg = y[s + lo : s + hi]
    mean = np.float32(0.0)
    for k in range(hi - lo):
        mean += seg[k]
    mean /= np.float32(hi - lo)
    for k in range(hi - lo):
        row[lo + k] = (seg[k] - mean) * window[lo + k]


@njit(cache=True, nogil=True)
def _frame_into_kernel(
    y: NDArray[np.float32],
    window: NDArray[np.float32],
    hop: int,
    start: int,
    out: NDArray[np.float32],
) -> None:
    """Write windowed frames into ``out`` ``(n_frames, n_fft)``; frame i starts at sample
    ``start + i*hop``.

    Each frame's samples have their mean removed first, so a DC offset (or a step of the
    offset where the signal starts) does not leak into the low bands. The mean is summed in
    sample order; frames that lie wholly inside ``y`` are summed ``LANES`` at a time."""
    n_fft = window.shape[0]
    n = y.shape[0]
    n_frames = out.shape[0]
    means = np.empty(8, dtype=np.float32)
    i = 0
    while i < n_frames:
        s = start + i * hop
        if i + 8 > n_frames or s < 0 or s + 7 * hop + n_fft > n:
            _frame_one(y, window, s, out, i)
            i += 1
            continue
        y0 = y[s : s + n_fft]
        y1 = y[s + hop : s + hop + n_fft]
        y2 = y[s + 2 * hop : s + 2 * hop + n_fft]
        y3 = y[s + 3 * hop : s + 3 * hop + n_fft]
        y4 = y[s + 4 * hop : s + 4 * hop + n_fft]
        y5 = y[s + 5 * hop : s + 5 * hop + n_fft]
        y6 = y[s + 6 * hop : s + 6 * hop + n_fft]
        y7 = y[s + 7 * hop : s + 7 * hop + n_fft]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0.0)
        for k in range(n_fft):
            a0 += y0[k]
            a1 += y1[k]
            a2 += y2[k]
            a3 += y3[k]
            a4 += y4[k]
            a5 += y5[k]
            a6 += y6[k]
            a7 += y7[k]
        m = np.float32(n_fft)
        means[0] = a0 / m
        means[1] = a1 / m
        means[2] = a2 / m
        means[3] = a3 / m
        means[4] = a4 / m
        means[5] = a5 / m
        means[6] = a6 / m
        means[7] = a7 / m
        for lane in range(8):
            seg = y[s + lane * hop : s + lane * hop + n_fft]
            mean = means[lane]
            row = out[i + lane]
            for k in range(n_fft):
                row[k] = (seg[k] - mean) * window[k]
        i += 8


@njit(cache=True, nogil=True)
def _frame_kernel(
    y: NDArray[np.float32], window: NDArray[np.float32], hop: int, start: int, n_frames: int
) -> NDArray[np.float32]:
    """Windowed frames ``(n_frames, n_fft)`` (see :func:`_frame_into_kernel`)."""
    out = np.empty((n_frames, window.shape[0]), dtype=np.float32)
    _frame_into_kernel(y, window, hop, start, out)
    return out


@njit(cache=True, nogil=True)
def _filterbank_log_into_kernel(
    spec: NDArray[np.complex64],
    band_start: NDArray[np.int64],
    band_len: NDArray[np.int64],
    weights: NDArray[np.float32],
    weight_offset: NDArray[np.int64],
    log_mul: float,
    out: NDArray[np.float32],
) -> None:
    """Write ``log10(1 + log_mul * (|spec| @ filterbank))`` into ``out``
    ``(n_frames, n_bands)`` without forming the dense matrix.

    Each band's weighted sum runs in bin order; ``LANES`` frames at a time, with the
    magnitudes laid out bin-major so that the frames' sums advance together."""
    n_frames = spec.shape[0]
    n_bins = spec.shape[1]
    n_bands = band_start.shape[0]
    mag = np.zeros((n_bins, 8), dtype=np.float32)
    acc = np.empty(8, dtype=np.float32)
    mul = np.float32(log_mul)
    one = np.float32(1.0)
    for i0 in range(0, n_frames, 8):
        n_lanes = min(8, n_frames - i0)
        for lane in range(n_lanes):
            row = spec[i0 + lane]
            for k in range(n_bins):
                re = row[k].real
                im = row[k].imag
                mag[k, lane] = np.sqrt(re * re + im * im)
        for b in range(n_bands):
            s = band_start[b]
            o = weight_offset[b]
            acc[:] = 0.0
            for j in range(band_len[b]):
                w = weights[o + j]
                m = mag[s + j]
                for lane in range(8):
                    acc[lane] += w * m[lane]
            for lane in range(n_lanes):
                out[i0 + lane, b] = np.log10(one + mul * acc[lane])


@njit(cache=True, nogil=True)
def _filterbank_log_kernel(
    spec: NDArray[np.complex64],
    band_start: NDArray[np.int64],
    band_len: NDArray[np.int64],
    weights: NDArray[np.float32],
    weight_offset: NDArray[np.int64],
    log_mul: float,
) -> NDArray[np.float32]:
    """``log10(1 + log_mul * (|spec| @ filterbank))`` (see :func:`_filterbank_log_into_kernel`)."""
    out = np.empty((spec.shape[0], band_start.shape[0]), dtype=np.float32)
    _filterbank_log_into_kernel(spec, band_start, band_len, weights, weight_offset, log_mul, out)
    return out


@lru_cache(maxsize=32)
def log_filterbank(
    sr: float, n_fft: int, fmin_hz: float, fmax_hz: float, bands_per_octave: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
    """Sparse triangular filters on a logarithmic frequency axis, each normalised to sum 1.

    Filters narrower than one FFT bin collapse onto a single bin; duplicates are removed.

    Returns
    -------
    band_start, band_len : ndarray of int64, shape (n_bands,)
        First bin and number of bins of each filter.
    weights : ndarray of float32
        Concatenated filter weights.
    weight_offset : ndarray of int64, shape (n_bands,)
        Offset of each filter in ``weights``.
    """
    n_bins = n_fft // 2 + 1
    fmax = min(fmax_hz, sr / 2 * 0.95)
    n_oct = np.log2(fmax / fmin_hz)
    centres_hz = fmin_hz * 2.0 ** (np.arange(int(n_oct * bands_per_octave) + 1) / bands_per_octave)
    bins = np.unique(np.round(centres_hz * n_fft / sr).astype(np.int64))
    bins = bins[(bins >= 1) & (bins < n_bins)]
    starts, lens, offs, ws = [], [], [], []
    offset = 0
    for j in range(1, len(bins) - 1):
        lo, c, hi = int(bins[j - 1]), int(bins[j]), int(bins[j + 1])
        idx = np.arange(lo, hi + 1)
        w = np.where(idx <= c, (idx - lo + 1) / (c - lo + 1), (hi - idx + 1) / (hi - c + 1))
        w = w / w.sum()
        starts.append(lo)
        lens.append(len(idx))
        offs.append(offset)
        ws.append(w.astype(np.float32))
        offset += len(idx)
    return (
        np.array(starts, dtype=np.int64),
        np.array(lens, dtype=np.int64),
        np.concatenate(ws).astype(np.float32),
        np.array(offs, dtype=np.int64),
    )


@lru_cache(maxsize=32)
def _hann(n_fft: int) -> NDArray[np.float32]:
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)


def log_spectrogram(
    y: NDArray[np.float32],
    geom: FrameGeometry,
    params: SpectrogramParams,
    *,
    first_frame: int = 0,
    n_frames: int | None = None,
) -> NDArray[np.float32]:
    """Log-magnitude, log-frequency spectrogram of a mono float32 signal.

    Parameters
    ----------
    y : ndarray, shape (n,), float32
        Signal at the working rate ``geom.sr``.
    geom : FrameGeometry
        Window and hop in samples.
    params : SpectrogramParams
        Filterbank range, resolution and compression.
    first_frame, n_frames : int
        Compute only frames ``first_frame .. first_frame + n_frames`` (default: all).

    Returns
    -------
    ndarray, shape (n_frames, n_bands), float32
    """
    if n_frames is None:
        n_frames = n_frames_for(y.shape[0], geom.hop_length) - first_frame
    fb = log_filterbank(
        geom.sr, geom.n_fft, params.fmin_hz, params.fmax_hz, params.bands_per_octave
    )
    if n_frames <= 0:
        return np.zeros((0, fb[0].shape[0]), dtype=np.float32)
    start = first_frame * geom.hop_length - geom.n_fft // 2
    window = _hann(geom.n_fft)
    out = np.empty((n_frames, fb[0].shape[0]), dtype=np.float32)
    # A block of frames at a time, so that frames and spectra stay in the CPU's cache
    # (materialising them whole cost as much as the FFT, mostly in page faults); the FFT
    # of a row does not depend on the rows beside it, so the result is the same.
    block = min(n_frames, BLOCK_FRAMES)
    frames = np.empty((block, geom.n_fft), dtype=np.float32)
    for f0 in range(0, n_frames, block):
        nb = min(block, n_frames - f0)
        _frame_into_kernel(y, window, geom.hop_length, start + f0 * geom.hop_length, frames[:nb])
        spec = scipy.fft.rfft(frames[:nb], axis=1)
        _filterbank_log_into_kernel(
            spec, fb[0], fb[1], fb[2], fb[3], params.log_mul, out[f0 : f0 + nb]
        )
    return out
