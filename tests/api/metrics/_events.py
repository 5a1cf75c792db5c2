"""Stream summary events as the engine publishes them (through ``mpt.events``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from mpt.events import stream_summary_event


def timing_report(*, target_bpm: float = 120.0, accuracy_pct: float = 92.0,
                  n_beats: int = 16) -> dict[str, Any]:
    """A timing report of quarter notes at ``target_bpm``: beat k of each 4/4 bar is
    played k ms late (beat 1 on time, beat 4 three ms late)."""
    period = 60.0 / target_bpm
    notes = [[round(0.5 + k * period + (k % 4) / 1000.0, 4), float(k % 4)] for k in range(n_beats)]
    return {
        "target_bpm": target_bpm, "grid_start_s": 0.5, "subdivision": 1,
        "subdivision_inferred": False, "latency_ms": 0.0, "tolerance_ms": 25.0, "notes": notes,
        "accuracy_pct": accuracy_pct, "tempo_bpm_played": target_bpm - 1.0,
        "tempo_error_pct": -0.83, "steadiness_ms": 1.1, "drift_bpm_per_min": 0.2,
        "verdict": "steady", "mood": "happy", "meditation": False, "points": 12,
        "analysed_s": 150.0, "metronome_clicks_removed": 0,
    }


def summary_event(*, user_id: uuid.UUID | str, session_id: uuid.UUID,
                  stream_id: str | None = None, timing: dict[str, Any] | None = None,
                  started_at: datetime | None = None) -> tuple[str, dict[str, Any]]:
    """``(event_id, payload)`` of one stream of 150 s with a timing report."""
    start = started_at or datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    return stream_summary_event(
        stream_id=stream_id or str(uuid.uuid4()), user_id=str(user_id), session_id=session_id,
        started_at=start, ended_at=start + timedelta(seconds=150),
        summary={"duration_s": 150.0, "tempo_bpm": 119.0, "n_onsets": 16, "n_beats": 16,
                 "timing": timing if timing is not None else timing_report()},
    )
