"""Turn raw runs into per-clip scores, per-subset summaries, speed figures and targets.

Subset figures are means over clips of the per-clip metric (each clip weighs the same;
clips where a metric is undefined are left out of that metric: no beat annotations, no onset
annotations, ``tempo_bpm: null``, no matched onsets). Verdicts are the share of steady /
rush / drag takes whose verdict is right. A run that crashed scores zero (no beats, no
onsets, no tempo, no notes) and is excluded from the speed figure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from benchmarks.datasets import Clip
from benchmarks.harness import ClipRun
from benchmarks.peers import PEERS
from benchmarks.scoring import (
    BeatScore,
    OnsetScore,
    PracticeScore,
    TempoScore,
    expected_verdict,
    mean_over_clips,
    score_beats,
    score_onsets,
    score_practice,
    score_tempo,
    snap_to_grid,
    true_notes,
)
from benchmarks.systems import ENGINE

__all__ = [
    "ClipScore",
    "Speed",
    "Summary",
    "Target",
    "score_clip",
    "speed_of",
    "summarize",
    "targets",
]


@dataclass(frozen=True, slots=True)
class ClipScore:
    """Every metric of one system on one clip (None = not defined on this clip)."""

    system: str
    set_name: str
    clip: str
    beat: BeatScore | None
    onset: OnsetScore | None
    tempo: TempoScore | None
    tempo_est_bpm: float | None
    tempo_ref_bpm: float | None
    practice: PracticeScore | None
    verdict: str | None
    verdict_expected: str | None
    subdivision: int | None
    subdivision_true: int | None
    error: str | None

    @property
    def verdict_ok(self) -> bool | None:
        if self.verdict_expected is None or self.verdict is None:
            return None
        return self.verdict == self.verdict_expected


@dataclass(frozen=True, slots=True)
class Speed:
    """Total audio over the median (of the timed runs) of the total analysis time."""

    audio_s: float
    time_s: float

    @property
    def x_realtime(self) -> float | None:
        return self.audio_s / self.time_s if self.time_s > 0 else None


@dataclass(frozen=True, slots=True)
class Summary:
    """Mean-over-clips figures of one system on one subset."""

    system: str
    set_name: str
    n_clips: int
    n_beat: int
    n_onset: int
    n_tempo: int
    n_practice: int
    n_verdict: int
    beat_f: float | None
    cmlt: float | None
    amlt: float | None
    onset_f: float | None
    onset_err_ms: float | None
    onset_centered_ms: float | None
    acc1: float | None
    acc2: float | None
    note_recall: float | None
    note_precision: float | None
    dev_err_ms: float | None
    dev_centered_ms: float | None
    verdict_pct: float | None
    speed: Speed | None
    n_errors: int


@dataclass(frozen=True, slots=True)
class Target:
    """One line of the issue's targets table."""

    subset: str
    metric: str
    value: float | None
    goal: str
    passed: bool


def score_clip(clip: Clip, run: ClipRun, *, trim_beats: bool = False) -> ClipScore:
    """Score one run against its clip's truth under the eval README's rules."""
    truth = clip.truth
    beat = onset = tempo = practice = None
    if truth.get("beats"):
        beat = score_beats(truth["beats"], run.beats_s, trim=trim_beats)
    if truth.get("onsets"):
        onset = score_onsets(truth["onsets"], run.onsets_s)
    ref_bpm = truth.get("tempo_bpm")
    if ref_bpm is not None:
        tempo = score_tempo(run.tempo_bpm, float(ref_bpm))
    verdict = want = subdivision = sub_true = None
    if clip.is_practice_take:
        target = float(truth["target_tempo_bpm"])
        sub_true = int(truth["subdivision"])
        truth_notes = true_notes(truth["played_notes"], target_bpm=target, subdivision=sub_true)
        if run.system == ENGINE:
            rep = run.practice or {}
            reported = np.asarray(rep.get("notes", []), dtype=np.float64).reshape(-1, 2)
            verdict = rep.get("verdict", "unknown")
            subdivision = rep.get("subdivision")
            want = expected_verdict(str(truth["mode"]))
        else:
            reported = snap_to_grid(
                run.onsets_s,
                target_bpm=target,
                grid_start_s=float(truth["grid_start_s"]),
                subdivision=sub_true,
            )
        played_s = [note[0] for note in truth["played_notes"]]
        practice = score_practice(truth_notes, reported, played_s=played_s)
    return ClipScore(
        system=run.system,
        set_name=clip.set_name,
        clip=clip.name,
        beat=beat,
        onset=onset,
        tempo=tempo,
        tempo_est_bpm=run.tempo_bpm,
        tempo_ref_bpm=None if ref_bpm is None else float(ref_bpm),
        practice=practice,
        verdict=verdict,
        verdict_expected=want,
        subdivision=subdivision,
        subdivision_true=sub_true,
        error=run.error,
    )


def speed_of(runs: Iterable[ClipRun]) -> Speed | None:
    """Total audio / median over runs r of the total time of run r (failed clips excluded)."""
    ok = [r for r in runs if r.error is None and r.times_s]
    if not ok:
        return None
    n = min(len(r.times_s) for r in ok)
    totals = [sum(r.times_s[i] for r in ok) for i in range(n)]
    return Speed(sum(r.audio_s for r in ok), float(np.median(totals)))


