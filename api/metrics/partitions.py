"""Monthly partitions of ``practice_metrics`` on plain PostgreSQL.

The migration creates the partitioned table with a DEFAULT partition, so an insert never
fails for want of a partition. :func:`ensure_month_partitions` (run at API start-up) adds
the months around now: each new month's table is created, any rows the default partition
already holds for that month are moved into it, and it is attached — in one transaction.
SQLite needs none of this; TimescaleDB replaces it with a hypertable
(:mod:`api.metrics.timescale`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["ensure_month_partitions", "month_partition_name", "month_start"]


def month_start(year: int, month: int) -> datetime:
    """Midnight UTC of the first day of the month (``month`` may overflow by one year)."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


def month_partition_name(start: datetime) -> str:
    """``practice_metrics_y2026m11`` for November 2026."""
    return f"practice_metrics_y{start.year:04d}m{start.month:02d}"


async def ensure_month_partitions(
    engine: AsyncEngine, *, now: datetime, months_back: int = 1, months_ahead: int = 3
) -> list[str]:
    """Create the missing monthly partitions from ``months_back`` before ``now``'s month to
    ``months_ahead`` after it; return the names created (none on other back ends)."""
    if engine.dialect.name != "postgresql":
        return []
    created: list[str] = []
    for offset in range(-months_back, months_ahead + 1):
        start = month_start(now.year, now.month + offset)
        end = month_start(start.year, start.month + 1)
        name = month_partition_name(start)
        async with engine.begin() as conn:
            if await _exists(conn, name):
                continue
            # Several API workers may start at once: the lock serialises them, the second
            # check lets the later ones find the partition made.
            await conn.execute(text("LOCK TABLE practice_metrics IN ACCESS EXCLUSIVE MODE"))
            if await _exists(conn, name):
                continue
            await conn.execute(text(
                f"CREATE TABLE {name} (LIKE practice_metrics INCLUDING DEFAULTS "
                "INCLUDING CONSTRAINTS)"
            ))
            await conn.execute(
                text(
                    f"WITH moved AS (DELETE FROM practice_metrics_default "
                    f"WHERE time >= :start AND time < :end RETURNING *) "
                    f"INSERT INTO {name} SELECT * FROM moved"
                ),
                {"start": start, "end": end},
            )
            await conn.execute(
                text(
                    f"ALTER TABLE practice_metrics ATTACH PARTITION {name} "
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                )
            )
        created.append(name)
    return created


async def _exists(conn: AsyncConnection, name: str) -> bool:
    found = (await conn.execute(text("SELECT to_regclass(:name)"), {"name": name})).scalar()
    return found is not None
