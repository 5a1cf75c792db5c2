"""Load a student's sessions as :class:`~api.progress.rules.SessionFacts`, each reduced to
its best source (recording over stream over manual), for every progress, points, streak,
achievement and recommendation rule. The only place that reads metrics for those rules.
"""

from __future__ import annotations

import math
import uuid
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, Protocol, cast

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import User
from api.fastsql import Query
from api.gamification.rules import best_source
from api.metrics.models import PracticeMetric
from api.metrics.summary import MetricValue
from api.practice.models import PracticeSegment, PracticeSession, SessionTag, Tag
from api.practice.rules import duration_s
from api.progress.factcache import FACTS_CACHE_KEY, FactsVersion
from api.progress.rules import Cell, SessionFacts, Source

__all__ = [
    "FACT_COLUMNS",
    "PLAIN_METRICS",
    "ActiveStudent",
    "SessionRow",
    "active_student",
    "facts_between",
    "facts_for_rows",
    "fresh_facts",
    "load_facts",
    "load_timing_cells",
]

#: The per-session numbers the rules use (metric rows without metadata).
PLAIN_METRICS = (
    "minutes", "accuracy_pct", "tempo_bpm_played", "steadiness_ms", "drift_bpm_per_min",
    "points", "target_bpm",
)
_WEIGHTED = ("accuracy_pct", "tempo_bpm_played", "steadiness_ms", "drift_bpm_per_min")
_CHUNK = 500


@dataclass
class _Numbers:
    minutes: float = 0.0
    weighted: dict[str, tuple[float, float]] | None = None  # metric -> (sum w*x, sum w)
    points: float | None = None
    target_bpm: float | None = None


