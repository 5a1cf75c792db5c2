"""Turn the engine's stream summary (``stream.summary.v1``'s ``summary``) into metric values.

Pure: no database. The summary is ``{"duration_s", "tempo_bpm", "n_onsets", "n_beats",
"timing": {... the timing report: accuracy_pct, tempo_bpm_played, tempo_error_pct,
steadiness_ms, drift_bpm_per_min, points, analysed_s, notes [[time_s, deviation_ms]],
grid_start_s, target_bpm, subdivision, tolerance_ms, meditation ...} | null}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TIMING_METRICS", "MetricValue", "SummaryError", "metrics_from_summary"]

#: Timing-report fields stored one metric each (same names as the report).
TIMING_METRICS = (
    "accuracy_pct",
    "tempo_bpm_played",
    "tempo_error_pct",
    "steadiness_ms",
    "drift_bpm_per_min",
    "target_bpm",
)
MAX_NOTES = 100_000


class SummaryError(ValueError):
    """The summary is not what the engine sends; the message names the field."""


@dataclass(frozen=True, slots=True)
class MetricValue:
    """One metric value, with optional metadata (e.g. the beat of the bar)."""

    metric: str
    value: float
    meta: dict[str, Any] | None = None


def _number(where: str, value: Any, *, required: bool = False) -> float | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SummaryError(f"{where} is {value!r}, not a finite number")
    return float(value)


def metrics_from_summary(summary: Mapping[str, Any], *, beats_per_bar: int = 4) -> list[
    MetricValue
]:
    """The metric values of one stream summary.

    Always ``minutes`` (analysed time, else the stream's duration) and ``tempo_bpm`` when the
    engine heard a pulse; with a timing report also its numbers (:data:`TIMING_METRICS`),
    ``points``, ``notes`` (the count), one ``beat_deviation_ms`` per beat of the bar (mean
    signed deviation; metadata: beat, n, mean_abs_ms, off_pct) and ``timing_cells`` (the
    bar x beat cells of this take in its metadata, for the heatmap across sessions).

    Raises
    ------
    SummaryError
        A field has the wrong type or a non-finite number.
    """
    from api.errors import UnprocessableError
    from api.progress.rules import bar_beat_heatmap, deviation_by_beat

    duration_s = _number("summary.duration_s", summary.get("duration_s"), required=True)
    assert duration_s is not None
    if duration_s < 0:
        raise SummaryError(f"summary.duration_s is {duration_s}, negative")
    timing = summary.get("timing")
    if timing is not None and not isinstance(timing, Mapping):
        raise SummaryError("summary.timing is not an object")
    analysed_s = _number("timing.analysed_s", timing.get("analysed_s")) if timing else None
    values = [MetricValue("minutes", round((analysed_s or duration_s) / 60.0, 4))]
    tempo = _number("summary.tempo_bpm", summary.get("tempo_bpm"))
    if tempo is not None:
        values.append(MetricValue("tempo_bpm", tempo))
    if not timing:
        return values
    for name in TIMING_METRICS:
        value = _number(f"timing.{name}", timing.get(name))
        if value is not None:
            values.append(MetricValue(name, value))
    points = _number("timing.points", timing.get("points"))
    if points is not None:
        values.append(MetricValue("points", points))
    notes_raw = timing.get("notes") or []
    if not isinstance(notes_raw, list) or len(notes_raw) > MAX_NOTES:
        raise SummaryError("timing.notes is not a list of at most 100000 [time_s, deviation_ms]")
    notes: list[tuple[float, float]] = []
    for k, note in enumerate(notes_raw):
        if not isinstance(note, list | tuple) or len(note) != 2:
            raise SummaryError(f"timing.notes[{k}] is {note!r}, not [time_s, deviation_ms]")
        t = _number(f"timing.notes[{k}][0]", note[0], required=True)
        d = _number(f"timing.notes[{k}][1]", note[1], required=True)
        assert t is not None and d is not None
        notes.append((t, d))
    values.append(MetricValue("notes", float(len(notes))))
    target = _number("timing.target_bpm", timing.get("target_bpm"))
    grid_start_s = _number("timing.grid_start_s", timing.get("grid_start_s")) or 0.0
    subdivision = _number("timing.subdivision", timing.get("subdivision")) or 1.0
    tolerance_ms = _number("timing.tolerance_ms", timing.get("tolerance_ms")) or 25.0
    if notes and target and target > 0 and subdivision >= 1:
        try:
            cells = bar_beat_heatmap(
                notes, grid_start_s=grid_start_s, target_bpm=target,
                subdivision=int(subdivision), beats_per_bar=beats_per_bar,
                tolerance_ms=tolerance_ms,
            )
        except UnprocessableError as exc:
            raise SummaryError(f"timing report: {exc.detail}") from None
        for beat in deviation_by_beat(cells):
            values.append(MetricValue("beat_deviation_ms", beat.mean_dev_ms, {
                "beat": beat.beat, "n": beat.n, "mean_abs_ms": beat.mean_abs_dev_ms,
                "off_pct": beat.off_pct,
            }))
        values.append(MetricValue("timing_cells", float(len(cells)), {
            "beats_per_bar": beats_per_bar,
            "cells": [[c.bar, c.beat, c.n, c.mean_abs_dev_ms, c.mean_dev_ms, c.off_pct]
                      for c in cells],
        }))
    return values
