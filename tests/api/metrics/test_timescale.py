"""The TimescaleDB path, exercised as the SQL it would run (no TimescaleDB on this machine),
and the check that keeps it off where the extension is missing."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from api.metrics.timescale import apply_timescale, has_timescale, timescale_statements


def test_statements_make_a_hypertable_aggregates_and_compression() -> None:
    sql = timescale_statements(chunk_days=7, compress_after_days=30)
    assert sql[0] == "CREATE EXTENSION IF NOT EXISTS timescaledb"
    assert "create_hypertable('practice_metrics', by_range('time', INTERVAL '7 days')" in sql[1]
    views = [s for s in sql if "timescaledb.continuous" in s]
    assert len(views) == 2
    assert "time_bucket(INTERVAL '1 hour', time)" in views[0]
    assert "time_bucket(INTERVAL '1 day', time)" in views[1]
    for view in views:
        assert "GROUP BY bucket_start, student_id, metric, source" in view
    policies = [s for s in sql if "add_continuous_aggregate_policy" in s]
    assert "practice_metrics_hourly" in policies[0]
    assert "practice_metrics_daily" in policies[1]
    assert any("timescaledb.compress_segmentby = 'student_id, metric'" in s for s in sql)
    assert sql[-1].startswith(
        "SELECT add_compression_policy('practice_metrics', INTERVAL '30 days'"
    )


def test_every_statement_is_idempotent() -> None:
    for statement in timescale_statements():
        assert "IF NOT EXISTS" in statement or "if_not_exists => TRUE" in statement or \
            statement.startswith("ALTER TABLE practice_metrics SET")


@pytest.mark.anyio
async def test_not_applied_without_the_extension(app: FastAPI, client: httpx.AsyncClient) -> None:
    engine = app.state.mpt.engine
    assert await has_timescale(engine) is False  # SQLite, and this PostgreSQL has none
    assert await apply_timescale(engine) is False
