"""The weekly leaderboard: global or per studio, by points or by accuracy gained.

Weeks are ISO weeks from Monday 00:00 UTC (:func:`~api.gamification.rules.week_start`).
Scores come from each session's best source, so nothing counts twice; entries show a display
name and a score only; deleted users and non-students never appear.

Two back ends give the same board:

* **Database** (always for ``by=accuracy_gain``; for points without Redis): the week's
  sessions are read page by page (:func:`api.gamification.service.iter_facts`) and summed
  per student.
* **Redis** (points, when ``state.redis`` is set): the sorted set
  ``<prefix>:lb:<YYYY-MM-DD>:points`` holds each student's weekly total. It is *set*
  (``ZADD``), never incremented, by :func:`refresh_user_week` from the database or by
  :func:`refresh_user_week_from` from the facts a write has just cached, so a
  recomputation is idempotent; the hash ``<prefix>:lb:<YYYY-MM-DD>:versions`` keeps the
  student's data version of each total, and a total of an older version is not set (writes
  of one student refresh in any order). The set is rebuilt from the database when its marker
  ``<prefix>:lb:<YYYY-MM-DD>:built`` is missing (first use, or every
  :data:`REBUILD_EVERY_S`), which heals anything a missed refresh left stale. The top is
  read with ``ZREVRANGE`` plus every member tied with the last one, then ranked by the same
  rule as the database board (competition ranking, ties by user id); a studio board reads its
  members' scores with ``ZMSCORE``.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal, cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import User
from api.deps import Principal
from api.errors import ForbiddenError, NotFoundError, UnprocessableError
from api.fastsql import Query
from api.gamification.rules import RankedEntry, accuracy_gain, rank, session_points, week_start
from api.gamification.schemas import (
    LeaderboardBy,
    LeaderboardEntry,
    LeaderboardResponse,
    LeaderboardScope,
)
from api.gamification.service import iter_facts
from api.progress.factcache import FACTS_CACHE_KEY, FactsVersion
from api.progress.facts import facts_between, load_facts
from api.progress.rules import SessionFacts
from api.state import AppState
from api.teaching.models import TeacherStudentLink

__all__ = [
    "REBUILD_EVERY_S",
    "WEEK_KEY_TTL_S",
    "leaderboard",
    "refresh_user_week",
    "refresh_user_week_from",
    "week_key",
]

log = logging.getLogger("api.gamification")

REBUILD_EVERY_S: Final = 3600
"""How long a week's sorted set is trusted before it is rebuilt from the database."""
WEEK_KEY_TTL_S: Final = 60 * 86_400
"""A week's sorted set lives this long after its last write."""
MIN_WEEK: Final = date(1970, 1, 5)
MAX_WEEK: Final = date(9998, 12, 28)
_CHUNK = 500
_WEEK = timedelta(days=7)


def week_key(prefix: str, week: date) -> str:
    """The sorted set of the week starting on Monday ``week``."""
    return f"{prefix}:lb:{week.isoformat()}:points"


def _built_key(prefix: str, week: date) -> str:
    return f"{prefix}:lb:{week.isoformat()}:built"


def _versions_key(prefix: str, week: date) -> str:
    return f"{prefix}:lb:{week.isoformat()}:versions"


def _monday(value: date | datetime) -> datetime:
    """Monday 00:00 UTC of the week containing ``value`` (a date is taken as UTC)."""
    if isinstance(value, datetime):
        return week_start(value)
    return week_start(datetime(value.year, value.month, value.day, tzinfo=UTC))


# --------------------------------------------------------------------------- the scores


async def _db_points(db: AsyncSession, start: datetime,
                     members: Sequence[uuid.UUID] | None) -> dict[uuid.UUID, float]:
    scores: dict[uuid.UUID, float] = defaultdict(float)
    async for page in iter_facts(db, since=start, until=start + _WEEK, student_ids=members,
                                 pieces=False):
        for f in page:
            scores[f.student_id] += session_points(f)
    return dict(scores)


