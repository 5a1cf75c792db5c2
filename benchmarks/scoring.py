"""Scoring rules of ``shared/eval/README.md``, one function per metric.

All times are seconds, all deviations and errors milliseconds. Per-clip functions return
``None`` for a metric that is undefined on that clip (no matched onsets, no true notes, ...);
:func:`mean_over_clips` averages the defined values, so subset figures are means over clips
(each clip weighs the same), as mir_eval result tables usually are.

- Onsets: F-measure at +-50 ms (``mir_eval.onset.f_measure``); timing error = mean |est - ref|
  over the onsets mir_eval matched, as is and "centered" (the clip's median signed error
  removed first, a constant that latency/attack calibration would remove).
- Beats: F-measure at +-70 ms, CMLt and AMLt (``mir_eval.beat``) on the whole clip: the
  arrays are NOT passed through ``mir_eval.beat.trim_beats`` (which would drop the first 5 s),
  because the README says "whole clips". (Its published peer beat figures are, however,
  reproduced exactly only with the trim; ``score_beats(trim=True)`` gives them.)
- Tempo: Acc1 = within 4 % of the reference; Acc2 = within 4 % of the reference times 1, 2, 3,
  1/2 or 1/3. A missing estimate counts as wrong. Clips without a reference tempo (``null``,
  e.g. ``mode: step`` takes) are left out by the caller.
- Practice report: the true notes of a take are its ``played_notes`` within a quarter of a
  subdivision of their grid line; reported notes are matched one-to-one to true notes within
  50 ms, nearest pair first; recall = matched / true; deviation error = mean |reported - true|
  deviation over matched notes, as is and centered (the take's median of reported - true
  removed first).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import mir_eval
import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ACC_TOLERANCE",
    "BEAT_WINDOW_S",
    "NOTE_WINDOW_S",
    "ONSET_WINDOW_S",
    "BeatScore",
    "OnsetScore",
    "PracticeScore",
    "TempoScore",
    "expected_verdict",
    "match_nearest",
    "mean_over_clips",
    "note_precision",
    "score_beats",
    "score_onsets",
    "score_practice",
    "score_tempo",
    "snap_to_grid",
    "true_notes",
]

ONSET_WINDOW_S = 0.05
BEAT_WINDOW_S = 0.07
NOTE_WINDOW_S = 0.05
ACC_TOLERANCE = 0.04
ACC2_FACTORS = (1.0, 2.0, 3.0, 1.0 / 2.0, 1.0 / 3.0)
TRUE_NOTE_FRACTION = 0.25  # of a subdivision spacing

Verdict = Literal["steady", "rushing", "dragging"]
_MODE_TO_VERDICT: dict[str, Verdict] = {"steady": "steady", "rush": "rushing", "drag": "dragging"}


@dataclass(frozen=True, slots=True)
class OnsetScore:
    """Onset scores of one clip; the errors are None when no onset was matched."""

    f_measure: float
    precision: float
    recall: float
    n_matched: int
    err_ms: float | None
    centered_err_ms: float | None


@dataclass(frozen=True, slots=True)
class BeatScore:
    """Beat scores of one clip (whole clip, untrimmed)."""

    f_measure: float
    cmlt: float
    amlt: float


@dataclass(frozen=True, slots=True)
class TempoScore:
    """Tempo accuracy of one clip."""

    acc1: bool
    acc2: bool


@dataclass(frozen=True, slots=True)
class PracticeScore:
    """Practice-report scores of one take; errors are None when no true note was found."""

    n_true: int
    n_found: int
    recall: float | None
    dev_err_ms: float | None
    centered_dev_err_ms: float | None
    precision: float | None = None


def _events(times: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(times, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"event times must be finite, got {arr[~np.isfinite(arr)][:3]}")
    return np.sort(arr)


def _centered_mean_abs(signed: NDArray[np.float64]) -> float:
    return float(np.mean(np.abs(signed - np.median(signed))))


def score_onsets(reference_s: ArrayLike, estimated_s: ArrayLike) -> OnsetScore:
    """Score estimated onsets against reference onsets (both in seconds).

    Returns the mir_eval F-measure, precision and recall at +-50 ms, and the mean absolute
    and centered mean absolute timing error (ms) of the pairs mir_eval matched.
    """
    ref = _events(reference_s)
    est = _events(estimated_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # mir_eval warns on empty arrays
        f, p, r = mir_eval.onset.f_measure(ref, est, window=ONSET_WINDOW_S)
    matching = mir_eval.util.match_events(ref, est, ONSET_WINDOW_S) if len(ref) and len(est) else []
    if not matching:
        return OnsetScore(float(f), float(p), float(r), 0, None, None)
    i_ref, i_est = (np.asarray(ix, dtype=np.intp) for ix in zip(*matching, strict=True))
    signed_ms = (est[i_est] - ref[i_ref]) * 1000.0
    return OnsetScore(
        f_measure=float(f),
        precision=float(p),
        recall=float(r),
        n_matched=len(matching),
        err_ms=float(np.mean(np.abs(signed_ms))),
        centered_err_ms=_centered_mean_abs(signed_ms),
    )


def score_beats(reference_s: ArrayLike, estimated_s: ArrayLike, *, trim: bool = False) -> BeatScore:
    """Score estimated beats: F-measure at +-70 ms, CMLt and AMLt.

    By default the whole clip is scored (``mir_eval.beat.trim_beats`` is not called).
    ``trim=True`` applies mir_eval's customary trim (beats before 5 s dropped from both
    arrays), which is what reproduces the published peer figures of the eval README.
    """
    ref = _events(reference_s)
    est = _events(estimated_s)
    if trim:
        ref = mir_eval.beat.trim_beats(ref)
        est = mir_eval.beat.trim_beats(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        f = mir_eval.beat.f_measure(ref, est, f_measure_threshold=BEAT_WINDOW_S)
        _cmlc, cmlt, _amlc, amlt = mir_eval.beat.continuity(ref, est)
    return BeatScore(float(f), float(cmlt), float(amlt))


def score_tempo(estimated_bpm: float | None, reference_bpm: float) -> TempoScore:
    """Acc1 (within 4 %) and Acc2 (within 4 % of x1, x2, x3, x1/2, x1/3); None is wrong."""
    if reference_bpm <= 0:
        raise ValueError(f"reference_bpm must be positive, got {reference_bpm}")
    if estimated_bpm is None or not np.isfinite(estimated_bpm):
        return TempoScore(False, False)

    def within(factor: float) -> bool:
        target = factor * reference_bpm
        return abs(estimated_bpm - target) <= ACC_TOLERANCE * target

    return TempoScore(acc1=within(1.0), acc2=any(within(k) for k in ACC2_FACTORS))


def _check_grid(target_bpm: float, subdivision: int) -> None:
    if not target_bpm > 0:
        raise ValueError(f"target_bpm must be positive, got {target_bpm}")
    if subdivision < 1:
        raise ValueError(f"subdivision must be >= 1, got {subdivision}")


def true_notes(
    played_notes: Sequence[Sequence[float]], *, target_bpm: float, subdivision: int
) -> NDArray[np.float64]:
    """Return the true notes of a take, shape (n, 2) rows of (time_s, deviation_ms).

    True notes are the played notes within a quarter of a subdivision spacing of their grid
    line: ``|deviation_ms| <= 0.25 * 60000 / (target_bpm * subdivision)``.
    """
    _check_grid(target_bpm, subdivision)
    notes = np.asarray(played_notes, dtype=np.float64).reshape(-1, 2)
    limit_ms = TRUE_NOTE_FRACTION * 60000.0 / (target_bpm * subdivision)
    return notes[np.abs(notes[:, 1]) <= limit_ms]


def match_nearest(
    reference_s: ArrayLike, estimated_s: ArrayLike, window_s: float = NOTE_WINDOW_S
) -> list[tuple[int, int]]:
    """Match events one-to-one within ``window_s``, the nearest remaining pair first.

    Returns ``(i_ref, i_est)`` index pairs sorted by ``i_ref``. Ties in distance go to the
    lower reference index, then the lower estimate index (deterministic).
    """
    ref = np.asarray(reference_s, dtype=np.float64).reshape(-1)
    est = np.asarray(estimated_s, dtype=np.float64).reshape(-1)
    if len(ref) == 0 or len(est) == 0:
        return []
    dist = np.abs(ref[:, None] - est[None, :])
    i_ref, i_est = np.nonzero(dist <= window_s)
    order = np.lexsort((i_est, i_ref, dist[i_ref, i_est]))
    used_ref: set[int] = set()
    used_est: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order:
        a, b = int(i_ref[k]), int(i_est[k])
        if a in used_ref or b in used_est:
            continue
        used_ref.add(a)
        used_est.add(b)
        pairs.append((a, b))
    return sorted(pairs)


def note_precision(played_s: ArrayLike, reported_s: ArrayLike) -> float | None:
    """Share of the reported notes that are played notes: matched one to one
    (:func:`match_nearest`, ``NOTE_WINDOW_S``) to the times of every played note, true or
    not. A bleeding metronome's click kept as a note, or a spurious onset, counts against
    it. None when nothing was reported."""
    rep = np.asarray(reported_s, dtype=np.float64).reshape(-1)
    if rep.size == 0:
        return None
    played = np.asarray(played_s, dtype=np.float64).reshape(-1)
    return len(match_nearest(played, rep, NOTE_WINDOW_S)) / rep.size


def score_practice(
    truth: ArrayLike, reported: ArrayLike, *, played_s: ArrayLike | None = None
) -> PracticeScore:
    """Score reported notes against true notes, both rows of (time_s, deviation_ms).

    ``truth`` is the output of :func:`true_notes`; ``reported`` is what the system reported
    (the engine's ``TimingReport.notes`` or a peer's onsets through :func:`snap_to_grid`);
    ``played_s``, the times of every played note, gives the :func:`note_precision`.
    """
    t = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
    r = np.asarray(reported, dtype=np.float64).reshape(-1, 2)
    precision = None if played_s is None else note_precision(played_s, r[:, 0])
    if len(t) == 0:
        return PracticeScore(0, 0, None, None, None, precision)
    pairs = match_nearest(t[:, 0], r[:, 0], NOTE_WINDOW_S)
    if not pairs:
        return PracticeScore(len(t), 0, 0.0, None, None, precision)
    i_true, i_rep = (np.asarray(ix, dtype=np.intp) for ix in zip(*pairs, strict=True))
    diff_ms = r[i_rep, 1] - t[i_true, 1]
    return PracticeScore(
        n_true=len(t),
        n_found=len(pairs),
        recall=len(pairs) / len(t),
        dev_err_ms=float(np.mean(np.abs(diff_ms))),
        centered_dev_err_ms=_centered_mean_abs(diff_ms),
        precision=precision,
    )


def snap_to_grid(
    onsets_s: ArrayLike, *, target_bpm: float, grid_start_s: float, subdivision: int
) -> NDArray[np.float64]:
    """Turn onsets into practice notes: rows of (time_s, deviation_ms from the nearest line).

    The grid is ``grid_start_s + k * 60 / (target_bpm * subdivision)`` for any integer k;
    deviation is signed, positive = late. This is the README's baseline for the peers.
    """
    _check_grid(target_bpm, subdivision)
    t = np.asarray(onsets_s, dtype=np.float64).reshape(-1)
    spacing_s = 60.0 / (target_bpm * subdivision)
    nearest = grid_start_s + np.round((t - grid_start_s) / spacing_s) * spacing_s
    return np.column_stack([t, (t - nearest) * 1000.0])


def expected_verdict(mode: str) -> Verdict | None:
    """Map a take's ``mode`` to the verdict it should get; None for uncounted modes."""
    return _MODE_TO_VERDICT.get(mode)


def mean_over_clips(values: Iterable[float | bool | None]) -> float | None:
    """Mean of the defined per-clip values (None skipped); None when there are none."""
    defined = [float(v) for v in values if v is not None]
    return float(np.mean(defined)) if defined else None
