"""Input validation, down-mixing and integer-factor decimation.

The engine accepts any sample rate from 8 to 96 kHz, mono or multi-channel, as int16,
int32 or floating point samples, and works on a mono float32 signal at about 20-24 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit
from numpy.typing import NDArray

from audio_engine.errors import ParameterError

MIN_SR = 8000
MAX_SR = 96000


DECIMATE_BLOCK = 512
"""Outputs the decimation kernel computes side by side (their sums stay in tap order)."""


@njit(cache=True, nogil=True)
def _decimate_edge(
    x: NDArray[np.float32], h: NDArray[np.float32], factor: int, i: int
) -> np.float32:
    """Output ``i`` of :func:`_decimate_kernel`, any ``i`` (samples outside ``x`` are 0)."""
    return _decimate_one(x, 0, x.shape[0], h, factor, i)


@njit(cache=True, nogil=True)
def _decimate_blocks(
    x: NDArray[np.float32],
    x_start: int,
    h: NDArray[np.float32],
    factor: int,
    i0: int,
    i1: int,
    out: NDArray[np.float32],
    out_start: int,
) -> None:
    """Outputs ``i0 .. i1-1`` (all of whose taps lie in ``x``, which holds samples
    ``x_start ..``) into ``out[i - out_start]``, ``DECIMATE_BLOCK`` at a time: the block's
    samples are split into ``factor`` contiguous phases, then each tap is added to every
    output of the block (one vectorisable pass per tap). The order within each sum, so its
    value, is that of the one-output-at-a-time loop (:func:`_decimate_edge`)."""
    n_taps = h.shape[0]
    half = n_taps // 2
    block = DECIMATE_BLOCK
    # phase p holds samples first + p, first + p + factor, ... of the block
    phases = np.zeros((factor, block + n_taps // factor + 1), dtype=np.float32)
    acc = np.empty(block, dtype=np.float32)
    for b0 in range(i0, i1, block):
        nb = min(block, i1 - b0)
        first = b0 * factor - half - x_start
        m = (nb - 1) * factor + n_taps  # samples first .. first + m - 1 feed the block
        for p in range(factor):
            cnt = (m - p + factor - 1) // factor
            dst = phases[p]
            for j in range(cnt):
                dst[j] = x[first + p + j * factor]
        a = acc[:nb]
        a[:] = 0.0
        for k in range(n_taps):
            # output i's tap k is sample first + k + i*factor = phase k % factor, k // factor + i
            hk = h[k]
            row = phases[k % factor]
            off = k // factor
            for i in range(nb):
                a[i] += hk * row[off + i]
        o = b0 - out_start
        for i in range(nb):  # (a loop: a slice assignment compiles 5x slower)
            out[o + i] = a[i]


@njit(cache=True, nogil=True)
def _decimate_kernel(
    x: NDArray[np.float32], h: NDArray[np.float32], factor: int
) -> NDArray[np.float32]:
    """FIR low-pass ``h`` (odd length, centred) then keep every ``factor``-th sample.

    Each output sums its taps in tap order (``h[0]`` first); the outputs whose taps all lie
    inside ``x`` are computed a block at a time (:func:`_decimate_blocks`), the others one
    by one (:func:`_decimate_edge`), with the same value."""
    n = x.shape[0]
    n_out = (n + factor - 1) // factor
    half = h.shape[0] // 2
    out = np.empty(n_out, dtype=np.float32)
    # outputs i0 .. i1-1 have all their taps inside x
    i0 = min(n_out, (half + factor - 1) // factor)
    i1 = max(i0, min(n_out, (n - 1 - half) // factor + 1))
    for i in range(i0):
        out[i] = _decimate_edge(x, h, factor, i)
    _decimate_blocks(x, 0, h, factor, i0, i1, out, 0)
    for i in range(i1, n_out):
        out[i] = _decimate_edge(x, h, factor, i)
    return out


@njit(cache=True, nogil=True)
def _decimate_range_kernel(
    buf: NDArray[np.float32],
    buf_start: int,
    n_total: int,
    h: NDArray[np.float32],
    factor: int,
    j0: int,
    j1: int,
) -> NDArray[np.float32]:
    """Outputs ``j0 .. j1-1`` of :func:`_decimate_kernel` for a stream whose samples
    ``buf_start ..`` are in ``buf``; samples before 0 or from ``n_total`` on are zero.
    Sums in the same order as the whole-signal kernel, so the values are identical."""
    half = h.shape[0] // 2
    n_taps = h.shape[0]
    out = np.empty(max(0, j1 - j0), dtype=np.float32)
    # outputs whose taps all lie in 0 .. n_total-1 and in the buffer: a block at a time
    avail = min(n_total, buf_start + buf.shape[0])
    lo = max(j0, (max(0, buf_start) + half + factor - 1) // factor)
    hi = min(j1, (avail - n_taps + half) // factor + 1) if avail >= n_taps else lo
    hi = max(lo, hi)
    for j in range(j0, min(lo, j1)):
        out[j - j0] = _decimate_one(buf, buf_start, n_total, h, factor, j)
    _decimate_blocks(buf, buf_start, h, factor, lo, hi, out, j0)
    for j in range(max(hi, j0), j1):
        out[j - j0] = _decimate_one(buf, buf_start, n_total, h, factor, j)
    return out


@njit(cache=True, nogil=True)
def _decimate_one(
    buf: NDArray[np.float32],
    buf_start: int,
    n_total: int,
    h: NDArray[np.float32],
    factor: int,
    i: int,
) -> np.float32:
    """Output ``i`` of a decimation of the samples ``0 .. n_total-1`` of which ``buf``
    holds those from ``buf_start`` on (the others zero), one tap at a time in tap order."""
    half = h.shape[0] // 2
    c = i * factor
    acc = np.float32(0.0)
    for k in range(h.shape[0]):
        j = c - half + k
        if 0 <= j < n_total:
            acc += h[k] * buf[j - buf_start]
    return acc


def decimation_factor(sr: int, target_sr: int) -> int:
    """Largest integer factor that keeps the working rate at or above ``target_sr`` (Hz)."""
    return max(1, int(sr // target_sr))


def lowpass_taps(factor: int) -> NDArray[np.float32]:
    """Windowed-sinc anti-alias filter for decimation by ``factor`` (unity DC gain)."""
    n_taps = 8 * factor + 1
    m = np.arange(n_taps) - n_taps // 2
    cutoff = 0.9 / factor  # fraction of the input Nyquist
    h = cutoff * np.sinc(cutoff * m) * np.blackman(n_taps)
    taps: NDArray[np.float32] = (h / h.sum()).astype(np.float32)
    return taps


@dataclass(slots=True)
class Decimator:
    """The engine's decimation (:func:`prepare_signal`) of a signal fed block by block.

    Whatever the blocks, the outputs are those of the whole-signal kernel, value for value
    (:func:`_decimate_range_kernel` sums in its order): :meth:`push` returns the outputs
    whose taps have all arrived, :meth:`finish` the rest, taking the samples past the end as
    zeros. Only the last ``len(taps)`` input samples are held between blocks. With a factor
    of 1 the samples pass through unchanged, after the same ``len(taps) // 2`` samples of
    delay (so that a stream's outputs come at the same input counts whatever the rate).

    Attributes
    ----------
    factor : int
        Input samples per output sample.
    taps : ndarray of float32
        The anti-alias filter (:func:`lowpass_taps`).
    n_in, n_out : int
        Samples pushed and outputs returned so far.
    """

    factor: int
    taps: NDArray[np.float32]
    n_in: int = 0
    n_out: int = 0
    _buf: NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    _buf_start: int = 0

    @classmethod
    def of(cls, sr: int, target_sr: int) -> Decimator:
        """The decimator :func:`prepare_signal` applies to a signal at ``sr`` Hz."""
        factor = decimation_factor(sr, target_sr)
        return cls(factor, lowpass_taps(factor))

    def ready(self, n_in: int) -> int:
        """How many outputs exist once ``n_in`` input samples have been pushed."""
        half = self.taps.shape[0] // 2
        return (n_in - 1 - half) // self.factor + 1 if n_in - 1 - half >= 0 else 0

    def push(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """Feed the next mono float32 samples; the outputs they complete."""
        self._buf = np.concatenate([self._buf, np.asarray(x, dtype=np.float32)])
        self.n_in += x.shape[0]
        return self._until(self.ready(self.n_in), n_total=self._buf_start + self._buf.shape[0])

    def finish(self) -> NDArray[np.float32]:
        """The outputs still to come, the signal having ended (``ceil(n_in / factor)`` in
        all)."""
        return self._until(-(-self.n_in // self.factor), n_total=self.n_in)

    def _until(self, n_out: int, *, n_total: int) -> NDArray[np.float32]:
        if n_out <= self.n_out:
            return np.zeros(0, dtype=np.float32)
        start = self._buf_start
        if self.factor == 1:
            new = self._buf[self.n_out - start : n_out - start].copy()
        else:
            new = _decimate_range_kernel(
                self._buf, start, n_total, self.taps, self.factor, self.n_out, n_out
            )
        self.n_out = n_out
        keep = max(0, n_out * self.factor - self.taps.shape[0] // 2) if self.factor > 1 else n_out
        if keep > start:
            self._buf = self._buf[keep - start :]
            self._buf_start = keep
        return new


@dataclass(frozen=True, slots=True)
class PreparedSignal:
    """A recording as the analysis works on it: mono float32 at the working rate.

    Attributes
    ----------
    y : ndarray of float32, shape (m,)
        The signal at ``work_sr``.
    work_sr : float
        Working sample rate in Hz (``sr`` divided by the decimation factor).
    sr : int
        Sample rate of the recording in Hz.
    n_samples : int
        Length of the recording in samples at ``sr``.
    """

    y: NDArray[np.float32]
    work_sr: float
    sr: int
    n_samples: int

    @property
    def duration_s(self) -> float:
        return self.n_samples / float(self.sr)


def check_finite(y: NDArray[np.float32], offset: int = 0) -> None:
    """Raise ParameterError at the first NaN or infinite sample of ``y`` (whose first sample
    is number ``offset`` of the signal)."""
    if not np.isfinite(y).all():
        bad = offset + int(np.flatnonzero(~np.isfinite(y))[0])
        raise ParameterError(f"samples contain NaN or infinite values (first at index {bad})")


def to_mono_float32(samples: NDArray[np.generic]) -> NDArray[np.float32]:
    """Convert int16/int32/float samples of shape (n,) or (n, channels) to mono float32.

    Integers are scaled to [-1, 1); channels are averaged.

    Raises
    ------
    ParameterError
        If the dtype is unsupported, the shape is not 1-D/2-D, or a sample is NaN or infinite.
    """
    x = np.asarray(samples)
    if x.ndim not in (1, 2):
        raise ParameterError(f"samples must have shape (n,) or (n, channels), got {x.shape}")
    if x.ndim == 2 and x.shape[1] == 0:
        raise ParameterError(f"samples have no channels: shape {x.shape}")
    if x.dtype == np.int16:
        y = x.astype(np.float32) / np.float32(32768.0)
    elif x.dtype == np.int32:
        y = (x.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif x.dtype == np.uint8:
        y = (x.astype(np.float32) - np.float32(128.0)) / np.float32(128.0)
    elif np.issubdtype(x.dtype, np.floating):
        y = x.astype(np.float32, copy=False)
    else:
        raise ParameterError(f"unsupported sample dtype {x.dtype}; use int16, int32 or float")
    if y.ndim == 2:
        y = y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]
    if np.issubdtype(x.dtype, np.floating):  # ints are finite
        check_finite(y)
    return np.ascontiguousarray(y, dtype=np.float32)


def check_sr(sr: float) -> int:
    """Validate a sample rate in Hz (8-96 kHz, integral) and return it as int."""
    if not np.isfinite(sr) or int(sr) != sr or not MIN_SR <= int(sr) <= MAX_SR:
        raise ParameterError(
            f"sample rate must be an integer from {MIN_SR} to {MAX_SR} Hz, got {sr!r}"
        )
    return int(sr)


def prepare_signal(
    samples: NDArray[np.generic], sr: float, *, target_sr: int
) -> tuple[NDArray[np.float32], float]:
    """Validate, down-mix and decimate ``samples``.

    Returns
    -------
    y : ndarray, shape (m,), float32
        Mono signal at the working rate.
    work_sr : float
        Working sample rate in Hz (``sr / factor``).
    """
    sr_i = check_sr(sr)
    y = to_mono_float32(samples)
    factor = decimation_factor(sr_i, target_sr)
    if factor > 1 and y.shape[0] > 0:
        y = _decimate_kernel(y, lowpass_taps(factor), factor)
    return y, sr_i / factor
