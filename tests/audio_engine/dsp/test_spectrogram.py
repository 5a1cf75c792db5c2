"""Tests of audio_engine/dsp/spectrogram.py: framing, filterbank, log spectrogram, chunking."""

from __future__ import annotations

import numpy as np
import pytest

import audio_engine.dsp.spectrogram as spectrogram_module
from audio_engine.dsp.spectrogram import (
    _filterbank_log_kernel,
    _frame_kernel,
    _hann,
    frame_geometry,
    head_frames,
    log_filterbank,
    log_spectrogram,
    n_frames_for,
    tail_frames,
)
from audio_engine.params import SpectrogramParams
from tests._support.signals import click_track, sine

P = SpectrogramParams()


def _frames_reference(
    y: np.ndarray, window: np.ndarray, hop: int, start: int, n_frames: int
) -> np.ndarray:
    """Explicit loop over frames: the mean of the frame's samples inside the signal is
    subtracted from them before windowing; outside the signal the frame is zero."""
    n_fft = window.size
    out = np.zeros((n_frames, n_fft))
    for i in range(n_frames):
        inside = [k for k in range(n_fft) if 0 <= start + i * hop + k < y.size]
        if not inside:
            continue
        mean = sum(float(y[start + i * hop + k]) for k in inside) / len(inside)
        for k in inside:
            out[i, k] = (float(y[start + i * hop + k]) - mean) * float(window[k])
    return out


def _fast_even_sizes(lo: int, hi: int) -> list[int]:
    """Even sizes in ``[lo, hi]`` whose only prime factors are 2, 3 and 5 (pocketfft's fast
    real-FFT lengths)."""
    out = []
    for n in range(lo + lo % 2, hi + 1, 2):
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            out.append(n)
    return out


def _dense_filterbank(fb: tuple[np.ndarray, ...], n_bins: int) -> np.ndarray:
    starts, lens, weights, offsets = fb
    dense = np.zeros((n_bins, starts.size))
    for b in range(starts.size):
        dense[starts[b] : starts[b] + lens[b], b] = weights[offsets[b] : offsets[b] + lens[b]]
    return dense


# --- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sr", "n_fft", "hop"),
    [
        (8000.0, 384, 80),  # 368 -> 384 = 2^7 * 3
        (16000.0, 750, 160),  # 736 -> 750 = 2 * 3 * 5^3
        (20000.0, 960, 200),  # 920 -> 960 = 2^6 * 3 * 5
        (22050.0, 1024, 220),  # 1014 -> 1024
        (24000.0, 1152, 240),  # 1104 -> 1152 = 2^7 * 3^2 (the next power of two was 2048)
    ],
)
def test_frame_geometry(sr: float, n_fft: int, hop: int) -> None:
    g = frame_geometry(sr, P)
    assert (g.n_fft, g.hop_length) == (n_fft, hop)
    assert g.fps == pytest.approx(sr / hop)


@pytest.mark.parametrize("sr", [8000.0, 11025.0, 12000.0, 16000.0, 20000.0, 22050.0, 24000.0])
def test_window_is_the_smallest_even_fast_size_covering_frame_s(sr: float) -> None:
    """The window is the first even 2-3-5-smooth size from ``round(frame_s * sr)`` on: never
    shorter than the rounded frame, and within 10 % of it at every working rate."""
    g = frame_geometry(sr, P)
    want = round(P.frame_s * sr)
    assert g.n_fft == _fast_even_sizes(want, 2 * want)[0]
    assert g.n_fft % 2 == 0
    assert want <= g.n_fft <= 1.1 * P.frame_s * sr


@pytest.mark.parametrize(
    ("n", "hop", "expected"), [(0, 80, 0), (1, 80, 1), (79, 80, 1), (80, 80, 2), (8000, 80, 101)]
)
def test_n_frames_for(n: int, hop: int, expected: int) -> None:
    assert n_frames_for(n, hop) == expected


