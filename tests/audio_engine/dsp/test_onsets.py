"""Tests of audio_engine/dsp/onsets.py: SuperFlux onset strength."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import maximum_filter1d

from audio_engine.dsp.onsets import (
    _hold_min_kernel,
    _max_filter_bands_kernel,
    _stream_spectra_kernel,
    _superflux_kernel,
    onset_strength,
    sustained_strength,
)
from audio_engine.dsp.spectrogram import frame_geometry, log_spectrogram
from audio_engine.errors import ParameterError
from audio_engine.params import OnsetParams, SpectrogramParams
from tests.audio_engine._support.synth import soft_tones, vibrato_tone

P = SpectrogramParams()


def _superflux_reference(
    S: np.ndarray, lag: int, max_bands: int, history: np.ndarray | None
) -> np.ndarray:
    """Rectified difference of each frame to the band-max-filtered frame ``lag`` earlier."""
    S = S.astype(np.float64)
    ref = maximum_filter1d(S, size=2 * max_bands + 1, axis=1, mode="nearest") if max_bands else S
    hist = np.zeros((lag, S.shape[1])) if history is None else history.astype(np.float64)
    prev = np.concatenate([hist, ref])[: S.shape[0]]
    out: np.ndarray = np.maximum(S - prev, 0.0).sum(axis=1)
    return out


def _random_spec(n_frames: int, n_bands: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).gamma(1.0, 1.0, (n_frames, n_bands)).astype(np.float32)


@pytest.mark.nojit
@pytest.mark.parametrize("half_width", [0, 1, 2, 5])
def test_max_filter_kernel_matches_scipy(half_width: int) -> None:
    S = _random_spec(6, 9, half_width)
    want = maximum_filter1d(S, size=2 * half_width + 1, axis=1, mode="nearest")
    np.testing.assert_array_equal(_max_filter_bands_kernel(S, half_width), want)


@pytest.mark.nojit
@pytest.mark.parametrize("lag", [1, 2, 3])
@pytest.mark.parametrize("max_bands", [0, 1, 3])
@pytest.mark.parametrize("with_history", [False, True])
def test_onset_strength_matches_reference(lag: int, max_bands: int, with_history: bool) -> None:
    S = _random_spec(12, 10, 10 * lag + max_bands)
    history = _random_spec(lag, 10, 99) if with_history else None
    got = onset_strength(S, lag_frames=lag, max_bands=max_bands, history=history)
    assert got.dtype == np.float64
    assert got.shape == (12,)
    np.testing.assert_allclose(
        got, _superflux_reference(S, lag, max_bands, history), rtol=1e-6, atol=1e-6
    )


@pytest.mark.nojit
def test_superflux_kernel_on_a_step() -> None:
    """Known answer: a band rising from 0 to 1 at frame 3 gives flux 1 at frames 3 .. 3+lag-1."""
    S = np.zeros((8, 4), dtype=np.float32)
    S[3:, 2] = 1.0
    hist = np.zeros((2, 4), dtype=np.float32)
    np.testing.assert_array_equal(_superflux_kernel(S, S, 2, hist), [0, 0, 0, 1, 1, 0, 0, 0])


@pytest.mark.nojit
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 17])
@pytest.mark.parametrize("lag", [1, 2, 3])
def test_chunks_with_history_equal_the_whole(chunk: int, lag: int) -> None:
    S = _random_spec(40, 12, chunk + lag)
    whole = onset_strength(S, lag_frames=lag, max_bands=1)
    ref = _max_filter_bands_kernel(S, 1)
    past = np.zeros((lag, 12), dtype=np.float32)  # ring of the last `lag` max-filtered frames
    parts = []
    for s in range(0, 40, chunk):
        parts.append(onset_strength(S[s : s + chunk], lag_frames=lag, max_bands=1, history=past))
        past = np.concatenate([past, ref[s : s + chunk]])[-lag:]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.nojit
@pytest.mark.parametrize(("lag", "slow_lag"), [(1, 0), (2, 4), (3, 3), (4, 2)])
@pytest.mark.parametrize("max_bands", [0, 2])
@pytest.mark.parametrize("n_frames", [1, 3, 10])
def test_stream_spectra_kernel_is_the_separate_kernels(
    lag: int, slow_lag: int, max_bands: int, n_frames: int
) -> None:
    """The stream's one call per chunk gives, value for value, the max-filtered frames,
    both onset strengths and the per-band flux rows the separate kernels give (the flux
    rows summed are the onset strength's terms); fewer new frames than the lag read the
    history."""
    S = _random_spec(n_frames, 11, 7 * lag + slow_lag + max_bands + n_frames)
    history = _random_spec(max(lag, slow_lag) + 1, 11, 5)
    ref, odf, odf_slow, flux = _stream_spectra_kernel(S, history, lag, slow_lag, max_bands)
    want_ref = _max_filter_bands_kernel(S, max_bands) if max_bands else S
    np.testing.assert_array_equal(ref, want_ref)
    np.testing.assert_array_equal(odf, _superflux_kernel(S, want_ref, lag, history[-lag:]))
    if slow_lag:
        np.testing.assert_array_equal(
            odf_slow, _superflux_kernel(S, want_ref, slow_lag, history[-slow_lag:])
        )
    else:
        assert odf_slow.shape == (0,)
    prev = np.concatenate([history[-lag:], want_ref])[:n_frames]
    np.testing.assert_array_equal(flux, np.maximum(S - prev, np.float32(0.0)))
    np.testing.assert_allclose(flux.sum(axis=1, dtype=np.float64), odf, rtol=1e-6)
    assert ref is not S  # a copy: the stream keeps it while S is its spectrogram's rows


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"lag_frames": 0, "max_bands": 1}, "lag_frames must be >= 1, got 0"),
        ({"lag_frames": -1, "max_bands": 1}, "lag_frames must be >= 1, got -1"),
        ({"lag_frames": 2, "max_bands": -1}, "max_bands must be >= 0, got -1"),
    ],
)
def test_lag_and_max_bands_are_validated(kwargs: dict[str, int], needle: str) -> None:
    with pytest.raises(ParameterError, match=needle):
        onset_strength(
            _random_spec(5, 4, 0), lag_frames=kwargs["lag_frames"], max_bands=kwargs["max_bands"]
        )


def test_silence_gives_zero_and_flux_is_non_negative() -> None:
    assert np.all(onset_strength(np.zeros((20, 30), np.float32), lag_frames=2, max_bands=1) == 0)
    S = _random_spec(50, 30, 1)
    assert np.all(onset_strength(S, lag_frames=2, max_bands=1) >= 0)


def _onset_strength_of(
    y: np.ndarray, sr: int, *, lag: int = 2, max_bands: int = 1
) -> tuple[np.ndarray, float]:
    g = frame_geometry(float(sr), P)
    return onset_strength(log_spectrogram(y, g, P), lag_frames=lag, max_bands=max_bands), g.fps


@pytest.mark.parametrize("sr", [8000, 16000])
def test_vibrato_gives_far_less_onset_strength_than_a_re_attack(sr: int) -> None:
    times = np.arange(0.3, 2.5, 0.5)
    re_attacks = soft_tones(
        times, 3.0, sr, attack_s=0.005, note_s=0.4, release_s=0.05, freqs_hz=(440.0,), amplitude=0.3
    )
    odf, fps = _onset_strength_of(re_attacks, sr)
    attack_peaks = [odf[round(t * fps) - 2 : round(t * fps) + 8].max() for t in times]

    vib = vibrato_tone(3.0, sr, f0_hz=440.0, depth_cents=50.0, rate_hz=6.0)
    sustain = slice(30, -30)  # after the first attack, before the fade-out
    vib_odf, _ = _onset_strength_of(vib, sr)
    vib_plain, _ = _onset_strength_of(vib, sr, max_bands=0)

    assert float(vib_odf[sustain].max()) < 0.05 * float(np.min(attack_peaks))
    assert float(vib_odf[sustain].max()) < OnsetParams().delta  # never an onset by itself
    # the band maximum filter is what suppresses it: plain flux sees the vibrato
    assert float(vib_odf[sustain].max()) < 0.3 * float(vib_plain[sustain].max())


@pytest.mark.parametrize("sr", [8000, 16000])
def test_a_longer_lag_catches_a_slow_attack(sr: int) -> None:
    times = np.arange(0.3, 2.5, 0.5)
    y = soft_tones(times, 3.0, sr, attack_s=0.05, note_s=0.4, release_s=0.05, freqs_hz=(440.0,))
    peaks = {}
    for lag in (1, 2):
        odf, fps = _onset_strength_of(y, sr, lag=lag)
        peaks[lag] = np.array([odf[round(t * fps) - 2 : round(t * fps) + 8].max() for t in times])
    assert np.all(peaks[2] > 1.6 * peaks[1])
    assert np.all(peaks[2] > 3 * OnsetParams().delta)


# --- sustained strength (the hold gate) ----------------------------------------------------


@pytest.mark.nojit
@pytest.mark.parametrize("hold", [0, 1, 3])
def test_hold_min_kernel_is_the_minimum_over_the_next_frames(hold: int) -> None:
    S = _random_spec(9, 4, hold)
    want = np.stack([S[i : i + hold + 1].min(axis=0) for i in range(9)])  # clipped at the end
    np.testing.assert_array_equal(_hold_min_kernel(S, hold), want)


@pytest.mark.nojit
def test_sustained_strength_is_the_flux_of_the_held_spectrum() -> None:
    S = _random_spec(20, 8, 5)
    held = np.stack([S[i : i + 4].min(axis=0) for i in range(20)])
    ref = _max_filter_bands_kernel(S, 1)
    want = np.maximum(held - np.concatenate([np.zeros((2, 8)), ref])[:20], 0.0).sum(axis=1)
    got = sustained_strength(S, lag_frames=2, max_bands=1, hold_frames=3)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.nojit
@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_sustained_strength_a_block_at_a_time_is_the_whole_array_kernels(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the held minima look ahead and the reference looks back across the blocks' seams
    import audio_engine.dsp.onsets as onsets

    S = _random_spec(41, 6, 9)
    ref = _max_filter_bands_kernel(S, 1)
    want = _superflux_kernel(
        onsets._hold_min_kernel(S, 3), ref, 2, np.zeros((2, 6), dtype=np.float32)
    )
    monkeypatch.setattr(onsets, "HOLD_BLOCK_FRAMES", block)
    got = sustained_strength(S, lag_frames=2, max_bands=1, hold_frames=3)
    np.testing.assert_array_equal(got, want)


@pytest.mark.nojit
def test_a_rise_that_stays_is_held_and_a_blip_is_not() -> None:
    S = np.zeros((12, 3), dtype=np.float32)
    S[3:, 0] = 2.0  # a note: the band stays up
    S[7, 2] = 5.0  # a one-frame blip
    plain = onset_strength(S, lag_frames=1, max_bands=0)
    held = sustained_strength(S, lag_frames=1, max_bands=0, hold_frames=3)
    assert plain[3] == held[3] == 2.0
    assert plain[7] == 5.0 and held[7] == 0.0


@pytest.mark.nojit
@pytest.mark.parametrize(("n_frames", "n_bands"), [(0, 3), (1, 1), (2, 2), (5, 3), (12, 40)])
def test_max_and_hold_min_kernels_on_small_and_narrow_spectra(n_frames: int, n_bands: int) -> None:
    S = _random_spec(n_frames, n_bands, n_frames + n_bands)
    S[:, ::2] = np.float32(1.0)  # ties
    for half_width in (0, 1, 2, 5):
        want = maximum_filter1d(S, size=2 * half_width + 1, axis=1, mode="nearest") if S.size else S
        np.testing.assert_array_equal(_max_filter_bands_kernel(S, half_width), want)
    for hold in (0, 1, 3, 20):
        want = (
            np.stack([S[i : i + hold + 1].min(axis=0) for i in range(n_frames)]) if n_frames else S
        )
        np.testing.assert_array_equal(_hold_min_kernel(S, hold), want)
