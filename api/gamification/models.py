"""Tables of the gamification domain: unlocked achievements, challenges, reputation grants.

Points, streaks and leaderboards are computed from the practice data (each session's best
source), so they are never stored twice; what is stored is what happens once: an
achievement unlocked (with its time), a challenge joined (with its window), a reputation
grant (keyed so it is granted once).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, UTCDateTime, new_id, utcnow

__all__ = ["ReputationGrant", "UserAchievement", "UserChallenge"]


class UserAchievement(Base):
    """An achievement a user has unlocked."""

    __tablename__ = "user_achievements"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(48), primary_key=True)
    achieved_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UserChallenge(Base):
    """A challenge a user takes part in, from ``started_at`` to ``deadline``."""

    __tablename__ = "user_challenges"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'completed', 'expired')", name="status"),
        Index("ix_user_challenges_user_status", "user_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(48))
    metric: Mapped[str] = mapped_column(String(32))
    target: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="active")
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReputationGrant(Base):
    """Reputation points given to a user once per ``key`` (e.g. ``achievement:streak_7``)."""

    __tablename__ = "reputation_grants"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    points: Mapped[int] = mapped_column()
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
