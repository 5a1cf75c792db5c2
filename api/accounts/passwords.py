"""Password hashing off the event loop, with the same cost for unknown accounts.

argon2 takes tens of milliseconds of CPU and a lot of memory per call, so
:func:`hash_password` and :func:`verify_password` run it in a worker thread
(``asyncio.to_thread``). When there is no hash to check (unknown e-mail, erased account)
:func:`verify_password` verifies against :data:`DUMMY_HASH`, so the answer takes as long as
for a real account and its timing does not tell which e-mails have accounts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError

__all__ = ["DUMMY_HASH", "Verification", "hash_password", "verify_password"]

# The argon2id hash of a random, forgotten password, with the recommended parameters.
DUMMY_HASH: Final = (
    "$argon2id$v=19$m=65536,t=3,p=4$jwO8OrQ1ORhJ0/uCMNn67Q$"
    "t2XRkSD4aoXQPiz4Hjiyfgt/fhR2ifUsZEQJaJ7V6aQ"
)


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a password.

    Attributes
    ----------
    ok : bool
        The password matches.
    new_hash : str or None
        A fresh hash to store when the old one used outdated parameters.
    """

    ok: bool
    new_hash: str | None = None


async def hash_password(hasher: PasswordHash, password: str) -> str:
    """Hash ``password`` in a worker thread."""
    return await asyncio.to_thread(hasher.hash, password)


async def verify_password(
    hasher: PasswordHash, password: str, password_hash: str | None
) -> Verification:
    """Check ``password`` against ``password_hash`` (or the dummy hash when None) in a worker
    thread; ``ok`` is always False without a real hash."""
    if password_hash is None:
        await asyncio.to_thread(hasher.verify_and_update, password, DUMMY_HASH)
        return Verification(ok=False)
    try:
        ok, updated = await asyncio.to_thread(hasher.verify_and_update, password, password_hash)
    except PwdlibError:  # an unreadable stored hash is a failed check, not a 500
        return Verification(ok=False)
    return Verification(ok=ok, new_hash=updated if ok else None)
