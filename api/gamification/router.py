"""HTTP routes of the gamification domain (thin: validate, call the service).

A student's points, streak, achievements and challenges are visible to whoever may see the
student's data (:func:`api.teaching.access.ensure_can_view_student`); joining a challenge
and asking for an evaluation are the student's own. The leaderboard and reputation are
open to any logged-in user (display names and scores only).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from api.db import utcnow
from api.deps import CurrentUser, Principal, ReadSessionDep, SessionDep, StateDep, require_role
from api.gamification import service
from api.gamification.leaderboard import leaderboard
from api.gamification.schemas import (
    AchievementListResponse,
    ChallengeJoinRequest,
    ChallengeListResponse,
    ChallengeResponse,
    EvaluationResponse,
    LeaderboardBy,
    LeaderboardResponse,
    LeaderboardScope,
    PointsResponse,
    ReputationResponse,
    StreakResponse,
)
from api.openapi import Responses, problem
from api.pagination import CursorQuery

__all__ = ["router"]

router = APIRouter(tags=["gamification"])

Student = Annotated[Principal, Depends(require_role("student"))]




_401: Responses = {401: problem("Not authenticated.")}
_403_VIEW: Responses = {403: problem(
    "Not this student, nor their linked teacher (with consent for a minor), nor an admin."
)}
_404_STUDENT: Responses = {404: problem("No such student (or the account was deleted).")}
_422: Responses = {422: problem("Invalid parameters.")}
_STUDENT_READ: Responses = {**_401, **_403_VIEW, **_404_STUDENT, **_422}

SmallLimit = Annotated[int, Query(ge=1, le=100, description="How many, 1..100.")]


@router.get(
    "/students/{student_id}/points", response_model=PointsResponse,
    summary="A student's points: all time, this week, latest sessions",
    responses=_STUDENT_READ,
)
async def read_points(student_id: uuid.UUID, user: CurrentUser, db: ReadSessionDep,
                      limit: SmallLimit = 20) -> PointsResponse:
    """Points per session by the timing-report rule (manual sessions: whole minutes), from
    each session's best source (recording over stream over manual, never two). The week
    is the ISO week from Monday 00:00 UTC."""
    return await service.get_points(db, user, student_id, now=utcnow(), limit=limit)


@router.get(
    "/students/{student_id}/streak", response_model=StreakResponse,
    summary="A student's practice streak (in their time zone, with freezes)",
    responses=_STUDENT_READ,
)
async def read_streak(student_id: uuid.UUID, user: CurrentUser,
                      db: ReadSessionDep) -> StreakResponse:
    """Days with at least a minute of practice, in the student's time zone; every 7th
    practised day of a streak earns a rest-day freeze (at most 2 banked)."""
    return await service.get_streak(db, user, student_id, now=utcnow())


@router.get(
    "/students/{student_id}/achievements", response_model=AchievementListResponse,
    summary="Every achievement with the student's progress",
    responses=_STUDENT_READ,
)
async def read_achievements(student_id: uuid.UUID, user: CurrentUser,
                            db: SessionDep) -> AchievementListResponse:
    """Evaluates first, so an achievement reached is unlocked (and its reputation granted)
    once, with its time."""
    return await service.get_achievements(db, user, student_id, now=utcnow())


@router.get(
    "/students/{student_id}/challenges", response_model=ChallengeListResponse,
    summary="A student's challenges (active, completed, expired) with progress",
    responses=_STUDENT_READ,
)
async def read_challenges(student_id: uuid.UUID, user: CurrentUser, db: SessionDep,
                          limit: SmallLimit = 50,
                          cursor: CursorQuery = None) -> ChallengeListResponse:
    """Newest first. Evaluates first, so finished challenges show as completed or
    expired."""
    return await service.list_challenges(db, user, student_id, now=utcnow(), limit=limit,
                                         cursor=cursor)


@router.post(
    "/students/me/challenges", status_code=status.HTTP_201_CREATED,
    response_model=ChallengeResponse, summary="Join a catalogue challenge (again)",
    responses={**_401, 403: problem("Only students take part in challenges."),
               409: problem("A challenge of this code is still active."),
               422: problem("Unknown challenge code (`unknown_challenge`).")},
)
async def join_challenge(body: ChallengeJoinRequest, user: Student,
                         db: SessionDep) -> ChallengeResponse:
    """Starts now; the deadline is the challenge's duration from now."""
    return await service.join_challenge(db, user.id, body.code, now=utcnow())


@router.post(
    "/students/me/evaluate", response_model=EvaluationResponse,
    summary="Unlock achievements, settle challenges and grant reputation now",
    responses={**_401, 403: problem("Only students are evaluated.")},
)
async def evaluate_me(user: Student, db: SessionDep) -> EvaluationResponse:
    """Idempotent: what was unlocked or granted before is not again."""
    return (await service.evaluate_user(db, user.id, utcnow())).response()


@router.get(
    "/leaderboard", response_model=LeaderboardResponse,
    summary="The weekly leaderboard (global or a studio, by points or accuracy gained)",
    responses={**_401,
               403: problem("A studio the caller is neither the teacher nor a student of."),
               404: problem("No such teacher."),
               422: problem("A week that is not a Monday, or a missing/extra teacher_id.")},
)
async def read_leaderboard(
    user: CurrentUser, state: StateDep, db: ReadSessionDep,
    scope: LeaderboardScope = "global",
    by: LeaderboardBy = "points",
    week: Annotated[date | None, Query(
        description="The Monday (YYYY-MM-DD) the week starts on, 00:00 UTC; default this "
                    "week.")] = None,
    teacher_id: Annotated[uuid.UUID | None, Query(
        description="The studio's teacher (scope=studio; a teacher's own by default).")] = None,
    limit: SmallLimit = 20,
) -> LeaderboardResponse:
    """Ranked with competition ranking (ties share a rank); ``me`` is the caller's own
    entry even outside the top. ``accuracy_gain`` is this week's mean session accuracy
    minus last week's (students with sessions in both)."""
    return await leaderboard(state, db, user, scope=scope, by=by, week=week,
                             teacher_id=teacher_id, limit=limit, now=utcnow())


@router.get(
    "/users/{user_id}/reputation", response_model=ReputationResponse,
    summary="A user's reputation and latest grants",
    responses={**_401, 404: problem("No such user (or the account was deleted)."), **_422},
)
async def read_reputation(user_id: uuid.UUID, user: CurrentUser, db: ReadSessionDep,
                          limit: SmallLimit = 20) -> ReputationResponse:
    """Public to any logged-in user (the forum shows it)."""
    return await service.get_reputation(db, user_id, limit=limit)