@pytest.mark.parametrize("sr", [8000.0, 22050.0])
@pytest.mark.parametrize("n", [0, 1, 100, 4000, 4001, 8000])
def test_tail_frames_is_the_first_frame_reaching_past_the_end(sr: float, n: int) -> None:
    g = frame_geometry(sr, P)
    # frame i covers [i * hop - n_fft / 2, i * hop + n_fft / 2): it reaches past the end
    # when its last sample, i * hop + n_fft / 2 - 1, is at index n or later
    past_end = [
        i * g.hop_length + g.n_fft // 2 - n for i in range(n_frames_for(n, g.hop_length) + 5)
    ]
    first = next(i for i, p in enumerate(past_end) if p > 0)
    assert tail_frames(n, g) == first


@pytest.mark.parametrize("sr", [8000.0, 22050.0, 48000.0])
@pytest.mark.parametrize("lag", [0, 1, 2, 4])
def test_head_frames_are_those_whose_flux_sees_the_zeros_before_the_start(
    sr: float, lag: int
) -> None:
    g = frame_geometry(sr, P)
    # frame i starts at i * hop - n_fft / 2: before the first sample while that is negative;
    # its flux over `lag` frames reads frame i - lag too
    starts_before = [i * g.hop_length - g.n_fft // 2 < 0 for i in range(20)]
    sees_start = [starts_before[i] or (i >= lag and starts_before[i - lag]) or i < lag
                  for i in range(20)]
    first_clear = sees_start.index(False)
    assert head_frames(g, lag) == first_clear
    assert 0.02 <= head_frames(g, 2) / g.fps <= 0.06  # about 50 ms at every rate


# --- framing kernel ------------------------------------------------------------------------


@pytest.mark.nojit
@pytest.mark.parametrize(
    ("n", "hop", "start", "n_frames"),
    [
        (0, 4, -8, 3),
        (5, 4, -8, 4),
        (100, 7, -8, 16),
        (100, 7, 30, 5),
        (40, 3, 35, 4),
        (64, 16, 0, 4),
    ],
)
def test_frame_kernel_matches_explicit_loop(n: int, hop: int, start: int, n_frames: int) -> None:
    rng = np.random.default_rng(n + hop)
    y = rng.uniform(-1, 1, n).astype(np.float32)
    window = _hann(16)
    got = _frame_kernel(y, window, hop, start, n_frames)
    assert got.dtype == np.float32
    # float32 accumulation of the mean in the kernel: agreement to float32 precision
    np.testing.assert_allclose(
        got, _frames_reference(y, window, hop, start, n_frames), rtol=0, atol=1e-6
    )


@pytest.mark.nojit
def test_frame_kernel_removes_a_dc_offset() -> None:
    """A constant signal frames to zeros, and an offset does not change a frame."""
    window = _hann(16)
    np.testing.assert_array_equal(
        _frame_kernel(np.full(40, 0.25, dtype=np.float32), window, 4, -8, 12), 0.0
    )
    y = np.random.default_rng(1).uniform(-0.5, 0.5, 40).astype(np.float32)
    np.testing.assert_allclose(
        _frame_kernel(y + np.float32(0.3), window, 4, -8, 12),
        _frame_kernel(y, window, 4, -8, 12),
        atol=1e-6,
    )


def test_hann_is_periodic() -> None:
    w = _hann(8).astype(np.float64)
    np.testing.assert_allclose(w, 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(8) / 8), atol=1e-7)


