"""Tests of audio_engine/dsp/tempo.py: tempogram, tatum and tempo estimates, local period."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audio_engine.dsp.tempo import (
    _interp_kernel,
    _peak_near_kernel,
    accent_ratio,
    estimate_tatum,
    estimate_tempo,
    local_period,
    subdivided_tatum,
    tempogram,
)
from audio_engine.params import TempoParams
from tests.audio_engine._support.synth import pulse_train

TP = TempoParams()
FPS = 100.0
WIN = round(TP.window_s * FPS)
HOP = round(TP.hop_s * FPS)
MAX_LAG = math.ceil(60.0 * FPS / TP.min_bpm * 2) + 2


def _tempogram_reference(odf: np.ndarray, win: int, hop: int, max_lag: int) -> np.ndarray:
    """Direct sums: windowed, mean-removed autocorrelation over the window's own autocorrelation."""
    n = odf.size
    win = max(8, min(win, n))
    starts = list(range(0, max(1, n - win + 1), hop))
    if starts[-1] + win < n:
        starts.append(n - win)
    w = np.hanning(win + 2)[1:-1]
    out = np.zeros((len(starts), max_lag + 1))
    for r, s in enumerate(starts):
        frame = odf[s : s + win]
        x = (frame - frame.mean()) * w
        a0 = float(np.dot(x, x))
        if a0 <= 1e-12:
            continue
        for lag in range(min(max_lag, win - 1) + 1):
            a = float(np.dot(x[: win - lag], x[lag:]))
            wa = float(np.dot(w[: win - lag], w[lag:])) / float(np.dot(w, w))
            out[r, lag] = a / a0 / max(wa, 0.25)
    return out


# --- tempogram -----------------------------------------------------------------------------


@pytest.mark.nojit
@pytest.mark.parametrize(
    ("n", "win", "hop", "max_lag"),
    [(8, 800, 100, 12), (60, 20, 7, 15), (61, 20, 20, 40), (50, 16, 5, 10)],
)
def test_tempogram_matches_direct_sums(n: int, win: int, hop: int, max_lag: int) -> None:
    odf = np.random.default_rng(n).gamma(0.5, 1.0, n)
    got = tempogram(odf, win, hop, max_lag)
    want = _tempogram_reference(odf, win, hop, max_lag)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("bpm", [60.0, 120.0, 200.0])
