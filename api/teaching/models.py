"""Tables of the teaching domain: invite codes, teacher-student links, consent, feedback."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, UTCDateTime, new_id, utcnow

__all__ = ["InviteCode", "MinorConsent", "SessionFeedback", "TeacherStudentLink"]


class InviteCode(Base):
    """A code a teacher hands out; a student redeems it to link. ``status``: active/revoked."""

    __tablename__ = "invite_codes"
    __table_args__ = (CheckConstraint("status IN ('active', 'revoked')", name="status"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    teacher_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(32), unique=True)
    max_uses: Mapped[int] = mapped_column(default=1)
    used_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TeacherStudentLink(Base):
    """A teacher's access to a student's data while ``status`` is ``active``; from
    ``ended_at`` on (the student left or the teacher removed them) the teacher sees nothing."""

    __tablename__ = "teacher_student_links"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'ended')", name="status"),
        Index("ix_teacher_student_links_pair", "teacher_id", "student_id", "status"),
        Index("ix_teacher_student_links_student", "student_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    teacher_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MinorConsent(Base):
    """Recorded consent (by a guardian) for a linked teacher to see a minor's data."""

    __tablename__ = "minor_consents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    link_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teacher_student_links.id", ondelete="CASCADE"), index=True
    )
    guardian_name: Mapped[str] = mapped_column(String(120))
    guardian_email: Mapped[str] = mapped_column(String(320))
    recorded_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SessionFeedback(Base):
    """A teacher's remark at ``at_s`` seconds into a practice session; the student sees it."""

    __tablename__ = "session_feedback"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'deleted')", name="status"),
        CheckConstraint("at_s >= 0", name="at_s"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("practice_sessions.id", ondelete="CASCADE"), index=True
    )
    teacher_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    at_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
