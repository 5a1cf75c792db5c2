"""Request and response bodies of the gamification routes: points, streaks, achievements,
challenges, the weekly leaderboard and reputation."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AchievementListResponse",
    "AchievementResponse",
    "ChallengeJoinRequest",
    "ChallengeListResponse",
    "ChallengeResponse",
    "ChallengeStatus",
    "EvaluationResponse",
    "LeaderboardBy",
    "LeaderboardEntry",
    "LeaderboardResponse",
    "LeaderboardScope",
    "PointsResponse",
    "ReputationGrantResponse",
    "ReputationResponse",
    "SessionPointsResponse",
    "StreakResponse",
]

ChallengeStatus = Literal["active", "completed", "expired"]
LeaderboardScope = Literal["global", "studio"]
LeaderboardBy = Literal["points", "accuracy_gain"]
Source = Literal["manual", "stream", "recording"]

_SESSION_ID = "01900000-0000-7000-8000-000000000001"
_STUDENT_ID = "01900000-0000-7000-8000-00000000000a"


# --- points ----------------------------------------------------------------------------------


class SessionPointsResponse(BaseModel):
    """One session's points, from the source that counted."""

    session_id: uuid.UUID
    started_at: datetime
    source: Source = Field(description="The source whose numbers counted (the best one).")
    minutes: float = Field(description="Practised (or analysed) minutes of that source.")
    accuracy_pct: float | None = None
    points: int = Field(ge=0)


class PointsResponse(BaseModel):
    """A student's points: all time, this week (Monday 00:00 UTC) and the latest sessions."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "student_id": _STUDENT_ID, "total_points": 412, "week_points": 57,
        "week_start": "2026-11-16T00:00:00Z",
        "sessions": [{"session_id": _SESSION_ID, "started_at": "2026-11-20T18:00:00Z",
                      "source": "stream", "minutes": 2.5, "accuracy_pct": 92.0,
                      "points": 12}],
    }]})

    student_id: uuid.UUID
    total_points: int = Field(ge=0)
    week_points: int = Field(ge=0)
    week_start: datetime = Field(description="Start of this ISO week, Monday 00:00 UTC.")
    sessions: list[SessionPointsResponse] = Field(description="Newest first.")


# --- streak ----------------------------------------------------------------------------------


class StreakResponse(BaseModel):
    """The practice streak in the student's time zone, with rest-day freezes."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "student_id": _STUDENT_ID, "timezone": "Europe/Berlin", "today": "2026-11-20",
        "current_days": 9, "longest_days": 14, "freezes_available": 1,
        "frozen_days": ["2026-11-15"], "last_practice_day": "2026-11-20",
    }]})

    student_id: uuid.UUID
    timezone: str
    today: date = Field(description="The student's local today.")
    current_days: int = Field(ge=0, description="Practised days of the running streak.")
    longest_days: int = Field(ge=0)
    freezes_available: int = Field(ge=0)
    frozen_days: list[date] = Field(description="Missed days bridged by a freeze.")
    last_practice_day: date | None


# --- achievements ----------------------------------------------------------------------------


class AchievementResponse(BaseModel):
    """One achievement of the catalogue and the student's progress towards it."""

    code: str
    title: str
    description: str
    unit: str
    current: float
    target: float
    achieved: bool
    achieved_at: datetime | None = Field(description="When it was unlocked (null if not).")


class AchievementListResponse(BaseModel):
    """Every achievement, in catalogue order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "student_id": _STUDENT_ID,
        "items": [{"code": "first_session", "title": "First steps",
                   "description": "Log your first practice session.", "unit": "sessions",
                   "current": 3.0, "target": 1.0, "achieved": True,
                   "achieved_at": "2026-11-20T18:05:00Z"}],
    }]})

    student_id: uuid.UUID
    items: list[AchievementResponse]


# --- challenges ------------------------------------------------------------------------------


class ChallengeJoinRequest(BaseModel):
    """Join a challenge of the catalogue (again), starting now."""

    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"code": "sessions_5_in_7d"}]})

    code: str = Field(min_length=1, max_length=48, description="A catalogue challenge code.")


class ChallengeResponse(BaseModel):
    """A challenge the student takes part in, with its progress."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": _SESSION_ID, "code": "sessions_5_in_7d", "title": "5 sessions in 7 days",
        "metric": "sessions", "target": 5.0, "current": 2.0, "status": "active",
        "started_at": "2026-11-16T09:00:00Z", "deadline": "2026-11-23T09:00:00Z",
        "completed_at": None,
    }]})

    id: uuid.UUID
    code: str
    title: str
    metric: str
    target: float
    current: float
    status: ChallengeStatus
    started_at: datetime
    deadline: datetime
    completed_at: datetime | None


class ChallengeListResponse(BaseModel):
    """A student's challenges, newest first."""

    items: list[ChallengeResponse]
    next_cursor: str | None


# --- evaluation ------------------------------------------------------------------------------


class EvaluationResponse(BaseModel):
    """What one evaluation changed (empty lists when nothing was new)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "unlocked": ["first_session"], "completed_challenges": [], "expired_challenges": [],
        "granted": ["achievement:first_session"], "reputation_gained": 10, "reputation": 10,
    }]})

    unlocked: list[str] = Field(description="Achievement codes unlocked now.")
    completed_challenges: list[uuid.UUID]
    expired_challenges: list[uuid.UUID]
    granted: list[str] = Field(description="Reputation grant keys given now.")
    reputation_gained: int
    reputation: int = Field(description="The user's reputation after the evaluation.")


# --- leaderboard -----------------------------------------------------------------------------


class LeaderboardEntry(BaseModel):
    """One row of a leaderboard: display name and score only."""

    rank: int = Field(ge=1, description="Competition rank: ties share it (1, 2, 2, 4).")
    user_id: uuid.UUID
    display_name: str
    score: float


class LeaderboardResponse(BaseModel):
    """A weekly leaderboard (ISO week, Monday 00:00 UTC)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "scope": "global", "by": "points", "week": "2026-11-16", "teacher_id": None,
        "items": [{"rank": 1, "user_id": _STUDENT_ID, "display_name": "Ada", "score": 57.0}],
        "me": None, "total_entries": 1, "source": "database",
    }]})

    scope: LeaderboardScope
    by: LeaderboardBy
    week: date = Field(description="The Monday the week starts on (00:00 UTC).")
    teacher_id: uuid.UUID | None = Field(description="The studio's teacher (studio scope).")
    items: list[LeaderboardEntry] = Field(description="The top entries, best first.")
    me: LeaderboardEntry | None = Field(
        description="The caller's own entry (also when outside the top), null when absent.")
    total_entries: int = Field(ge=0)
    source: Literal["redis", "database"] = Field(description="Where the scores were read.")


# --- reputation ------------------------------------------------------------------------------


class ReputationGrantResponse(BaseModel):
    """Reputation given once for ``key`` (e.g. ``achievement:streak_7``)."""

    key: str
    points: int
    granted_at: datetime


class ReputationResponse(BaseModel):
    """A user's reputation and their latest grants."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_id": _STUDENT_ID, "reputation": 25,
        "grants": [{"key": "achievement:first_session", "points": 10,
                    "granted_at": "2026-11-20T18:05:00Z"}],
    }]})

    user_id: uuid.UUID
    reputation: int
    grants: list[ReputationGrantResponse] = Field(description="Newest first.")
