"""Render the results as Markdown (``benchmarks/RESULTS.md``) and as console tables.

The block between ``<!-- hand:start -->`` and ``<!-- hand:end -->`` of an existing results
file is written by hand and carried over unchanged when the file is rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.cli_timing import CliTiming
from benchmarks.evaluate import ClipScore, Speed, Summary, Target
from benchmarks.systems import ENGINE

__all__ = ["HAND_END", "HAND_START", "ReportInput", "hand_section", "other_sections", "render"]

HAND_START = "<!-- hand:start -->"
HAND_END = "<!-- hand:end -->"
HAND_PLACEHOLDER = (
    f"{HAND_START}\n<!-- Written by hand: which clips and metrics the engine still loses on,\n"
    "and why (see the per-clip appendix). The benchmark keeps this block when it rewrites\n"
    f"the file. -->\n{HAND_END}"
)
_HAND_RE = re.compile(re.escape(HAND_START) + r".*?" + re.escape(HAND_END), re.DOTALL)
# sections other tools write into the same file (the API load and floor benchmarks)
_SECTION_RE = re.compile(r"<!-- ([a-z][a-z0-9-]*):start -->.*?<!-- \1:end -->", re.DOTALL)
SET_TITLES = {
    "dev-real": "Real recordings (`dev/real`)",
    "dev-synth": "Dev synthetic takes (`dev/synth`, seed 7)",
    "fresh": "Fresh synthetic takes (`synth.py --n 40 --seed 123 --pool base`)",
}


@dataclass(frozen=True, slots=True)
class ReportInput:
    """Everything the report shows."""

    command: str
    date_utc: str
    machine: str
    versions: dict[str, str]
    timing_note: str
    sets: list[str]
    systems: list[str]
    summaries: dict[tuple[str, str], Summary]
    overall_speed: dict[str, Speed | None]
    scores: list[ClipScore]
    cli: CliTiming | None
    targets: list[Target]
    errors: list[str]
    runtime_note: str
    trim_beats: bool
    speed_warnings: list[str]


def hand_section(previous: str | None) -> str:
    """The hand-written block of a previous results file, or a placeholder."""
    if previous:
        found = _HAND_RE.search(previous)
        if found:
            return found.group(0)
    return HAND_PLACEHOLDER


def _f(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _label(system: str, versions: dict[str, str]) -> str:
    if system == ENGINE:
        return "**engine**"
    return f"{system} {versions.get(system, '')}".strip()


def _subset_tables(r: ReportInput) -> list[str]:
    lines: list[str] = []
    header = [
        "system",
        "beat F",
        "CMLt",
        "AMLt",
        "onset F",
        "onset err ms",
        "centered ms",
        "Acc1",
        "Acc2",
        "x real-time",
    ]
    for set_name in r.sets:
        summ = [r.summaries[(s, set_name)] for s in r.systems if (s, set_name) in r.summaries]
        if not summ:
            continue
        first = summ[0]
        audio_s = max((s.speed.audio_s for s in summ if s.speed), default=0.0)
        lines += [
            f"### {SET_TITLES.get(set_name, set_name)}",
            "",
            f"{first.n_clips} clips, {audio_s:.0f} s of audio; beats scored on {first.n_beat}, "
            f"onsets on {first.n_onset}, tempo on {first.n_tempo} clips.",
            "",
        ]
        rows = [
            [
                _label(s.system, r.versions),
                _f(s.beat_f),
                _f(s.cmlt),
                _f(s.amlt),
                _f(s.onset_f),
                _f(s.onset_err_ms, ".1f"),
                _f(s.onset_centered_ms, ".1f"),
                _f(s.acc1),
                _f(s.acc2),
                _f(None if s.speed is None else s.speed.x_realtime, ".0f"),
            ]
            for s in summ
        ]
        lines += [*_table(header, rows), ""]
    return lines


def _practice_tables(r: ReportInput) -> list[str]:
    lines: list[str] = []
    for set_name in r.sets:
        summ = [r.summaries[(s, set_name)] for s in r.systems if (s, set_name) in r.summaries]
        summ = [s for s in summ if s.n_practice]
        if not summ:
            continue
        n_verdict = max(s.n_verdict for s in summ)
        lines += [
            f"### {SET_TITLES.get(set_name, set_name)}",
            "",
            f"{summ[0].n_practice} takes; verdicts counted on {n_verdict} steady/rush/drag takes.",
            "",
        ]
        rows = [
            [
                _label(s.system, r.versions),
                _f(s.note_recall),
                _f(s.note_precision),
                _f(s.dev_err_ms, ".1f"),
                _f(s.dev_centered_ms, ".1f"),
                "n/a" if s.system != ENGINE else _f(s.verdict_pct, ".0f"),
            ]
            for s in summ
        ]
        header = [
            "system", "note recall", "note precision", "dev err ms", "centered ms",
            "verdicts right %",
        ]
        lines += [*_table(header, rows), ""]
    return lines


def _speed_table(r: ReportInput) -> list[str]:
    rows = []
    for system in r.systems:
        sp = r.overall_speed.get(system)
        rows.append(
            [
                _label(system, r.versions),
                _f(None if sp is None else sp.audio_s, ".0f"),
                _f(None if sp is None else sp.time_s, ".2f"),
                _f(None if sp is None else sp.x_realtime, ".0f"),
            ]
        )
    return _table(["system", "audio s", "analysis s (median run)", "x real-time"], rows)


def _cli_lines(cli: CliTiming | None) -> list[str]:
    if cli is None:
        return ["Not measured (the engine was not benchmarked in this run).", ""]
    if cli.error is not None:
        return [f"**FAILED**: `{cli.command}`: {cli.error}", ""]
    times = ", ".join(f"{t:.2f}" for t in cli.times_s)
    return [
        f"**{_f(cli.median_s, '.2f')} s** median wall time of {len(cli.times_s)} runs "
        f"({times} s; warm-up run {_f(cli.warmup_s, '.2f')} s), each on a new 30 s FLAC "
        f"(`{cli.source_clip}` looped, fresh noise), in a new process: `{cli.command}`.",
        "",
    ]


def _target_lines(r: ReportInput) -> list[str]:
    if not r.targets:
        return ["Not checked: the engine was not benchmarked in this run."]
    rows = []
    for t in r.targets:
        spec = ".2f" if "ms" in t.metric or "%" in t.metric or " s" in t.metric else ".3f"
        if "real-time" in t.metric:
            spec = ".0f"
        rows.append(
            [t.subset, t.metric, _f(t.value, spec), t.goal, "pass" if t.passed else "**FAIL**"]
        )
    return _table(["subset", "target", "engine", "goal", "result"], rows)


def _appendix(r: ReportInput) -> list[str]:
    lines: list[str] = []
    for set_name in r.sets:
        rows = []
        for s in (x for x in r.scores if x.system == ENGINE and x.set_name == set_name):
            acc = "–"
            if s.tempo is not None:
                acc = "yes" if s.tempo.acc1 else ("no (Acc2 yes)" if s.tempo.acc2 else "no")
            row = [
                f"`{s.clip}`",
                _f(None if s.beat is None else s.beat.f_measure),
                _f(None if s.onset is None else s.onset.f_measure),
                _f(s.tempo_est_bpm, ".1f"),
                _f(s.tempo_ref_bpm, ".1f"),
                acc,
            ]
            if set_name != "dev-real":
                p = s.practice
                row += [
                    _f(None if p is None else p.recall),
                    _f(None if p is None else p.centered_dev_err_ms, ".1f"),
                    f"{s.subdivision if s.subdivision is not None else '–'}/{s.subdivision_true}",
                    f"{s.verdict or '–'} / {s.verdict_expected or 'not counted'}",
                ]
            if s.error:
                row[0] += f" (ERROR: {s.error})"
            rows.append(row)
        if not rows:
            continue
        header = ["clip", "beat F", "onset F", "tempo est", "tempo truth", "Acc1"]
        if set_name != "dev-real":
            header += ["note recall", "centered dev ms", "subdiv eng/true", "verdict / expected"]
        lines += [f"### {set_name}", "", *_table(header, rows), ""]
    return lines


def other_sections(previous: str | None) -> list[str]:
    """The blocks of a previous results file that other benchmarks wrote
    (``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``, every NAME but ``hand``), in order."""
    if not previous:
        return []
    return [m.group(0) for m in _SECTION_RE.finditer(previous) if m.group(1) != "hand"]


def render(r: ReportInput, *, previous: str | None = None, appendix: bool = True) -> str:
    """The whole Markdown report; ``previous`` supplies the hand-written block and the other
    benchmarks' sections to keep (those go at the end, unchanged)."""
    versions = ", ".join(f"{k} {v}" for k, v in r.versions.items())
    beats_rule = (
        "beats trimmed before 5 s (`--trim-beats`, mir_eval's customary trim)"
        if r.trim_beats
        else "beats scored on whole clips (no `trim_beats`)"
    )
    lines = [
        "# Benchmark results: engine vs librosa, essentia, aubio",
        "",
        f"- Command: `{r.command}`",
        f"- Date: {r.date_utc}",
        f"- Machine: {r.machine}",
        f"- Versions: {versions}",
        f"- Timing: {r.timing_note}",
        f"- {r.runtime_note}",
        f"- Scoring: the rules of `shared/eval/README.md` (see `benchmarks/README.md`); figures "
        f"are means over clips; {beats_rule}; onset errors over mir_eval-matched onsets; "
        '"centered" = each clip\'s median signed error removed first.',
        "",
        "## Onsets, beats, tempo (not told the target)",
        "",
        *_subset_tables(r),
        "### Speed, all sets together",
        "",
        *_speed_table(r),
        "",
        *r.speed_warnings,
        "## Practice report (told target tempo and grid start; not the subdivision)",
        "",
        "The engine's `TimingReport.notes` (it infers the subdivision); the peers' onsets "
        "snapped to the target grid at the take's true subdivision (the README's baseline). "
        "Deviation errors are shown as they are and centered.",
        "",
        *_practice_tables(r),
        "## `mpt analyze` on a 30 s file",
        "",
        *_cli_lines(r.cli),
        "## Targets",
        "",
        *_target_lines(r),
        "",
        "## Where the engine still loses",
        "",
        hand_section(previous),
        "",
    ]
    if r.errors:
        lines += ["## Errors", "", *[f"- {e}" for e in r.errors], ""]
    if appendix:
        lines += ["## Appendix: the engine per clip", "", *_appendix(r)]
    for section in other_sections(previous):
        lines += ["", section]
    return "\n".join(lines).rstrip() + "\n"
