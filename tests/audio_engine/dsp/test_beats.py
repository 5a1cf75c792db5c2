"""Tests of audio_engine/dsp/beats.py: the dynamic-programming beat tracker."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audio_engine.dsp.beats import (
    _dp_kernel,
    _last_beat_kernel,
    _local_score_kernel,
    backtrack,
    beat_cumulative_score,
    track_beats,
    trim_weak,
)
from audio_engine.dsp.onsets import onset_strength
from audio_engine.dsp.spectrogram import frame_geometry, log_spectrogram
from audio_engine.dsp.tempo import estimate_tatum, local_period, tempogram
from audio_engine.params import BeatParams, OnsetParams, SpectrogramParams, TempoParams
from tests._support.signals import click_track
from tests.audio_engine._support.matching import match_events
from tests.audio_engine._support.synth import clicks_at, pulse_train, ramp_times, step_times

BP = BeatParams()


# --- kernels against references ------------------------------------------------------------


def _local_score_reference(odf: np.ndarray, period: np.ndarray) -> np.ndarray:
    out = np.zeros(odf.size)
    for t in range(odf.size):
        sigma = max(1.0, period[t] / 32.0)
        r = int(3 * sigma)
        for k in range(-r, r + 1):
            if 0 <= t + k < odf.size:
                out[t] += odf[t + k] * math.exp(-0.5 * (k / sigma) ** 2)
    return out


def _dp_reference(
    score: np.ndarray, period: np.ndarray, tightness: float
) -> tuple[np.ndarray, np.ndarray]:
    """Best cumulative score ending with a beat at t: the beat's score plus the best earlier
    beat p (t - 2*tau .. t - tau/2, as the kernel truncates them) minus the interval penalty;
    a sequence starts afresh where no predecessor adds anything positive."""
    n = score.size
    cum = np.zeros(n)
    back = np.full(n, -1)
    for t in range(n):
        tau = period[t]
        cands = range(max(0, math.trunc(t - 2 * tau)), math.trunc(t - tau / 2) + 1)
        vals = [(cum[p] - tightness * math.log((t - p) / tau) ** 2, p) for p in cands]
        if vals:
            best, arg = max(vals, key=lambda vp: (vp[0], -vp[1]))  # the earliest of equals
            if best > 0:
                cum[t] = score[t] + best
                back[t] = arg
                continue
        cum[t] = score[t]
    return cum, back


def _last_beat_reference(cum: np.ndarray) -> int:
    maxima = [t for t in range(1, cum.size - 1) if cum[t] > cum[t - 1] and cum[t] >= cum[t + 1]]
    if not maxima:
        return int(np.argmax(cum))
    thr = 0.5 * float(np.median(cum[maxima]))
    return max(t for t in maxima if cum[t] >= thr)


def _tiny_odf(seed: int, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    odf = rng.gamma(0.3, 1.0, n) + pulse_train(6000 / 17, n, phase_frames=3.0) * 4
    period = np.linspace(17.0, 14.0, n)  # a slight accelerando
    return odf, period


@pytest.mark.nojit
@pytest.mark.parametrize("seed", range(3))
def test_local_score_kernel_matches_reference(seed: int) -> None:
    odf, period = _tiny_odf(seed)
    period = period * (1 + 3 * seed)  # wider Gaussians too
    np.testing.assert_allclose(
        _local_score_kernel(odf, period), _local_score_reference(odf, period), rtol=1e-12
    )


@pytest.mark.nojit
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("tightness", [1.0, 100.0, 1e4])
def test_dp_kernel_matches_reference(seed: int, tightness: float) -> None:
    odf, period = _tiny_odf(seed)
    score = _local_score_kernel(odf / odf.std(), period)
    cum, back = _dp_kernel(score, period, tightness)
    want_cum, want_back = _dp_reference(score, period, tightness)
    np.testing.assert_allclose(cum, want_cum, rtol=1e-12)
    np.testing.assert_array_equal(back, want_back)


@pytest.mark.nojit
@pytest.mark.parametrize("seed", range(4))
def test_last_beat_kernel_matches_reference(seed: int) -> None:
    cum = np.cumsum(np.random.default_rng(seed).normal(0.2, 1.0, 60))
    assert _last_beat_kernel(cum) == _last_beat_reference(cum)
    monotonic = np.arange(10.0)
    assert _last_beat_kernel(monotonic) == _last_beat_reference(monotonic) == 9


@pytest.mark.parametrize("seed", range(3))
def test_backtrack_follows_the_links_from_the_last_strong_maximum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    odf = rng.gamma(1.0, 1.0, 300) * (np.arange(300) % 25 == 0) + 0.05 * rng.random(300)
    period = np.full(300, 25.0)
    cum, back = beat_cumulative_score(odf, period, tightness=BP.tightness)
    want = [_last_beat_reference(cum)]
    while back[want[-1]] >= 0:
        want.append(int(back[want[-1]]))
    np.testing.assert_array_equal(backtrack(cum, back), want[::-1])
    # track_beats is the two run in turn, then trimmed
    np.testing.assert_array_equal(
        track_beats(odf, period, tightness=BP.tightness, trim_ratio=0.0), want[::-1]
    )


def test_beat_cumulative_score_is_the_dp_over_the_normalised_smoothed_strength() -> None:
    rng = np.random.default_rng(7)
    odf = rng.gamma(2.0, 1.0, 200)
    period = np.linspace(18.0, 24.0, 200)
    cum, back = beat_cumulative_score(odf, period, tightness=50.0)
    score = _local_score_reference(odf / np.std(odf), period)
    want_cum, want_back = _dp_reference(score, period, 50.0)
    np.testing.assert_allclose(cum, want_cum, rtol=1e-9)
    np.testing.assert_array_equal(back, want_back)


# --- the tracker on known curves -----------------------------------------------------------


@pytest.mark.nojit
def test_track_beats_on_a_pulse_train_hits_every_pulse() -> None:
    odf = pulse_train(6000 / 20, 200, phase_frames=7.0)  # a pulse every 20 frames
    beats = track_beats(odf, np.full(200, 20.0), tightness=BP.tightness, trim_ratio=BP.trim_ratio)
    np.testing.assert_array_equal(beats, np.arange(7, 200, 20))


@pytest.mark.nojit
def test_track_beats_bridges_a_missing_pulse_and_ignores_off_beats() -> None:
    odf = pulse_train(6000 / 20, 200, phase_frames=7.0)
    odf[87] = 0.0  # a rest
    odf[[50, 130]] = 0.4  # weak notes between the beats
    beats = track_beats(odf, np.full(200, 20.0), tightness=BP.tightness, trim_ratio=BP.trim_ratio)
    np.testing.assert_array_equal(beats, np.arange(7, 200, 20))


@pytest.mark.nojit
def test_track_beats_short_inputs() -> None:
    for n in (0, 1, 2):
        assert track_beats(np.ones(n), np.full(n, 10.0), tightness=100.0, trim_ratio=0.3).shape == (
            0,
        )


@pytest.mark.nojit
def test_track_beats_of_silence_is_empty() -> None:
    beats = track_beats(
        np.zeros(500), np.full(500, 50.0), tightness=BP.tightness, trim_ratio=BP.trim_ratio
    )
    assert beats.size == 0
    assert beats.dtype == np.int64


@pytest.mark.nojit
def test_trim_weak_drops_weak_ends_only() -> None:
    odf = np.zeros(100)
    beats = np.arange(5, 100, 10, dtype=np.int64)
    odf[beats] = [0.05, 0.1, 1.0, 1.0, 0.05, 1.0, 1.0, 1.0, 0.15, 0.01]  # median 0.575
    period = np.full(100, 10.0)
    # a weak beat in the middle stays; the weak ones at either end go
    np.testing.assert_array_equal(trim_weak(odf, beats, period, 0.3), beats[2:8])
    np.testing.assert_array_equal(trim_weak(odf, beats, period, 0.0), beats)
    assert trim_weak(odf, np.zeros(0, dtype=np.int64), period, 0.3).shape == (0,)
    assert trim_weak(np.zeros(100), beats, period, 0.3).tolist() == beats.tolist()  # all equal


# --- the tracker on audio ------------------------------------------------------------------


def _track_audio(y: np.ndarray, sr: int) -> np.ndarray:
    """The analysis chain up to the tatum-level beats, in seconds."""
    sp, op, tp = SpectrogramParams(), OnsetParams(), TempoParams()
    g = frame_geometry(float(sr), sp)
    odf = onset_strength(
        log_spectrogram(y, g, sp), lag_frames=op.lag_frames, max_bands=op.max_bands
    )
    win, hop = round(tp.window_s * g.fps), round(tp.hop_s * g.fps)
    tg = tempogram(odf, win, hop, math.ceil(60.0 * g.fps / tp.min_bpm * 2) + 2)
    tatum = estimate_tatum(tg.mean(axis=0), g.fps, tp)
    assert tatum is not None
    period = local_period(tg, tatum, odf.size, win, hop)
    return track_beats(odf, period, tightness=BP.tightness, trim_ratio=BP.trim_ratio) / g.fps


@pytest.mark.parametrize("bpm", [70.0, 100.0, 140.0])
def test_beats_follow_a_click_track(bpm: float) -> None:
    sr = 8000
    y, clicks = click_track(bpm, 10.0, sr, jitter_ms=10.0, seed=int(bpm))
    m = match_events(_track_audio(y, sr), clicks, 0.07)
    assert m.f_measure >= 0.95
    assert np.max(np.abs(m.errors_s)) < 0.035


@pytest.mark.parametrize(
    "times",
    [
        pytest.param(ramp_times(100.0, 0.10, 16.0), id="rush-10pct"),
        pytest.param(ramp_times(100.0, -0.10, 16.0), id="drag-10pct"),
        pytest.param(step_times(100.0, 115.0, 8.0, 16.0), id="step-100-115"),
    ],
)
def test_beats_follow_tempo_changes(times: np.ndarray) -> None:
    sr = 8000
    beats = _track_audio(clicks_at(times, 16.0, sr), sr)
    m = match_events(beats, times, 0.07)
    assert m.recall >= 0.9
    assert m.precision >= 0.9
