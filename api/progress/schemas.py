"""Response bodies of the progress domain (progress, clean tempo, timing heat map,
recommendations). Numbers carry their unit in the name; dates are the student's local days.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BeatResponse",
    "CellResponse",
    "CleanTempoPoint",
    "CleanTempoResponse",
    "DayMinutes",
    "HeatmapResponse",
    "ProgressResponse",
    "ProgressTotals",
    "RecommendationListResponse",
    "RecommendationResponse",
    "Trend",
    "WeekMinutes",
    "WeekValue",
]

_SID = "0190f5c2-7a41-7cc3-9d7e-1f2a3b4c5d6e"
_PIECE = "0190f5c2-7b00-7aa1-8c2d-3e4f5a6b7c8d"


class DayMinutes(BaseModel):
    """Minutes practised on one local day."""

    day: date
    minutes: float = Field(description="Minutes, summed over the sessions started that day.")


class WeekMinutes(BaseModel):
    """Minutes practised in one local ISO week (Monday to Sunday)."""

    week_start: date = Field(description="The Monday of the week.")
    minutes: float


class WeekValue(BaseModel):
    """A weekly mean (null for a week without a value)."""

    week_start: date
    value: float | None
    sessions: int = Field(description="Sessions with a value that week.")


class Trend(BaseModel):
    """A weekly series and its least-squares slope."""

    unit: Literal["pct", "ms"]
    points: list[WeekValue]
    slope_per_week: float | None = Field(
        description="Change per week (in the unit); null with fewer than two known weeks."
    )


class ProgressTotals(BaseModel):
    """Totals over the daily window (the last ``days`` local days)."""

    sessions: int
    minutes: float
    active_days: int = Field(description="Days with any practice.")
    accuracy_pct_mean: float | None = Field(description="Mean of the sessions' accuracy.")
    steadiness_ms_mean: float | None = Field(description="Mean of the sessions' steadiness.")


class ProgressResponse(BaseModel):
    """Minutes per day and week, and weekly accuracy and steadiness trends of a student."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "student_id": _SID, "timezone": "Europe/Berlin", "today": "2026-11-20",
        "days": 2, "weeks": 2, "piece_id": None, "tag_id": None,
        "daily_minutes": [{"day": "2026-11-19", "minutes": 30.0},
                          {"day": "2026-11-20", "minutes": 12.5}],
        "weekly_minutes": [{"week_start": "2026-11-09", "minutes": 95.0},
                           {"week_start": "2026-11-16", "minutes": 42.5}],
        "accuracy": {"unit": "pct", "slope_per_week": 4.0, "points": [
            {"week_start": "2026-11-09", "value": 78.0, "sessions": 3},
            {"week_start": "2026-11-16", "value": 82.0, "sessions": 2}]},
        "steadiness": {"unit": "ms", "slope_per_week": None, "points": [
            {"week_start": "2026-11-09", "value": None, "sessions": 0},
            {"week_start": "2026-11-16", "value": 11.2, "sessions": 1}]},
        "totals": {"sessions": 2, "minutes": 42.5, "active_days": 2,
                   "accuracy_pct_mean": 82.0, "steadiness_ms_mean": 11.2},
    }]})

    student_id: uuid.UUID
    timezone: str = Field(description="The student's IANA time zone (day boundaries).")
    today: date = Field(description="The student's local today.")
    days: int
    weeks: int
    piece_id: uuid.UUID | None
    tag_id: uuid.UUID | None
    daily_minutes: list[DayMinutes] = Field(description="Every local day, oldest first.")
    weekly_minutes: list[WeekMinutes] = Field(description="The last ``weeks`` ISO weeks.")
    accuracy: Trend = Field(description="Mean session accuracy per week, percent.")
    steadiness: Trend = Field(
        description="Mean session steadiness per week (std. dev. of timing, ms; lower is "
        "steadier)."
    )
    totals: ProgressTotals


class CleanTempoPoint(BaseModel):
    """The best clean tempo so far, on a local day with a clean session."""

    day: date
    best_bpm: float


