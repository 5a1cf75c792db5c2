"""Fixed-window request limits, in Redis (shared by every API worker) or in the process.

A limit is ``limit`` requests per ``window_s`` for a key (``login:ip:1.2.3.4``). :meth:`hit`
counts one request and answers whether it is allowed, how many remain and when the window
resets; :func:`rate_limit_headers` renders that as the IETF ``RateLimit``/``RateLimit-Policy``
headers (draft-ietf-httpapi-ratelimit-headers), plus ``Retry-After`` when refused.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

from api.errors import RateLimitedError, UnavailableError

__all__ = [
    "Decision",
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "enforce",
    "rate_limit_headers",
]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one counted request."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    window_s: int
    name: str


class RateLimiter(Protocol):
    async def hit(self, name: str, key: str, *, limit: int, window_s: int) -> Decision: ...

    async def aclose(self) -> None: ...


class MemoryRateLimiter:
    """Counters in this process (embedded defaults: one API worker)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = asyncio.Lock()
        self._last_sweep = 0.0

    async def hit(self, name: str, key: str, *, limit: int, window_s: int) -> Decision:
        now = time.time()
        window = int(now // window_s)
        full = f"{name}:{key}:{window_s}"
        async with self._lock:
            start, count = self._counts.get(full, (window, 0))
            if start != window:
                start, count = window, 0
            count += 1
            self._counts[full] = (start, count)
            if now - self._last_sweep > 60:
                self._sweep(now)
        reset_s = max(1, math.ceil((window + 1) * window_s - now))
        return Decision(count <= limit, limit, max(0, limit - count), reset_s, window_s, name)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for full, (start, _count) in list(self._counts.items()):
            window_s = int(full.rsplit(":", 1)[1])
            if start < int(now // window_s):
                del self._counts[full]

    async def aclose(self) -> None:
        self._counts.clear()


_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class RedisRateLimiter:
    """Counters in Redis: one ``INCR`` (+ ``EXPIRE`` on the first hit) per request, atomic
    in a Lua script, under ``<prefix>:rl:``."""

    def __init__(self, client: aioredis.Redis, *, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_HIT_SCRIPT)

    async def hit(self, name: str, key: str, *, limit: int, window_s: int) -> Decision:
        now = time.time()
        window = int(now // window_s)
        redis_key = f"{self._prefix}:rl:{name}:{key}:{window_s}:{window}"
        try:
            count = int(await self._script(keys=[redis_key], args=[window_s + 1]))
        except aioredis.RedisError as exc:
            raise UnavailableError(f"the rate limiter's Redis failed: {exc}") from exc
        reset_s = max(1, math.ceil((window + 1) * window_s - now))
        return Decision(count <= limit, limit, max(0, limit - count), reset_s, window_s, name)

    async def aclose(self) -> None:
        return None


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """``RateLimit-Policy``, ``RateLimit`` (and ``Retry-After`` when refused) headers."""
    headers = {
        "RateLimit-Policy": f'"{decision.name}";q={decision.limit};w={decision.window_s}',
        "RateLimit": f'"{decision.name}";r={decision.remaining};t={decision.reset_s}',
    }
    if not decision.allowed:
        headers["Retry-After"] = str(decision.reset_s)
    return headers


async def enforce(limiter: RateLimiter, name: str, key: str, *, limit: int,
                  window_s: int) -> Decision:
    """Count a request; raise :class:`RateLimitedError` (429, with headers) when over the limit."""
    decision = await limiter.hit(name, key, limit=limit, window_s=window_s)
    if not decision.allowed:
        raise RateLimitedError(
            f"too many {name} requests: the limit is {limit} per {window_s} s; "
            f"retry in {decision.reset_s} s",
            headers=rate_limit_headers(decision),
        )
    return decision
