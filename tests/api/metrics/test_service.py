"""Applying the engine's stream summaries: exactly once by event id, only to the owner's
session, pending until a session that is not synced yet arrives; rollups kept current."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api.metrics.models import MetricRollup, PracticeMetric, ProcessedEvent
from api.metrics.service import (
    apply_pending_for_session,
    apply_stream_summary,
    record_fresh_manual_metrics,
    record_manual_metrics,
)
from api.practice.models import PracticeSession
from tests.api._support.users import make_user
from tests.api._support.world import add_session
from tests.api.metrics._events import summary_event

pytestmark = pytest.mark.anyio


async def _metrics(app: FastAPI, session_id: uuid.UUID, source: str = "stream") -> dict[str, float]:
    async with app.state.mpt.sessions() as db:
        rows = (await db.execute(select(PracticeMetric).where(
            PracticeMetric.session_id == session_id, PracticeMetric.source == source
        ))).scalars().all()
    return {r.metric + (f":{r.meta['beat']}" if r.meta and "beat" in r.meta else ""): r.value
            for r in rows}


async def _status(app: FastAPI, event_id: str) -> str | None:
    async with app.state.mpt.sessions() as db:
        row = await db.get(ProcessedEvent, event_id)
    return None if row is None else row.status


async def test_summary_lands_once_as_metrics(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await make_user(app)
    session_id = await add_session(app, student.id)
    event_id, payload = summary_event(user_id=student.id, session_id=session_id)
    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "applied"
    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "duplicate"
    metrics = await _metrics(app, session_id)
    assert metrics["minutes"] == 2.5
    assert metrics["accuracy_pct"] == 92.0
    assert metrics["points"] == 12
    assert metrics["notes"] == 16
    # beat k of the bar is k-1 ms late in the synthetic report
    assert [metrics[f"beat_deviation_ms:{b}"] for b in (1, 2, 3, 4)] == [0.0, 1.0, 2.0, 3.0]
    async with app.state.mpt.sessions() as db:
        n_rows = (await db.execute(select(func.count()).select_from(PracticeMetric))).scalar()
        rollup = (await db.execute(select(MetricRollup).where(
            MetricRollup.bucket == "day", MetricRollup.metric == "minutes",
            MetricRollup.student_id == student.id,
        ))).scalar_one()
    assert n_rows == len(metrics)
    assert (rollup.n, rollup.total, rollup.source) == (1, 2.5, "stream")


async def test_event_for_another_users_session_is_rejected(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner, intruder = await make_user(app), await make_user(app)
    session_id = await add_session(app, owner.id)
    event_id, payload = summary_event(user_id=intruder.id, session_id=session_id)
    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "rejected"
    assert await _metrics(app, session_id) == {}
    assert await _status(app, event_id) == "rejected"


async def test_event_before_its_session_waits_then_applies(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    student = await make_user(app)
    session_id = uuid.uuid4()
    event_id, payload = summary_event(user_id=student.id, session_id=session_id)
    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "pending"
    assert await _status(app, event_id) == "pending"
    await add_session(app, student.id, id=session_id)
    async with app.state.mpt.sessions() as db, db.begin():
        assert await apply_pending_for_session(db, session_id) == 1
    assert await _status(app, event_id) == "applied"
    assert (await _metrics(app, session_id))["minutes"] == 2.5
    async with app.state.mpt.sessions() as db, db.begin():
        assert await apply_pending_for_session(db, session_id) == 0


async def test_pending_summaries_apply_when_their_sessions_arrive_over_http(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The routes find the waiting summaries of the sessions they write (one lookup for a
    whole sync batch) and apply them in the same transaction."""
    student = await make_user(app)
    created_id, synced_id, plain_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = {}
    for session_id in (created_id, synced_id):
        event_id, payload = summary_event(user_id=student.id, session_id=session_id)
        async with app.state.mpt.sessions() as db:
            assert await apply_stream_summary(db, payload, event_id=event_id) == "pending"
        events[session_id] = event_id
    body = {"started_at": "2026-11-20T18:00:00+00:00", "ended_at": "2026-11-20T18:20:00+00:00"}
    created = await client.post("/api/v1/sessions", headers=student.headers,
                                json={**body, "id": str(created_id)})
    assert created.status_code == 201, created.text
    assert await _status(app, events[created_id]) == "applied"
    assert await _status(app, events[synced_id]) == "pending"
    synced = await client.post(
        "/api/v1/sync/batch", headers={**student.headers, "Idempotency-Key": uuid.uuid4().hex},
        json={"sessions": [
            {**body, "id": str(session_id), "updated_at": "2026-11-21T09:00:00+00:00"}
            for session_id in (plain_id, synced_id)
        ]},
    )
    assert synced.status_code == 200, synced.text
    assert [r["status"] for r in synced.json()["results"]] == ["created", "created"]
    assert await _status(app, events[synced_id]) == "applied"
    assert (await _metrics(app, synced_id))["accuracy_pct"] == 92.0
    assert await _metrics(app, plain_id) == {}
    assert (await _metrics(app, created_id, source="manual"))["minutes"] == 20.0


