"""Gamification services: points, streaks, achievements, challenges and reputation, computed
from each session's best source (:func:`api.progress.facts.load_facts`) by the pure rules of
:mod:`api.gamification.rules`.

What happens once is stored (:mod:`api.gamification.models`): an achievement unlocked, a
challenge joined and how it ended, a reputation grant. :func:`evaluate_user` brings those up
to date; it is idempotent and safe to run concurrently: it starts by taking the user's row
lock (an ``UPDATE`` of the row, which also takes SQLite's write lock up front), and each
grant is an insert keyed ``(user_id, key)`` that does nothing on conflict, so a grant is
given — and added to ``users.reputation`` — exactly once.

Transactions: functions that take a viewer own their transactions (call them with no
transaction open); :func:`activate_default_challenges` and :func:`grant_reputation` run
inside the caller's transaction.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import User
from api.db import new_id
from api.deps import Principal
from api.errors import ConflictError, NotFoundError, UnprocessableError
from api.gamification.models import ReputationGrant, UserAchievement, UserChallenge
from api.gamification.rules import (
    ACHIEVEMENTS,
    DEFAULT_CHALLENGES,
    AchievementProgress,
    ChallengeMetric,
    ChallengeRule,
    StreakState,
    achievement_progress,
    achievement_stats,
    challenge_deadline,
    challenge_progress,
    compute_streak,
    practice_days,
    reputation_for,
    session_points,
    streak_milestones_crossed,
    week_start,
)
from api.gamification.schemas import (
    AchievementListResponse,
    AchievementResponse,
    ChallengeListResponse,
    ChallengeResponse,
    ChallengeStatus,
    EvaluationResponse,
    PointsResponse,
    ReputationGrantResponse,
    ReputationResponse,
    SessionPointsResponse,
    StreakResponse,
)
from api.pagination import decode_time_id_cursor, encode_time_id_cursor, keyset_before, split_page
from api.practice.models import PracticeSession
from api.progress.facts import (
    FACT_COLUMNS,
    ActiveStudent,
    SessionRow,
    active_student,
    facts_for_rows,
    load_facts,
)
from api.progress.rules import SessionFacts, local_day, require_aware
from api.teaching.access import ensure_can_view_student

__all__ = [
    "CHALLENGE_CATALOGUE",
    "Evaluation",
    "activate_default_challenges",
    "evaluate_user",
    "get_achievements",
    "get_points",
    "get_reputation",
    "get_streak",
    "grant_reputation",
    "iter_facts",
    "join_challenge",
    "list_challenges",
    "load_facts_for_students",
]

CHALLENGE_CATALOGUE: dict[str, ChallengeRule] = {rule.code: rule for rule in DEFAULT_CHALLENGES}
"""Challenges a student may join (again), by code."""

_ACHIEVEMENT_RULES = {rule.code: rule for rule in ACHIEVEMENTS}
_PAGE = 1000
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class _UserRow:
    id: uuid.UUID
    role: str
    status: str
    timezone: str
    reputation: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What :func:`evaluate_user` found and changed.

    Attributes
    ----------
    unlocked : tuple of str
        Achievement codes unlocked by this call.
    completed_challenges, expired_challenges : tuple of UUID
        Challenges this call marked completed or expired.
    granted : tuple of str
        Reputation grant keys given by this call.
    reputation_gained : int
        Their points.
    reputation : int
        The user's reputation afterwards.
    achievements : tuple of AchievementProgress
        Progress towards every achievement, in catalogue order.
    achieved_at : dict of str to datetime
        Every unlocked achievement (before and now) and when.
    streak : StreakState or None
        The streak as of ``now`` (None for a user who is not an active student).
    """

    unlocked: tuple[str, ...] = ()
    completed_challenges: tuple[uuid.UUID, ...] = ()
    expired_challenges: tuple[uuid.UUID, ...] = ()
    granted: tuple[str, ...] = ()
    reputation_gained: int = 0
    reputation: int = 0
    achievements: tuple[AchievementProgress, ...] = ()
    achieved_at: dict[str, datetime] | None = None
    streak: StreakState | None = None

    def response(self) -> EvaluationResponse:
        """The HTTP body."""
        return EvaluationResponse(
            unlocked=list(self.unlocked),
            completed_challenges=list(self.completed_challenges),
            expired_challenges=list(self.expired_challenges),
            granted=list(self.granted), reputation_gained=self.reputation_gained,
            reputation=self.reputation,
        )


