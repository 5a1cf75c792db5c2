"""Human-readable rendering of an analysis result (the default output of ``mpt analyze``) and
of a live stream's summary (``mpt stream``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # the engine is imported only by the commands that run it
    from audio_engine.events import StreamSummary
    from audio_engine.result import AnalysisResult, TimingReport

__all__ = ["MOOD_STYLES", "render_result", "render_stream_summary"]

_SUBDIVISION_NAMES = {1: "quarter notes", 2: "eighth notes", 3: "triplets", 4: "sixteenth notes"}
MOOD_STYLES = {"happy": "green", "neutral": "cyan", "annoyed": "yellow", "angry": "bold red"}
_VERDICT_STYLES = {"steady": "green", "rushing": "yellow", "dragging": "yellow", "unknown": "dim"}
_DASH = "—"
_LABEL_WIDTH = 14


def render_result(
    console: Console, result: AnalysisResult, *, source: str, max_notes: int = 8
) -> None:
    """Print a summary of ``result`` and, when present, its timing report.

    Parameters
    ----------
    console : Console
        Where to print.
    result : AnalysisResult
        What the engine returned.
    source : str
        The analysed file, shown in the first line.
    max_notes : int, default 8
        How many of the first notes to list with their deviations.
    """
    if result.tempo_bpm is None:
        tempo = Text("none found (no steady pulse)", style="dim")
    else:
        tempo = Text(f"{result.tempo_bpm:.1f} BPM (confidence {result.tempo_confidence:.2f})")
    _rows(
        console,
        [
            ("File", Text(source)),
            ("Duration", Text(f"{result.duration_s:.2f} s at {result.sr} Hz")),
            ("Tempo", tempo),
            ("Beats", Text(str(len(result.beats)))),
            ("Onsets", Text(str(len(result.onsets)))),
        ],
    )
    if result.timing is not None:
        console.print()
        _render_timing(console, result.timing, max_notes)


def render_stream_summary(
    console: Console,
    summary: StreamSummary,
    *,
    source: str,
    stream_id: str | None,
    max_notes: int = 8,
) -> None:
    """Print the summary of a live stream and, when present, its timing report.

    Parameters
    ----------
    console : Console
        Where to print.
    summary : StreamSummary
        The engine's summary of the stream.
    source : str
        What was streamed (a file, the microphone), shown in the first line.
    stream_id : str or None
        The engine's id of the stream.
    max_notes : int, default 8
        How many of the first notes to list with their deviations.
    """
    tempo = (
        Text("none found (no steady pulse)", style="dim")
        if summary.tempo_bpm is None
        else Text(f"{summary.tempo_bpm:.1f} BPM")
    )
    _rows(
        console,
        [
            ("Streamed", Text(source)),
            ("Stream id", Text(stream_id or _DASH)),
            ("Duration", Text(f"{summary.duration_s:.2f} s")),
            ("Tempo", tempo),
            ("Beats", Text(str(summary.n_beats))),
            ("Onsets", Text(str(summary.n_onsets))),
        ],
    )
    if summary.timing is not None:
        console.print()
        _render_timing(console, summary.timing, max_notes)


def _rows(console: Console, rows: list[tuple[str, Text]]) -> None:
    """Print aligned ``label  value`` lines (no table padding after the value)."""
    for label, value in rows:
        console.print(Text.assemble((label.ljust(_LABEL_WIDTH), "bold"), value))


def _render_timing(console: Console, timing: TimingReport, max_notes: int) -> None:
    console.print(Text(f"Timing against {timing.target_bpm:g} BPM", style="bold underline"))
    grid = _SUBDIVISION_NAMES.get(timing.subdivision, f"subdivision {timing.subdivision}")
    if timing.subdivision_inferred:
        grid += " (inferred)"
    grid += f" from {timing.grid_start_s:.3f} s"
    if timing.latency_ms:
        grid += f", latency {timing.latency_ms:+g} ms"
    n_notes = len(timing.notes)
    if timing.accuracy_pct is None:
        accuracy = f"{_DASH} ({n_notes} notes)"
    else:
        accuracy = (
            f"{timing.accuracy_pct:.0f} % of {n_notes} notes within ±{timing.tolerance_ms:g} ms"
        )
    played = _DASH if timing.tempo_bpm_played is None else f"{timing.tempo_bpm_played:.1f} BPM"
    if timing.tempo_error_pct is not None:
        played += f" ({timing.tempo_error_pct:+.1f} % vs target)"
    steadiness = _DASH
    if timing.steadiness_ms is not None:
        steadiness = f"{timing.steadiness_ms:.1f} ms (std of deviations)"
    drift = _DASH
    if timing.drift_bpm_per_min is not None:
        drift = f"{timing.drift_bpm_per_min:+.2f} BPM/min"
    mood = Text(timing.mood, style=MOOD_STYLES.get(timing.mood, ""))
    if timing.meditation:
        mood.append(" (meditation: target below 60 BPM)", style="dim")
    rows = [
        ("Grid", Text(grid)),
        ("Accuracy", Text(accuracy)),
        ("Played tempo", Text(played)),
        ("Steadiness", Text(steadiness)),
        (
            "Drift",
            Text.assemble(drift, " → ", (timing.verdict, _VERDICT_STYLES.get(timing.verdict, ""))),
        ),
        ("Mood", mood),
        ("Points", Text(f"{timing.points} (for {timing.analysed_s:.1f} s analysed)")),
    ]
    if timing.metronome_clicks_removed:
        rows.append(("Metronome", Text(f"{timing.metronome_clicks_removed} clicks ignored")))
    _rows(console, rows)
    if timing.notes and max_notes > 0:
        shown = min(max_notes, len(timing.notes))
        console.print()
        console.print(Text(f"First {shown} of {len(timing.notes)} notes (+ late, − early)"))
        console.print(_notes_table(timing, max_notes))


def _notes_table(timing: TimingReport, max_notes: int) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("Time (s)", justify="right")
    table.add_column("Deviation (ms)", justify="right")
    table.add_column("")
    for i, (time_s, dev_ms) in enumerate(timing.notes[:max_notes], start=1):
        within = abs(dev_ms) <= timing.tolerance_ms
        label = "on time" if abs(dev_ms) < 0.5 else ("late" if dev_ms > 0 else "early")
        style = "green" if within else "red"
        table.add_row(str(i), f"{time_s:.3f}", Text(f"{dev_ms:+.1f}", style=style), label)
    return table
