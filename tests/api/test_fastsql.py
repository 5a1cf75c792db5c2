"""Hot reads as plain SQL on PostgreSQL (``api.fastsql.Query``), on both back ends: the same
rows as the statement run through SQLAlchemy, pending ORM changes seen, parameters checked,
and database errors still SQLAlchemy's (so the API's error handling still applies)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError, StatementError

from api.db import utcnow
from api.fastsql import Query
from api.practice.models import PracticeSegment, PracticeSession, SessionTag, Tag
from api.practice.service import _FEEDBACK_COUNTS, _PAGE, _PAGE_AFTER, _SEGMENTS_OF, _TAGS_OF
from api.progress.facts import _PIECE_TAGS, _SEGMENT_PIECES, _SESSIONS, _TAKES
from tests.api._support.users import make_user
from tests.api._support.world import add_session

pytestmark = pytest.mark.anyio

_SINCE_UNTIL = Query(lambda member: (
    select(PracticeSession.id, PracticeSession.started_at)
    .where(member(PracticeSession.id, "ids"), member(PracticeSession.mode, ("normal", "slow")),
           PracticeSession.started_at >= bindparam("since"))
    .order_by(PracticeSession.started_at)
))


async def _three_sessions(app: FastAPI) -> tuple[uuid.UUID, list[uuid.UUID]]:
    student = await make_user(app)
    now = utcnow()
    ids = [
        await add_session(app, student.id, started_at=now - timedelta(days=d), mode=mode)
        for d, mode in ((1, "normal"), (2, "slow"), (3, "performance"))
    ]
    async with app.state.mpt.sessions() as db, db.begin():
        piece = Tag(scope="global", kind="piece", name="Etude", name_key="etude")
        db.add(piece)
        await db.flush()
        db.add(SessionTag(session_id=ids[0], tag_id=piece.id))
        db.add(PracticeSegment(session_id=ids[1], label="A", start_bar=1, end_bar=8,
                               click_count=2, piece_id=piece.id))
    return student.id, ids


async def test_rows_are_those_of_the_statement_through_sqlalchemy(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    student_id, ids = await _three_sessions(app)
    cases = [
        (_SESSIONS, {"student_id": student_id, "since": utcnow() - timedelta(days=30),
                     "until": utcnow()}),
        (_TAKES, {"ids": ids}), (_PIECE_TAGS, {"ids": ids}), (_SEGMENT_PIECES, {"ids": ids}),
        (_TAGS_OF, {"ids": ids}), (_SEGMENTS_OF, {"ids": ids}), (_FEEDBACK_COUNTS, {"ids": ids}),
        (_SINCE_UNTIL, {"ids": ids, "since": utcnow() - timedelta(days=30)}),
        (_PAGE, {"owner": student_id, "n": 2}),
    ]
    async with app.state.mpt.sessions() as db:
        for query, params in cases:
            fast = sorted(repr(tuple(row)) for row in await query.rows(db, **params))
            through = sorted(
                repr(tuple(row)) for row in (await db.execute(query._portable, params)).all()
            )
            assert fast == through
    async with app.state.mpt.sessions() as db:
        sessions = await _SESSIONS.rows(db, student_id=student_id,
                                        since=utcnow() - timedelta(days=30), until=utcnow())
        assert [row.id for row in sessions] == ids[::-1]  # oldest first, by attribute
        assert all(row.started_at.tzinfo is not None for row in sessions)
        two = await _SINCE_UNTIL.rows(db, ids=ids, since=utcnow() - timedelta(days=30))
        assert [row.id for row in two] == [ids[1], ids[0]]  # the fixed list leaves one out
        assert len(await _PIECE_TAGS.rows(db, ids=ids)) == 1
        first = await _PAGE.rows(db, owner=student_id, n=2)
        assert [row.id for row in first] == ids[:2]  # newest first
        rest = await _PAGE_AFTER.rows(db, owner=student_id, n=5, after_at=first[-1].started_at,
                                      after_id=first[-1].id)
        assert [row.id for row in rest] == ids[2:]
        assert len(await _SEGMENT_PIECES.rows(db, ids=ids)) == 1


async def test_pending_changes_are_flushed_first(app: FastAPI, client: httpx.AsyncClient) -> None:
    _, ids = await _three_sessions(app)
    async with app.state.mpt.sessions() as db, db.begin():
        db.add(PracticeSegment(session_id=ids[2], label="B", start_bar=1, end_bar=4,
                               click_count=0))
        rows = await _SEGMENTS_OF.rows(db, ids=[ids[2]])
        assert [row.label for row in rows] == ["B"]


async def test_missing_parameters_are_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    async with app.state.mpt.sessions() as db:
        with pytest.raises(TypeError, match="missing query parameters: since, until"):
            await _SESSIONS.rows(db, student_id=None)


def test_an_expanding_in_is_refused_on_postgresql(postgres_session_url: str) -> None:
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    query = Query(lambda member: (
        select(PracticeSession.id).where(PracticeSession.mode.in_(["normal", "slow"]))
    ))
    with pytest.raises(ValueError, match="expanding IN"):
        query._compiled(dialect())


async def test_database_errors_are_sqlalchemy_errors(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A value the database refuses raises SQLAlchemy's error, as a statement through the
    session would (the API maps those; a raw driver error it would not): on PostgreSQL the
    driver's error wrapped in DBAPIError, on SQLite the type's own refusal."""
    async with app.state.mpt.sessions() as db:
        with pytest.raises(StatementError) as refused:
            await _SESSIONS.rows(db, student_id="not-a-uuid", since=utcnow(), until="soon")
        if db.bind.dialect.name == "postgresql":
            assert isinstance(refused.value, DBAPIError)


