"""Tests of audio_engine/dsp/signal.py: validation, down-mixing, integer-factor decimation."""

from __future__ import annotations

import numpy as np
import pytest

from audio_engine.dsp.signal import (
    MAX_SR,
    MIN_SR,
    Decimator,
    _decimate_edge,
    _decimate_kernel,
    _decimate_range_kernel,
    check_sr,
    decimation_factor,
    lowpass_taps,
    prepare_signal,
    to_mono_float32,
)
from audio_engine.errors import ParameterError
from audio_engine.params import SpectrogramParams

TARGET_SR = SpectrogramParams().target_sr


# --- dtypes --------------------------------------------------------------------------------


@pytest.mark.nojit
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16),
            [-1.0, -0.5, 0.0, 0.5, 32767 / 32768],
        ),
        (
            np.array([-(2**31), -(2**30), 0, 2**30, 2**31 - 1], dtype=np.int32),
            [-1.0, -0.5, 0.0, 0.5, 1.0],
        ),
        (np.array([0, 64, 128, 192, 255], dtype=np.uint8), [-1.0, -0.5, 0.0, 0.5, 127 / 128]),
        (np.array([-1.0, -0.5, 0.0, 0.5, 0.25], dtype=np.float32), [-1.0, -0.5, 0.0, 0.5, 0.25]),
        (np.array([-1.0, -0.5, 0.0, 0.5, 0.25], dtype=np.float64), [-1.0, -0.5, 0.0, 0.5, 0.25]),
        (np.array([-1.0, -0.5, 0.0, 0.5, 0.25], dtype=np.float16), [-1.0, -0.5, 0.0, 0.5, 0.25]),
    ],
    ids=["int16", "int32", "uint8", "float32", "float64", "float16"],
)
def test_dtypes_scale_to_unit_range(raw: np.ndarray, expected: list[float]) -> None:
    y = to_mono_float32(raw)
    assert y.dtype == np.float32
    assert y.flags.c_contiguous
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16, np.complex64, np.bool_])
def test_unsupported_dtype_is_named(dtype: type) -> None:
    with pytest.raises(ParameterError, match=np.dtype(dtype).name):
        to_mono_float32(np.zeros(10, dtype=dtype))


def test_object_and_string_arrays_are_rejected() -> None:
    with pytest.raises(ParameterError, match="dtype"):
        to_mono_float32(np.array(["a", "b"]))


def test_int16_and_float_give_the_same_signal() -> None:
    rng = np.random.default_rng(0)
    ints = rng.integers(-32768, 32768, 1000).astype(np.int16)
    np.testing.assert_array_equal(to_mono_float32(ints), ints.astype(np.float32) / 32768)


# --- channels and shapes -------------------------------------------------------------------


@pytest.mark.nojit
def test_channels_are_averaged() -> None:
    left = np.array([1.0, 0.5, -1.0, 0.0], dtype=np.float32)
    right = np.array([0.0, 0.5, 1.0, -0.5], dtype=np.float32)
    y = to_mono_float32(np.stack([left, right], axis=1))
    np.testing.assert_array_equal(y, [0.5, 0.5, 0.0, -0.25])
    # six channels, int16, Fortran order: still the mean of the scaled channels
    six = np.asfortranarray(np.tile(np.array([[16384], [-16384]], dtype=np.int16), (1, 6)))
    six[:, 0] = 0
    np.testing.assert_allclose(to_mono_float32(six), [0.5 * 5 / 6, -0.5 * 5 / 6], atol=1e-7)


def test_single_channel_column_and_identical_stereo_equal_mono() -> None:
    x = np.random.default_rng(1).uniform(-1, 1, 500).astype(np.float32)
    np.testing.assert_array_equal(to_mono_float32(x[:, None]), x)
    np.testing.assert_array_equal(to_mono_float32(np.stack([x, x], axis=1)), x)


def test_strided_input_becomes_contiguous() -> None:
    x = np.arange(20, dtype=np.float32) / 20
    y = to_mono_float32(x[::2])
    assert y.flags.c_contiguous
    np.testing.assert_array_equal(y, x[::2])


@pytest.mark.parametrize(
    ("shape", "needle"),
    [((), r"\(\)"), ((4, 2, 2), r"\(4, 2, 2\)"), ((10, 0), r"\(10, 0\)")],
    ids=["scalar", "3-d", "no-channels"],
)
def test_bad_shapes_are_named(shape: tuple[int, ...], needle: str) -> None:
    with pytest.raises(ParameterError, match=needle):
        to_mono_float32(np.zeros(shape, dtype=np.float32))


def test_empty_inputs_are_valid() -> None:
    assert to_mono_float32(np.zeros(0, dtype=np.float32)).shape == (0,)
    assert to_mono_float32(np.zeros((0, 2), dtype=np.int16)).shape == (0,)


# --- non-finite samples --------------------------------------------------------------------


