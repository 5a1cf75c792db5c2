"""Events a live stream emits; every time is in seconds from the start of the stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from audio_engine.result import Mood, TimingReport

WarningCode = Literal["clipping", "long_silence", "too_quiet", "metronome_bleed"]


@dataclass(frozen=True, slots=True)
class OnsetEvent:
    """A note onset; ``deviation_ms`` (positive = late) when a target tempo is set."""

    time_s: float
    strength: float
    deviation_ms: float | None = None
    is_metronome: bool = False


@dataclass(frozen=True, slots=True)
class BeatEvent:
    """A beat of the tracked pulse."""

    time_s: float
    bpm: float


@dataclass(frozen=True, slots=True)
class TempoEvent:
    """Periodic status (at least twice a second of audio)."""

    time_s: float
    bpm: float | None
    confidence: float
    accuracy_pct: float | None
    mood: Mood | None
    meditation: bool


@dataclass(frozen=True, slots=True)
class WarningEvent:
    """Something about the input the student should fix."""

    time_s: float
    code: WarningCode
    message: str


Event = OnsetEvent | BeatEvent | TempoEvent | WarningEvent


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """The end of a stream: what was heard and, with a target, the timing report."""

    duration_s: float
    tempo_bpm: float | None
    n_onsets: int
    n_beats: int
    timing: TimingReport | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``summary`` of the ``stream.summary.v1`` event)."""
        return {
            "duration_s": round(self.duration_s, 4),
            "tempo_bpm": None if self.tempo_bpm is None else round(self.tempo_bpm, 2),
            "n_onsets": self.n_onsets,
            "n_beats": self.n_beats,
            "timing": None if self.timing is None else self.timing.to_dict(),
        }