async def test_on_postgresql_the_driver_cursor_runs_it_in_the_session_transaction(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """On PostgreSQL the rows come from the dialect's asyncpg cursor (named tuples, not
    Core rows) unless cursor events listen (then through SQLAlchemy, seen by them); a
    write among them is part of the session's transaction (rolled back with it) and a
    read session's statement commits nothing it should not."""
    from sqlalchemy import event
    from sqlalchemy.engine import Row

    from api.accounts.models import User
    from api.practice.changes import next_change_version

    student = await make_user(app)
    state = app.state.mpt
    async with state.sessions() as db:
        before = await db.scalar(select(User.change_seq).where(User.id == student.id))
    postgres = state.engine.dialect.name == "postgresql"
    async with state.sessions() as db:
        with pytest.raises(RuntimeError, match="roll back"):
            async with db.begin():
                version = await next_change_version(db, student.id)
                assert version[0] == before + 1
                raise RuntimeError("roll back")
    async with state.read_sessions() as db:
        rows = await _SESSIONS.rows(db, student_id=student.id, since=utcnow() - timedelta(1),
                                    until=utcnow())
        assert rows == []
        after = await db.scalar(select(User.change_seq).where(User.id == student.id))
    assert after == before  # the increment went with the rollback

    _, ids = await _three_sessions(app)
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    async with state.read_sessions() as db:
        fast = await _TAGS_OF.rows(db, ids=ids)
        event.listen(state.engine.sync_engine, "before_cursor_execute", record)
        try:
            watched = await _TAGS_OF.rows(db, ids=ids)
        finally:
            event.remove(state.engine.sync_engine, "before_cursor_execute", record)
    assert [tuple(r) for r in fast] == [tuple(r) for r in watched] and len(fast) == 1
    assert fast[0].session_id == watched[0].session_id == ids[0]
    assert isinstance(watched[0], Row) and len(seen) == 1
    assert isinstance(fast[0], Row) is not postgres  # the driver's rows on PostgreSQL



async def test_rows_insert_what_the_session_would(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """``Rows.insert`` stores what ``db.execute(statement, rows)`` stores: each value
    through its column's type (an aware time in another zone, JSON, nulls); on PostgreSQL
    past SQLAlchemy's execution (cursor events do not see it), elsewhere through the
    session; a row without every column goes through the session (its defaults applied);
    a duplicate key is SQLAlchemy's IntegrityError, and its transaction rolls back."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import event, insert
    from sqlalchemy.exc import IntegrityError

    from api.db import new_id, table_of
    from api.fastsql import Rows
    from api.metrics.models import PracticeMetric

    student_id, ids = await _three_sessions(app)
    state = app.state.mpt
    postgres = state.engine.dialect.name == "postgresql"
    writer = Rows(insert(table_of(PracticeMetric)))
    when = datetime(2026, 11, 9, 10, 0, tzinfo=ZoneInfo("Europe/Vienna"))
    rows = [
        {"time": when, "id": new_id(), "student_id": student_id, "session_id": ids[0],
         "metric": "minutes", "value": 12.5, "source": "stream", "event_id": "e-1",
         "metadata": {"beats": [1, 2], "note": "ü"}},
        {"time": when, "id": new_id(), "student_id": student_id, "session_id": ids[1],
         "metric": "accuracy_pct", "value": 90.0, "source": "stream", "event_id": None,
         "metadata": None},
    ]
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(state.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with state.sessions() as db, db.begin():
            await writer.insert(db, rows)
        fast_path_seen = [s for s in seen if s.startswith("INSERT INTO practice_metrics")]
    finally:
        event.remove(state.engine.sync_engine, "before_cursor_execute", record)
    # events listening take SQLAlchemy's path, so they see it: now without them
    assert len(fast_path_seen) == 1
    third = {**rows[0], "id": new_id(), "session_id": ids[2]}
    async with state.sessions() as db, db.begin():
        await writer.insert(db, [third])
        defaulted = {k: v for k, v in third.items() if k != "id"}
        await writer.insert(db, [defaulted])  # no id: the session's path gives it one
    assert (writer._pg is not None) is postgres  # compiled for, and sent by, the driver path
    async with state.sessions() as db:
        stored = (await db.execute(select(PracticeMetric).where(
            PracticeMetric.student_id == student_id).order_by(PracticeMetric.id))).scalars().all()
    assert len(stored) == 4
    by_id = {m.id: m for m in stored}
    for row in (*rows, third):
        got = by_id[row["id"]]
        assert got.time == when and got.time.utcoffset() == timedelta(0)
        assert (got.metric, got.value, got.event_id, got.meta) == (
            row["metric"], row["value"], row["event_id"], row["metadata"])
    assert sum(1 for m in stored if m.id not in {r["id"] for r in (*rows, third)}) == 1

    with pytest.raises(IntegrityError):
        async with state.sessions() as db, db.begin():
            await writer.insert(db, [{**rows[1], "id": new_id(), "session_id": ids[2]}])
            await writer.insert(db, rows[:1])  # the same key again
    async with state.sessions() as db:
        count = len((await db.execute(select(PracticeMetric.id).where(
            PracticeMetric.student_id == student_id))).all())
    assert count == 4  # the failed transaction's first insert went with it
