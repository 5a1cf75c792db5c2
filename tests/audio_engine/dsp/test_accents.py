"""Tests of audio_engine/dsp/accents.py: the notes' level and timbre on the tracked tatums."""

from __future__ import annotations

import numpy as np
import pytest

from audio_engine.dsp.accents import (
    LEAD_S,
    MIN_SE_DB,
    N_PROFILE_BANDS,
    NEAR_PERIOD,
    PROFILE_FMIN_HZ,
    RMS_S,
    STEP_S,
    TatumNotes,
    _assign_kernel,
    _local_contrast_kernel,
    measure_notes,
    tatum_notes,
    window_samples,
)
from audio_engine.dsp.meter import _welch_phases_kernel, group_tatums
from audio_engine.params import TempoParams

TP = TempoParams()
SR = 8000
HOP = 80


def _level_reference(y: np.ndarray, at: int, window: int) -> float:
    rms, step, lead = round(RMS_S * SR), round(STEP_S * SR), round(LEAD_S * SR)
    starts = range(max(0, at - lead), min(y.size - rms, at + window) + 1, step)
    loudest = max(np.mean(y[i : i + rms].astype(np.float64) ** 2) for i in starts)
    return float(10 * np.log10(loudest + 1e-20))


@pytest.mark.nojit
@pytest.mark.parametrize("y0", [0, 400])
def test_note_levels_are_the_loudest_mean_square_near_each_start(y0: int) -> None:
    rng = np.random.default_rng(y0)
    y = rng.normal(0, 1, 3000).astype(np.float32) * np.repeat(rng.uniform(0.1, 1, 30), 100)
    onset_frames = np.array([0, 3, 5, 12, 20, 33, 36, 41], dtype=np.int64)  # frame f: f * HOP
    level, profile = measure_notes(y[y0:], SR, HOP, onset_frames, window_s=0.06, y0=y0)
    window = round(0.06 * SR)
    for k, f in enumerate(onset_frames):
        at = f * HOP - y0
        if not 0 <= at < y.size - y0:  # the signal does not hold this note's start
            assert np.isnan(level[k]) and np.all(np.isnan(profile[k]))
            continue
        assert level[k] == pytest.approx(_level_reference(y[y0:], at, window), abs=1e-6)
        assert profile[k].sum() == pytest.approx(1.0)
    outside = (onset_frames * HOP < y0) | (onset_frames * HOP >= y.size)
    assert np.isnan(level).sum() == outside.sum() >= 1


def test_a_pure_tones_profile_is_its_third_octave() -> None:
    t = np.arange(SR) / SR
    freq_hz = PROFILE_FMIN_HZ * 2 ** (13.5 / 3)  # the middle of the 14th third octave
    y = np.sin(2 * np.pi * freq_hz * t).astype(np.float32)
    _, profile = measure_notes(y, SR, HOP, np.array([10], dtype=np.int64), window_s=0.06)
    band = 13
    assert profile.shape == (1, N_PROFILE_BANDS)
    assert int(np.argmax(profile[0])) == band
    assert profile[0, band] > 0.9


