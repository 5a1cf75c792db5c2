"""The per-user change counter behind offline sync's ``since`` cursor.

Every write to a student's practice data (a session, its tags or segments, a tombstone) takes
the next value of ``users.change_seq`` in the same transaction and stores it on the row.
A batch that writes many rows locks with :func:`next_change_seq` first, numbers its rows from
there and records the last number with :func:`advance_change_seq` before it commits.
The ``UPDATE ... RETURNING`` locks the user's row until commit, so two writers of one user
are serialised and the counter order is the commit order: a device that pulled up to ``n``
never misses a change committed later with a smaller number. The counter is bookkeeping:
bumping it leaves the user's ``updated_at`` (their profile's) alone.
"""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import User
from api.errors import NotFoundError

__all__ = ["advance_change_seq", "next_change_seq"]


async def next_change_seq(db: AsyncSession, user_id: uuid.UUID) -> int:
    """Increment and return the user's change counter (inside the caller's transaction)."""
    result = await db.execute(
        update(User)
        .where(User.id == user_id)
        .values(change_seq=User.change_seq + 1, updated_at=User.updated_at)
        .returning(User.change_seq)
    )
    seq = result.scalar_one_or_none()
    if seq is None:
        raise NotFoundError(f"user {user_id} does not exist")
    return int(seq)


async def advance_change_seq(db: AsyncSession, user_id: uuid.UUID, value: int) -> None:
    """Raise the user's counter to ``value`` (call only while holding the row lock taken by
    :func:`next_change_seq` in the same transaction; never lowers it)."""
    await db.execute(
        update(User)
        .where(User.id == user_id, User.change_seq < value)
        .values(change_seq=value, updated_at=User.updated_at)
    )