def _chunks(ids: Sequence[uuid.UUID]) -> list[Sequence[uuid.UUID]]:
    return [ids[i:i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


class SessionRow(Protocol):
    """The columns of a practice session the facts need (an ORM row or a Core row)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def student_id(self) -> uuid.UUID: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def accuracy_pct(self) -> float | None: ...
    @property
    def target_bpm(self) -> float | None: ...
    @property
    def mode(self) -> str: ...


#: Only the columns of :class:`SessionRow`: a Core select of them is several times cheaper
#: than loading whole ORM objects (the facts are read on every progress, chart, points and
#: streak request).
FACT_COLUMNS = (
    PracticeSession.id, PracticeSession.student_id, PracticeSession.started_at,
    PracticeSession.ended_at, PracticeSession.accuracy_pct, PracticeSession.target_bpm,
    PracticeSession.mode,
)


# the earliest and latest instants PostgreSQL and Python both hold: an open range's bounds
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)

_SESSIONS = Query(lambda member: (
    select(*FACT_COLUMNS)
    .where(PracticeSession.student_id == bindparam("student_id"),
           PracticeSession.status == "active",
           PracticeSession.started_at >= bindparam("since"),
           PracticeSession.started_at < bindparam("until"))
    .order_by(PracticeSession.started_at)
))


async def _sessions(db: AsyncSession, student_id: uuid.UUID, since: datetime | None,
                    until: datetime | None) -> list[SessionRow]:
    rows: list[SessionRow] = list(await _SESSIONS.rows(
        db, student_id=student_id, since=since or _EARLIEST, until=until or _LATEST
    ))
    return rows


# one row per take (session, source, event) with its plain metrics side by side: a tenth of
# the rows of one per metric, and no per-row work in Python for the rest
_TAKES = Query(lambda member: (
    select(PracticeMetric.session_id, PracticeMetric.source,
           *(func.max(case((PracticeMetric.metric == name, PracticeMetric.value))).label(name)
             for name in PLAIN_METRICS))
    .where(member(PracticeMetric.session_id, "ids"), member(PracticeMetric.metric, PLAIN_METRICS))
    .group_by(PracticeMetric.session_id, PracticeMetric.source, PracticeMetric.event_id)
))
_PIECE_TAGS = Query(lambda member: (
    select(SessionTag.session_id, Tag.id).join(Tag, Tag.id == SessionTag.tag_id)
    .where(member(SessionTag.session_id, "ids"), Tag.kind == "piece")
))
_SEGMENT_PIECES = Query(lambda member: (
    select(PracticeSegment.session_id, PracticeSegment.piece_id)
    .where(member(PracticeSegment.session_id, "ids"), PracticeSegment.piece_id.is_not(None))
))


async def _numbers(db: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[
    uuid.UUID, dict[str, _Numbers]
]:
    """Per session and source; several takes of one source (two streams) are combined:
    minutes and points add up, the other numbers are averaged weighted by minutes."""
    out: dict[uuid.UUID, dict[str, _Numbers]] = defaultdict(dict)
    for chunk in _chunks(ids):
        for take in await _TAKES.rows(db, ids=chunk):
            _add_take(out[take.session_id], take.source, take)
    return out


def _add_take(numbers_by_source: dict[str, _Numbers], source: str, take: Any) -> None:
    """Add one take (its plain metrics as attributes, None when absent) to its source."""
    numbers = numbers_by_source.setdefault(source, _Numbers(weighted={}))
    minutes = max(0.0, take.minutes or 0.0)
    numbers.minutes += minutes
    if take.points is not None:
        numbers.points = (numbers.points or 0.0) + take.points
    if take.target_bpm is not None:
        numbers.target_bpm = take.target_bpm
    weight = minutes if minutes > 0 else 1e-9
    assert numbers.weighted is not None
    for metric in _WEIGHTED:
        value = getattr(take, metric)
        if value is not None and math.isfinite(value):
            total, weights = numbers.weighted.get(metric, (0.0, 0.0))
            numbers.weighted[metric] = (total + weight * value, weights + weight)


async def _pieces(db: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, set[uuid.UUID]]:
    pieces: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for chunk in _chunks(ids):
        for session_id, piece_id in await _PIECE_TAGS.rows(db, ids=chunk):
            pieces[session_id].add(piece_id)
        for session_id, segment_piece in await _SEGMENT_PIECES.rows(db, ids=chunk):
            if segment_piece is not None:
                pieces[session_id].add(segment_piece)
    return pieces


def _in_range(value: float | None, low: float, high: float = math.inf, *,
              open_low: bool = False) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    if value < low or value > high or (open_low and value == low):
        return None
    return value


def _facts(row: SessionRow, numbers: dict[str, _Numbers],
           pieces: set[uuid.UUID]) -> SessionFacts:
    source = best_source(numbers)
    if source is None:  # no metrics yet: the row's own numbers (a session logged by hand)
        minutes = max(0.0, (duration_s(row.started_at, row.ended_at) or 0.0) / 60.0)
        chosen = _Numbers(minutes=minutes, weighted={})
        if row.accuracy_pct is not None:
            chosen.weighted = {"accuracy_pct": (row.accuracy_pct, 1.0)}
        source = "manual"
    else:
        chosen = numbers[source]
    weighted = chosen.weighted or {}

    def mean(metric: str) -> float | None:
        total, weights = weighted.get(metric, (0.0, 0.0))
        return total / weights if weights > 0 else None

    target = row.target_bpm if row.target_bpm is not None else chosen.target_bpm
    points = chosen.points if source != "manual" else None
    return SessionFacts(
        session_id=row.id,
        student_id=row.student_id,
        started_at=row.started_at,
        duration_s=chosen.minutes * 60.0,
        mode=cast(Any, row.mode),
        target_bpm=_in_range(target, 0.0, open_low=True),
        accuracy_pct=_in_range(mean("accuracy_pct"), 0.0, 100.0),
        tempo_bpm_played=_in_range(mean("tempo_bpm_played"), 0.0, open_low=True),
        steadiness_ms=_in_range(mean("steadiness_ms"), 0.0),
        drift_bpm_per_min=_in_range(mean("drift_bpm_per_min"), -math.inf),
        source=cast(Source, source),
        engine_points=None if points is None or points < 0 else int(points),
        piece_ids=tuple(sorted(pieces)),
    )


async def load_facts(
    db: AsyncSession, student_id: uuid.UUID, *, since: datetime | None = None,
    until: datetime | None = None, pieces: bool = True, version: FactsVersion | None = None,
    fill: bool = True,
) -> list[SessionFacts]:
    """The student's active sessions started in ``[since, until)``, oldest first.
    ``pieces=False`` leaves ``piece_ids`` empty, two queries fewer, for the rules that do
    not use them (points, streaks, minutes, trends, the leaderboard).

    ``version`` is the student's data version read at the start of the request
    (:func:`active_student`); with it, and a :class:`~api.progress.factcache.FactsCache`
    in the session's ``info``, the whole history is loaded once per version and sliced.
    ``fill=False`` reads only ``[since, until)`` when the cache misses, leaving it as it is
    (for a caller that needs a slice and must not pay for the whole history)."""
    cache = db.info.get(FACTS_CACHE_KEY) if version is not None else None
    if cache is None or version is None:
        return await facts_for_rows(db, await _sessions(db, student_id, since, until),
                                    pieces=pieces)
    facts = cache.get(student_id, pieces=pieces, version=version)
    if facts is None and not fill:
        return await facts_for_rows(db, await _sessions(db, student_id, since, until),
                                    pieces=pieces)
    if facts is None:
        loaded = await facts_for_rows(db, await _sessions(db, student_id, None, None),
                                      pieces=pieces)
        facts = cache.put(student_id, pieces=pieces, version=version, facts=loaded)
    return facts_between(facts, since, until)


def facts_between(facts: Sequence[SessionFacts], since: datetime | None,
                  until: datetime | None) -> list[SessionFacts]:
    """The facts of ``facts`` (a history, oldest first) that started in ``[since, until)``
    (None: unbounded)."""
    lo = 0 if since is None else bisect_left(facts, since, key=_started_at)
    hi = len(facts) if until is None else bisect_left(facts, until, key=_started_at)
    return list(facts[lo:hi])


def _started_at(facts: SessionFacts) -> datetime:
    return facts.started_at


@dataclass(frozen=True, slots=True)
class ActiveStudent:
    """What the progress and points reads need of a student: their time zone and the
    version of their facts (their change counter and metric counter)."""

    id: uuid.UUID
    timezone: str
    version: FactsVersion


_ACTIVE_STUDENT = Query(lambda member: (
    select(User.timezone, User.change_seq, User.facts_seq)
    .where(User.id == bindparam("id"), User.role == "student", User.status == "active")
))


async def active_student(db: AsyncSession, student_id: uuid.UUID) -> ActiveStudent | None:
    """The active student ``student_id`` (None if there is no such student), read as plain
    SQL on PostgreSQL (:mod:`api.fastsql`): every progress, points and streak read starts
    here."""
    found = await _ACTIVE_STUDENT.rows(db, id=student_id)
    if not found:
        return None
    timezone, change_seq, facts_seq = found[0]
    return ActiveStudent(student_id, timezone, (int(change_seq), int(facts_seq)))


async def facts_for_rows(db: AsyncSession, rows: Sequence[SessionRow], *,
                         pieces: bool = True) -> list[SessionFacts]:
    """Facts of already loaded session rows (any students), in the order given (see
    :func:`load_facts` for ``pieces``)."""
    ids = [row.id for row in rows]
    numbers = await _numbers(db, ids)
    played = await _pieces(db, ids) if pieces else {}
    return [_facts(row, numbers.get(row.id, {}), played.get(row.id, set())) for row in rows]


@dataclass(frozen=True, slots=True)
class _Row:
    """A session's columns as the database gives them back (UTC times, float numbers)."""

    id: uuid.UUID
    student_id: uuid.UUID
    started_at: datetime
    ended_at: datetime | None
    accuracy_pct: float | None
    target_bpm: float | None
    mode: str


def fresh_facts(row: SessionRow, manual: Sequence[MetricValue],
                piece_ids: Collection[uuid.UUID] = ()) -> SessionFacts:
    """The facts :func:`load_facts` would read for a session just inserted with only its
    ``manual`` metrics (and no other source): computed from the values written instead of
    read back. ``piece_ids`` are its pieces (tags of kind piece, segments' pieces)."""
    take: dict[str, float | None] = dict.fromkeys(PLAIN_METRICS)
    for value in manual:
        if value.metric in take:  # one row per metric: the take's max() is the value
            take[value.metric] = float(value.value)
    numbers: dict[str, _Numbers] = {}
    if any(metric in PLAIN_METRICS for metric in (v.metric for v in manual)):
        _add_take(numbers, "manual", SimpleNamespace(**take))

    def utc(at: datetime | None) -> datetime | None:
        return None if at is None else at.astimezone(UTC)

    stored = _Row(
        id=row.id, student_id=row.student_id, started_at=row.started_at.astimezone(UTC),
        ended_at=utc(row.ended_at),
        accuracy_pct=None if row.accuracy_pct is None else float(row.accuracy_pct),
        target_bpm=None if row.target_bpm is None else float(row.target_bpm), mode=row.mode,
    )
    return _facts(stored, numbers, set(piece_ids))


async def load_timing_cells(db: AsyncSession, session_ids: Sequence[uuid.UUID]) -> list[
    list[Cell]
]:
    """The bar x beat timing cells of each stream or recording of the given sessions."""
    out: list[list[Cell]] = []
    for chunk in _chunks(list(session_ids)):
        rows = await db.execute(
            select(PracticeMetric.meta).where(PracticeMetric.session_id.in_(chunk),
                                              PracticeMetric.metric == "timing_cells")
        )
        for (meta,) in rows:
            cells = (meta or {}).get("cells") or []
            out.append([Cell(int(c[0]), int(c[1]), int(c[2]), float(c[3]), float(c[4]),
                             float(c[5])) for c in cells])
    return out
