"""A student's metrics are part of their export and are erased with their account."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api.metrics.models import MetricRollup, PracticeMetric, ProcessedEvent
from api.metrics.service import apply_stream_summary
from tests.api._support.users import PASSWORD, make_user
from tests.api._support.world import add_session
from tests.api.metrics._events import summary_event

pytestmark = pytest.mark.anyio


async def test_metrics_exported_then_erased(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await make_user(app)
    session_id = await add_session(app, student.id)
    event_id, payload = summary_event(user_id=student.id, session_id=session_id)
    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "applied"
    export = (await client.get("/api/v1/users/me/export", headers=student.headers)).json()
    minutes = [m for m in export["practice_metrics"] if m["metric"] == "minutes"]
    assert [(m["value"], m["source"], m["event_id"]) for m in minutes] == [
        (2.5, "stream", event_id)]
    response = await client.request("DELETE", "/api/v1/users/me", headers=student.headers,
                                    json={"password": PASSWORD})
    assert response.status_code == 204, response.text
    async with app.state.mpt.sessions() as db:
        counts = [
            (await db.execute(select(func.count()).select_from(model))).scalar()
            for model in (PracticeMetric, MetricRollup, ProcessedEvent)
        ]
    assert counts == [0, 0, 0]