# ------------------------------------------------------------------------------ helpers


def _insert(db: AsyncSession) -> Callable[..., Any]:
    """The dialect's ``insert`` (with ``on_conflict_do_nothing``)."""
    return pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert


async def _lock_user(db: AsyncSession, user_id: uuid.UUID) -> _UserRow:
    """Lock the user's row until commit (a no-op ``UPDATE``: a row lock on PostgreSQL, the
    write lock on SQLite) and return it; 404 if there is no such user."""
    row = (
        await db.execute(
            update(User).where(User.id == user_id)
            .values(reputation=User.reputation, updated_at=User.updated_at)
            .returning(User.id, User.role, User.status, User.timezone, User.reputation)
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"user {user_id} does not exist")
    return _UserRow(*row)


async def _viewable_student(db: AsyncSession, viewer: Principal,
                            student_id: uuid.UUID) -> ActiveStudent:
    """403 unless ``viewer`` may see the student's data, then 404 unless they exist."""
    await ensure_can_view_student(db, viewer, student_id)
    student = await active_student(db, student_id)
    if student is None:
        raise NotFoundError(f"no student {student_id}")
    return student


def _rule_of(row: UserChallenge) -> ChallengeRule:
    known = CHALLENGE_CATALOGUE.get(row.code)
    days = max(1, math.ceil((row.deadline - row.started_at).total_seconds() / 86_400))
    metric: ChallengeMetric = row.metric  # type: ignore[assignment]
    return ChallengeRule(row.code, known.title if known else row.code, metric, row.target, days)


def _challenge(row: UserChallenge, current: float) -> ChallengeResponse:
    rule = _rule_of(row)
    status: ChallengeStatus = row.status  # type: ignore[assignment]
    return ChallengeResponse(
        id=row.id, code=row.code, title=rule.title, metric=row.metric, target=row.target,
        current=current, status=status, started_at=row.started_at, deadline=row.deadline,
        completed_at=row.completed_at,
    )


# ----------------------------------------------------------------------- facts in bulk


async def iter_facts(
    db: AsyncSession, *, since: datetime, until: datetime,
    student_ids: Sequence[uuid.UUID] | None = None, page_size: int = _PAGE,
    pieces: bool = True,
) -> AsyncIterator[list[SessionFacts]]:
    """Facts of the active sessions of active students started in ``[since, until)``,
    page by page (``page_size`` sessions, oldest first), each reduced to its best source
    exactly as :func:`api.progress.facts.load_facts` does.

    Parameters
    ----------
    db : AsyncSession
        Read inside the caller's transaction (or autobegun).
    since, until : datetime
        The window (aware).
    student_ids : sequence of UUID, optional
        Only these students (queried in chunks); all students when None.
    page_size : int
        Sessions per query, >= 1.
    pieces : bool
        False leaves ``piece_ids`` empty (two queries fewer per page).
    """
    require_aware("since", since)
    require_aware("until", until)
    groups: list[Sequence[uuid.UUID] | None] = (
        [None] if student_ids is None
        else [student_ids[i:i + _CHUNK] for i in range(0, len(student_ids), _CHUNK)]
    )
    for group in groups:
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            stmt = (
                select(*FACT_COLUMNS)
                .join(User, User.id == PracticeSession.student_id)
                .where(PracticeSession.status == "active", User.status == "active",
                       User.role == "student", PracticeSession.started_at >= since,
                       PracticeSession.started_at < until)
            )
            if group is not None:
                stmt = stmt.where(PracticeSession.student_id.in_(group))
            if after is not None:
                at, last_id = after
                stmt = stmt.where(
                    (PracticeSession.started_at > at)
                    | ((PracticeSession.started_at == at) & (PracticeSession.id > last_id))
                )
            stmt = stmt.order_by(PracticeSession.started_at, PracticeSession.id).limit(page_size)
            rows: list[SessionRow] = list((await db.execute(stmt)).all())
            if not rows:
                break
            yield await facts_for_rows(db, rows, pieces=pieces)
            if len(rows) < page_size:
                break
            after = (rows[-1].started_at, rows[-1].id)


async def load_facts_for_students(
    db: AsyncSession, student_ids: Sequence[uuid.UUID] | None, *, since: datetime,
    until: datetime,
) -> dict[uuid.UUID, list[SessionFacts]]:
    """Facts per student (oldest first) for sessions started in ``[since, until)``; every
    student with a session there is a key. ``student_ids`` None means all students."""
    out: dict[uuid.UUID, list[SessionFacts]] = {}
    async for page in iter_facts(db, since=since, until=until, student_ids=student_ids):
        for f in page:
            out.setdefault(f.student_id, []).append(f)
    return out


# ---------------------------------------------------------------------------- reputation


async def grant_reputation(db: AsyncSession, user_id: uuid.UUID, key: str, points: int, *,
                           now: datetime) -> bool:
    """Give ``points`` to the user once for ``key`` (inside the caller's transaction).

    The grant row is inserted with ``ON CONFLICT DO NOTHING`` on ``(user_id, key)``; only
    when it was inserted is ``users.reputation`` raised, so a repeated or concurrent call
    changes nothing. Returns True when this call granted.
    """
    if not key or len(key) > 96:
        raise UnprocessableError(f"reputation key {key!r} must be 1..96 characters")
    stmt = _insert(db)(ReputationGrant).values(
        user_id=user_id, key=key, points=points, granted_at=now
    ).on_conflict_do_nothing(index_elements=["user_id", "key"])
    result = await db.execute(stmt)
    if not getattr(result, "rowcount", 0):
        return False
    await db.execute(
        update(User).where(User.id == user_id)
        .values(reputation=User.reputation + points, updated_at=User.updated_at)
    )
    return True


async def get_reputation(db: AsyncSession, user_id: uuid.UUID, *,
                         limit: int) -> ReputationResponse:
    """A user's reputation and latest ``limit`` grants (404 for unknown or deleted users)."""
    async with db.begin():
        user = await db.get(User, user_id)
        if user is None or user.status != "active":
            raise NotFoundError(f"no user {user_id}")
        grants = (
            await db.execute(
                select(ReputationGrant).where(ReputationGrant.user_id == user_id)
                .order_by(ReputationGrant.granted_at.desc(), ReputationGrant.key)
                .limit(limit)
            )
        ).scalars().all()
        return ReputationResponse(
            user_id=user.id, reputation=user.reputation,
            grants=[ReputationGrantResponse(key=g.key, points=g.points, granted_at=g.granted_at)
                    for g in grants],
        )


# ---------------------------------------------------------------------------- challenges


async def activate_default_challenges(
    db: AsyncSession, user_id: uuid.UUID, now: datetime
) -> list[UserChallenge]:
    """Start every challenge of :data:`~api.gamification.rules.DEFAULT_CHALLENGES` the user
    never had, from ``now`` to :func:`~api.gamification.rules.challenge_deadline`.

    Idempotent (a code the user ever had is skipped). Runs inside the caller's transaction
    (call it from registration's); the caller commits. Returns the rows created.
    """
    require_aware("now", now)
    had = set(
        (await db.execute(select(UserChallenge.code).where(UserChallenge.user_id == user_id)))
        .scalars()
    )
    rows = [
        UserChallenge(id=new_id(), user_id=user_id, code=rule.code, metric=rule.metric,
                      target=float(rule.target), started_at=now,
                      deadline=challenge_deadline(rule, now), status="active")
        for rule in DEFAULT_CHALLENGES if rule.code not in had
    ]
    db.add_all(rows)
    await db.flush()
    return rows


async def join_challenge(db: AsyncSession, user_id: uuid.UUID, code: str, *,
                         now: datetime) -> ChallengeResponse:
    """Join the catalogue challenge ``code`` again from ``now`` (422 unknown code, 409 if
    one of that code is still active)."""
    rule = CHALLENGE_CATALOGUE.get(code)
    if rule is None:
        raise UnprocessableError(
            f"unknown challenge {code!r}; expected one of {tuple(CHALLENGE_CATALOGUE)}",
            code="unknown_challenge",
        )
    await evaluate_user(db, user_id, now)  # ends the challenges whose time is up
    async with db.begin():
        user = await _lock_user(db, user_id)
        if user.status != "active" or user.role != "student":
            raise NotFoundError(f"no student {user_id}")
        active = (
            await db.execute(
                select(UserChallenge.id).where(
                    UserChallenge.user_id == user_id, UserChallenge.code == code,
                    UserChallenge.status == "active",
                ).limit(1)
            )
        ).scalar_one_or_none()
        if active is not None:
            raise ConflictError(
                f"challenge {code!r} is still active ({active}); join again once it ended",
                code="challenge_active",
            )
        row = UserChallenge(id=new_id(), user_id=user_id, code=code, metric=rule.metric,
                            target=float(rule.target), started_at=now,
                            deadline=challenge_deadline(rule, now), status="active")
        db.add(row)
        await db.flush()
    return _challenge(row, 0.0)


async def list_challenges(
    db: AsyncSession, viewer: Principal, student_id: uuid.UUID, *, now: datetime,
    limit: int, cursor: str | None,
) -> ChallengeListResponse:
    """The student's challenges, newest first, after an evaluation."""
    after = decode_time_id_cursor(cursor, kind="challenges") if cursor else None
    async with db.begin():
        await _viewable_student(db, viewer, student_id)
    await evaluate_user(db, student_id, now)
    async with db.begin():
        stmt = select(UserChallenge).where(UserChallenge.user_id == student_id)
        if after is not None:
            stmt = stmt.where(keyset_before(UserChallenge.started_at, UserChallenge.id, after))
        rows = (
            await db.execute(
                stmt.order_by(UserChallenge.started_at.desc(), UserChallenge.id.desc())
                .limit(limit + 1)
            )
        ).scalars().all()
        page, next_cursor = split_page(
            rows, limit, lambda r: encode_time_id_cursor("challenges", r.started_at, r.id)
        )
        facts: list[SessionFacts] = []
        if page:
            facts = await load_facts(db, student_id, since=min(r.started_at for r in page),
                                     until=max(r.deadline for r in page))
    items = [
        _challenge(row, challenge_progress(_rule_of(row), row.started_at, row.deadline,
                                           facts, now).current)
        for row in page
    ]
    return ChallengeListResponse(items=items, next_cursor=next_cursor)


# ---------------------------------------------------------------------------- evaluation


async def evaluate_user(db: AsyncSession, user_id: uuid.UUID, now: datetime) -> Evaluation:
    """Bring the user's stored achievements, challenges and reputation up to date.

    In one transaction (call with none open), holding the user's row lock: unlock the
    achievements reached (one row each, ``achieved_at`` = ``now``); mark active challenges
    completed or expired (:func:`~api.gamification.rules.challenge_progress`); grant
    reputation once per key — ``achievement:<code>``, ``streak:<days>`` for each streak
    milestone reached, ``challenge:<id>`` for a completed challenge — adding it to
    ``users.reputation``. Students who never had a challenge get the default ones first
    (accounts registered before challenges existed). Idempotent; concurrent calls grant
    once. A user who is not an active student gets an empty evaluation.

    Parameters
    ----------
    db : AsyncSession
        A session with no transaction open.
    user_id : UUID
        The user (404 if unknown).
    now : datetime
        The current instant (aware).

    Returns
    -------
    Evaluation
        What changed, and the current progress.
    """
    require_aware("now", now)
    async with db.begin():
        user = await _lock_user(db, user_id)
        if user.status != "active" or user.role != "student":
            return Evaluation(reputation=user.reputation, achieved_at={})
        await activate_default_challenges(db, user_id, now)
        facts = await load_facts(db, user_id)
        streak = compute_streak(practice_days(facts, user.timezone),
                                local_day(now, user.timezone))
        progress = achievement_progress(
            achievement_stats(facts, longest_streak_days=streak.longest_days)
        )
        achieved_at: dict[str, datetime] = dict(
            (await db.execute(
                select(UserAchievement.code, UserAchievement.achieved_at)
                .where(UserAchievement.user_id == user_id)
            )).all()
        )
        unlocked = [p.code for p in progress if p.achieved and p.code not in achieved_at]
        insert = _insert(db)
        for code in unlocked:
            await db.execute(
                insert(UserAchievement).values(user_id=user_id, code=code, achieved_at=now)
                .on_conflict_do_nothing(index_elements=["user_id", "code"])
            )
            achieved_at[code] = now
        completed: list[uuid.UUID] = []
        expired: list[uuid.UUID] = []
        active = (
            await db.execute(
                select(UserChallenge).where(UserChallenge.user_id == user_id,
                                            UserChallenge.status == "active")
            )
        ).scalars().all()
        for row in active:
            state = challenge_progress(_rule_of(row), row.started_at, row.deadline, facts, now)
            if state.completed:
                row.status, row.completed_at = "completed", state.completed_at
                completed.append(row.id)
            elif state.expired:
                row.status = "expired"
                expired.append(row.id)
        await db.flush()
        wanted: list[tuple[str, int]] = [
            (f"achievement:{code}", reputation_for("achievement"))
            for code in sorted(achieved_at) if code in _ACHIEVEMENT_RULES
        ]
        wanted += [(f"streak:{days}", reputation_for("streak_milestone"))
                   for days in streak_milestones_crossed(0, streak.longest_days)]
        done = (
            await db.execute(
                select(UserChallenge.id).where(UserChallenge.user_id == user_id,
                                               UserChallenge.status == "completed")
            )
        ).scalars().all()
        wanted += [(f"challenge:{cid}", reputation_for("challenge_completed")) for cid in done]
        have = set(
            (await db.execute(
                select(ReputationGrant.key).where(ReputationGrant.user_id == user_id)
            )).scalars()
        )
        granted: list[str] = []
        gained = 0
        for key, points in wanted:
            if key not in have and await grant_reputation(db, user_id, key, points, now=now):
                granted.append(key)
                gained += points
        return Evaluation(
            unlocked=tuple(unlocked), completed_challenges=tuple(completed),
            expired_challenges=tuple(expired), granted=tuple(granted),
            reputation_gained=gained, reputation=user.reputation + gained,
            achievements=tuple(progress), achieved_at=achieved_at, streak=streak,
        )


async def get_achievements(db: AsyncSession, viewer: Principal, student_id: uuid.UUID, *,
                           now: datetime) -> AchievementListResponse:
    """Every achievement with the student's progress, after an evaluation."""
    async with db.begin():
        await _viewable_student(db, viewer, student_id)
    result = await evaluate_user(db, student_id, now)
    achieved_at = result.achieved_at or {}
    items = []
    for p in result.achievements:
        rule = _ACHIEVEMENT_RULES[p.code]
        at = achieved_at.get(p.code)
        items.append(AchievementResponse(
            code=p.code, title=rule.title, description=rule.description, unit=rule.unit,
            current=p.current, target=p.target, achieved=at is not None, achieved_at=at,
        ))
    return AchievementListResponse(student_id=student_id, items=items)


# ------------------------------------------------------------------------ points, streak


async def get_points(db: AsyncSession, viewer: Principal, student_id: uuid.UUID, *,
                     now: datetime, limit: int) -> PointsResponse:
    """All-time and this week's points and the latest ``limit`` sessions' points."""
    async with db.begin():
        student = await _viewable_student(db, viewer, student_id)
        facts = await load_facts(db, student_id, pieces=False, version=student.version)
    start = week_start(now)
    end = start + timedelta(days=7)
    points = [session_points(f) for f in facts]
    recent = list(zip(facts, points, strict=True))[-limit:][::-1]
    return PointsResponse(
        student_id=student_id,
        total_points=sum(points),
        week_points=sum(p for f, p in zip(facts, points, strict=True)
                        if start <= f.started_at < end),
        week_start=start,
        sessions=[SessionPointsResponse(session_id=f.session_id, started_at=f.started_at,
                                        source=f.source, minutes=f.minutes,
                                        accuracy_pct=f.accuracy_pct, points=p)
                  for f, p in recent],
    )


async def get_streak(db: AsyncSession, viewer: Principal, student_id: uuid.UUID, *,
                     now: datetime) -> StreakResponse:
    """The streak in the student's time zone as of ``now``."""
    async with db.begin():
        student = await _viewable_student(db, viewer, student_id)
        tz = student.timezone
        facts = await load_facts(db, student_id, pieces=False, version=student.version)
    today = local_day(now, tz)
    streak = compute_streak(practice_days(facts, tz), today)
    return StreakResponse(
        student_id=student_id, timezone=tz, today=today, current_days=streak.current_days,
        longest_days=streak.longest_days, freezes_available=streak.freezes_available,
        frozen_days=list(streak.frozen_days), last_practice_day=streak.last_practice_day,
    )