@pytest.mark.nojit
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("index", [0, 7, 99])
def test_non_finite_sample_names_its_index(bad: float, index: int) -> None:
    x = np.zeros(100, dtype=np.float64)
    x[index] = bad
    with pytest.raises(ParameterError, match=rf"index {index}\b"):
        to_mono_float32(x)


def test_non_finite_in_one_channel_names_the_frame() -> None:
    x = np.zeros((50, 2), dtype=np.float32)
    x[31, 1] = np.nan
    x[40, 0] = np.inf
    with pytest.raises(ParameterError, match=r"index 31\b"):
        to_mono_float32(x)


# --- sample rates --------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [8000, 8000.0, 11025, 22050, 44100, 48000.0, 96000])
def test_valid_sample_rates(sr: float) -> None:
    assert check_sr(sr) == int(sr)
    assert isinstance(check_sr(sr), int)


@pytest.mark.parametrize("sr", [7999, 96001, 44100.5, 0, -44100, float("nan"), float("inf"), 1e12])
def test_invalid_sample_rates_are_named(sr: float) -> None:
    with pytest.raises(ParameterError, match="sample rate") as info:
        check_sr(sr)
    assert repr(sr) in str(info.value)


def test_sample_rate_bounds_are_the_documented_ones() -> None:
    assert (MIN_SR, MAX_SR) == (8000, 96000)


# --- decimation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sr", "factor"),
    [
        (8000, 1),
        (11025, 1),
        (16000, 1),
        (22050, 1),
        (24000, 1),
        (32000, 1),
        (39999, 1),
        (40000, 2),
        (44100, 2),
        (48000, 2),
        (60000, 3),
        (80000, 4),
        (88200, 4),
        (96000, 4),
    ],
)
def test_decimation_factor_table(sr: int, factor: int) -> None:
    assert decimation_factor(sr, TARGET_SR) == factor
    # the working rate stays at or above the target whenever decimating at all
    assert factor == 1 or sr / factor >= TARGET_SR


def _decimate_reference(x: np.ndarray, h: np.ndarray, factor: int) -> np.ndarray:
    """Correlate with ``h`` centred on each kept sample: a full convolution with the reversed
    filter, shifted by the half length, keeping every ``factor``-th output."""
    half = h.size // 2
    full = np.convolve(x.astype(np.float64), h[::-1].astype(np.float64))
    return full[half : half + x.size][::factor]


@pytest.mark.nojit
@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("n", [1, 5, 33, 257])
def test_decimate_kernel_matches_convolution(factor: int, n: int) -> None:
    rng = np.random.default_rng(n * factor)
    x = rng.uniform(-1, 1, n).astype(np.float32)
    for h in (lowpass_taps(factor), rng.normal(size=2 * factor + 1).astype(np.float32)):
        got = _decimate_kernel(x, h, factor)
        want = _decimate_reference(x, h, factor)
        assert got.dtype == np.float32
        assert got.shape == ((n + factor - 1) // factor,)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("factor", [1, 2, 3, 4])
def test_lowpass_taps_shape_symmetry_and_dc_gain(factor: int) -> None:
    h = lowpass_taps(factor)
    assert h.dtype == np.float32
    assert h.size == 8 * factor + 1
    np.testing.assert_allclose(h, h[::-1], atol=1e-8)
    assert float(h.astype(np.float64).sum()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_lowpass_passes_the_band_and_stops_aliases(factor: int) -> None:
    h = lowpass_taps(factor).astype(np.float64)
    n_fft = 1 << 14
    gain_db = 20 * np.log10(np.abs(np.fft.rfft(h, n_fft)) + 1e-15)
    new_nyquist_bin = n_fft / (2 * factor)  # 0.5 / factor cycles per input sample
    assert np.all(np.abs(gain_db[: int(0.5 * new_nyquist_bin)]) < 0.5)
    assert np.all(gain_db[int(1.5 * new_nyquist_bin) :] < -50)


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(y[100:-100].astype(np.float64) ** 2)))


def test_prepare_signal_decimates_a_tone_keeping_its_level() -> None:
    sr = 44100
    t = np.arange(sr) / sr
    low = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    high = np.sin(2 * np.pi * 18000 * t).astype(np.float32)  # folds to 4050 Hz if not filtered
    y_low, work_sr = prepare_signal(low, sr, target_sr=TARGET_SR)
    y_high, _ = prepare_signal(high, sr, target_sr=TARGET_SR)
    assert work_sr == 22050.0
    assert y_low.shape == (22050,)
    assert _rms(y_low) == pytest.approx(1 / np.sqrt(2), rel=0.01)
    assert _rms(y_high) < 1e-3