def summarize(system: str, set_name: str, scores: list[ClipScore], runs: list[ClipRun]) -> Summary:
    """Mean-over-clips figures of one system on one subset."""
    beats = [s.beat for s in scores if s.beat is not None]
    onsets = [s.onset for s in scores if s.onset is not None]
    tempos = [s.tempo for s in scores if s.tempo is not None]
    practice = [s.practice for s in scores if s.practice is not None]
    verdicts = [s.verdict_ok for s in scores if s.verdict_ok is not None]
    return Summary(
        system=system,
        set_name=set_name,
        n_clips=len(scores),
        n_beat=len(beats),
        n_onset=len(onsets),
        n_tempo=len(tempos),
        n_practice=len(practice),
        n_verdict=len(verdicts),
        beat_f=mean_over_clips(b.f_measure for b in beats),
        cmlt=mean_over_clips(b.cmlt for b in beats),
        amlt=mean_over_clips(b.amlt for b in beats),
        onset_f=mean_over_clips(o.f_measure for o in onsets),
        onset_err_ms=mean_over_clips(o.err_ms for o in onsets),
        onset_centered_ms=mean_over_clips(o.centered_err_ms for o in onsets),
        acc1=mean_over_clips(t.acc1 for t in tempos),
        acc2=mean_over_clips(t.acc2 for t in tempos),
        note_recall=mean_over_clips(p.recall for p in practice),
        note_precision=mean_over_clips(p.precision for p in practice),
        dev_err_ms=mean_over_clips(p.dev_err_ms for p in practice),
        dev_centered_ms=mean_over_clips(p.centered_dev_err_ms for p in practice),
        verdict_pct=None if not verdicts else 100.0 * float(np.mean(verdicts)),
        speed=speed_of(runs),
        n_errors=sum(s.error is not None for s in scores),
    )


SYNTH_GOALS: tuple[tuple[str, str, float, bool], ...] = (
    # attribute, label, threshold, higher is better
    ("beat_f", "beat F", 0.85, True),
    ("acc1", "tempo Acc1", 0.90, True),
    ("onset_f", "onset F", 0.92, True),
    ("onset_centered_ms", "centered onset err ms", 8.0, False),
    ("note_recall", "note recall", 0.95, True),
    ("dev_centered_ms", "centered deviation err ms", 4.0, False),
    ("verdict_pct", "verdicts right %", 90.0, True),
)
REAL_VS_PEERS: tuple[tuple[str, str], ...] = (
    ("beat_f", "beat F"),
    ("cmlt", "CMLt"),
    ("acc1", "tempo Acc1"),
    ("onset_f", "onset F"),
)
SPEED_FACTOR_VS_AUBIO = 3.0
CLI_WALL_LIMIT_S = 2.0


def targets(
    summaries: dict[tuple[str, str], Summary],
    *,
    overall_speed: dict[str, Speed | None],
    cli_wall_s: float | None,
) -> list[Target]:
    """Check the issue's targets; a figure that could not be measured fails."""
    out: list[Target] = []
    sets = sorted({k[1] for k in summaries})
    if "dev-real" in sets:
        for attr, label in REAL_VS_PEERS:
            eng = getattr(summaries.get((ENGINE, "dev-real")), attr, None)
            peer_vals = [getattr(summaries.get((p, "dev-real")), attr, None) for p in PEERS]
            best = max((v for v in peer_vals if v is not None), default=None)
            ok = eng is not None and best is not None and eng >= best
            goal = ">= best peer" + ("" if best is None else f" ({best:.3f})")
            out.append(Target("dev-real", label, eng, goal, ok))
    for set_name in (s for s in sets if s != "dev-real"):
        summ = summaries.get((ENGINE, set_name))
        for attr, label, threshold, higher in SYNTH_GOALS:
            val = getattr(summ, attr, None)
            ok = val is not None and (val >= threshold if higher else val <= threshold)
            goal = (">= " if higher else "<= ") + f"{threshold:g}"
            out.append(Target(set_name, label, val, goal, ok))
    eng_speed = overall_speed.get(ENGINE)
    aubio_speed = overall_speed.get("aubio")
    eng_x = None if eng_speed is None else eng_speed.x_realtime
    aub_x = None if aubio_speed is None else aubio_speed.x_realtime
    ok = eng_x is not None and aub_x is not None and eng_x >= SPEED_FACTOR_VS_AUBIO * aub_x
    goal = f">= {SPEED_FACTOR_VS_AUBIO:g}x aubio" + ("" if aub_x is None else f" ({aub_x:.0f})")
    out.append(Target("all sets", "x real-time, one core", eng_x, goal, ok))
    ok = cli_wall_s is not None and cli_wall_s <= CLI_WALL_LIMIT_S
    out.append(
        Target(
            "30 s file", "`mpt analyze --json` wall s", cli_wall_s, f"<= {CLI_WALL_LIMIT_S:g}", ok
        )
    )
    return out