# --- filterbank ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sr", "n_fft"),
    [(8000.0, 384), (8000.0, 512), (16000.0, 750), (22050.0, 1024), (24000.0, 1152)],
)
def test_filterbank_shape_and_normalisation(sr: float, n_fft: int) -> None:
    starts, lens, weights, offsets = log_filterbank(
        sr, n_fft, P.fmin_hz, P.fmax_hz, P.bands_per_octave
    )
    n_bins = n_fft // 2 + 1
    n_bands = starts.size
    assert lens.shape == offsets.shape == (n_bands,)
    assert n_bands > 2 * P.bands_per_octave  # several octaves of bands
    assert weights.size == int(lens.sum())
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(lens)[:-1]]))
    assert starts.min() >= 1  # no DC bin
    assert np.all(starts + lens <= n_bins)
    assert np.all(weights > 0)
    sums = np.add.reduceat(weights.astype(np.float64), offsets)
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)
    centres = np.array(
        [starts[b] + np.argmax(weights[offsets[b] : offsets[b] + lens[b]]) for b in range(n_bands)]
    )
    assert np.all(np.diff(centres) > 0)
    assert np.all(np.diff(starts) >= 0)
    centre_hz = centres * sr / n_fft
    assert centre_hz[0] >= P.fmin_hz * 0.9
    assert centre_hz[-1] <= min(P.fmax_hz, sr / 2 * 0.95)
    # log spacing: above 1 kHz neighbouring centres are about 1/24 octave apart
    hi = centre_hz[centre_hz > 1000]
    np.testing.assert_allclose(np.median(np.diff(np.log2(hi))), 1 / P.bands_per_octave, rtol=0.15)


@pytest.mark.nojit
def test_filterbank_kernel_matches_dense_matrix() -> None:
    rng = np.random.default_rng(3)
    sr, n_fft = 8000.0, 64
    fb = log_filterbank(sr, n_fft, 200.0, 3500.0, 6)
    n_bins = n_fft // 2 + 1
    spec = (rng.normal(size=(5, n_bins)) + 1j * rng.normal(size=(5, n_bins))).astype(np.complex64)
    got = _filterbank_log_kernel(spec, *fb, 10.0)
    want = np.log10(
        1.0 + 10.0 * (np.abs(spec.astype(np.complex128)) @ _dense_filterbank(fb, n_bins))
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# --- log spectrogram -----------------------------------------------------------------------


@pytest.mark.parametrize("sr", [8000, 16000, 22050])
@pytest.mark.parametrize("freq_hz", [110.0, 440.0, 1000.0, 3000.0])
def test_sine_peaks_in_the_band_containing_its_frequency(sr: int, freq_hz: float) -> None:
    g = frame_geometry(float(sr), P)
    S = log_spectrogram(sine(freq_hz, 1.0, sr), g, P)
    starts, lens, weights, offsets = log_filterbank(
        g.sr, g.n_fft, P.fmin_hz, P.fmax_hz, P.bands_per_octave
    )
    assert S.shape == (n_frames_for(sr, g.hop_length), starts.size)
    assert S.dtype == np.float32
    b = int(np.argmax(S[20:-20].mean(axis=0)))
    freq_bin = freq_hz * g.n_fft / sr
    assert starts[b] - 0.5 <= freq_bin <= starts[b] + lens[b] - 0.5
    # and that band's centre is the closest centre to the tone (within one FFT bin)
    centres = np.array(
        [
            starts[k] + np.argmax(weights[offsets[k] : offsets[k] + lens[k]])
            for k in range(starts.size)
        ]
    )
    assert abs(centres[b] - freq_bin) <= np.min(np.abs(centres - freq_bin)) + 1.0


def test_silence_is_zero_and_level_is_monotonic() -> None:
    sr = 8000
    g = frame_geometry(float(sr), P)
    assert np.all(log_spectrogram(np.zeros(sr, dtype=np.float32), g, P) == 0)
    quiet = log_spectrogram(sine(440.0, 0.5, sr, amplitude=0.01), g, P)
    loud = log_spectrogram(sine(440.0, 0.5, sr, amplitude=0.5), g, P)
    assert np.all(loud >= quiet) and float(loud.max()) > float(quiet.max()) + 0.5


@pytest.mark.parametrize("sr", [8000, 22050])
def test_frames_are_centred_on_their_time(sr: int) -> None:
    """An impulse at time t is loudest in the frame whose time i * hop / sr is nearest t."""
    g = frame_geometry(float(sr), P)
    for t_s in (0.3, 0.505, 0.7333):
        y = np.zeros(sr, dtype=np.float32)
        y[round(t_s * sr)] = 1.0
        S = log_spectrogram(y, g, P)
        assert int(np.argmax(S.sum(axis=1))) == round(t_s * g.fps)


def test_short_and_empty_signals() -> None:
    g = frame_geometry(8000.0, P)
    empty = log_spectrogram(np.zeros(0, dtype=np.float32), g, P)
    n_bands = log_filterbank(g.sr, g.n_fft, P.fmin_hz, P.fmax_hz, P.bands_per_octave)[0].size
    assert empty.shape == (0, n_bands)
    one = log_spectrogram(np.ones(1, dtype=np.float32), g, P)
    assert one.shape == (1, n_bands) and np.all(np.isfinite(one))


@pytest.mark.nojit
@pytest.mark.parametrize("chunk", [1, 3, 7, 50])
def test_chunked_frames_equal_the_whole(chunk: int) -> None:
    sr = 8000
    y, _ = click_track(240, 0.4, sr, start_s=0.05)
    y = y + np.random.default_rng(0).normal(0, 0.01, y.size).astype(np.float32)
    g = frame_geometry(float(sr), P)
    whole = log_spectrogram(y, g, P)
    parts = [
        log_spectrogram(y, g, P, first_frame=f, n_frames=min(chunk, whole.shape[0] - f))
        for f in range(0, whole.shape[0], chunk)
    ]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-6, atol=1e-6)
    # the default n_frames runs to the end
    np.testing.assert_allclose(
        log_spectrogram(y, g, P, first_frame=10), whole[10:], rtol=1e-6, atol=1e-6
    )
    assert log_spectrogram(y, g, P, first_frame=0, n_frames=0).shape == (0, whole.shape[1])