class CleanTempoResponse(BaseModel):
    """The highest tempo a student played a piece cleanly, over time."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "student_id": _SID, "piece_id": _PIECE, "threshold_pct": 90.0,
        "history": [{"day": "2026-11-02", "best_bpm": 96.0},
                    {"day": "2026-11-09", "best_bpm": 104.0}],
        "current_best_bpm": 104.0, "reached_on": "2026-11-09",
    }]})

    student_id: uuid.UUID
    piece_id: uuid.UUID
    threshold_pct: float = Field(description="A take is clean from this accuracy on, percent.")
    history: list[CleanTempoPoint] = Field(
        description="One point per local day with a clean session; never decreasing."
    )
    current_best_bpm: float | None = Field(description="Null when never played cleanly.")
    reached_on: date | None = Field(description="The day the current best was first reached.")


class CellResponse(BaseModel):
    """Timing of the notes on one beat of one bar, over the merged takes."""

    bar: int
    beat: int
    n: int = Field(description="Notes in the cell.")
    mean_abs_dev_ms: float
    mean_dev_ms: float = Field(description="Signed mean; positive = late.")
    off_pct: float = Field(description="Share of notes outside the tolerance, percent.")


class BeatResponse(BaseModel):
    """Timing of all notes on one beat of the bar, over all bars."""

    beat: int
    n: int
    mean_abs_dev_ms: float
    mean_dev_ms: float
    off_pct: float


class HeatmapResponse(BaseModel):
    """Where in the bar timing goes wrong, merged over the student's analysed takes."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "student_id": _SID, "piece_id": _PIECE, "tag_id": None, "days": 28, "takes": 2,
        "cells": [{"bar": 1, "beat": 1, "n": 2, "mean_abs_dev_ms": 0.0, "mean_dev_ms": 0.0,
                   "off_pct": 0.0},
                  {"bar": 1, "beat": 2, "n": 2, "mean_abs_dev_ms": 31.0,
                   "mean_dev_ms": 31.0, "off_pct": 100.0}],
        "beats": [{"beat": 1, "n": 2, "mean_abs_dev_ms": 0.0, "mean_dev_ms": 0.0,
                   "off_pct": 0.0},
                  {"beat": 2, "n": 2, "mean_abs_dev_ms": 31.0, "mean_dev_ms": 31.0,
                   "off_pct": 100.0}],
    }]})

    student_id: uuid.UUID
    piece_id: uuid.UUID | None
    tag_id: uuid.UUID | None
    days: int
    takes: int = Field(description="Analysed takes (streams or recordings) merged.")
    cells: list[CellResponse] = Field(description="By bar, then beat.")
    beats: list[BeatResponse] = Field(description="Per beat of the bar, all bars together.")


class RecommendationResponse(BaseModel):
    """One suggestion, with why and the numbers behind it."""

    kind: Literal["rest", "slow_practice", "steadiness_drill"]
    title: str
    reason: str
    data: dict[str, str | int | float | bool | None]


class RecommendationListResponse(BaseModel):
    """Suggestions from the last seven local days (``rest``, ``slow_practice``,
    ``steadiness_drill``, in that order); ``next_cursor`` is always null (one page)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{
            "kind": "slow_practice", "title": "Slow practice at 70 BPM",
            "reason": "Your accuracy on this piece averaged 62.0 % over 2 sessions this week "
                      "(below 70 %); practise it at 70 BPM, 70 % of your target of 100 BPM.",
            "data": {"piece_id": _PIECE, "accuracy_pct": 62.0, "sessions": 2,
                     "target_bpm": 100.0, "suggested_bpm": 70},
        }],
        "next_cursor": None, "today": "2026-11-20", "streak_days": 3,
    }]})

    items: list[RecommendationResponse]
    next_cursor: str | None = None
    today: date = Field(description="The student's local today (the window's last day).")
    streak_days: int = Field(description="The current practice streak, days.")
