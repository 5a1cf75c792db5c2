"""practice metrics time series (monthly partitions on PostgreSQL), rollups, processed
events; achievements, challenges, reputation grants

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_METRICS = """
CREATE TABLE practice_metrics (
    time TIMESTAMP WITH TIME ZONE NOT NULL,
    id UUID NOT NULL,
    student_id UUID NOT NULL,
    session_id UUID NOT NULL,
    metric VARCHAR(48) NOT NULL,
    value FLOAT NOT NULL,
    source VARCHAR(16) NOT NULL,
    event_id VARCHAR(256),
    metadata JSON,
    CONSTRAINT pk_practice_metrics PRIMARY KEY (time, id),
    CONSTRAINT fk_practice_metrics_student_id_users FOREIGN KEY (student_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_practice_metrics_session_id_practice_sessions FOREIGN KEY (session_id)
        REFERENCES practice_sessions (id) ON DELETE CASCADE,
    CONSTRAINT ck_practice_metrics_source CHECK (source IN ('manual', 'stream', 'recording'))
) PARTITION BY RANGE (time)
"""


def _timescale_available() -> bool:
    row = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).first()
    return row is not None


def upgrade() -> None:
    # Plain PostgreSQL: partitioned by month (api/metrics/partitions.py adds the months).
    # With TimescaleDB: a plain table that api/metrics/timescale.py turns into a hypertable.
    # SQLite: a plain table.
    if op.get_bind().dialect.name == "postgresql" and not _timescale_available():
        op.execute(_PG_METRICS)
        op.execute("CREATE TABLE practice_metrics_default PARTITION OF practice_metrics DEFAULT")
    else:
        op.create_table(
            "practice_metrics",
            sa.Column("time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("student_id", sa.Uuid(), nullable=False),
            sa.Column("session_id", sa.Uuid(), nullable=False),
            sa.Column("metric", sa.String(length=48), nullable=False),
            sa.Column("value", sa.Float(), nullable=False),
            sa.Column("source", sa.String(length=16), nullable=False),
            sa.Column("event_id", sa.String(length=256), nullable=True),
            sa.Column("metadata", sa.JSON(), nullable=True),
            sa.CheckConstraint(
                "source IN ('manual', 'stream', 'recording')",
                name=op.f("ck_practice_metrics_source"),
            ),
            sa.ForeignKeyConstraint(
                ["session_id"], ["practice_sessions.id"],
                name=op.f("fk_practice_metrics_session_id_practice_sessions"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                ["student_id"], ["users.id"],
                name=op.f("fk_practice_metrics_student_id_users"), ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("time", "id", name=op.f("pk_practice_metrics")),
        )
    op.create_index(
        "ix_practice_metrics_student_metric_time", "practice_metrics",
        ["student_id", "metric", "time"],
    )
    op.create_index("ix_practice_metrics_session", "practice_metrics", ["session_id", "source"])
    op.create_table(
        "metric_rollups",
        sa.Column("bucket", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=48), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("min_value", sa.Float(), nullable=False),
        sa.Column("max_value", sa.Float(), nullable=False),
        sa.CheckConstraint("bucket IN ('hour', 'day')", name=op.f("ck_metric_rollups_bucket")),
        sa.ForeignKeyConstraint(
            ["student_id"], ["users.id"],
            name=op.f("fk_metric_rollups_student_id_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "bucket", "bucket_start", "student_id", "metric", "source",
            name=op.f("pk_metric_rollups"),
        ),
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('applied', 'pending', 'rejected')", name=op.f("ck_processed_events_status")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_events")),
    )
    op.create_index(
        "ix_processed_events_pending_session", "processed_events", ["session_id", "status"]
    )


    op.create_table(
        "user_achievements",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("achieved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_user_achievements_user_id_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "code", name=op.f("pk_user_achievements")),
    )
    op.create_table(
        "user_challenges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'completed', 'expired')",
            name=op.f("ck_user_challenges_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_user_challenges_user_id_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_challenges")),
    )
    op.create_index(
        "ix_user_challenges_user_status", "user_challenges", ["user_id", "status"]
    )
    op.create_table(
        "reputation_grants",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_reputation_grants_user_id_users"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_reputation_grants")),
    )


def downgrade() -> None:
    op.drop_table("reputation_grants")
    op.drop_index("ix_user_challenges_user_status", table_name="user_challenges")
    op.drop_table("user_challenges")
    op.drop_table("user_achievements")
    op.drop_index("ix_processed_events_pending_session", table_name="processed_events")
    op.drop_table("processed_events")
    op.drop_table("metric_rollups")
    op.drop_index("ix_practice_metrics_session", table_name="practice_metrics")
    op.drop_index("ix_practice_metrics_student_metric_time", table_name="practice_metrics")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE practice_metrics CASCADE")
    else:
        op.drop_table("practice_metrics")