def test_profiles_do_not_depend_on_the_notes_measured_beside_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # an hour's notes are measured PROFILE_BLOCK at a time (their segments at once took
    # ~0.8 GB); a block of 7 gives each note the profile the whole set does, to the last
    # bits (which the FFT's and the matrix product's batching may change)
    import audio_engine.dsp.accents as accents

    rng = np.random.default_rng(2)
    y = rng.normal(0.0, 0.1, 22050 * 4).astype(np.float32)
    frames = np.sort(rng.integers(0, 22050 * 4 // 220, 40))
    _, whole = measure_notes(y, 22050.0, 220, frames, window_s=0.06)
    monkeypatch.setattr(accents, "PROFILE_BLOCK", 7)
    _, blocked = measure_notes(y, 22050.0, 220, frames, window_s=0.06)

    assert np.isfinite(whole).sum() > 30 * N_PROFILE_BANDS
    np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=1e-15)


def test_window_samples_covers_what_measure_notes_reads() -> None:
    assert window_samples(SR, 0.06) >= round(0.06 * SR) + round(RMS_S * SR)
    assert window_samples(SR, 0.0) >= round(0.046 * SR)


@pytest.mark.nojit
def test_assign_takes_the_nearest_onset_within_the_period_share() -> None:
    rng = np.random.default_rng(1)
    onsets = np.sort(rng.choice(400, 40, replace=False)).astype(np.int64)
    tatums = np.arange(5, 400, 10, dtype=np.int64)
    period = rng.uniform(5, 15, 410)
    got = _assign_kernel(onsets, tatums, period)
    for k, f in enumerate(tatums):
        d = np.abs(onsets - f)
        near = np.flatnonzero(d <= NEAR_PERIOD * period[f])
        if near.size == 0:
            assert got[k] == -1
        else:
            assert d[got[k]] == d[near].min()


@pytest.mark.nojit
def test_local_contrast_skips_unknown_levels() -> None:
    level = np.array([1.0, np.nan, 4.0, 2.0, np.nan, np.nan, 8.0, 3.0])
    got = _local_contrast_kernel(level)
    want = [np.nan, np.nan, 4.0 - 1.5, 2.0 - 6.0, np.nan, np.nan, 8.0 - 2.5, np.nan]
    np.testing.assert_allclose(got, want)


@pytest.mark.nojit
@pytest.mark.parametrize(("group", "divide"), [(2, 1), (3, 1), (2, 2)])
def test_phase_t_is_a_welch_t_with_a_floor(group: int, divide: int) -> None:
    rng = np.random.default_rng(group * 10 + divide)
    x = rng.normal(0, 2, 50)
    index = np.sort(rng.choice(70, 50, replace=False)).astype(np.int64)
    got = _welch_phases_kernel(x, index, group, divide, MIN_SE_DB, 0.0)
    for p in range(group):
        on = (index // divide) % group == p
        a, b = x[on], x[~on]
        se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert got[p] == pytest.approx((a.mean() - b.mean()) / max(se, MIN_SE_DB))
    # a level contrast of a hair is no accent, however steady
    flat = np.where(np.arange(50) % 2 == 0, 1e-4, 0.0)
    t_flat = _welch_phases_kernel(flat, np.arange(50), 2, 1, MIN_SE_DB, 0.0)
    assert t_flat[0] == pytest.approx(1e-4 / MIN_SE_DB)


def _notes(levels: np.ndarray, profiles: np.ndarray | None = None) -> TatumNotes:
    n = levels.size
    if profiles is None:
        profiles = np.tile(np.linspace(1, 2, N_PROFILE_BANDS), (n, 1))
    profiles = profiles / profiles.sum(axis=1, keepdims=True)
    return TatumNotes(contrast_db=_local_contrast_kernel(levels), profile=profiles)


@pytest.mark.parametrize("phase", [0, 1])
def test_evidence_finds_the_louder_phase_of_pairs(phase: int) -> None:
    noise = np.random.default_rng(phase).normal(0, 0.5, 48)
    levels = np.where(np.arange(48) % 2 == phase, -10.0, -14.0) + noise
    notes = _notes(levels)
    t2, p2 = notes.evidence(np.arange(48), 2)
    assert p2 == phase and t2 > 10
    t4, _ = notes.evidence(np.arange(48), 4)
    assert t4 < t2 + 3  # no accent on every other beat
    assert notes.evidence(np.arange(48), 1) == (0.0, 0)


@pytest.mark.parametrize("phase", [0, 1, 2, 3])
def test_evidence_for_four_needs_an_accent_on_every_other_beat(phase: int) -> None:
    noise = np.random.default_rng(phase).normal(0, 0.5, 64)
    levels = np.select(
        [np.arange(64) % 4 == phase, np.arange(64) % 2 == phase % 2], [-8.0, -12.0], -16.0
    ) + noise
    notes = _notes(levels)
    t4, p4 = notes.evidence(np.arange(64), 4)
    t2, p2 = notes.evidence(np.arange(64), 2)
    assert p4 == phase and p2 == phase % 2
    assert t4 > t2 + 5


def test_timbre_similarity_tells_one_instrument_from_kick_and_snare() -> None:
    levels = np.where(np.arange(40) % 2 == 0, -10.0, -14.0)
    low, high = np.zeros(N_PROFILE_BANDS), np.zeros(N_PROFILE_BANDS)
    low[2], high[18] = 1.0, 1.0
    alternating = np.where((np.arange(40) % 2 == 0)[:, None], low, high)
    assert _notes(levels).timbre_similarity(np.arange(40)) == pytest.approx(1.0)
    assert _notes(levels, alternating).timbre_similarity(np.arange(40)) == pytest.approx(0.0)


def test_tatum_notes_leave_tatums_without_a_note_unknown() -> None:
    onsets = np.array([10, 30, 52, 90], dtype=np.int64)
    level = np.array([-10.0, -20.0, -12.0, -18.0])
    profile = np.full((4, N_PROFILE_BANDS), 1.0 / N_PROFILE_BANDS)
    tatums = np.arange(10, 111, 20, dtype=np.int64)  # 10 30 50 70 90 110
    notes = tatum_notes(onsets, level, profile, tatums, np.full(120, 20.0))
    known = ~np.isnan(notes.profile[:, 0])
    np.testing.assert_array_equal(known, [True, True, True, False, True, False])
    # 52 -> the tatum at 50; contrast: each known level less its known neighbours' mean
    np.testing.assert_allclose(notes.contrast_db[1:3], [-20 - (-11), -12 - (-19)])


def _melody_tatums(
    accent_db: float, profiles: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, TatumNotes]:
    """Tatums at 120 BPM with flat onset strength (no flux accent) and notes whose level
    rises by ``accent_db`` on every other one."""
    n, period = 48, 50.0
    frames = np.round(10 + np.arange(n) * period).astype(np.int64)
    odf = np.zeros(int(frames[-1]) + 20)
    odf[frames] = np.random.default_rng(0).uniform(0.95, 1.05, n)
    levels = np.where(np.arange(n) % 2 == 0, -10.0 + accent_db, -10.0)
    levels = levels + np.random.default_rng(1).normal(0, 0.5, n)
    return odf, frames, np.full(odf.size, period), _notes(levels, profiles)


def _group(
    odf: np.ndarray, frames: np.ndarray, period: np.ndarray, notes: TatumNotes | None
) -> tuple[np.ndarray, int]:
    return group_tatums(odf, frames, period, 120.0, TP, notes=notes, phase_switches=True)


def test_a_level_accent_of_one_instrument_groups_the_tatums() -> None:
    """At 120 BPM the prior keeps the tatum; the notes' accent alone makes pairs of it
    (60 BPM), on the loud notes."""
    odf, frames, period, notes = _melody_tatums(4.0)
    beats, group = _group(odf, frames, period, notes)
    assert group == 2
    np.testing.assert_array_equal(beats, frames[0::2])
    assert _group(odf, frames, period, None)[1] == 1  # the flux shows no accent
    assert _group(odf, frames, period, _melody_tatums(0.0)[3])[1] == 1  # nor the levels


def test_a_level_accent_between_two_sounds_is_not_a_grouping() -> None:
    """Kick and snare alternating on the beats, the kick louder: no pairs."""
    low, high = np.zeros(N_PROFILE_BANDS), np.zeros(N_PROFILE_BANDS)
    low[2], high[18] = 1.0, 1.0
    alternating = np.where((np.arange(48) % 2 == 0)[:, None], low, high)
    odf, frames, period, notes = _melody_tatums(6.0, alternating)
    assert _group(odf, frames, period, notes)[1] == 1


def _kit_profiles(n: int, beat_phase: int) -> np.ndarray:
    """Band profiles of a drum pattern on tatums of eighths: kick and snare alternating on
    the beats of ``beat_phase``, a tom (one sound) on every other tatum."""
    kick, snare, tom = (np.zeros(N_PROFILE_BANDS) for _ in range(3))
    kick[1], snare[14], snare[16], tom[6] = 1.0, 1.0, 0.5, 1.0
    k = np.arange(n)
    on_beat = k % 2 == beat_phase
    beat_kick = on_beat & ((k // 2) % 2 == 0)
    return np.where(on_beat[:, None], np.where(beat_kick[:, None], kick, snare), tom)


@pytest.mark.parametrize("beat_phase", [0, 1])
def test_alternation_is_high_where_kick_and_snare_alternate(beat_phase: int) -> None:
    notes = _notes(np.full(48, -10.0), _kit_profiles(48, beat_phase))
    alt = notes.alternation(np.arange(48), 2)
    assert alt[beat_phase] == pytest.approx(1.0)  # kick and snare share no band here
    assert alt[1 - beat_phase] == pytest.approx(0.0)  # the toms: one sound
    # one instrument alternates with nothing
    np.testing.assert_allclose(_notes(np.full(48, -10.0)).alternation(np.arange(48), 2), 0.0,
                               atol=1e-12)


def test_alternation_needs_three_notes_a_side() -> None:
    notes = _notes(np.full(8, -10.0), _kit_profiles(8, 0))
    # phase 0 of four: tatums 0 and 4 only (one even beat, one odd)
    alt = notes.alternation(np.arange(8), 4)
    assert np.isnan(alt).all()


def test_alternation_two_beats_on_tells_kick_snare_from_kick_hat_snare_hat() -> None:
    kick, snare, hat = (np.zeros(N_PROFILE_BANDS) for _ in range(3))
    kick[1], snare[14], hat[22] = 1.0, 1.0, 1.0
    k = np.arange(48)
    turns = np.where((k % 2 == 0)[:, None], kick, snare)  # kick, snare, kick, snare
    with_hats = np.where((k % 2 == 1)[:, None], hat, np.where((k % 4 == 0)[:, None], kick, snare))
    index = np.arange(48)
    for rows, lag_two in ((turns, 0.0), (with_hats, 1.0)):
        notes = TatumNotes(contrast_db=np.zeros(48), profile=rows)
        assert notes.alternation(index, 1)[0] == pytest.approx(1.0)
        assert notes.alternation(index, 1, lag=2)[0] == pytest.approx(lag_two)
    # lag 2 of pairs: the beats 0, 2, 4 ... are kick, snare, kick: two apart, alike
    notes = TatumNotes(contrast_db=np.zeros(48), profile=with_hats)
    np.testing.assert_allclose(notes.alternation(index, 2, lag=2), [0.0, 0.0], atol=1e-12)
