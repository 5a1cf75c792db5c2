"""Writing practice metrics: from the engine's stream summaries and from sessions logged by
hand, with the hourly/daily rollups upserted in the same transaction.

:func:`apply_stream_summary` is the idempotent consumer step for one ``stream.summary.v1``
event: the event id is recorded in :class:`ProcessedEvent` in the transaction that writes the
metrics, so a redelivery changes nothing; an event whose practice session is not synced yet
is kept ``pending`` and applied by :func:`apply_pending_for_session` (called when the session
arrives, and by the consumer's periodic sweep); an event for a session of another user is
``rejected``.
"""

from __future__ import annotations

import functools
import logging
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import User
from api.db import new_id, table_of, utcnow
from api.fastsql import Query, Rows
from api.metrics.models import MetricRollup, PracticeMetric, ProcessedEvent
from api.metrics.summary import MetricValue, SummaryError, metrics_from_summary
from api.practice.models import PracticeSession
from api.practice.rules import duration_s

__all__ = [
    "EventOutcome",
    "apply_pending_for_session",
    "apply_stream_summary",
    "record_fresh_manual_metrics",
    "record_manual_metrics",
    "record_metrics",
]

log = logging.getLogger("api.metrics")
EventOutcome = Literal["applied", "pending", "rejected", "duplicate"]
STREAM_SUMMARY_TOPIC = "stream.summary.v1"


def _bucket_start(ts: datetime, bucket: str) -> datetime:
    ts = ts.astimezone(UTC)
    if bucket == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


