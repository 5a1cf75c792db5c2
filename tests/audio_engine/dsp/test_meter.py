"""Tests of audio_engine/dsp/meter.py: accent evidence and the grouping of tatums into beats."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from audio_engine.dsp.accents import N_PROFILE_BANDS, TatumNotes
from audio_engine.dsp.meter import (
    _phase_path_kernel,
    _ranks,
    _strength_at_kernel,
    backbeat_phase,
    group_tatums,
    grouping_evidence,
    kick_snare_tatums,
    phase_evidence,
    pulse_index,
)
from audio_engine.params import TempoParams

TP = TempoParams()


@pytest.mark.nojit
@pytest.mark.parametrize("half", [0, 1, 2, 4])
def test_strength_at_kernel_matches_reference(half: int) -> None:
    odf = np.random.default_rng(half).gamma(1.0, 1.0, 40)
    frames = np.array([0, 1, 5, 20, 38, 39], dtype=np.int64)
    want = [odf[max(0, f - half) : f + half + 1].max() for f in frames]
    np.testing.assert_array_equal(_strength_at_kernel(odf, frames, half), want)


@pytest.mark.nojit
def test_strength_at_kernel_floors_at_zero() -> None:
    odf = -np.ones(10)
    np.testing.assert_array_equal(_strength_at_kernel(odf, np.array([3], dtype=np.int64), 1), [0.0])


# --- pulse index ---------------------------------------------------------------------------


def test_pulse_index_counts_gaps_as_missing_pulses() -> None:
    frames = np.array([10, 60, 110, 210, 260, 410], dtype=np.int64)
    period = np.full(500, 50.0)
    np.testing.assert_array_equal(pulse_index(frames, period), [0, 1, 2, 4, 5, 8])
    # the local period at each pulse decides: after a slow-down the same gap is one pulse
    period[200:] = 100.0
    np.testing.assert_array_equal(pulse_index(frames, period), [0, 1, 2, 3, 4, 6])
    assert pulse_index(np.zeros(0, dtype=np.int64), period).shape == (0,)
    # intervals shorter than a period still advance the index
    np.testing.assert_array_equal(
        pulse_index(np.array([0, 5, 10], dtype=np.int64), np.full(20, 50.0)), [0, 1, 2]
    )


# --- grouping evidence ---------------------------------------------------------------------


def _welch_reference(strength: np.ndarray, index: np.ndarray, group: int) -> tuple[float, int]:
    ranks = stats.rankdata(strength)
    scores = []
    for phase in range(group):
        sel = index % group == phase
        if sel.sum() < 3 or (~sel).sum() < 3:
            scores.append(-np.inf)
            continue
        scores.append(float(stats.ttest_ind(ranks[sel], ranks[~sel], equal_var=False).statistic))
    best = int(np.argmax(scores))
    return scores[best], best


@pytest.mark.parametrize("group", [2, 3, 4])
@pytest.mark.parametrize("seed", range(4))
def test_grouping_evidence_is_a_welch_t_of_ranks(group: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    strength = rng.gamma(2.0, 1.0, 40)
    strength[seed % group :: group] *= 1.0 + seed  # seed 0: no accent at all
    index = np.sort(rng.choice(60, 40, replace=False))  # with gaps (rests)
    got = grouping_evidence(strength, index, group)
    want = _welch_reference(strength, index, group)
    assert got[0] == pytest.approx(want[0], rel=1e-9)
    assert got[1] == want[1]


@pytest.mark.parametrize("group", [2, 3, 4])
@pytest.mark.parametrize("seed", range(3))
def test_phase_evidence_is_each_phases_welch_t_of_ranks(group: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    strength = rng.gamma(2.0, 1.0, 40)
    strength[(seed + 1) % group :: group] *= 2.0
    index = np.sort(rng.choice(60, 40, replace=False))
    ranks = stats.rankdata(strength)
    got = phase_evidence(strength, index, group)
    assert got.shape == (group,)
    for phase in range(group):
        sel = index % group == phase
        want = stats.ttest_ind(ranks[sel], ranks[~sel], equal_var=False).statistic
        assert got[phase] == pytest.approx(want, rel=1e-9)
    # the best phase and its value are grouping_evidence's
    assert grouping_evidence(strength, index, group) == (got.max(), int(np.argmax(got)))


def test_phase_evidence_without_three_pulses_a_side_is_minus_infinity() -> None:
    assert np.all(phase_evidence(np.arange(8.0), np.arange(8), 1) == -np.inf)
    got = phase_evidence(np.arange(5.0), np.arange(5), 2)  # phase 1 has two pulses
    assert np.all(got == -np.inf)


@pytest.mark.parametrize(
    ("pattern", "group", "phase"),
    [([3, 1, 1, 1], 4, 0), ([1, 1, 3, 1], 4, 2), ([4, 1], 2, 0), ([1, 2], 2, 1), ([2, 1, 1], 3, 0)],
)
def test_grouping_evidence_finds_the_accented_phase(
    pattern: list[float], group: int, phase: int
) -> None:
    rng = np.random.default_rng(group)
    strength = np.tile(np.array(pattern, dtype=np.float64), 12) * rng.uniform(
        0.9, 1.1, 12 * len(pattern)
    )
    t, ph = grouping_evidence(strength, np.arange(strength.size), group)
    assert ph == phase
    assert t > 8.0


def test_grouping_evidence_degenerate_cases() -> None:
    assert grouping_evidence(np.array([5.0, 1.0, 5.0, 1.0]), np.arange(4), 1) == (0.0, 0)
    # fewer than three pulses on a side: no evidence
    assert grouping_evidence(np.array([5.0, 1.0, 5.0, 1.0]), np.arange(4), 2) == (0.0, 0)


@pytest.mark.parametrize("group", [2, 3, 4])
def test_equal_strengths_give_no_evidence(group: int) -> None:
    t, _ = grouping_evidence(np.ones(48), np.arange(48), group)
    assert t == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_ranks_average_ties(seed: int) -> None:
    """Tied values share their average rank, like scipy's rankdata (method='average')."""
    x = np.random.default_rng(seed).integers(0, 5, 30).astype(np.float64)  # many ties
    np.testing.assert_array_equal(_ranks(x), stats.rankdata(x))
    np.testing.assert_array_equal(_ranks(np.array([2.0, 1.0, 2.0, 2.0])), [3.0, 1.0, 3.0, 3.0])
    assert _ranks(np.zeros(0)).shape == (0,)


