"""Tests of audio_engine/demo.py: the synthetic practice take is what its info says."""

from __future__ import annotations

import numpy as np
import pytest

from audio_engine.demo import make_demo_performance
from audio_engine.errors import ParameterError


def test_demo_is_deterministic_for_a_seed() -> None:
    a, sr_a, info_a = make_demo_performance(sr=16000, seed=3)
    b, sr_b, info_b = make_demo_performance(sr=16000, seed=3)
    c, _, _ = make_demo_performance(sr=16000, seed=4)

    assert sr_a == sr_b == 16000
    np.testing.assert_array_equal(a, b)
    assert info_a == info_b
    assert not np.array_equal(a, c)


def test_demo_shape_level_and_info() -> None:
    samples, sr, info = make_demo_performance()

    assert sr == 44100
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert samples.shape[0] == pytest.approx(20 * sr, abs=1)
    assert float(np.max(np.abs(samples))) == pytest.approx(0.8, abs=1e-3)
    assert info["target_bpm"] == 96.0
    assert info["grid_start_s"] == 0.5
    assert info["subdivision"] == 2
    assert info["duration_s"] == pytest.approx(20.0)


def test_demo_notes_are_eighths_that_rush_with_human_jitter() -> None:
    _, _, info = make_demo_performance()
    onsets = np.asarray(info["onsets_s"])
    ioi_ms = np.diff(onsets) * 1000
    eighth_ms = 60_000 / 96 / 2  # 312.5 ms

    assert 55 <= onsets.size <= 70
    assert onsets[0] == pytest.approx(0.5, abs=0.05)
    # rushing: the intervals shrink by about 5 % from the first to the last quarter of the take
    q = onsets.size // 4
    first, last = np.median(ioi_ms[:q]), np.median(ioi_ms[-q:])
    assert first == pytest.approx(eighth_ms, rel=0.03)
    assert 0.02 < 1 - last / first < 0.08
    # jitter: a few ms to a few tens of ms around the smooth tempo
    residual_ms = ioi_ms - np.convolve(ioi_ms, np.ones(5) / 5, mode="same")
    assert 8 < float(np.std(residual_ms[3:-3])) < 30


def test_notes_are_audible_at_their_onsets() -> None:
    samples, sr, info = make_demo_performance(sr=22050)
    frame = int(0.02 * sr)
    for onset_s in info["onsets_s"][:10]:
        start = round(onset_s * sr)
        before = np.abs(samples[start - frame - 200 : start - 200]).max()
        after = np.abs(samples[start : start + frame]).max()
        assert after > 1.5 * before, onset_s


def test_demo_rejects_low_sample_rates() -> None:
    with pytest.raises(ParameterError, match="4000"):
        make_demo_performance(sr=4000)