@functools.cache
def _rollup_upsert(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT DO UPDATE`` of one rollup row, built once per dialect (the
    ``excluded`` alias builds new Column objects, so building it per call costs CPU on every
    session write); executed with a list of parameter sets."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = table_of(MetricRollup)  # a Core insert: no ORM bulk processing of the rows
    stmt = insert(table)
    excluded, c = stmt.excluded, table.c
    return stmt.on_conflict_do_update(
        index_elements=["bucket", "bucket_start", "student_id", "metric", "source"],
        set_={
            "n": c.n + excluded.n,
            "total": c.total + excluded.total,
            "min_value": _least(dialect, c.min_value, excluded.min_value),
            "max_value": _greatest(dialect, c.max_value, excluded.max_value),
        },
    )


@functools.cache
def _rollup_writer(dialect: str) -> Rows:
    return Rows(_rollup_upsert(dialect))


_INSERT_METRICS = Rows(insert(table_of(PracticeMetric)))  # rows of every column


def _rollup_rows(
    *, student_id: uuid.UUID, time: datetime, source: str, values: Sequence[MetricValue],
    sign: int = 1,
) -> list[dict[str, Any]]:
    """The hourly and daily rollup rows of one write's values (hour rows first, metrics
    sorted)."""
    by_metric: dict[str, list[float]] = {}
    for value in values:
        by_metric.setdefault(value.metric, []).append(value.value)
    return [
        {"bucket": bucket, "bucket_start": _bucket_start(time, bucket),
         "student_id": student_id, "metric": metric, "source": source,
         "n": sign * len(numbers), "total": sign * math.fsum(numbers),
         "min_value": min(numbers), "max_value": max(numbers)}
        for bucket in ("hour", "day")
        for metric, numbers in sorted(by_metric.items())
    ]


async def _upsert_rollups(
    db: AsyncSession, *, student_id: uuid.UUID, time: datetime, source: str,
    values: Sequence[MetricValue], sign: int = 1,
) -> None:
    """Add (``sign`` 1) or remove (-1) values in the hourly and daily rollups. Removing
    keeps count and sum exact; min and max keep their extremes (documented approximation).
    One statement with a parameter set per bucket and metric (hour rows first, metrics
    sorted: the same order of row locks as one statement each)."""
    rows = _rollup_rows(student_id=student_id, time=time, source=source, values=values,
                        sign=sign)
    await _rollup_writer(db.get_bind().dialect.name).insert(db, rows)


def _merged(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rollup rows with one row per bucket, student, metric and source (added up), hour rows
    first: a batch of sessions on the same day upserts each rollup row once, in one order."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (row["bucket"], row["bucket_start"], row["student_id"], row["metric"],
               row["source"])
        if key not in merged:
            merged[key] = dict(row)
            continue
        into = merged[key]
        into["n"] += row["n"]
        into["total"] += row["total"]
        into["min_value"] = min(into["min_value"], row["min_value"])
        into["max_value"] = max(into["max_value"], row["max_value"])
    return sorted(merged.values(), key=lambda r: (r["bucket"] != "hour", r["bucket_start"],
                                                  r["metric"]))


def _least(dialect: str, a: Any, b: Any) -> Any:
    from sqlalchemy import func

    return func.least(a, b) if dialect == "postgresql" else func.min(a, b)


def _greatest(dialect: str, a: Any, b: Any) -> Any:
    from sqlalchemy import func

    return func.greatest(a, b) if dialect == "postgresql" else func.max(a, b)


async def record_metrics(
    db: AsyncSession, *, student_id: uuid.UUID, session_id: uuid.UUID, time: datetime,
    source: str, values: Sequence[MetricValue], event_id: str | None = None,
) -> None:
    """Insert ``values`` as metric rows of one session and source and update the rollups
    (inside the caller's transaction). A stream's or recording's metrics bump the student's
    ``facts_seq`` (the cached facts' version, :mod:`api.progress.factcache`); manual ones
    are written only with their session (:func:`api.metrics.hooks.sessions_written`),
    whose write already bumps ``change_seq``."""
    if not values:
        return
    if source != "manual":
        await db.execute(
            update(User).where(User.id == student_id)
            .values(facts_seq=User.facts_seq + 1, updated_at=User.updated_at)
        )
    await _INSERT_METRICS.insert(db, _metric_rows(
        student_id=student_id, session_id=session_id, time=time, source=source,
        values=values, event_id=event_id,
    ))
    await _upsert_rollups(db, student_id=student_id, time=time, source=source, values=values)


def _metric_rows(
    *, student_id: uuid.UUID, session_id: uuid.UUID, time: datetime, source: str,
    values: Sequence[MetricValue], event_id: str | None = None,
) -> list[dict[str, Any]]:
    """The ``practice_metrics`` rows of one write's values, keyed by column (a Core insert:
    ``meta`` is the column ``metadata``)."""
    return [
        {"time": time, "id": new_id(), "student_id": student_id, "session_id": session_id,
         "metric": v.metric, "value": v.value, "source": source, "event_id": event_id,
         "metadata": v.meta}
        for v in values
    ]


async def record_fresh_manual_metrics(
    db: AsyncSession, sessions: Sequence[PracticeSession]
) -> None:
    """:func:`record_manual_metrics` for sessions inserted by this transaction (so with no
    metrics to replace), all in two statements: one insert of their metric rows, one upsert
    of their rollups (inside the caller's transaction)."""
    metric_rows: list[dict[str, Any]] = []
    rollups: list[dict[str, Any]] = []
    for session in sessions:
        if session.status != "active":
            continue
        values = manual_values(session)
        metric_rows += _metric_rows(student_id=session.student_id, session_id=session.id,
                                    time=session.started_at, source="manual", values=values)
        rollups += _rollup_rows(student_id=session.student_id, time=session.started_at,
                                source="manual", values=values)
    if metric_rows:
        await _INSERT_METRICS.insert(db, metric_rows)
        await _rollup_writer(db.get_bind().dialect.name).insert(db, _merged(rollups))


async def record_manual_metrics(db: AsyncSession, session: PracticeSession) -> None:
    """Replace the ``manual`` metrics of a session logged (or edited) by hand: minutes,
    and the numbers the student entered (inside the caller's transaction). Sessions the
    transaction inserted go through :func:`record_fresh_manual_metrics`."""
    old = (
        await db.execute(
            select(PracticeMetric).where(
                PracticeMetric.session_id == session.id, PracticeMetric.source == "manual"
            )
        )
    ).scalars().all()
    if old:
        by_time: dict[datetime, list[MetricValue]] = {}
        for row in old:
            by_time.setdefault(row.time, []).append(MetricValue(row.metric, row.value))
        for time, values in by_time.items():
            await _upsert_rollups(db, student_id=session.student_id, time=time,
                                  source="manual", values=values, sign=-1)
        await db.execute(
            delete(PracticeMetric).where(
                PracticeMetric.session_id == session.id, PracticeMetric.source == "manual"
            )
        )
    if session.status != "active":
        return
    values = manual_values(session)
    await record_metrics(db, student_id=session.student_id, session_id=session.id,
                         time=session.started_at, source="manual", values=values)


def manual_values(session: PracticeSession) -> list[MetricValue]:
    """The metrics a hand-logged session gives: minutes (from its start and end), and the
    accuracy, target tempo and self rating when entered."""
    values = []
    length_s = duration_s(session.started_at, session.ended_at)
    if length_s is not None:
        values.append(MetricValue("minutes", round(max(0.0, length_s) / 60.0, 4)))
    if session.accuracy_pct is not None:
        values.append(MetricValue("accuracy_pct", float(session.accuracy_pct)))
    if session.target_bpm is not None:
        values.append(MetricValue("target_bpm", float(session.target_bpm)))
    if session.self_rating is not None:
        values.append(MetricValue("self_rating", float(session.self_rating)))
    return values


@dataclass(frozen=True, slots=True)
class _Envelope:
    event_id: str
    user_id: str
    session_id: uuid.UUID
    started_at: datetime
    summary: Mapping[str, Any]


def _parse_envelope(payload: Mapping[str, Any], event_id: str) -> _Envelope:
    if payload.get("event_id", event_id) != event_id:
        raise SummaryError(f"payload event_id {payload.get('event_id')!r} != {event_id!r}")
    user_id = payload.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise SummaryError(f"user_id {user_id!r} is not a non-empty string")
    try:
        session_id = uuid.UUID(str(payload.get("session_id")))
    except ValueError:
        raise SummaryError(f"session_id {payload.get('session_id')!r} is not a UUID") from None
    try:
        started_at = datetime.fromisoformat(str(payload.get("started_at")))
    except ValueError:
        raise SummaryError(f"started_at {payload.get('started_at')!r} is not ISO 8601") from None
    if started_at.tzinfo is None:
        raise SummaryError(f"started_at {payload.get('started_at')!r} has no time zone")
    summary = payload.get("summary")
    if not isinstance(summary, Mapping):
        raise SummaryError("summary is not an object")
    return _Envelope(event_id, user_id, session_id, started_at, summary)


async def _apply(db: AsyncSession, env: _Envelope, values: Sequence[MetricValue],
                 session: PracticeSession) -> None:
    await record_metrics(db, student_id=session.student_id, session_id=session.id,
                         time=env.started_at, source="stream", values=values,
                         event_id=env.event_id)


async def apply_stream_summary(
    db: AsyncSession, payload: Mapping[str, Any], *, event_id: str,
    topic: str = STREAM_SUMMARY_TOPIC,
) -> EventOutcome:
    """Apply one stream summary exactly once (see the module docstring); commits."""
    try:
        async with db.begin():
            if await db.get(ProcessedEvent, event_id) is not None:
                return "duplicate"
            record = ProcessedEvent(event_id=event_id, topic=topic, received_at=utcnow())
            try:
                env = _parse_envelope(payload, event_id)
                values = metrics_from_summary(env.summary)
            except SummaryError as exc:
                record.status, record.reason = "rejected", f"invalid event: {exc}"
                record.user_id = str(payload.get("user_id"))[:64]
                db.add(record)
                log.warning("rejected event %s: %s", event_id, exc)
                return "rejected"
            record.user_id, record.session_id = env.user_id[:64], env.session_id
            session = await db.get(PracticeSession, env.session_id)
            if session is None:
                record.status, record.payload = "pending", dict(payload)
                db.add(record)
                return "pending"
            outcome = _check_owner(session, env)
            if outcome is not None:
                record.status, record.reason = "rejected", outcome
                db.add(record)
                log.warning("rejected event %s: %s", event_id, outcome)
                return "rejected"
            await _apply(db, env, values, session)
            record.status, record.applied_at = "applied", utcnow()
            db.add(record)
            return "applied"
    except IntegrityError:
        # Another consumer recorded the same event id first: its transaction won.
        return "duplicate"


def _check_owner(session: PracticeSession, env: _Envelope) -> str | None:
    if str(session.student_id) != env.user_id:
        return f"session {session.id} does not belong to user {env.user_id}"
    if session.status != "active":
        return f"session {session.id} is deleted"
    return None


# every session write runs it (api.metrics.hooks.sessions_written)
_PENDING_AMONG = Query(lambda member: (
    select(ProcessedEvent.session_id)
    .where(member(ProcessedEvent.session_id, "ids"), ProcessedEvent.status == "pending")
    .distinct()
))


async def pending_session_ids_among(
    db: AsyncSession, session_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Which of ``session_ids`` have stream summaries waiting for them (one query)."""
    found = await _PENDING_AMONG.rows(db, ids=list(session_ids))
    return [session_id for (session_id,) in found if session_id is not None]


async def apply_pending_for_session(db: AsyncSession, session_id: uuid.UUID) -> int:
    """Apply the pending events of a session that has now arrived (inside the caller's
    transaction); returns how many were applied or rejected."""
    rows = (
        await db.execute(
            select(ProcessedEvent).where(
                ProcessedEvent.session_id == session_id, ProcessedEvent.status == "pending"
            ).with_for_update()
        )
    ).scalars().all()
    session = await db.get(PracticeSession, session_id)
    if session is None:
        return 0
    done = 0
    for record in rows:
        payload = record.payload or {}
        env = _parse_envelope(payload, record.event_id)
        problem = _check_owner(session, env)
        if problem is None:
            await _apply(db, env, metrics_from_summary(env.summary), session)
            record.status, record.applied_at = "applied", utcnow()
        else:
            record.status, record.reason = "rejected", problem
        record.payload = None
        done += 1
    return done


async def pending_session_ids(db: AsyncSession, limit: int = 500) -> list[uuid.UUID]:
    """Sessions with pending events whose session row now exists (the periodic sweep)."""
    rows = await db.execute(
        select(ProcessedEvent.session_id)
        .join(PracticeSession, PracticeSession.id == ProcessedEvent.session_id)
        .where(ProcessedEvent.status == "pending")
        .distinct()
        .limit(limit)
    )
    return [sid for sid in rows.scalars() if sid is not None]


def summaries_of(rows: Iterable[PracticeMetric]) -> dict[str, float]:
    """``{metric: value}`` of plain (metadata-free) metric rows."""
    return {row.metric: row.value for row in rows if not row.meta}
