"""Fixtures of the accounts tests.

``client`` is the shared one, except that the running app hashes passwords with a cheap
argon2id (one pass over 1 MiB instead of three over 64 MiB): the tests check what is hashed
and when, not argon2's cost, and a few hundred full-cost hashes on a small CI machine would
take minutes. A test that needs the real parameters sets ``app.state.mpt.hasher`` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


def cheap_hasher() -> PasswordHash:
    """argon2id with minimal cost (tests only)."""
    return PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        app.state.mpt.hasher = cheap_hasher()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http