async def _db_accuracy_gain(db: AsyncSession, start: datetime,
                            members: Sequence[uuid.UUID] | None) -> dict[uuid.UUID, float]:
    this: dict[uuid.UUID, list[float]] = defaultdict(list)
    last: dict[uuid.UUID, list[float]] = defaultdict(list)
    async for page in iter_facts(db, since=start - _WEEK, until=start + _WEEK,
                                 student_ids=members, pieces=False):
        for f in page:
            if f.accuracy_pct is not None:
                (this if f.started_at >= start else last)[f.student_id].append(f.accuracy_pct)
    out: dict[uuid.UUID, float] = {}
    for user_id, values in this.items():
        gain = accuracy_gain(values, last.get(user_id, []))
        if gain is not None:
            out[user_id] = gain
    return out


_STUDENT_VERSION = Query(lambda member: (
    select(User.change_seq, User.facts_seq)
    .where(User.id == bindparam("user_id"), User.status == "active", User.role == "student")
))


async def _user_week_points(db: AsyncSession, user_id: uuid.UUID,
                            start: datetime) -> tuple[float | None, FactsVersion | None]:
    """The student's points in the week from ``start`` with the data version they were
    read at; ``(None, None)`` when there is no such active student."""
    found = await _STUDENT_VERSION.rows(db, user_id=user_id)
    if not found:  # no such user, or no longer an active student
        return None, None
    version = (int(found[0][0]), int(found[0][1]))
    # through the facts cache, which the write has usually extended to the new version.
    # A student not cached yet is loaded whole, so that the next writes extend it. When an
    # entry of another version is there (concurrent writes of the student extended it out
    # of order, or another worker wrote), only the week is read: reloading the whole history
    # took long enough for the next writes to miss too (a sync batch of a student with
    # thousands of sessions, 16 at once: 4 -> 69 ms of CPU each in the wrk floor once)
    cache = db.info.get(FACTS_CACHE_KEY)
    facts = await load_facts(db, user_id, since=start, until=start + _WEEK, pieces=False,
                             version=version, fill=cache is None or not cache.holds(user_id))
    return _points(facts), version


def _points(facts: Sequence[SessionFacts]) -> float | None:
    return float(sum(session_points(f) for f in facts)) if facts else None


async def refresh_user_week(
    state: AppState, db: AsyncSession, user_id: uuid.UUID, week: date | datetime
) -> float | None:
    """Set the user's total of the week containing ``week`` in the Redis sorted set.

    Call it after a write to the user's sessions or metrics has committed (for an edit that
    moves a session to another week, for both weeks). The total is recomputed from the
    database and set (or the member removed when the user has no session that week, or is
    no longer an active student), so calling it twice changes nothing; a total read at an
    older data version than the one the board holds for the user is not set (see
    :func:`refresh_user_week_from`). A no-op without Redis; a Redis failure is logged, not
    raised (the periodic rebuild heals it).

    Parameters
    ----------
    state : AppState
        For ``state.redis`` and the key prefix.
    db : AsyncSession
        Read in the caller's open transaction, else in a short one of its own.
    user_id : UUID
        The student.
    week : date or datetime
        Any day (taken as UTC) or aware instant of the week.

    Returns
    -------
    float or None
        The total set; None when removed or not set, or without Redis.
    """
    if state.redis is None:
        return None
    start = _monday(week)
    if db.in_transaction():
        score, version = await _user_week_points(db, user_id, start)
    else:
        async with db.begin():
            score, version = await _user_week_points(db, user_id, start)
    return await _set_score(state, user_id, start, score, version)


