"""Password hashing off the event loop, with the same cost for unknown accounts.

argon2id takes milliseconds of CPU and megabytes of memory per call (its cost is a setting:
:class:`~mpt.settings.PasswordHashSettings`, :func:`make_hasher`), so :func:`hash_password`
and :func:`verify_password` run it in a worker thread (``asyncio.to_thread``). When there is
no hash to check (unknown e-mail, erased account) :func:`verify_password` verifies against
a dummy hash made by the same hasher (:func:`dummy_hash`), so the answer takes as long as
for a real account and its timing does not tell which e-mails have accounts.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import weakref
from dataclasses import dataclass

from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError
from pwdlib.hashers.argon2 import Argon2Hasher

from mpt.settings import PasswordHashSettings

__all__ = ["Verification", "dummy_hash", "hash_password", "make_hasher", "verify_password"]


def make_hasher(settings: PasswordHashSettings) -> PasswordHash:
    """argon2id with the configured cost (the only scheme: hashes of other parameters still
    verify, and ``verify_and_update`` offers a new hash for them)."""
    return PasswordHash((Argon2Hasher(memory_cost=settings.memory_kib,
                                      time_cost=settings.time_cost,
                                      parallelism=settings.parallelism),))


_dummies: weakref.WeakKeyDictionary[PasswordHash, str] = weakref.WeakKeyDictionary()
_dummies_lock = threading.Lock()


def dummy_hash(hasher: PasswordHash) -> str:
    """The hash of a random, forgotten password made by ``hasher`` (once per hasher), to
    verify against when there is no real hash: it costs what a real account's check costs."""
    with _dummies_lock:
        found = _dummies.get(hasher)
    if found is None:
        found = hasher.hash(secrets.token_urlsafe(32))
        with _dummies_lock:
            found = _dummies.setdefault(hasher, found)
    return found


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
        await asyncio.to_thread(_verify_dummy, hasher, password)
        return Verification(ok=False)
    try:
        ok, updated = await asyncio.to_thread(hasher.verify_and_update, password, password_hash)
    except PwdlibError:  # an unreadable stored hash is a failed check, not a 500
        return Verification(ok=False)
    return Verification(ok=ok, new_hash=updated if ok else None)


def _verify_dummy(hasher: PasswordHash, password: str) -> None:
    hasher.verify_and_update(password, dummy_hash(hasher))
