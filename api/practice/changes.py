"""The per-user change counter behind offline sync's ``since`` cursor.

Every write to a student's practice data (a session, its tags or segments, a tombstone) takes
the next value of ``users.change_seq`` in the same transaction and stores it on the row.
A batch that writes many rows locks with :func:`next_change_seq` first, numbers its rows from
there and records the last number with :func:`advance_change_seq` before it commits.
The ``UPDATE ... RETURNING`` locks the user's row until commit, so two writers of one user
are serialised and the counter order is the commit order: a device that pulled up to ``n``
never misses a change committed later with a smaller number. The counter is bookkeeping:
bumping it leaves the user's ``updated_at`` (their profile's) alone.

Both statements run on every session write, so they are prebuilt (:mod:`api.fastsql`).
:func:`next_change_version` also returns the user's ``facts_seq``: with the row locked,
``(change_seq, facts_seq)`` is the version of the student's facts this write commits
(:mod:`api.progress.factcache`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import User
from api.errors import NotFoundError
from api.fastsql import Query
from api.progress.factcache import FactsVersion

__all__ = ["advance_change_seq", "next_change_seq", "next_change_version"]

_NEXT = Query(lambda member: (
    update(User)
    .where(User.id == bindparam("user_id"))
    .values(change_seq=User.change_seq + 1, updated_at=User.updated_at)
    .returning(User.change_seq, User.facts_seq)
))
_VALUE = bindparam("value", type_=BigInteger())
_ADVANCE = Query(lambda member: (
    update(User)
    .where(User.id == bindparam("user_id"), User.change_seq < _VALUE)
    .values(change_seq=_VALUE, updated_at=User.updated_at)
    .returning(User.change_seq)  # fastsql runs statements that return rows
))


async def next_change_version(db: AsyncSession, user_id: uuid.UUID) -> FactsVersion:
    """Increment the user's change counter (inside the caller's transaction, locking their
    row until it ends) and return ``(change_seq, facts_seq)`` afterwards."""
    found = await _NEXT.rows(db, user_id=user_id)
    if not found:
        raise NotFoundError(f"user {user_id} does not exist")
    change_seq, facts_seq = found[0]
    return int(change_seq), int(facts_seq)


async def next_change_seq(db: AsyncSession, user_id: uuid.UUID) -> int:
    """Increment and return the user's change counter (inside the caller's transaction)."""
    return (await next_change_version(db, user_id))[0]


async def advance_change_seq(db: AsyncSession, user_id: uuid.UUID, value: int) -> None:
    """Raise the user's counter to ``value`` (call only while holding the row lock taken by
    :func:`next_change_seq` in the same transaction; never lowers it)."""
    await _ADVANCE.rows(db, user_id=user_id, value=value)
