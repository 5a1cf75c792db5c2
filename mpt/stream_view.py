"""What ``mpt stream`` shows while it streams.

- :class:`LiveView` — a ``rich.live`` panel on a terminal: audio sent and analysed, tempo,
  the last note's deviation (green within ±25 ms, yellow within ±50 ms, red beyond),
  accuracy, mood (a word: happy, neutral, annoyed, angry) and the latest warnings;
- :class:`JsonLinesView` — one JSON object per event per line on stdout (``--json``);
- :class:`PlainView` — no terminal: warnings as lines on stderr, nothing else (the summary
  is printed at the end by the command).

Each receives the JSON-ready event dicts of :func:`mpt.stream_client.response_to_event`.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mpt.report import MOOD_STYLES

__all__ = [
    "JsonLinesView",
    "LiveView",
    "PlainView",
    "deviation_style",
    "finite",
    "reconnecting_text",
]

TOLERANCE_MS: Final = 25.0
LATE_MS: Final = 50.0
_DASH: Final = "—"
_MAX_WARNINGS: Final = 3


def deviation_style(deviation_ms: float) -> str:
    """The colour of a deviation: green within ±25 ms, yellow within ±50 ms, red beyond."""
    size = abs(deviation_ms)
    if size <= TOLERANCE_MS:
        return "green"
    return "yellow" if size <= LATE_MS else "red"


def finite(value: Any) -> Any:
    """Replace NaN and infinities (invalid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def reconnecting_text(event: Mapping[str, Any]) -> str:
    """One line for a ``reconnecting`` event of the client."""
    reason = " ".join(str(event.get("reason", "")).split())
    return f"connection lost ({reason}); resuming the stream (attempt {event.get('attempt')})"


class JsonLinesView:
    """Writes every event as one compact JSON object on its own line (flushed)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def event(self, event: Mapping[str, Any]) -> None:
        text = json.dumps(finite(dict(event)), allow_nan=False, separators=(",", ":"))
        self._out.write(text + "\n")
        self._out.flush()

    def progress(self, sent_s: float) -> None:
        pass


class PlainView:
    """Without a terminal: each warning as a line on ``err``; nothing else."""

    def __init__(self, err: TextIO) -> None:
        self._err = err

    def event(self, event: Mapping[str, Any]) -> None:
        if event.get("type") == "warning":
            line = " ".join(str(event.get("message", "")).split())
            print(f"mpt: warning at {event['time_s']:.1f} s: {line}", file=self._err, flush=True)
        elif event.get("type") == "reconnecting":
            print(f"mpt: {reconnecting_text(event)}", file=self._err, flush=True)

    def progress(self, sent_s: float) -> None:
        pass


@dataclass(slots=True)
class _LiveState:
    sent_s: float = 0.0
    heard_s: float = 0.0
    stream_id: str | None = None
    tempo_bpm: float | None = None
    confidence: float = 0.0
    deviation_ms: float | None = None
    notes: int = 0
    accuracy_pct: float | None = None
    mood: str | None = None
    meditation: bool = False
    warnings: deque[str] = field(default_factory=lambda: deque(maxlen=_MAX_WARNINGS))
    done: bool = False


class LiveView:
    """A live panel on ``console`` (a terminal), refreshed a few times a second.

    Use as a context manager around the stream; the last state stays on the screen.

    Parameters
    ----------
    console : Console
        The terminal to draw on.
    source : str
        What is streamed (a file, the microphone).
    target : str
        The engine's address.
    total_s : float or None
        The length of the audio (None for a live input).
    speed : float or None
        The pace as a multiple of real time (0: as fast as possible; None for a live input).
    """

    def __init__(
        self,
        console: Console,
        *,
        source: str,
        target: str,
        total_s: float | None,
        speed: float | None,
    ) -> None:
        self._source = source
        self._target = target
        self._total_s = total_s
        self._speed = speed
        self.state = _LiveState()
        self._live = Live(
            console=console,
            get_renderable=self.render,
            refresh_per_second=8,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()

    def event(self, event: Mapping[str, Any]) -> None:
        state = self.state
        kind = event.get("type")
        time_s = event.get("time_s")
        if isinstance(time_s, int | float):
            state.heard_s = max(state.heard_s, float(time_s))
        if kind == "started":
            state.stream_id = event.get("stream_id")
        elif kind == "onset" and not event.get("is_metronome"):
            state.notes += 1
            if event.get("deviation_ms") is not None:
                state.deviation_ms = float(event["deviation_ms"])
        elif kind == "tempo":
            state.tempo_bpm = event.get("tempo_bpm")
            state.confidence = float(event.get("confidence") or 0.0)
            state.accuracy_pct = event.get("accuracy_pct")
            state.mood = event.get("mood")
            state.meditation = bool(event.get("meditation"))
        elif kind == "warning":
            at = float(event.get("time_s") or 0.0)
            state.warnings.append(f"{at:.1f} s: {event.get('message', '')}")
        elif kind == "reconnecting":
            state.warnings.append(reconnecting_text(event))
        elif kind == "summary":
            state.done = True
            state.heard_s = max(state.heard_s, float(event.get("duration_s") or 0.0))

    def progress(self, sent_s: float) -> None:
        self.state.sent_s = sent_s

    def render(self) -> RenderableType:
        """The panel for the current state."""
        state = self.state
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        pace = ""
        if self._speed is not None:
            pace = " (as fast as possible)" if self._speed == 0 else f" ({self._speed:g}x)"
        table.add_row("Streaming", Text(f"{self._source} → {self._target}{pace}"))
        total = _DASH if self._total_s is None else f"{self._total_s:.1f}"
        audio = f"{state.sent_s:.1f} / {total} s sent, {state.heard_s:.1f} s analysed"
        if state.done:
            audio += " — done"
        table.add_row("Audio", Text(audio))
        tempo = (
            Text("listening…", style="dim")
            if state.tempo_bpm is None
            else Text(f"{state.tempo_bpm:.1f} BPM (confidence {state.confidence:.2f})")
        )
        table.add_row("Tempo", tempo)
        if state.deviation_ms is None:
            deviation = Text(_DASH if state.notes == 0 else "no target (--target-bpm)")
        else:
            dev = state.deviation_ms
            label = "on time" if abs(dev) < 0.5 else ("late" if dev > 0 else "early")
            deviation = Text(f"{dev:+.1f} ms {label}", style=deviation_style(dev))
        table.add_row("Last note", deviation)
        accuracy = (
            f"{_DASH} ({state.notes} notes)"
            if state.accuracy_pct is None
            else f"{state.accuracy_pct:.0f} % of {state.notes} notes within ±{TOLERANCE_MS:g} ms"
        )
        table.add_row("Accuracy", Text(accuracy))
        mood = Text(state.mood or _DASH, style=MOOD_STYLES.get(state.mood or "", ""))
        if state.meditation:
            mood.append(" (meditation)", style="dim")
        table.add_row("Mood", mood)
        if state.warnings:
            table.add_row("Warnings", Text("\n".join(state.warnings), style="yellow"))
        return table
