"""Typed results of an analysis; every time is in seconds from the start of the audio."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Verdict = Literal["steady", "rushing", "dragging", "unknown"]
Mood = Literal["happy", "neutral", "annoyed", "angry"]


@dataclass(frozen=True, slots=True)
class TimingReport:
    """How well a performance keeps time against a target grid.

    One definition serves the CLI, the stream summary, the API and the media pipeline.
    Deviations are signed milliseconds, positive = late, measured from the nearest line of
    the grid ``grid_start_s + k * 60 / (target_bpm * subdivision)`` after subtracting
    ``latency_ms``.
    """

    target_bpm: float
    grid_start_s: float
    subdivision: int
    subdivision_inferred: bool
    latency_ms: float
    tolerance_ms: float
    notes: list[tuple[float, float]]  # (time_s, deviation_ms)
    accuracy_pct: float | None
    tempo_bpm_played: float | None
    tempo_error_pct: float | None
    steadiness_ms: float | None
    drift_bpm_per_min: float | None
    verdict: Verdict
    mood: Mood
    meditation: bool
    points: int
    analysed_s: float
    metronome_clicks_removed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (plain floats, lists)."""
        return {
            "target_bpm": self.target_bpm,
            "grid_start_s": self.grid_start_s,
            "subdivision": self.subdivision,
            "subdivision_inferred": self.subdivision_inferred,
            "latency_ms": self.latency_ms,
            "tolerance_ms": self.tolerance_ms,
            "notes": [[round(t, 4), round(d, 2)] for t, d in self.notes],
            "accuracy_pct": self.accuracy_pct,
            "tempo_bpm_played": self.tempo_bpm_played,
            "tempo_error_pct": self.tempo_error_pct,
            "steadiness_ms": self.steadiness_ms,
            "drift_bpm_per_min": self.drift_bpm_per_min,
            "verdict": self.verdict,
            "mood": self.mood,
            "meditation": self.meditation,
            "points": self.points,
            "analysed_s": self.analysed_s,
            "metronome_clicks_removed": self.metronome_clicks_removed,
        }


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """What the engine heard in a recording.

    Attributes
    ----------
    duration_s : float
        Length of the analysed audio in seconds.
    sr : int
        Sample rate of the input in Hz.
    tempo_bpm : float or None
        Global tempo in beats per minute, None when no pulse was found (e.g. silence).
    tempo_confidence : float
        0..1, how clearly one periodicity dominates.
    beats : ndarray, shape (n_beats,)
        Beat times in seconds.
    onsets : ndarray, shape (n_onsets,)
        Note onset times in seconds.
    tempo_curve : ndarray, shape (n, 2)
        Local tempo as rows of (time_s, bpm).
    timing : TimingReport or None
        The practice timing report, present when a target tempo was given.
    """

    duration_s: float
    sr: int
    tempo_bpm: float | None
    tempo_confidence: float
    beats: NDArray[np.float64]
    onsets: NDArray[np.float64]
    tempo_curve: NDArray[np.float64]
    timing: TimingReport | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: times rounded to 0.1 ms, tempo to 0.01 BPM."""
        out: dict[str, Any] = {
            "duration_s": round(self.duration_s, 4),
            "sr": self.sr,
            "tempo_bpm": None if self.tempo_bpm is None else round(self.tempo_bpm, 2),
            "tempo_confidence": round(self.tempo_confidence, 3),
            "beats": [round(float(t), 4) for t in self.beats],
            "onsets": [round(float(t), 4) for t in self.onsets],
            "tempo_curve": [[round(float(t), 3), round(float(b), 2)] for t, b in self.tempo_curve],
        }
        if self.timing is not None:
            out["timing"] = self.timing.to_dict()
        return out
