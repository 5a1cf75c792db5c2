"""What the running app holds: built in the lifespan, torn down at shutdown, passed down
through dependencies (``api.deps``). Nothing here exists at import time."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pwdlib import PasswordHash
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.notify import Notifier
from api.observability import ApiMetrics
from api.progress.factcache import FactsCache
from api.ratelimit import RateLimiter
from api.usergate import UserGate
from mpt.settings import Settings
from mpt.tokens import TokenVerifier

__all__ = ["AppState"]


@dataclass(slots=True)
class AppState:
    """The app's long-lived parts (one per process)."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]
    facts_cache: FactsCache
    limiter: RateLimiter
    redis: aioredis.Redis | None
    notifier: Notifier
    hasher: PasswordHash
    private_key: Ed25519PrivateKey
    public_key: Ed25519PublicKey
    tokens: TokenVerifier
    metrics: ApiMetrics
    user_gate: UserGate
