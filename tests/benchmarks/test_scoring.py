"""Known-answer checks of the benchmark's scoring rules (fast; no peers, no audio)."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from benchmarks.scoring import (
    expected_verdict,
    match_nearest,
    mean_over_clips,
    note_precision,
    score_beats,
    score_onsets,
    score_practice,
    score_tempo,
    snap_to_grid,
    true_notes,
)

REF = np.arange(0.5, 20.0, 0.5)  # 120 BPM from 0.5 s


def test_onsets_perfect() -> None:
    s = score_onsets(REF, REF)
    assert (s.f_measure, s.precision, s.recall) == (1.0, 1.0, 1.0)
    assert s.n_matched == len(REF)
    assert s.err_ms == pytest.approx(0.0)
    assert s.centered_err_ms == pytest.approx(0.0)


def test_onsets_constant_shift_is_removed_by_centering() -> None:
    s = score_onsets(REF, REF + 0.010)
    assert s.f_measure == 1.0
    assert s.err_ms == pytest.approx(10.0)
    assert s.centered_err_ms == pytest.approx(0.0, abs=1e-9)


def test_onsets_known_errors() -> None:
    ref = np.array([1.0, 2.0, 3.0])
    s = score_onsets(ref, ref + np.array([0.010, 0.020, -0.030]))
    assert s.err_ms == pytest.approx(20.0)
    # median signed error 10 ms removed: |0|, |10|, |-40| -> 16.67
    assert s.centered_err_ms == pytest.approx(50.0 / 3.0)


def test_onsets_outside_window_are_misses() -> None:
    s = score_onsets([1.0], [1.051])
    assert s.f_measure == 0.0
    assert s.err_ms is None
    assert s.centered_err_ms is None


def test_onsets_f_measure_equals_mir_eval() -> None:
    rng = np.random.default_rng(0)
    kept = REF[rng.random(len(REF)) < 0.8]
    est = np.sort(kept + rng.normal(0.0, 0.03, len(kept)))
    assert score_onsets(REF, est).f_measure == pytest.approx(
        mir_eval.onset.f_measure(REF, est, window=0.05)[0]
    )


def test_onsets_empty_estimate() -> None:
    s = score_onsets(REF, [])
    assert s.f_measure == 0.0
    assert s.n_matched == 0


def test_beats_perfect() -> None:
    s = score_beats(REF, REF)
    assert (s.f_measure, s.cmlt, s.amlt) == (1.0, 1.0, 1.0)


def test_beats_double_tempo_is_allowed_metrical_level_only() -> None:
    est = np.arange(0.5, 20.0, 0.25)
    s = score_beats(REF, est)
    assert s.f_measure == pytest.approx(2 * 0.5 * 1.0 / 1.5, abs=0.01)
    assert s.cmlt == 0.0
    assert s.amlt == pytest.approx(1.0, abs=0.02)  # mir_eval does not credit the first beat


def test_beats_whole_clip_by_default_trim_on_request() -> None:
    est = REF[REF >= 5.0]  # the first 4.5 s of beats missed
    whole = score_beats(REF, est)
    trimmed = score_beats(REF, est, trim=True)
    assert whole.f_measure < 1.0
    assert trimmed.f_measure == 1.0
    assert whole.f_measure == pytest.approx(mir_eval.beat.f_measure(REF, est, 0.07))


@pytest.mark.parametrize(
    ("est", "acc1", "acc2"),
    [
        (100.0, True, True),
        (103.9, True, True),
        (104.1, False, False),
        (96.1, True, True),
        (200.0, False, True),
        (300.0, False, True),
        (50.0, False, True),
        (33.4, False, True),
        (150.0, False, False),
        (None, False, False),
    ],
)
def test_tempo_accuracy(est: float | None, acc1: bool, acc2: bool) -> None:
    s = score_tempo(est, 100.0)
    assert (s.acc1, s.acc2) == (acc1, acc2)


def test_true_notes_keep_a_quarter_subdivision() -> None:
    # 120 BPM, 2 per beat: spacing 250 ms, limit 62.5 ms
    played = [[0.5, 0.0], [0.76, 10.0], [1.06, 62.5], [1.3, -62.6], [1.5, 100.0]]
    kept = true_notes(played, target_bpm=120.0, subdivision=2)
    assert kept[:, 0].tolist() == [0.5, 0.76, 1.06]


def test_match_nearest_takes_the_nearest_pair_first() -> None:
    # a maximum matching would pair both; nearest-first pairs ref 1 with est 0 and stops
    assert match_nearest([0.0, 0.06], [0.04, 0.09], 0.05) == [(1, 0)]
    assert match_nearest([0.0, 0.01], [0.005], 0.05) == [(0, 0)]
    assert match_nearest([1.0, 2.0], [2.01, 0.99, 5.0], 0.05) == [(0, 1), (1, 0)]
    assert match_nearest([], [1.0], 0.05) == []


def test_practice_constant_offset_and_a_miss() -> None:
    truth = np.array([[0.5, 2.0], [1.0, -3.0], [1.5, 4.0], [2.0, 0.0]])
    reported = truth[:3] + np.array([0.005, 5.0])  # 5 ms late everywhere, last note missed
    s = score_practice(truth, reported)
    assert (s.n_true, s.n_found) == (4, 3)
    assert s.recall == pytest.approx(0.75)
    assert s.dev_err_ms == pytest.approx(5.0)
    assert s.centered_dev_err_ms == pytest.approx(0.0)


def test_practice_no_true_notes_is_undefined() -> None:
    s = score_practice(np.empty((0, 2)), [[1.0, 0.0]])
    assert s.recall is None
    assert s.dev_err_ms is None


def test_snap_to_grid() -> None:
    notes = snap_to_grid([1.01, 1.24, 0.49], target_bpm=120.0, grid_start_s=0.5, subdivision=2)
    assert notes[:, 1] == pytest.approx([10.0, -10.0, -10.0])
    # snapped peer onsets of exact played notes score perfectly
    truth = np.array([[0.51, 10.0], [0.74, -10.0]])
    snapped = snap_to_grid(truth[:, 0], target_bpm=120.0, grid_start_s=0.5, subdivision=2)
    assert score_practice(truth, snapped).dev_err_ms == pytest.approx(0.0, abs=1e-9)


def test_expected_verdict() -> None:
    assert expected_verdict("steady") == "steady"
    assert expected_verdict("rush") == "rushing"
    assert expected_verdict("drag") == "dragging"
    assert expected_verdict("rubato") is None
    assert expected_verdict("step") is None


def test_mean_over_clips_skips_undefined() -> None:
    assert mean_over_clips([1.0, None, 0.0, True]) == pytest.approx(2.0 / 3.0)
    assert mean_over_clips([None]) is None


def test_note_precision_counts_what_is_reported_but_was_not_played() -> None:
    """Reported notes matched one to one to every played note within 50 ms: a click kept
    as a note (2.5 s) and a second onset on one note (1.02 s) count against it; a played
    note outside the true notes (played far off its line) counts for it."""
    played_s = [0.5, 1.0, 1.5, 2.0]
    truth = np.array([[0.5, 2.0], [1.0, -3.0], [1.5, 4.0]])  # 2.0 s: not a true note
    reported = np.array([[0.5, 2.0], [1.0, -3.0], [1.02, 17.0], [2.0, 0.0], [2.5, 0.0]])
    s = score_practice(truth, reported, played_s=played_s)
    assert s.precision == pytest.approx(3 / 5)
    assert s.recall == pytest.approx(2 / 3)
    assert note_precision(played_s, []) is None
    assert score_practice(truth, reported).precision is None


def test_accuracy_error_of_a_report() -> None:
    """Four notes played at 120 BPM eighths (250 ms lines): -10, 20, 40 ms and one 260 ms
    late, on the next line +10 ms: three of four within 25 ms of their nearest line, 75 %.
    A report 30 ms late everywhere (an attack constant, removed) that also keeps a click
    (perfectly on a line) says 4 of 5, 80 %: 5 points off."""
    from benchmarks.practice_sets import accuracy_error

    played = np.array([[1.0, -10.0], [1.25, 20.0], [1.5, 40.0], [1.75, 260.0]])
    reported = np.array([[1.03, 20.0], [1.28, 50.0], [1.53, 70.0], [2.04, 40.0], [2.25, 30.0]])
    assert accuracy_error(played, reported, 250.0) == pytest.approx(5.0)
    assert accuracy_error(played, reported[:0], 250.0) == pytest.approx(75.0)
