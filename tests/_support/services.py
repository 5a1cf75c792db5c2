"""Real services for tests: skip when one is absent on a laptop, fail when CI must have it.

``require_redis()`` pings the Redis server (``TEST_REDIS_URL``, default
``redis://127.0.0.1:6379/0``). When it does not answer the test is skipped — unless the
environment says ``CI=true``, where CI provides the service and its absence is a failure.
``redis_namespace()`` gives a test a random key prefix and deletes its keys afterwards, so
parallel runs and other users of the server do not collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where every service must be present."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(service: str, reason: str) -> None:
    """Skip the test because ``service`` is unavailable — or fail it under CI."""
    message = f"{service} is not available: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true requires it)", pytrace=False)
    pytest.skip(message)


def redis_url() -> str:
    """The Redis server tests use (``TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``)."""
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL


def require_redis() -> str:
    """Return the Redis URL after a successful ``PING``; skip (or fail under CI) otherwise."""
    url = redis_url()
    client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {url}", str(exc))
    finally:
        client.close()
    return url


@dataclass(frozen=True)
class RedisNamespace:
    """A Redis server and a key prefix of the test's own."""

    url: str
    prefix: str


@contextmanager
def redis_namespace() -> Iterator[RedisNamespace]:
    """Require Redis and yield a random key prefix; delete every key under it afterwards."""
    url = require_redis()
    prefix = f"mpt-test-{uuid.uuid4().hex[:12]}"
    try:
        yield RedisNamespace(url=url, prefix=prefix)
    finally:
        client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()


DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    """The PostgreSQL server tests use (``TEST_POSTGRES_URL``, an SQLAlchemy asyncpg URL,
    default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``)."""
    return os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def require_postgres() -> str:
    """Return the PostgreSQL URL after a successful ``SELECT 1``; skip (or fail under CI)."""
    import asyncio

    import asyncpg  # the API's driver (dev extra)

    url = postgres_url()
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def ping() -> None:
        conn = await asyncpg.connect(dsn, timeout=3.0)
        try:
            await conn.execute("SELECT 1")
        finally:
            await conn.close()

    try:
        asyncio.run(ping())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable(f"PostgreSQL at {url}", str(exc))
    return url
