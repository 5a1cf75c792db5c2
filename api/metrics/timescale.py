"""The TimescaleDB path for the metrics time series (used where the extension exists).

This machine has no TimescaleDB, so the SQL is built here as data and tested as text
(``tests/api/metrics/test_timescale.py``); :func:`apply_timescale` runs it at API start-up
when ``pg_available_extensions`` lists ``timescaledb`` (migration 0002 then creates
``practice_metrics`` as a plain table instead of monthly partitions). It turns the table into
a hypertable (7-day chunks), adds hourly and daily continuous aggregates with refresh
policies, and compresses chunks older than 30 days, segmented by student and metric. The
statements are idempotent (``IF NOT EXISTS``) and run in autocommit mode, since continuous
aggregates cannot be created inside a transaction.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["apply_timescale", "has_timescale", "timescale_statements"]

AGGREGATES = (("hour", "1 hour", "3 hours", "1 hour"), ("day", "1 day", "3 days", "1 hour"))


def timescale_statements(*, chunk_days: int = 7, compress_after_days: int = 30) -> list[str]:
    """The SQL that sets up the Timescale path, in order."""
    statements = [
        "CREATE EXTENSION IF NOT EXISTS timescaledb",
        "SELECT create_hypertable('practice_metrics', by_range('time', "
        f"INTERVAL '{chunk_days} days'), if_not_exists => TRUE, migrate_data => TRUE)",
    ]
    for name, width, start_offset, schedule in AGGREGATES:
        view = f"practice_metrics_{name}ly" if name == "hour" else "practice_metrics_daily"
        statements.append(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} "
            "WITH (timescaledb.continuous) AS "
            f"SELECT time_bucket(INTERVAL '{width}', time) AS bucket_start, student_id, "
            "metric, source, count(*) AS n, sum(value) AS total, min(value) AS min_value, "
            "max(value) AS max_value FROM practice_metrics "
            "GROUP BY bucket_start, student_id, metric, source WITH NO DATA"
        )
        statements.append(
            f"SELECT add_continuous_aggregate_policy('{view}', "
            f"start_offset => INTERVAL '{start_offset}', end_offset => INTERVAL '1 minute', "
            f"schedule_interval => INTERVAL '{schedule}', if_not_exists => TRUE)"
        )
    statements += [
        "ALTER TABLE practice_metrics SET (timescaledb.compress, "
        "timescaledb.compress_segmentby = 'student_id, metric', "
        "timescaledb.compress_orderby = 'time DESC')",
        f"SELECT add_compression_policy('practice_metrics', INTERVAL '{compress_after_days} "
        "days', if_not_exists => TRUE)",
    ]
    return statements


async def has_timescale(engine: AsyncEngine) -> bool:
    """True when the database is PostgreSQL with the timescaledb extension available."""
    if engine.dialect.name != "postgresql":
        return False
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
            )
        ).first()
    return row is not None


async def apply_timescale(engine: AsyncEngine) -> bool:
    """Run :func:`timescale_statements` when TimescaleDB is available; return whether it ran."""
    if not await has_timescale(engine):
        return False
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for statement in timescale_statements():
            await autocommit.execute(text(statement))
    return True