async def refresh_user_week_from(
    state: AppState, user_id: uuid.UUID, week: date | datetime,
    facts: Sequence[SessionFacts], version: FactsVersion,
) -> float | None:
    """:func:`refresh_user_week` from the student's whole history ``facts`` (oldest
    first) at data ``version`` instead of the database: for a write that has just extended
    the facts cache to the version it committed (:func:`api.metrics.hooks.sessions_added`).

    Concurrent writes of a student refresh in any order, so each total is set with its
    version (the sum of the two counters, which every write of the student raises) and
    Redis keeps the newer: a total of an older version than the one set before is dropped.
    """
    if state.redis is None:
        return None
    start = _monday(week)
    return await _set_score(state, user_id, start,
                            _points(facts_between(facts, start, start + _WEEK)), version)


# KEYS: the week's sorted set, its versions (a hash: member -> the version of its total).
# ARGV: the member, its version ('' when unknown: the member is removed whatever the hash
# holds), its total ('' to remove it), the keys' time to live (set with a new member).
_SET_SCORE = """
local version = tonumber(ARGV[2])
if version then
  local seen = tonumber(redis.call('HGET', KEYS[2], ARGV[1]))
  if seen and seen > version then return 0 end
  if redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) == 1 then
    redis.call('EXPIRE', KEYS[2], ARGV[4])
  end
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
elseif redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return 1
"""


_SCRIPTS: weakref.WeakKeyDictionary[aioredis.Redis, AsyncScript] = weakref.WeakKeyDictionary()


def _score_script(client: aioredis.Redis) -> AsyncScript:
    """:data:`_SET_SCORE` registered once per client (as the rate limiter's script is)."""
    script = _SCRIPTS.get(client)
    if script is None:
        script = _SCRIPTS[client] = client.register_script(_SET_SCORE)
    return script


async def _set_score(state: AppState, user_id: uuid.UUID, start: datetime,
                     score: float | None, version: FactsVersion | None) -> float | None:
    """Set (or with ``score`` None remove) the member in one round trip, unless the board
    holds a total of a newer version for it; returns the score set."""
    assert state.redis is not None
    prefix = state.settings.redis.key_prefix
    week = start.date()
    try:
        applied = await _score_script(state.redis)(
            keys=[week_key(prefix, week), _versions_key(prefix, week)],
            args=[str(user_id), "" if version is None else version[0] + version[1],
                  "" if score is None else repr(score), WEEK_KEY_TTL_S],
        )
    except RedisError as exc:
        log.warning("leaderboard: could not refresh %s for week %s: %s", user_id, week, exc)
        return None
    return score if applied else None


async def _ensure_built(state: AppState, db: AsyncSession, start: datetime) -> None:
    """Rebuild the week's sorted set from the database unless its marker is present."""
    assert state.redis is not None
    prefix = state.settings.redis.key_prefix
    week = start.date()
    if await state.redis.exists(_built_key(prefix, week)):
        return
    scores = await _db_points(db, start, None)
    key = week_key(prefix, week)
    tmp = f"{key}:rebuild:{uuid.uuid4().hex}"
    items = [(str(uid), score) for uid, score in scores.items()]
    async with state.redis.pipeline(transaction=True) as pipe:
        for i in range(0, len(items), 1000):
            pipe.zadd(tmp, dict(items[i:i + 1000]))
        if items:
            pipe.rename(tmp, key)
            pipe.expire(key, WEEK_KEY_TTL_S)
        else:
            pipe.delete(key)
        pipe.set(_built_key(prefix, week), "1", ex=REBUILD_EVERY_S)
        await pipe.execute()


_ACTIVE_STUDENTS = Query(lambda member: (
    select(User.id, User.display_name)
    .where(member(User.id, "ids"), User.status == "active", User.role == "student")
))
_NAMES = Query(lambda member: select(User.id, User.display_name).where(member(User.id, "ids")))


