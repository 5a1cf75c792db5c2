"""Tables of the metrics domain: the narrow time series, its rollups, processed events.

``practice_metrics`` is one row per (time, student, session, metric, value, source,
metadata). On PostgreSQL the migration creates it partitioned by month on ``time`` (with a
default partition); where TimescaleDB exists it becomes a hypertable instead
(:mod:`api.metrics.timescale`). ``metric_rollups`` keeps hourly and daily (UTC) count, sum,
min and max per student, metric and source, upserted in the transaction that writes the
metrics, so the same rollup queries run on every back end.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, UTCDateTime, new_id, utcnow

__all__ = ["SOURCES", "MetricRollup", "PracticeMetric", "ProcessedEvent"]

SOURCES = ("manual", "stream", "recording")


class PracticeMetric(Base):
    """One value of one metric of a practice session, from one source."""

    __tablename__ = "practice_metrics"
    __table_args__ = (
        CheckConstraint("source IN ('manual', 'stream', 'recording')", name="source"),
        Index("ix_practice_metrics_student_metric_time", "student_id", "metric", "time"),
        Index("ix_practice_metrics_session", "session_id", "source"),
    )

    time: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("practice_sessions.id", ondelete="CASCADE")
    )
    metric: Mapped[str] = mapped_column(String(48))
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str | None] = mapped_column(String(256))
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)


class MetricRollup(Base):
    """Count, sum, min and max of a metric per student, source and UTC hour or day."""

    __tablename__ = "metric_rollups"
    __table_args__ = (CheckConstraint("bucket IN ('hour', 'day')", name="bucket"),)

    bucket: Mapped[str] = mapped_column(String(8), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    student_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    metric: Mapped[str] = mapped_column(String(48), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)
    min_value: Mapped[float] = mapped_column(Float)
    max_value: Mapped[float] = mapped_column(Float)


class ProcessedEvent(Base):
    """An event taken from the durable queue, recorded in the transaction that applies it
    (its id is the primary key, so a redelivery changes nothing).

    ``status``: ``applied``; ``pending`` (its practice session is not synced yet: the
    payload is kept and applied when the session arrives); ``rejected`` (the session belongs
    to another user, or the payload is invalid: ``reason`` says which).
    """

    __tablename__ = "processed_events"
    __table_args__ = (
        CheckConstraint("status IN ('applied', 'pending', 'rejected')", name="status"),
        Index("ix_processed_events_pending_session", "session_id", "status"),
    )

    event_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    topic: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[uuid.UUID | None] = mapped_column()
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
