"""Monthly partitions of the metric table on PostgreSQL: created around now, rows that
landed in the default partition moved into their month, nothing done on SQLite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from api.metrics.models import PracticeMetric
from api.metrics.partitions import ensure_month_partitions, month_partition_name, month_start
from tests.api._support.users import make_user
from tests.api._support.world import add_session

pytestmark = pytest.mark.anyio


def test_month_arithmetic() -> None:
    assert month_start(2026, 13) == datetime(2027, 1, 1, tzinfo=UTC)
    assert month_start(2026, 0) == datetime(2025, 12, 1, tzinfo=UTC)
    assert month_partition_name(month_start(2026, 11)) == "practice_metrics_y2026m11"


async def test_partitions_created_and_default_rows_moved(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    state = app.state.mpt
    now = datetime(2031, 5, 14, tzinfo=UTC)
    student = await make_user(app)
    session_id = await add_session(app, student.id, started_at=now)
    async with state.sessions() as db, db.begin():
        db.add(PracticeMetric(time=now, id=uuid.uuid4(), student_id=student.id,
                              session_id=session_id, metric="minutes", value=12.0,
                              source="manual"))
    created = await ensure_month_partitions(state.engine, now=now, months_back=1, months_ahead=1)
    if state.engine.dialect.name != "postgresql":
        assert created == []
        return
    assert created == ["practice_metrics_y2031m04", "practice_metrics_y2031m05",
                       "practice_metrics_y2031m06"]
    assert await ensure_month_partitions(state.engine, now=now, months_back=1,
                                         months_ahead=1) == []
    async with state.sessions() as db:
        in_may = (await db.execute(text("SELECT count(*) FROM practice_metrics_y2031m05"))).scalar()
        in_default = (
            await db.execute(text("SELECT count(*) FROM practice_metrics_default"))
        ).scalar()
        total = (await db.execute(select(func.count()).select_from(PracticeMetric))).scalar()
    assert (in_may, in_default, total) == (1, 0, 1)
    async with state.engine.begin() as conn:  # the session database outlives this test
        for name in created:
            await conn.execute(text(f"DROP TABLE {name}"))
