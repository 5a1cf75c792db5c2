"""Log-magnitude, log-frequency spectrogram.

Frames are centred: frame ``i`` covers samples ``[i*hop - n_fft//2, i*hop + n_fft//2)``
(zero outside the signal), so its time is ``i * hop / sr`` seconds. The FFT is scipy's
pocketfft on float32 frames; framing, magnitude and the filterbank are numba kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from numba import njit
from numpy.typing import NDArray

from audio_engine.params import SpectrogramParams


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


def tail_frames(n_samples: int, geom: FrameGeometry) -> int:
    """Index of the first frame whose window reaches past the end of a signal of
    ``n_samples`` (its spectrum shows the cut, not the music)."""
    return max(0, (n_samples - geom.n_fft // 2) // geom.hop_length + 1)


@njit(cache=True, nogil=True, fastmath=True)
def _frame_kernel(
    y: NDArray[np.float32], window: NDArray[np.float32], hop: int, start: int, n_frames: int
) -> NDArray[np.float32]:
    """Windowed frames ``(n_frames, n_fft)``; frame i starts at sample ``start + i*hop``.

    Each frame's samples have their mean removed first, so a DC offset (or a step of the
    offset where the signal starts) does not leak into the low bands."""
    n_fft = window.shape[0]
    n = y.shape[0]
    out = np.empty((n_frames, n_fft), dtype=np.float32)
    for i in range(n_frames):
        s = start + i * hop
        lo = max(0, -s)
        hi = min(n_fft, n - s)
        if hi <= lo:
            out[i, :] = 0.0
            continue
        out[i, :lo] = 0.0
        out[i, hi:] = 0.0
        mean = np.float32(0.0)
        for k in range(lo, hi):
            mean += y[s + k]
        mean /= np.float32(hi - lo)
        for k in range(lo, hi):
            out[i, k] = (y[s + k] - mean) * window[k]
    return out


@njit(cache=True, nogil=True, fastmath=True)
def _filterbank_log_kernel(
    spec: NDArray[np.complex64],
    band_start: NDArray[np.int64],
    band_len: NDArray[np.int64],
    weights: NDArray[np.float32],
    weight_offset: NDArray[np.int64],
    log_mul: float,
) -> NDArray[np.float32]:
    """``log10(1 + log_mul * (|spec| @ filterbank))`` without forming the dense matrix."""
    n_frames = spec.shape[0]
    n_bins = spec.shape[1]
    n_bands = band_start.shape[0]
    out = np.empty((n_frames, n_bands), dtype=np.float32)
    mag = np.empty(n_bins, dtype=np.float32)
    for i in range(n_frames):
        for k in range(n_bins):
            re = spec[i, k].real
            im = spec[i, k].imag
            mag[k] = np.sqrt(re * re + im * im)
        for b in range(n_bands):
            acc = np.float32(0.0)
            s = band_start[b]
            o = weight_offset[b]
            for j in range(band_len[b]):
                acc += weights[o + j] * mag[s + j]
            out[i, b] = np.log10(np.float32(1.0) + np.float32(log_mul) * acc)
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
    frames = _frame_kernel(y, _hann(geom.n_fft), geom.hop_length, start, n_frames)
    spec = scipy.fft.rfft(frames, axis=1)
    return _filterbank_log_kernel(spec, fb[0], fb[1], fb[2], fb[3], params.log_mul)
