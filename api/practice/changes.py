"""The per-user change counter behind offline sync's ``since`` cursor.

Every write to a student's practice data (a session, its tags or segments, a tombstone) takes
the next value of ``users.change_seq`` in the same transaction and stores it on the row.
The ``UPDATE ... RETURNING`` locks the user's row until commit, so two writers of one user
are serialised and the counter order is the commit order: a device that pulled up to ``n``
never misses a change committed later with a smaller number.
"""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import User
from api.errors import NotFoundError

__all__ = ["next_change_seq"]


async def next_change_seq(db: AsyncSession, user_id: uuid.UUID) -> int:
    """Increment and return the user's change counter (inside the caller's transaction)."""
    result = await db.execute(
        update(User)
        .where(User.id == user_id)
        .values(change_seq=User.change_seq + 1)
        .returning(User.change_seq)
    )
    seq = result.scalar_one_or_none()
    if seq is None:
        raise NotFoundError(f"user {user_id} does not exist")
    return int(seq)