@pytest.mark.nojit
@pytest.mark.parametrize(("sr", "work_sr"), [(8000, 8000.0), (44100, 22050.0), (96000, 24000.0)])
def test_prepare_signal_rates_and_lengths(sr: int, work_sr: float) -> None:
    x = np.zeros((101, 2), dtype=np.int16)
    y, got_sr = prepare_signal(x, sr, target_sr=TARGET_SR)
    factor = round(sr / work_sr)
    assert got_sr == work_sr
    assert y.shape == ((101 + factor - 1) // factor,)
    assert y.dtype == np.float32
    empty, _ = prepare_signal(np.zeros(0, dtype=np.float32), sr, target_sr=TARGET_SR)
    assert empty.shape == (0,)


def test_prepare_signal_checks_the_rate_before_the_samples() -> None:
    with pytest.raises(ParameterError, match="sample rate"):
        prepare_signal(np.array([np.nan]), 7999, target_sr=TARGET_SR)


@pytest.mark.parametrize("factor", [2, 3, 4, 5])
@pytest.mark.parametrize("n", [0, 1, 8, 17, 40, 1000, 5003])
def test_block_decimation_is_bit_identical_to_one_output_at_a_time(factor: int, n: int) -> None:
    # the block kernel keeps each output's tap order, so its float32 sums are the same bits
    rng = np.random.default_rng(n * 10 + factor)
    x = rng.standard_normal(n).astype(np.float32)
    h = lowpass_taps(factor)
    want = np.array(
        [_decimate_edge(x, h, factor, i) for i in range((n + factor - 1) // factor)],
        dtype=np.float32,
    )
    got = _decimate_kernel(x, h, factor)
    np.testing.assert_array_equal(got, want)
    # the streaming kernel promises the same values
    np.testing.assert_array_equal(_decimate_range_kernel(x, 0, n, h, factor, 0, got.size), got)


@pytest.mark.nojit
def test_decimate_edge_is_the_zero_padded_fir_sum() -> None:
    x = np.arange(1, 8, dtype=np.float32)
    h = np.array([1, 10, 100], dtype=np.float32)
    # output 0 is centred on sample 0: 1*0 (outside) + 10*x[0] + 100*x[1]
    assert _decimate_edge(x, h, 2, 0) == 10 * 1 + 100 * 2
    assert _decimate_edge(x, h, 2, 3) == 1 * 6 + 10 * 7  # x[7] is outside


@pytest.mark.parametrize("factor", [2, 4])
def test_streaming_decimation_of_a_trimmed_buffer_in_pieces_is_bit_identical(
    factor: int,
) -> None:
    # the stream asks for outputs j0 .. j1 of a buffer that starts past sample 0 and whose
    # last samples (n_total) may not all be there yet: edges, blocks and the seams between
    rng = np.random.default_rng(factor)
    n = 3000
    x = rng.standard_normal(n).astype(np.float32)
    h = lowpass_taps(factor)
    want = _decimate_kernel(x, h, factor)
    half = h.size // 2
    for j0, j1 in [(0, 3), (0, 700), (2, 9), (100, 101), (100, 613), (600, want.size)]:
        start = max(0, j0 * factor - half)
        got = _decimate_range_kernel(x[start:], start, n, h, factor, j0, j1)
        np.testing.assert_array_equal(got, want[j0:j1])
    # a buffer that ends before n_total: only outputs whose taps it holds are asked for
    avail = 1500
    j1 = (avail - 1 - half) // factor + 1
    got = _decimate_range_kernel(x[200:avail], 200, n, h, factor, (200 + half) // factor, j1)
    np.testing.assert_array_equal(got, want[(200 + half) // factor : j1])


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("n", [0, 3, 17, 5003])
def test_a_decimator_fed_in_any_blocks_gives_prepare_signals_samples(sr: int, n: int) -> None:
    rng = np.random.default_rng(sr + n)
    x = rng.standard_normal(n).astype(np.float32)
    want, work_sr = prepare_signal(x, sr, target_sr=TARGET_SR)
    for sizes in ([n], [1] * min(n, 40) + [n], [7, 0, 513, 2, 4096]):
        d = Decimator.of(sr, TARGET_SR)
        pieces, pos = [], 0
        for size in sizes:
            pieces.append(d.push(x[pos : pos + size]))
            pos += min(size, n - pos)
        pieces.append(d.push(x[pos:]))
        pieces.append(d.finish())
        got = np.concatenate(pieces)
        assert sr / d.factor == work_sr
        assert (d.n_in, d.n_out) == (n, got.size)
        np.testing.assert_array_equal(got, want)


def test_a_decimator_returns_an_output_once_its_taps_have_arrived() -> None:
    d = Decimator.of(44100, TARGET_SR)  # factor 2, 17 taps: output j needs input 2j + 8
    assert d.factor == 2 and d.taps.size == 17
    assert d.push(np.zeros(8, np.float32)).size == 0
    assert d.push(np.zeros(1, np.float32)).size == 1  # sample 8 completes output 0
    assert d.ready(9) == 1 and d.ready(11) == 2 and d.ready(8) == 0
    assert d.push(np.zeros(2, np.float32)).size == 1
    assert d.finish().size == 6 - 2  # ceil(11 / 2) outputs in all


def test_a_decimator_holds_only_its_taps_between_blocks() -> None:
    d = Decimator.of(96000, TARGET_SR)
    for _ in range(50):
        d.push(np.ones(10_000, np.float32))
    assert d._buf.size <= d.taps.size + d.factor
