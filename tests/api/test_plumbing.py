"""Cross-cutting request plumbing: the body size limit (declared and streamed), CORS, and
the per-user rate limit with its headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Depends

from api.deps import CurrentUser, Principal, require_role
from api.main import create_app
from api.notify import MemoryNotifier
from mpt.settings import ApiSettings, RateLimitSettings, Settings
from tests.api._support.users import make_user

pytestmark = pytest.mark.anyio


def _session(minutes: int = 10) -> dict[str, str]:
    start = datetime.now(UTC) - timedelta(hours=1)
    return {"started_at": start.isoformat(),
            "ended_at": (start + timedelta(minutes=minutes)).isoformat()}


async def _client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, notifier=MemoryNotifier())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


def _with_api(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"api": settings.api.model_copy(update=changes)})


async def test_declared_oversized_body_is_413(settings: Settings) -> None:
    small = _with_api(settings, max_body_bytes=2048)
    async for http in _client_for(small):
        response = await http.post("/api/v1/auth/login", content=b"x" * 5000,
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "payload_too_large"
        assert "5000 bytes" in response.json()["detail"]


async def test_streamed_oversized_body_is_413(settings: Settings) -> None:
    small = _with_api(settings, max_body_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    async for http in _client_for(small):
        response = await http.post("/api/v1/auth/login", content=chunks(),
                                   headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"


async def test_cors_allows_only_the_configured_origins(settings: Settings) -> None:
    cors = _with_api(settings, cors_origins=["https://app.example"])
    async for http in _client_for(cors):
        allowed = await http.options("/api/v1/sessions", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        })
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        refused = await http.options("/api/v1/sessions", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
        })
        assert "access-control-allow-origin" not in refused.headers


async def test_per_user_limit_counts_and_refuses(settings: Settings) -> None:
    limited = _with_api(settings, rate_limits=RateLimitSettings(enabled=True, user_per_min=3))
    async for http in _client_for(limited):
        student = await make_user(http.app)  # type: ignore[attr-defined]
        answers = [await http.get("/api/v1/sessions", headers=student.headers)
                   for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["ratelimit-policy"] == '"user";q=3;w=60'
        assert answers[2].headers["ratelimit"].startswith('"user";r=0;')
        assert int(answers[3].headers["retry-after"]) >= 1
        assert answers[3].json()["code"] == "rate_limited"
        other = await make_user(http.app)  # type: ignore[attr-defined]
        assert (await http.get("/api/v1/sessions", headers=other.headers)).status_code == 200


async def test_a_caller_is_counted_once_per_request(settings: Settings) -> None:
    """A route taking the caller twice (any user, and a role check) authenticates once: one
    request is one unit of the per-user limit."""
    limited = _with_api(settings, rate_limits=RateLimitSettings(enabled=True, user_per_min=2))
    async for http in _client_for(limited):
        app = http.app  # type: ignore[attr-defined]

        @app.get("/twice")
        async def twice(user: CurrentUser,
                        student: Annotated[Principal, Depends(require_role("student"))]
                        ) -> dict[str, str]:
            return {"user": str(user.id), "student": str(student.id)}

        student = await make_user(app)
        answers = [await http.get("/twice", headers=student.headers) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[0].json() == {"user": str(student.id), "student": str(student.id)}
        assert answers[1].headers["ratelimit"].startswith('"user";r=0;')
        teacher = await make_user(app, role="teacher")
        refused = await http.get("/twice", headers=teacher.headers)
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"


def test_defaults_are_sane() -> None:
    api = ApiSettings()
    assert (api.max_body_bytes, api.cors_origins, api.rate_limits.enabled) == (
        1024 * 1024, [], True)