def test_tempogram_of_a_pulse_train_peaks_at_its_period(bpm: float) -> None:
    period = round(60.0 * FPS / bpm)
    odf = pulse_train(bpm, 2000)
    tg = tempogram(odf, WIN, HOP, MAX_LAG)
    assert tg.shape == (13, MAX_LAG + 1)
    np.testing.assert_allclose(tg[:, 0], 1.0)
    for row in tg:
        maxima = [
            i
            for i in range(1, MAX_LAG)
            if row[i] >= row[i - 1] and row[i] >= row[i + 1] and row[i] > 0.5
        ]
        assert maxima[0] == period
        assert row[period] > 0.95
        assert row[period // 2] < 0.1
        assert np.all(row[: period - 2][3:] < 0.5)  # nothing strong below the period


@pytest.mark.parametrize("block", [1, 2, 5])
def test_tempogram_a_block_of_windows_at_a_time_is_the_same(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import audio_engine.dsp.tempo as tempo

    odf = np.random.default_rng(block).gamma(0.5, 1.0, 3000)
    odf[1000:1300] = 0.0  # silent windows among them
    want = tempogram(odf, 400, 50, 120)
    monkeypatch.setattr(tempo, "TEMPOGRAM_BLOCK", block)
    np.testing.assert_array_equal(tempogram(odf, 400, 50, 120), want)


def test_tempogram_of_silence_and_of_a_short_curve() -> None:
    assert np.all(tempogram(np.zeros(2000), WIN, HOP, MAX_LAG) == 0)
    short = tempogram(pulse_train(120, 300), WIN, HOP, MAX_LAG)
    assert short.shape == (1, MAX_LAG + 1)
    assert np.all(short[0, 300:] == 0)  # lags beyond the window are left at zero


@pytest.mark.parametrize("n", [0, 1, 5, 7])
def test_tempogram_of_a_very_short_curve_gives_one_window(n: int) -> None:
    """Shorter than 8 frames: one window of zeros over lags 0 .. max_lag."""
    tg = tempogram(np.ones(n), WIN, HOP, 40)
    assert tg.shape[0] == 1
    assert tg.shape == (1, 41)
    assert np.all(tg == 0.0)


# --- small kernels -------------------------------------------------------------------------


@pytest.mark.nojit
def test_interp_kernel_matches_numpy_inside_and_is_zero_outside() -> None:
    a = np.random.default_rng(0).normal(size=30)
    lags = np.array([0.0, 0.5, 3.25, 17.9, 28.999, 29.0, 29.5, 40.0])
    got = _interp_kernel(a, lags)
    inside = (lags >= 0) & (lags < 29)
    np.testing.assert_allclose(got[inside], np.interp(lags[inside], np.arange(30), a), atol=1e-12)
    assert np.all(got[~inside] == 0)


def _peak_near_reference(a: np.ndarray, lo: float, hi: float) -> float:
    cands = [
        i
        for i in range(max(1, math.ceil(lo)), min(a.size - 2, math.floor(hi)) + 1)
        if a[i] >= a[i - 1] and a[i] >= a[i + 1]
    ]
    if not cands:
        return -1.0
    i = max(cands, key=lambda k: (a[k], -k))  # the first of equal maxima
    x0, x1, x2 = a[i - 1], a[i], a[i + 1]
    den = x0 - 2 * x1 + x2
    off = 0.5 * (x0 - x2) / den if den < 0 else 0.0
    return i + min(0.5, max(-0.5, off))


@pytest.mark.nojit
@pytest.mark.parametrize("seed", range(8))
def test_peak_near_kernel_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, 40).astype(np.float64) if seed % 2 else rng.normal(size=40)
    lo = float(rng.uniform(-3, 30))
    hi = lo + float(rng.uniform(0, 15))
    assert _peak_near_kernel(a, lo, hi) == pytest.approx(_peak_near_reference(a, lo, hi))


@pytest.mark.nojit
def test_peak_near_kernel_interpolates_a_parabola() -> None:
    x = np.arange(40, dtype=np.float64)
    a = -((x - 21.3) ** 2)
    assert _peak_near_kernel(a, 15.0, 25.0) == pytest.approx(21.3)
    assert _peak_near_kernel(a, 25.0, 35.0) == -1.0  # monotonic there: no local maximum


# --- tatum and tempo -----------------------------------------------------------------------


@pytest.mark.parametrize("bpm", [40.0, 60.0, 120.0, 200.0, 280.0])
def test_estimate_tatum_on_pulse_trains(bpm: float) -> None:
    acf = tempogram(pulse_train(bpm, 2000), WIN, HOP, MAX_LAG).mean(axis=0)
    tatum = estimate_tatum(acf, FPS, TP)
    assert tatum is not None
    assert 60.0 * FPS / tatum == pytest.approx(bpm, rel=0.01)


@pytest.mark.nojit
def test_estimate_tatum_on_a_short_pulse_train() -> None:
    acf = tempogram(pulse_train(150.0, 300), WIN, HOP, MAX_LAG).mean(axis=0)
    tatum = estimate_tatum(acf, FPS, TP)
    assert tatum is not None and tatum == pytest.approx(40.0, abs=0.5)


def test_estimate_tatum_picks_the_fastest_strong_pulse() -> None:
    """Quarter notes at 100 BPM with off-beat eighths at 60 % strength: the tatum is 200 BPM;
    below tatum_ratio the eighths are too weak and the quarter note is the tatum."""
    quarters = pulse_train(100.0, 2000)
    eighths = np.roll(quarters, 30)
    strong = tempogram(quarters + 0.6 * eighths, WIN, HOP, MAX_LAG).mean(axis=0)
    weak = tempogram(quarters + 0.1 * eighths, WIN, HOP, MAX_LAG).mean(axis=0)
    assert 60 * FPS / estimate_tatum(strong, FPS, TP) == pytest.approx(200.0, rel=0.01)  # type: ignore[operator]
    assert 60 * FPS / estimate_tatum(weak, FPS, TP) == pytest.approx(100.0, rel=0.01)  # type: ignore[operator]


def test_estimate_tatum_without_a_pulse_is_none() -> None:
    assert estimate_tatum(np.zeros(MAX_LAG + 1), FPS, TP) is None
    assert estimate_tatum(np.zeros(10), FPS, TP) is None  # shorter than the slowest period
    assert estimate_tatum(np.linspace(1, 0, MAX_LAG + 1), FPS, TP) is None  # no local maximum


def test_subdivided_tatum_on_alternating_kick_and_snare() -> None:
    """Kicks at 55 BPM and snares halfway between them at 40 % of their strength: the 110 BPM
    peak is below tatum_ratio, yet the pulse goes on past the kick's period, so it is the
    tatum; at 30 % the snares are below subdivision_ratio and the kick stays the tatum."""
    kicks = pulse_train(55.0, 3000)
    snares = np.roll(kicks, round(60.0 * FPS / 110.0))
    for share, bpm in ((0.4, 110.0), (0.3, 55.0)):
        acf = tempogram(kicks + share * snares, WIN, HOP, MAX_LAG).mean(axis=0)
        tatum = estimate_tatum(acf, FPS, TP)
        assert tatum is not None and 60 * FPS / tatum == pytest.approx(55.0, rel=0.01)
        assert 60 * FPS / subdivided_tatum(acf, tatum, FPS, TP) == pytest.approx(bpm, rel=0.01)


def _bumps(heights: dict[int, float]) -> np.ndarray:
    """An autocorrelation made of Gaussian peaks (2 lags wide) of the given heights."""
    lags = np.arange(MAX_LAG + 1, dtype=np.float64)
    return sum((h * np.exp(-0.5 * ((lags - c) / 2.0) ** 2) for c, h in heights.items()),
               np.zeros(MAX_LAG + 1))


def test_subdivided_tatum_needs_a_divisor_that_recurs_past_the_tatum() -> None:
    """Tatum 108 lags (55.6 BPM). A 0.45 peak at half of it becomes the tatum only when the
    autocorrelation also peaks at three halves (162 lags); a 0.45 peak at two thirds of it
    (72 lags, dotted notes) does not divide it, however high its multiples."""
    divides = {54: 0.45, 108: 1.0, 162: 0.42, 216: 0.8}
    assert subdivided_tatum(_bumps(divides), 108.0, FPS, TP) == pytest.approx(54.0, abs=0.1)
    assert subdivided_tatum(_bumps(divides | {162: 0.1}), 108.0, FPS, TP) == 108.0
    dotted = {72: 0.45, 108: 1.0, 144: 0.5, 216: 0.8}
    assert estimate_tatum(_bumps(dotted), FPS, TP) == pytest.approx(108.0, abs=0.1)
    assert subdivided_tatum(_bumps(dotted), 108.0, FPS, TP) == 108.0
    assert subdivided_tatum(np.zeros(MAX_LAG + 1), 108.0, FPS, TP) == 108.0  # no peak at all


@pytest.mark.parametrize("bpm", [100.0, 120.0, 140.0])
def test_estimate_tempo_near_the_prior(bpm: float) -> None:
    odf = pulse_train(bpm, 2000)
    est = estimate_tempo(odf, FPS, TP, tempogram(odf, WIN, HOP, MAX_LAG))
    assert est.bpm == pytest.approx(bpm, rel=0.01)
    assert est.period_frames == pytest.approx(60 * FPS / bpm, rel=0.01)
    assert 0.8 <= est.confidence <= 1.0


def test_estimate_tempo_of_silence() -> None:
    odf = np.zeros(1000)
    est = estimate_tempo(odf, FPS, TP, tempogram(odf, WIN, HOP, MAX_LAG))
    assert (est.bpm, est.confidence, est.period_frames) == (None, 0.0, None)


# --- local period --------------------------------------------------------------------------


def test_local_period_follows_a_step_change() -> None:
    """100 BPM for 10 s, then 115 BPM: the local period moves from 60 to 52.2 frames."""
    first = pulse_train(100.0, 1000)
    second = pulse_train(115.0, 1000, phase_frames=0.0)
    odf = np.concatenate([first, second])
    tg = tempogram(odf, WIN, HOP, MAX_LAG)
    per = local_period(tg, 60.0, odf.size, WIN, HOP)
    assert per.shape == (2000,)
    assert per[:400] == pytest.approx(60.0, rel=0.02)
    assert per[-400:] == pytest.approx(6000 / 115, rel=0.02)
    assert np.all(np.diff(per) <= 0.05)  # monotonic through the change: no outliers


def test_local_period_of_jittered_notes_is_their_mean_interval() -> None:
    """Notes alternately 2 frames early and late around a 60-frame beat: each window's
    autocorrelation has two equal peaks (56 and 64 frames) and only smoothing over lags finds
    the beat's period between them; without it the period is one of the two intervals."""
    odf = np.zeros(2000)
    t = 10.0
    for k in range(40):
        odf[round(t + (2.0 if k % 2 else -2.0))] = 1.0
        t += 60.0
        if t > 1990:
            break
    tg = tempogram(odf, WIN, HOP, MAX_LAG)
    raw = local_period(tg, 60.0, odf.size, WIN, HOP)
    smoothed = local_period(tg, 60.0, odf.size, WIN, HOP, smooth=TP.period_smooth)
    assert abs(np.median(raw) - 60.0) > 2.0
    assert np.median(smoothed) == pytest.approx(60.0, rel=0.02)
    assert np.all(np.abs(smoothed - 60.0) < 1.5)


def test_local_period_stays_near_the_given_period() -> None:
    """Only peaks within period/1.3 .. period*1.3 count: a 2x periodicity is never taken."""
    odf = pulse_train(120.0, 2000)
    tg = tempogram(odf, WIN, HOP, MAX_LAG)
    np.testing.assert_allclose(local_period(tg, 100.0, 2000, WIN, HOP), 100.0, rtol=0.01)
    np.testing.assert_allclose(local_period(tg, 48.0, 2000, WIN, HOP), 50.0, rtol=0.01)


# --- accent --------------------------------------------------------------------------------


@pytest.mark.nojit
def test_accent_ratio_known_answers() -> None:
    beats = pulse_train(120.0, 400, phase_frames=3.0)  # a pulse every 50 frames
    accented = beats.copy()
    accented[3::100] *= 2.0  # every other pulse twice as strong
    # nothing between the beats: a very large ratio
    assert accent_ratio(beats, 50.0, 2) > 10
    # grouping equal pulses in pairs: no contrast
    assert accent_ratio(beats, 100.0, 2) == pytest.approx(0.0, abs=1e-6)
    # grouping strong/weak pairs: log(2)
    assert accent_ratio(accented, 100.0, 2) == pytest.approx(np.log(2.0), abs=1e-6)
    # degenerate inputs
    assert accent_ratio(beats, 1.5, 2) == 0.0
    assert accent_ratio(beats[:150], 100.0, 2) == 0.0
