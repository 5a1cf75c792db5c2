"""``/healthz`` (the process answers), ``/readyz`` (the database and Redis answer, and the
schema is at the newest migration) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.deps import StateDep
from api.errors import UnavailableError

__all__ = ["router"]

router = APIRouter(tags=["health"])
READY_TIMEOUT_S = 2.0


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database (and Redis, when configured) answer",
    responses={503: {"description": "A dependency does not answer"}},
)
async def readyz(state: StateDep) -> dict[str, Any]:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            async with state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        raise UnavailableError(f"the database does not answer: {type(exc).__name__}: {exc}",
                          code="not_ready") from exc
    if state.redis is not None:
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await state.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            raise UnavailableError(f"Redis does not answer: {type(exc).__name__}: {exc}",
                              code="not_ready") from exc
    return {"status": "ready", "checks": checks}


@router.get("/metrics", summary="Prometheus metrics of this process", include_in_schema=False)
async def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