def test_grouping_evidence_with_ties_is_a_welch_t_of_average_ranks() -> None:
    """Silent tatums (strength 0) tie; the evidence is still the reference t statistic."""
    rng = np.random.default_rng(7)
    strength = np.round(rng.gamma(2.0, 1.0, 40))  # integers: many ties
    strength[::4] += 3.0
    strength[rng.choice(40, 8, replace=False)] = 0.0
    index = np.arange(40)
    got = grouping_evidence(strength, index, 4)
    want = _welch_reference(strength, index, 4)
    assert got[0] == pytest.approx(want[0], rel=1e-9)
    assert got[1] == want[1]


# --- choose grouping -----------------------------------------------------------------------


def _tatums(
    n: int, tatum_bpm: float, accents: list[float], *, fps: float = 100.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    period = 60.0 * fps / tatum_bpm
    frames = np.round(10 + np.arange(n) * period).astype(np.int64)
    odf = np.zeros(int(frames[-1]) + 20)
    odf[frames] = np.resize(np.array(accents, dtype=np.float64), n)
    odf[frames] *= np.random.default_rng(n).uniform(0.95, 1.05, n)  # no exact ties
    return odf, frames, np.full(odf.size, period)


def _choose(
    odf: np.ndarray,
    frames: np.ndarray,
    period: np.ndarray,
    bpm: float,
    *,
    weight: float = TP.accent_weight,
    switch_cost: float | None = None,
) -> tuple[np.ndarray, int]:
    tempo = replace(TP, accent_weight=weight, phase_switch_cost=switch_cost)
    return group_tatums(
        odf, frames, period, bpm, tempo, notes=None, phase_switches=switch_cost is not None
    )


@pytest.mark.parametrize(
    ("tatum_bpm", "accents", "group"),
    [
        (240.0, [1.0], 2),  # even eighths: the prior alone prefers 120 BPM
        (120.0, [1.0], 1),  # quarter notes at the prior's centre
        (480.0, [1.0], 4),  # sixteenths
        (60.0, [1.0], 1),  # slow: 30 BPM is allowed but far from the prior
        (240.0, [3.0, 1.0], 2),
    ],
)
def test_choose_grouping_prior_and_accent(
    tatum_bpm: float, accents: list[float], group: int
) -> None:
    odf, frames, period = _tatums(48, tatum_bpm, accents)
    beats, g = _choose(odf, frames, period, tatum_bpm)
    assert g == group
    # every g-th tracked tatum is a beat
    assert np.all(np.isin(beats, frames))
    assert np.all(np.diff(np.searchsorted(frames, beats)) == g)
    assert beats.size == pytest.approx(frames.size / g, abs=1)


@pytest.mark.parametrize("phase", [0, 1])
def test_beats_are_the_accented_tatums(phase: int) -> None:
    accents = [1.0, 1.0]
    accents[phase] = 3.0
    odf, frames, period = _tatums(48, 240.0, accents)
    beats, g = _choose(odf, frames, period, 240.0)
    assert g == 2
    np.testing.assert_array_equal(beats, frames[phase::2])


def test_rests_keep_the_accent_phase() -> None:
    """Tatums missing from the tracked sequence (rests) do not shift the grouping phase."""
    odf, frames, period = _tatums(64, 240.0, [1.0, 3.0])
    kept = np.delete(np.arange(64), [6, 7, 8, 21, 40])  # a rest of three tatums, then singles
    beats, g = _choose(odf, frames[kept], period, 240.0)
    assert g == 2
    np.testing.assert_array_equal(beats, np.intersect1d(frames[1::2], frames[kept]))


def test_a_heavy_accent_weight_finds_a_waltz() -> None:
    odf, frames, period = _tatums(48, 180.0, [4.0, 1.0, 1.0])
    beats, g = _choose(odf, frames, period, 180.0, weight=1.0)
    assert g == 3
    np.testing.assert_array_equal(beats, frames[0::3])
    # without accent weight the prior alone decides: 90 BPM is nearest to 120
    assert _choose(odf, frames, period, 180.0, weight=0.0)[1] == 2


def _path_value(
    score: np.ndarray, index: np.ndarray, group: int, cost: float, home: int, path: tuple[int, ...]
) -> float:
    """The objective of ``_phase_path_kernel`` for one phase path, written out."""
    value = sum(score[k] for k in range(len(path)) if index[k] % group == path[k])
    changes = sum(a != b for a, b in zip((home, *path), (*path, home), strict=True))
    return float(value - cost * changes)


@pytest.mark.nojit
@pytest.mark.parametrize("seed", range(12))
def test_phase_path_is_the_best_path(seed: int) -> None:
    """Against every phase path of a short sequence (skipped indices included)."""
    rng = np.random.default_rng(seed)
    group = int(rng.integers(2, 4))
    n = int(rng.integers(1, 8))
    score = rng.standard_normal(n)
    index = np.cumsum(rng.integers(1, 3, n)) - 1
    cost = float(rng.uniform(0.0, 1.5))
    home = int(rng.integers(0, group))
    got = _phase_path_kernel(score, index, group, cost, home)
    best = max(
        _path_value(score, index, group, cost, home, path)
        for path in itertools.product(range(group), repeat=n)
    )
    assert _path_value(score, index, group, cost, home, tuple(got)) == pytest.approx(best)


def test_phase_path_keeps_home_on_ties() -> None:
    assert _phase_path_kernel(np.zeros(6), np.arange(6), 2, 0.5, 1).tolist() == [1] * 6
    assert _phase_path_kernel(np.zeros(0), np.zeros(0, np.int64), 2, 0.5, 0).size == 0


@pytest.mark.parametrize("inserted_at", [20, 40])
def test_an_inserted_tatum_does_not_put_the_beats_on_the_off_beats(inserted_at: int) -> None:
    """A tracker that inserts one tatum shifts every later tatum's index by one: with a
    switch cost the beats follow the accents past it; with one phase, those after it (or
    before it) are the off-beats."""
    odf, frames, period = _tatums(64, 240.0, [3.0, 1.0])
    extra = (frames[inserted_at] + frames[inserted_at + 1]) // 2
    odf[extra] = 1.0
    tracked = np.insert(frames, inserted_at + 1, extra)  # a tatum between two real ones
    beats, g = _choose(odf, tracked, period, 240.0, switch_cost=TP.phase_switch_cost)
    assert g == 2
    np.testing.assert_array_equal(beats, frames[0::2])
    one_phase, _ = _choose(odf, tracked, period, 240.0)
    assert np.intersect1d(one_phase, frames[0::2]).size < 0.75 * frames[0::2].size


def test_a_short_contrary_stretch_keeps_the_phase() -> None:
    """Two beats whose off-beats are louder, at the end of a take, are not worth a change."""
    odf, frames, period = _tatums(64, 240.0, [3.0, 1.0])
    odf[frames[-4:]] = np.where(np.arange(4) % 2, 3.5, 1.0)
    beats, _ = _choose(odf, frames, period, 240.0, switch_cost=TP.phase_switch_cost)
    np.testing.assert_array_equal(beats, frames[0::2])


# --- the backbeat --------------------------------------------------------------------------


def _kit(n: int, beat_phase: int, *, loud_off_beats: bool = True) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, TatumNotes
]:
    """Eighths at 220 BPM (a 110 BPM beat): kick and snare alternate on the beats of
    ``beat_phase``, louder toms (one sound) on the other tatums, as in a syncopated kit."""
    odf, frames, period = _tatums(n, 220.0, [1.0, 2.0] if beat_phase == 0 else [2.0, 1.0])
    if not loud_off_beats:
        odf, frames, period = _tatums(n, 220.0, [1.0, 1.0])
    kick, snare, tom = (np.zeros(N_PROFILE_BANDS) for _ in range(3))
    kick[1], snare[14], tom[6] = 1.0, 1.0, 1.0
    k = np.arange(n)
    on_beat = k % 2 == beat_phase
    rows = np.where(on_beat[:, None], np.where(((k // 2) % 2 == 0)[:, None], kick, snare), tom)
    notes = TatumNotes(contrast_db=np.zeros(n), profile=rows)
    return odf, frames, period, notes


@pytest.mark.parametrize("beat_phase", [0, 1])
def test_the_beats_are_where_kick_and_snare_alternate(beat_phase: int) -> None:
    """The toms between the beats are louder (the flux accents them), but the beats are where
    kick and snare take turns; without the backbeat rule the flux puts the beats on the toms."""
    odf, frames, period, notes = _kit(64, beat_phase)
    tempo = replace(TP, level_threshold=1e9)  # the notes' levels say nothing here
    beats, g = group_tatums(odf, frames, period, 220.0, tempo, notes=notes, phase_switches=True)
    assert g == 2
    np.testing.assert_array_equal(beats, frames[beat_phase::2])
    off = replace(tempo, backbeat_alternation=None)
    beats_off, _ = group_tatums(odf, frames, period, 220.0, off, notes=notes, phase_switches=True)
    np.testing.assert_array_equal(beats_off, frames[1 - beat_phase::2])


def test_backbeat_phase_needs_unlike_sounds_and_a_lead() -> None:
    _, _, _, notes = _kit(64, 1)
    index = np.arange(64)
    assert backbeat_phase(notes, index, 2, TP) == 1
    assert backbeat_phase(notes, index, 1, TP) is None  # no phases to choose from
    assert backbeat_phase(notes, index, 2, replace(TP, backbeat_alternation=None)) is None
    # both phases alternating alike: no lead
    both = TatumNotes(contrast_db=np.zeros(64),
                      profile=np.where((np.arange(64) // 2 % 2 == 0)[:, None],
                                       notes.profile[1], notes.profile[3]))
    assert backbeat_phase(both, index, 2, TP) is None
    # sounds that alternate but share much (a cosine of 0.71) are no kick and snare
    a, b = np.zeros(N_PROFILE_BANDS), np.zeros(N_PROFILE_BANDS)
    a[1], b[1], b[14] = 1.0, 1.0, 1.0
    even_beats = (index % 2 == 0) & (index // 2 % 2 == 0)
    similar = TatumNotes(contrast_db=np.zeros(64), profile=np.where(even_beats[:, None], a, b))
    alt = similar.alternation(index, 2)
    assert alt[0] == pytest.approx(1 - 1 / np.sqrt(2)) and alt[1] == pytest.approx(0.0)
    assert backbeat_phase(similar, index, 2, TP) is None
    assert backbeat_phase(similar, index, 2, replace(TP, backbeat_alternation=0.2)) == 0


def _kick_snare_notes(n: int, *, hats: bool) -> TatumNotes:
    """Kick and snare taking turns on every tatum, or with hi-hats between them."""
    kick, snare, hat = (np.zeros(N_PROFILE_BANDS) for _ in range(3))
    kick[1], snare[14], hat[22] = 1.0, 1.0, 1.0
    k = np.arange(n)
    if hats:
        rows = np.where((k % 2 == 1)[:, None], hat, np.where((k % 4 == 0)[:, None], kick, snare))
    else:
        rows = np.where((k % 2 == 0)[:, None], kick, snare)
    return TatumNotes(contrast_db=np.zeros(n), profile=rows)


def test_kick_snare_tatums_are_strict_turns() -> None:
    index = np.arange(64)
    assert kick_snare_tatums(_kick_snare_notes(64, hats=False), index, TP)
    assert not kick_snare_tatums(_kick_snare_notes(64, hats=True), index, TP)
    one_sound = TatumNotes(contrast_db=np.zeros(64),
                           profile=np.full((64, N_PROFILE_BANDS), 1.0 / N_PROFILE_BANDS))
    assert not kick_snare_tatums(one_sound, index, TP)
    off = replace(TP, backbeat_alternation=None)
    assert not kick_snare_tatums(_kick_snare_notes(64, hats=False), index, off)


def test_kick_and_snare_taking_turns_are_the_beats_not_pairs_of_them() -> None:
    """176 BPM of kick and snare: the prior alone (and any flux accent) would group them in
    pairs at 88 BPM; kick and snare taking turns mark the beat. With hi-hats between them,
    the same tatums are eighths and the pairs remain."""
    odf, frames, period = _tatums(64, 176.0, [1.0])
    tempo = replace(TP, level_threshold=1e9)
    turns = _kick_snare_notes(64, hats=False)
    beats, g = group_tatums(odf, frames, period, 176.0, tempo, notes=turns, phase_switches=True)
    assert g == 1
    np.testing.assert_array_equal(beats, frames)
    off = replace(tempo, backbeat_alternation=None)
    assert group_tatums(odf, frames, period, 176.0, off, notes=turns, phase_switches=True)[1] == 2
    hats = _kick_snare_notes(64, hats=True)
    assert group_tatums(odf, frames, period, 176.0, tempo, notes=hats, phase_switches=True)[1] == 2
