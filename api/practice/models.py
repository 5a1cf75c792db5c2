"""Tables of the practice domain: sessions, tags and pieces, segments."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, UTCDateTime, new_id, utcnow

__all__ = ["PracticeSegment", "PracticeSession", "SessionTag", "Tag"]


class PracticeSession(Base):
    """One practice session of a student. Clients may choose the id (offline creation).

    ``status`` is ``active`` or ``deleted`` (a tombstone that sync still delivers);
    ``client_updated_at`` is the device's clock of the last edit (sync resolves conflicts by
    it); ``change_seq`` is the owner's change counter at the last write (the sync cursor).
    """

    __tablename__ = "practice_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'deleted')", name="status"),
        CheckConstraint("mode IN ('normal', 'slow', 'performance')", name="mode"),
        CheckConstraint("self_rating IS NULL OR (self_rating BETWEEN 1 AND 5)", name="rating"),
        Index("ix_practice_sessions_student_started", "student_id", "started_at", "id"),
        Index("ix_practice_sessions_student_seq", "student_id", "change_seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    focus: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    self_rating: Mapped[int | None] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)
    target_bpm: Mapped[float | None] = mapped_column(Float)
    accuracy_pct: Mapped[float | None] = mapped_column(Float)
    mode: Mapped[str] = mapped_column(String(16), default="normal")
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    client_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    change_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class Tag(Base):
    """A label for sessions. ``owner_id`` None is a global tag (made by an admin), else a
    personal one. A tag of ``kind`` ``piece`` is a piece of music, with composer, difficulty
    (1-10) and typical duration. ``scope`` is ``global`` or the owner's id (hex), and
    ``name_key`` the lower-cased name, so names are unique per scope and kind."""

    __tablename__ = "tags"
    __table_args__ = (
        CheckConstraint("kind IN ('tag', 'piece')", name="kind"),
        CheckConstraint("status IN ('active', 'deleted')", name="status"),
        CheckConstraint("difficulty IS NULL OR (difficulty BETWEEN 1 AND 10)", name="difficulty"),
        Index("uq_tags_scope_kind_name", "scope", "kind", "name_key", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16), default="tag")
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200))
    composer: Mapped[str | None] = mapped_column(String(200))
    difficulty: Mapped[int | None] = mapped_column()
    typical_duration_s: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SessionTag(Base):
    """A tag (or piece) on a session."""

    __tablename__ = "session_tags"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("practice_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class PracticeSegment(Base):
    """A section practised in a session: bars ``start_bar``..``end_bar`` (inclusive) of a
    piece, repeated ``click_count`` times (the app's "again" taps) for ``duration_s``, at
    ``tempo_bpm``, with the ``accuracy_pct`` the app measured on it (recommendations use it)."""

    __tablename__ = "practice_segments"
    __table_args__ = (
        CheckConstraint("start_bar >= 1 AND end_bar >= start_bar", name="bars"),
        CheckConstraint("click_count >= 0", name="clicks"),
        CheckConstraint("accuracy_pct IS NULL OR (accuracy_pct BETWEEN 0 AND 100)",
                        name="accuracy"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("practice_sessions.id", ondelete="CASCADE"), index=True
    )
    piece_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tags.id", ondelete="SET NULL"), index=True
    )
    label: Mapped[str | None] = mapped_column(String(200))
    start_bar: Mapped[int] = mapped_column()
    end_bar: Mapped[int] = mapped_column()
    click_count: Mapped[int] = mapped_column(default=0)
    duration_s: Mapped[float | None] = mapped_column(Float)
    tempo_bpm: Mapped[float | None] = mapped_column(Float)
    accuracy_pct: Mapped[float | None] = mapped_column(Float)