def test_spectrogram_matches_a_numpy_stft() -> None:
    """The whole chain (centred frames with their in-signal mean removed and zeros outside
    the signal, periodic Hann, |rfft|, filterbank, log) against numpy's own FFT and a dense
    matrix. The clicks ride on a DC offset, which the per-frame mean removal cancels."""
    sr = 8000
    y, _ = click_track(120, 1.0, sr, jitter_ms=5)
    y = y + np.float32(0.05)
    g = frame_geometry(float(sr), P)
    half = g.n_fft // 2
    pad = np.concatenate([np.zeros(half), y, np.zeros(g.n_fft)])
    inside = np.concatenate([np.zeros(half), np.ones(y.size), np.zeros(g.n_fft)]) > 0
    n_frames = n_frames_for(y.size, g.hop_length)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(g.n_fft) / g.n_fft)
    frames = []
    for i in range(n_frames):
        seg = pad[i * g.hop_length : i * g.hop_length + g.n_fft]
        ins = inside[i * g.hop_length : i * g.hop_length + g.n_fft]
        frames.append(np.where(ins, seg - seg[ins].mean(), 0.0) * w)
    fb = log_filterbank(g.sr, g.n_fft, P.fmin_hz, P.fmax_hz, P.bands_per_octave)
    dense = _dense_filterbank(fb, g.n_fft // 2 + 1)
    want = np.log10(1 + P.log_mul * np.abs(np.fft.rfft(frames, axis=1)) @ dense)
    np.testing.assert_allclose(log_spectrogram(y, g, P), want, rtol=1e-4, atol=1e-4)


# --- the lane kernels: the same bits as one frame at a time, in sample / bin order ----------


def _frames_sequential_f32(
    y: np.ndarray, window: np.ndarray, hop: int, start: int, n_frames: int
) -> np.ndarray:
    """Framing in float32 with the mean summed sample by sample (the kernel's order)."""
    n_fft = window.size
    out = np.zeros((n_frames, n_fft), dtype=np.float32)
    for i in range(n_frames):
        s = start + i * hop
        lo, hi = max(0, -s), min(n_fft, y.size - s)
        if hi <= lo:
            continue
        seg = y[s + lo : s + hi]
        mean = np.cumsum(seg, dtype=np.float32)[-1] / np.float32(hi - lo)  # sequential sum
        out[i, lo:hi] = (seg - mean) * window[lo:hi]
    return out


@pytest.mark.parametrize(
    ("n", "hop", "start", "n_frames"),
    [(3000, 37, -64, 90), (3000, 37, 100, 20), (500, 8, -64, 70), (2000, 200, -64, 12)],
)
def test_frame_kernel_in_lanes_is_bit_identical_to_sequential_sums(
    n: int, hop: int, start: int, n_frames: int
) -> None:
    # long enough that most frames take the 8-lane path, with edge frames at both ends
    y = (np.random.default_rng(n + hop).standard_normal(n) + 0.3).astype(np.float32)
    window = _hann(128)
    got = _frame_kernel(y, window, hop, start, n_frames)
    np.testing.assert_array_equal(got, _frames_sequential_f32(y, window, hop, start, n_frames))
    # and any grouping of the frames gives the same bits
    one_by_one = np.concatenate(
        [_frame_kernel(y, window, hop, start + i * hop, 1) for i in range(n_frames)]
    )
    np.testing.assert_array_equal(got, one_by_one)


def _filterbank_sums_sequential_f32(spec: np.ndarray, fb: tuple[np.ndarray, ...]) -> np.ndarray:
    """Band sums in float32, bin by bin in bin order (the kernel's order), before the log."""
    starts, lens, weights, offsets = fb
    re, im = spec.real.astype(np.float32), spec.imag.astype(np.float32)
    mag = np.sqrt(re * re + im * im)
    out = np.zeros((spec.shape[0], starts.size), dtype=np.float32)
    for b in range(starts.size):
        for j in range(int(lens[b])):
            out[:, b] += weights[offsets[b] + j] * mag[:, starts[b] + j]
    return out


@pytest.mark.parametrize("n_frames", [1, 7, 8, 9, 21])
def test_filterbank_kernel_in_lanes_sums_in_bin_order(n_frames: int) -> None:
    rng = np.random.default_rng(n_frames)
    sr, n_fft = 16000.0, 256
    fb = log_filterbank(sr, n_fft, 60.0, 7000.0, 12)
    n_bins = n_fft // 2 + 1
    spec = (rng.normal(size=(n_frames, n_bins)) + 1j * rng.normal(size=(n_frames, n_bins))).astype(
        np.complex64
    )
    got = _filterbank_log_kernel(spec, *fb, 10.0)
    sums = _filterbank_sums_sequential_f32(spec, fb)
    # the sums are exact; only log10 (the C library's vs numpy's) may differ by an ulp
    np.testing.assert_allclose(got, np.log10(np.float32(1) + np.float32(10) * sums), rtol=2e-7)
    one_by_one = np.concatenate(
        [_filterbank_log_kernel(spec[i : i + 1], *fb, 10.0) for i in range(n_frames)]
    )
    np.testing.assert_array_equal(got, one_by_one)


@pytest.mark.parametrize("block", [1, 5, 8, 64, 10_000])
def test_log_spectrogram_does_not_depend_on_the_block_size(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    sr = 16000
    g = frame_geometry(sr, P)
    y, _ = click_track(100.0, 1.3, sr)
    y = (y + 0.05 * np.random.default_rng(1).standard_normal(y.size)).astype(np.float32)
    whole = log_spectrogram(y, g, P)
    monkeypatch.setattr(spectrogram_module, "BLOCK_FRAMES", block)
    np.testing.assert_array_equal(log_spectrogram(y, g, P), whole)
    np.testing.assert_array_equal(log_spectrogram(y, g, P, first_frame=3, n_frames=50), whole[3:53])
