"""The database plumbing on the real PostgreSQL: read-only routes run in autocommit (no
transaction round trips), and a connection the database dropped costs one request a 503
``database_unavailable`` (the pool is renewed), not a 500 on every pooled connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import bindparam, text
from sqlalchemy.exc import DBAPIError

from api.db import utcnow
from api.main import create_app
from api.notify import MemoryNotifier
from mpt.settings import ApiSettings, DatabaseSettings, RateLimitSettings, Settings
from tests.api._support.db import truncate_all
from tests.api._support.users import make_user

pytestmark = pytest.mark.anyio


@pytest.fixture
def pg_settings(tmp_path: Path, postgres_session_url: str) -> Settings:
    truncate_all(postgres_session_url)
    return Settings(
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=postgres_session_url, auto_migrate=False),
        api=ApiSettings(rate_limits=RateLimitSettings(enabled=False), consume_events=False),
    )


@pytest.fixture
async def pg_app(pg_settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(pg_settings, notifier=MemoryNotifier())
    async with LifespanManager(app):
        yield app


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def test_read_sessions_autocommit_and_write_sessions_keep_one_transaction(
    pg_app: FastAPI,
) -> None:
    state = pg_app.state.mpt
    query = text("SELECT transaction_timestamp()")
    async with state.read_sessions() as db:
        first = (await db.execute(query)).scalar_one()
        await asyncio.sleep(0.01)
        second = (await db.execute(query)).scalar_one()
    assert second > first, "each statement of a read session is its own transaction"
    async with state.sessions() as db, db.begin():
        first = (await db.execute(query)).scalar_one()
        await asyncio.sleep(0.01)
        second = (await db.execute(query)).scalar_one()
    assert second == first, "a write session's statements share one transaction"


async def test_dropped_connections_cost_one_503_then_the_pool_recovers(
    pg_app: FastAPI, postgres_session_url: str
) -> None:
    user = await make_user(pg_app)
    transport = httpx.ASGITransport(app=pg_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/api/v1/users/me", headers=user.headers)).status_code == 200
        # the database drops every connection of the app (as a restart or failover does)
        admin = await asyncpg.connect(_asyncpg_dsn(postgres_session_url))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert killed >= 1
        await asyncio.sleep(0.2)  # the terminations reach the pooled connections
        lost = await http.get("/api/v1/users/me", headers=user.headers)
        assert lost.status_code == 503, lost.text
        assert lost.headers["content-type"] == "application/problem+json"
        assert lost.headers["retry-after"] == "1"
        assert lost.json()["code"] == "database_unavailable"
        # the pool was invalidated: the retry gets a new connection, and so do writes
        again = await http.get("/api/v1/users/me", headers=user.headers)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == str(user.id)
        created = await http.post("/api/v1/sessions", headers=user.headers, json={
            "started_at": "2026-01-05T10:00:00+00:00", "ended_at": "2026-01-05T10:20:00+00:00",
        })
        assert created.status_code == 201, created.text


def _checked_out(app: FastAPI) -> int:
    return int(app.state.mpt.engine.sync_engine.pool.checkedout())


async def test_every_request_gives_its_connection_back(pg_app: FastAPI) -> None:
    """The request's sessions are closed by the app's middleware, not by the route: after
    reads, writes, refusals and errors no connection stays checked out."""
    student = await make_user(pg_app)
    teacher = await make_user(pg_app, role="teacher")
    transport = httpx.ASGITransport(app=pg_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        created = await http.post("/api/v1/sessions", headers=student.headers, json={
            "started_at": "2026-01-05T10:00:00+00:00", "ended_at": "2026-01-05T10:20:00+00:00",
        })
        assert created.status_code == 201, created.text
        assert _checked_out(pg_app) == 0
        session_id = created.json()["id"]
        answers = [
            await http.get(f"/api/v1/sessions/{session_id}", headers=student.headers),
            await http.get(f"/api/v1/sessions/{session_id}", headers=teacher.headers),
            await http.get("/api/v1/sessions/0190c1a2-0000-7000-8000-000000000000",
                           headers=student.headers),
            await http.patch(f"/api/v1/sessions/{session_id}", headers=student.headers,
                             json={"self_rating": 9}),
            await http.post("/api/v1/sync/batch", headers={**student.headers,
                            "Idempotency-Key": "k1"}, json={"sessions": []}),
            await http.get("/api/v1/teachers/me/dashboard", headers=student.headers),
        ]
        assert [a.status_code for a in answers] == [200, 403, 404, 422, 200, 403], [
            a.text for a in answers]
        assert _checked_out(pg_app) == 0


async def test_no_free_connection_is_a_503_and_the_next_request_works(
    pg_settings: Settings,
) -> None:
    small = pg_settings.model_copy(update={"database": pg_settings.database.model_copy(
        update={"pool_size": 1, "pool_timeout_s": 0.2})})
    app = create_app(small, notifier=MemoryNotifier())
    async with LifespanManager(app):
        user = await make_user(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            async with app.state.mpt.engine.connect() as held:  # the pool's one connection
                await held.execute(text("SELECT 1"))
                busy = await http.get("/api/v1/sessions", headers=user.headers)
            assert busy.status_code == 503, busy.text
            assert busy.headers["content-type"] == "application/problem+json"
            assert busy.headers["retry-after"] == "1"
            assert busy.json()["code"] == "unavailable"
            assert "no database connection is free" in busy.json()["detail"]
            assert _checked_out(app) == 0
            again = await http.get("/api/v1/sessions", headers=user.headers)
            assert again.status_code == 200, again.text


async def test_a_plain_sql_read_on_a_dead_connection_invalidates_it_and_the_pool(
    pg_app: FastAPI, postgres_session_url: str
) -> None:
    """(``api.fastsql``, which sends its SQL past SQLAlchemy's execution.) The database
    drops the connection a session holds: the statement raises
    SQLAlchemy's DBAPIError marked connection_invalidated (the API's 503), and the pool
    was invalidated, so the next session reconnects."""
    from api.progress.facts import _SESSIONS

    student = await make_user(pg_app)
    sessions = pg_app.state.mpt.read_sessions
    params = {"student_id": student.id, "since": utcnow() - timedelta(1), "until": utcnow()}
    async with sessions() as db:
        assert await _SESSIONS.rows(db, **params) == []
        pid = await db.scalar(text("SELECT pg_backend_pid()"))
        admin = await asyncpg.connect(_asyncpg_dsn(postgres_session_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
        with pytest.raises(DBAPIError) as lost:
            await _SESSIONS.rows(db, **params)
        assert lost.value.connection_invalidated
    async with sessions() as db:
        assert await _SESSIONS.rows(db, **params) == []
        assert await db.scalar(text("SELECT pg_backend_pid()")) != pid


async def test_a_plain_sql_statement_cancelled_midway_invalidates_its_connection(
    pg_app: FastAPI,
) -> None:
    """(``api.fastsql``.) A request cancelled while its statement runs (a client gone, a
    deadline) leaves the connection in an unknown state: it is closed, not given back to
    the pool, as SQLAlchemy does for its own statements; the next session works."""
    from sqlalchemy import func, select

    from api.fastsql import Query

    sleep = Query(lambda member: select(func.pg_sleep(bindparam("s"))))
    sessions = pg_app.state.mpt.read_sessions
    async with sessions() as db:
        pid = await db.scalar(text("SELECT pg_backend_pid()"))
        running = asyncio.create_task(sleep.rows(db, s=5))
        await asyncio.sleep(0.3)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        connection = await db.connection()
        assert connection.sync_connection is not None
        assert connection.sync_connection.invalidated
    async with sessions() as db:
        assert await sleep.rows(db, s=0) == [(None,)]
        assert await db.scalar(text("SELECT pg_backend_pid()")) != pid