async def _valid_students(db: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Which of ``ids`` are active students, with their display names."""
    ids = list(ids)
    out: dict[uuid.UUID, str] = {}
    for i in range(0, len(ids), _CHUNK):
        out.update(await _ACTIVE_STUDENTS.rows(db, ids=ids[i:i + _CHUNK]))
    return out


def _member_id(raw: bytes | str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Board:
    top: list[RankedEntry]
    me: RankedEntry | None
    total: int
    names: Mapping[uuid.UUID, str] | None = None  # display names, when read on the way


def _board(scores: dict[uuid.UUID, float], viewer_id: uuid.UUID, limit: int) -> _Board:
    ranked = rank(list(scores.items()))
    me = next((e for e in ranked if e.user_id == viewer_id), None)
    return _Board(top=ranked[:limit], me=me, total=len(ranked))


async def _redis_global(state: AppState, db: AsyncSession, start: datetime,
                        viewer_id: uuid.UUID, limit: int) -> _Board:
    """The global board from the week's sorted set (rebuilt first when its marker is gone):
    one Redis round trip and one database read (who of the top and the viewer are active
    students, with the names the board shows), one more when the viewer is outside the top
    (how many score above them), one more when ties reach past the top."""
    assert state.redis is not None
    r = state.redis
    prefix = state.settings.redis.key_prefix
    key = week_key(prefix, start.date())
    candidates: list[tuple[uuid.UUID, float]] = []
    valid: dict[uuid.UUID, str] = {}
    viewer_score: float | None = None
    total = 0
    attempts, rebuilt = 0, False
    while attempts < 3:
        # the marker, one past the top, the viewer's score and the board's size at once
        async with r.pipeline(transaction=False) as pipe:
            pipe.exists(_built_key(prefix, start.date()))
            pipe.zrevrange(key, 0, limit, withscores=True)
            pipe.zscore(key, str(viewer_id))
            pipe.zcard(key)
            built, top_raw, viewer_raw, total_raw = await pipe.execute()
        if not built and not rebuilt:
            await _ensure_built(state, db, start)
            rebuilt = True
            continue
        attempts += 1
        top = cast(list[tuple[bytes, float]], top_raw)
        viewer_score = None if viewer_raw is None else float(viewer_raw)
        total = int(total_raw)
        if len(top) > limit and top[limit][1] == top[limit - 1][1]:
            # ties reach past the top: every member tied with its last one, so they rank right
            top = cast(list[tuple[bytes, float]],
                       await r.zrevrangebyscore(key, "+inf", top[limit - 1][1], withscores=True))
        parsed = {raw: _member_id(raw) for raw, _score in top}
        valid = await _valid_students(
            db, {*(uid for uid in parsed.values() if uid is not None), viewer_id})
        stale = [raw for raw, uid in parsed.items() if uid is None or uid not in valid]
        candidates = [(uid, float(score)) for raw, score in top
                      if (uid := parsed[raw]) is not None and uid in valid]
        if not stale:
            break
        # deleted (or demoted) users leave the board for good
        total -= int(await r.zrem(key, *stale))
    ranked = rank(candidates)[:limit]
    me = next((e for e in ranked if e.user_id == viewer_id), None)
    if me is None and viewer_score is not None and viewer_id in valid:
        higher = await r.zcount(key, f"({viewer_score!r}", "+inf")
        me = RankedEntry(rank=int(higher) + 1, user_id=viewer_id, score=viewer_score)
    return _Board(top=ranked, me=me, total=total, names=valid)


async def _redis_members(state: AppState, start: datetime,
                         members: Sequence[uuid.UUID]) -> dict[uuid.UUID, float]:
    assert state.redis is not None
    key = week_key(state.settings.redis.key_prefix, start.date())
    scores: dict[uuid.UUID, float] = {}
    for i in range(0, len(members), _CHUNK):
        chunk = members[i:i + _CHUNK]
        values = await state.redis.zmscore(key, [str(m) for m in chunk])
        scores.update({m: float(v) for m, v in zip(chunk, values, strict=True) if v is not None})
    return scores


# ---------------------------------------------------------------------------- the route


async def _studio(db: AsyncSession, viewer: Principal,
                  teacher_id: uuid.UUID | None) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """The studio's teacher and its active students, after checking the viewer may see it."""
    if teacher_id is None:
        if viewer.role != "teacher":
            raise UnprocessableError("teacher_id is required for scope=studio",
                                     code="teacher_id_required")
        teacher_id = viewer.id
    if viewer.role == "teacher" and teacher_id != viewer.id:
        raise ForbiddenError(f"you may not see the studio of teacher {teacher_id}")
    if viewer.role == "student":
        linked = (await db.execute(
            select(TeacherStudentLink.id).where(
                TeacherStudentLink.teacher_id == teacher_id,
                TeacherStudentLink.student_id == viewer.id,
                TeacherStudentLink.status == "active",
            ).limit(1)
        )).scalar_one_or_none()
        if linked is None:
            raise ForbiddenError(f"you are not a student of teacher {teacher_id}")
    teacher = await db.get(User, teacher_id)
    if teacher is None or teacher.role != "teacher" or teacher.status != "active":
        raise NotFoundError(f"no teacher {teacher_id}")
    members = list((await db.execute(
        select(TeacherStudentLink.student_id)
        .join(User, User.id == TeacherStudentLink.student_id)
        .where(TeacherStudentLink.teacher_id == teacher_id,
               TeacherStudentLink.status == "active", User.status == "active",
               User.role == "student")
        .distinct()
    )).scalars())
    return teacher_id, members


def _check_week(week: date | None, now: datetime) -> datetime:
    if week is None:
        return week_start(now)
    if week.weekday() != 0:
        raise UnprocessableError(f"week {week.isoformat()} is not a Monday",
                                 code="week_not_monday")
    if not MIN_WEEK <= week <= MAX_WEEK:
        raise UnprocessableError(
            f"week {week.isoformat()} is out of range ({MIN_WEEK}..{MAX_WEEK})"
        )
    return datetime(week.year, week.month, week.day, tzinfo=UTC)


async def leaderboard(
    state: AppState, db: AsyncSession, viewer: Principal, *, scope: LeaderboardScope,
    by: LeaderboardBy, week: date | None, teacher_id: uuid.UUID | None, limit: int,
    now: datetime,
) -> LeaderboardResponse:
    """The weekly board (see the module docstring); call with no transaction open.

    Raises 422 for a week that is not a Monday, ``teacher_id`` with ``scope=global``, or
    ``scope=studio`` without ``teacher_id`` from a non-teacher; 403 for a studio the viewer
    does not belong to; 404 for an unknown teacher.
    """
    start = _check_week(week, now)
    if scope == "global" and teacher_id is not None:
        raise UnprocessableError("teacher_id applies only to scope=studio")
    source: Literal["redis", "database"] = "database"
    async with db.begin():
        members: list[uuid.UUID] | None = None
        if scope == "studio":
            teacher_id, members = await _studio(db, viewer, teacher_id)
        board: _Board | None = None
        if by == "points" and state.redis is not None:
            try:
                if members is None:
                    board = await _redis_global(state, db, start, viewer.id, limit)
                else:
                    await _ensure_built(state, db, start)
                    board = _board(await _redis_members(state, start, members), viewer.id,
                                   limit)
                source = "redis"
            except RedisError as exc:
                log.warning("leaderboard: Redis failed (%s); reading the database", exc)
        if board is None:
            scores = (await _db_points(db, start, members) if by == "points"
                      else await _db_accuracy_gain(db, start, members))
            board = _board(scores, viewer.id, limit)
        shown = {e.user_id for e in (*board.top, *([board.me] if board.me else []))}
        names: Mapping[uuid.UUID, str] = board.names or {}
        if not shown <= names.keys():
            names = dict(await _NAMES.rows(db, ids=list(shown)))

    def entry(e: RankedEntry) -> LeaderboardEntry:
        return LeaderboardEntry(rank=e.rank, user_id=e.user_id,
                                display_name=names.get(e.user_id, ""), score=e.score)

    return LeaderboardResponse(
        scope=scope, by=by, week=start.date(), teacher_id=teacher_id,
        items=[entry(e) for e in board.top],
        me=entry(board.me) if board.me is not None else None,
        total_entries=board.total, source=source,
    )
