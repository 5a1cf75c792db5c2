"""Is an access token's user still allowed in? A per-process cache over the ``users`` row.

Access tokens are self-contained JWTs, so on their own they stay valid until they expire
(30 min) even after the account is erased, the password is changed or the role changes.
:class:`UserGate` closes that gap: it looks the user up (status, role, when the password
last changed) at most once per ``ttl_s`` per process, and refuses a token whose user is
deleted (``account_deleted``), whose role differs from the token's, or which was issued
before the last password change (``token_revoked``). A process forgets its own entry at
once (:meth:`forget`) when it changes the user; other workers notice within ``ttl_s``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.accounts.models import User
from api.errors import UnauthenticatedError

__all__ = ["UserGate"]


@dataclass(frozen=True, slots=True)
class _Entry:
    checked_at: float
    status: str | None
    role: str | None
    password_changed_at: datetime | None


class UserGate:
    """See the module docstring."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl_s: float = 15.0,
                 max_entries: int = 100_000) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[uuid.UUID, _Entry] = {}

    def forget(self, user_id: uuid.UUID) -> None:
        """Drop the cached state of ``user_id`` (after changing the user in this process)."""
        self._entries.pop(user_id, None)

    async def _lookup(self, user_id: uuid.UUID) -> _Entry:
        now = time.monotonic()
        entry = self._entries.get(user_id)
        if entry is not None and now - entry.checked_at < self._ttl_s:
            return entry
        async with self._sessions() as db:
            row = (
                await db.execute(
                    select(User.status, User.role, User.password_changed_at).where(
                        User.id == user_id
                    )
                )
            ).first()
        entry = _Entry(now, *row) if row is not None else _Entry(now, None, None, None)
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[user_id] = entry
        return entry

    async def check(self, user_id: uuid.UUID, *, role: str, issued_at: datetime) -> None:
        """Raise :class:`UnauthenticatedError` unless the token may still be used."""
        entry = await self._lookup(user_id)
        if entry.status is None:
            raise UnauthenticatedError(f"user {user_id} does not exist", code="token_invalid")
        if entry.status != "active":
            raise UnauthenticatedError(f"account {user_id} was deleted", code="account_deleted")
        if entry.role != role:
            raise UnauthenticatedError(
                f"the account's role is now {entry.role}; log in again", code="token_revoked"
            )
        changed = entry.password_changed_at
        if changed is not None and issued_at < changed.replace(microsecond=0):
            raise UnauthenticatedError(
                "the password was changed after this token was issued; log in again",
                code="token_revoked",
            )
