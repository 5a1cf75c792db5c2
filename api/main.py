"""The FastAPI application: ``create_app(settings)``.

The lifespan builds everything long-lived (database engine, Redis client, rate limiter,
keys, password hasher) into :class:`~api.state.AppState` and disposes of it at shutdown;
the schema is upgraded first when ``MPT_DATABASE__AUTO_MIGRATE`` is on (the default).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.accounts.passwords import make_hasher
from api.accounts.router import router as accounts_router
from api.db import make_engine, make_read_sessionmaker, make_sessionmaker, utcnow
from api.deps import API_AUDIENCE, CloseSessions
from api.errors import install_handlers
from api.gamification.router import router as gamification_router
from api.health import router as health_router
from api.library.router import router as library_router
from api.metrics.consumer import run_consumer
from api.metrics.hooks import refresh_leaderboard
from api.metrics.partitions import ensure_month_partitions
from api.metrics.timescale import apply_timescale
from api.migrate import upgrade_async
from api.notify import LogNotifier, Notifier
from api.observability import ApiMetrics, BodyLimitMiddleware, RequestMiddleware
from api.openapi import install_openapi
from api.practice.router import router as practice_router
from api.progress.factcache import FACTS_CACHE_KEY, FactsCache
from api.progress.router import router as progress_router
from api.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from api.routing import RouteIndex
from api.state import AppState
from api.sync.router import router as sync_router
from api.teaching.router import router as teaching_router
from api.usergate import UserGate
from mpt.settings import Settings, get_settings
from mpt.tokens import TokenVerifier, signing_key, verification_key

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"

DESCRIPTION = """
The Music Practice Tracker's REST API: accounts and tokens, teachers and their students,
practice sessions and offline sync.

Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`.
Authenticate with `Authorization: Bearer <access token>` from `POST /api/v1/auth/login`.
"""


async def _summary_applied(state: AppState, payload: dict[str, Any]) -> None:
    """A stream summary landed: recompute the student's leaderboard totals."""
    started_at = datetime.fromisoformat(str(payload["started_at"]))
    await refresh_leaderboard(state, uuid.UUID(str(payload["user_id"])), [started_at])


def create_app(settings: Settings | None = None, *, notifier: Notifier | None = None) -> FastAPI:
    """Build the application (nothing connects until the lifespan starts).

    Parameters
    ----------
    settings : Settings, optional
        Defaults to :func:`mpt.settings.get_settings`.
    notifier : Notifier, optional
        Where password reset messages go; defaults to the log.
    """
    settings = settings or get_settings()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database.auto_migrate:
            await upgrade_async(settings)
        engine = make_engine(settings)
        redis_client = (aioredis.Redis.from_url(settings.redis.url, socket_timeout=5.0)
                        if settings.redis.url else None)
        limiter: RateLimiter = (
            RedisRateLimiter(redis_client, prefix=settings.redis.key_prefix)
            if redis_client is not None else MemoryRateLimiter()
        )
        facts_cache = FactsCache(settings.api.facts_cache_entries)
        sessions = make_sessionmaker(engine, info={FACTS_CACHE_KEY: facts_cache})
        public_key = verification_key(settings)
        app.state.mpt = AppState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            read_sessions=make_read_sessionmaker(engine, info={FACTS_CACHE_KEY: facts_cache}),
            facts_cache=facts_cache,
            limiter=limiter,
            redis=redis_client,
            notifier=notifier or LogNotifier(),
            hasher=make_hasher(settings.api.password_hash),
            private_key=signing_key(settings),
            public_key=public_key,
            tokens=TokenVerifier(public_key, audience=API_AUDIENCE,
                                 leeway_s=settings.engine.token_leeway_s),
            metrics=metrics,
            user_gate=UserGate(sessions),
        )
        await ensure_month_partitions(engine, now=utcnow())
        await apply_timescale(engine)
        stop = asyncio.Event()
        consumer = (
            asyncio.create_task(
                run_consumer(settings, app.state.mpt.sessions, stop=stop,
                             sweep_every_s=settings.api.consumer_sweep_s,
                             after_applied=partial(_summary_applied, app.state.mpt)),
                name="stream-summary-consumer",
            )
            if settings.api.consume_events else None
        )
        try:
            yield
        finally:
            stop.set()
            if consumer is not None:
                try:
                    await asyncio.wait_for(consumer, timeout=5.0)
                except TimeoutError:
                    consumer.cancel()
            await limiter.aclose()
            if redis_client is not None:
                await redis_client.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Music Practice Tracker API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if settings.api.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api.docs else None,
    )
    install_handlers(app)
    install_openapi(app)
    included = [(health_router, ""), *(
        (router, API_PREFIX)
        for router in (accounts_router, teaching_router, practice_router, library_router,
                       sync_router, progress_router, gamification_router)
    )]
    for router, prefix in included:
        app.include_router(router, prefix=prefix)
    RouteIndex(app, included).install()
    if settings.api.cors_origins:
        any_origin = settings.api.cors_origins == ["*"]
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_credentials=not any_origin,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID"],
        )
    app.add_middleware(CloseSessions)  # innermost: closes the request's sessions
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    return app