async def test_malformed_summary_is_rejected_with_a_reason(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    student = await make_user(app)
    session_id = await add_session(app, student.id)
    event_id, payload = summary_event(user_id=student.id, session_id=session_id)
    payload["summary"]["duration_s"] = "long"
    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "rejected"
    async with app.state.mpt.sessions() as db:
        row = await db.get(ProcessedEvent, event_id)
    assert row is not None and "summary.duration_s is 'long'" in (row.reason or "")


async def test_manual_metrics_are_replaced_on_edit(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await make_user(app)
    session_id = await add_session(app, student.id, accuracy_pct=70.0)
    async with app.state.mpt.sessions() as db, db.begin():
        session = await db.get(PracticeSession, session_id)
        assert session is not None
        await record_manual_metrics(db, session)
    async with app.state.mpt.sessions() as db, db.begin():
        session = await db.get(PracticeSession, session_id)
        assert session is not None
        session.accuracy_pct = 80.0
        await record_manual_metrics(db, session)
    metrics = await _metrics(app, session_id, "manual")
    assert metrics["accuracy_pct"] == 80.0
    async with app.state.mpt.sessions() as db:
        rollup = (await db.execute(select(MetricRollup).where(
            MetricRollup.bucket == "day", MetricRollup.metric == "accuracy_pct",
        ))).scalar_one()
    assert (rollup.n, rollup.total) == (1, 80.0)


async def test_fresh_sessions_metrics_in_one_write_equal_one_by_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Three new sessions, two in the same hour: written together (as a sync batch does),
    their manual metrics and rollups are those written one session at a time; the shared
    hour's and day's rollup rows add up."""
    from datetime import timedelta

    from api.db import utcnow

    start = utcnow().replace(minute=5, second=0, microsecond=0) - timedelta(days=2)
    students = [await make_user(app), await make_user(app)]
    plans = [(start, 70.0), (start + timedelta(minutes=20), 90.0),
             (start + timedelta(days=1), None)]
    rollups = []
    for together, student in zip((True, False), students, strict=True):
        ids = [await add_session(app, student.id, started_at=t, accuracy_pct=acc)
               for t, acc in plans]
        async with app.state.mpt.sessions() as db, db.begin():
            rows = [await db.get(PracticeSession, i) for i in ids]
            assert all(row is not None for row in rows)
            if together:
                await record_fresh_manual_metrics(db, rows)  # type: ignore[arg-type]
            else:
                for row in rows:
                    assert row is not None
                    await record_manual_metrics(db, row)
        async with app.state.mpt.sessions() as db:
            found = (await db.execute(
                select(MetricRollup.bucket, MetricRollup.bucket_start, MetricRollup.metric,
                       MetricRollup.n, MetricRollup.total, MetricRollup.min_value,
                       MetricRollup.max_value)
                .where(MetricRollup.student_id == student.id)
                .order_by(MetricRollup.bucket, MetricRollup.bucket_start, MetricRollup.metric)
            )).all()
        rollups.append([tuple(row) for row in found])
        manual = [await _metrics(app, i, "manual") for i in ids]
        assert [m.get("accuracy_pct") for m in manual] == [70.0, 90.0, None]
    assert rollups[0] == rollups[1]
    day_accuracy = [r for r in rollups[0] if r[0] == "day" and r[2] == "accuracy_pct"]
    assert [(r[3], r[4]) for r in day_accuracy] == [(2, 160.0)]
