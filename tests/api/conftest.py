"""API test fixtures: every test that uses ``client`` runs on SQLite and on PostgreSQL.

``db_url`` is parametrized over ``sqlite`` (a migrated template copied per test) and
``postgres`` (one migrated database per session, truncated before each test; skipped
without a server locally, failed under ``CI=true``). ``settings`` points a fresh data
directory at it, ``app`` is ``create_app(settings)`` with a :class:`MemoryNotifier`, and
``client`` an ``httpx.AsyncClient`` over ASGI with the lifespan running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from api.main import create_app
from api.notify import MemoryNotifier
from mpt.settings import ApiSettings, DatabaseSettings, RateLimitSettings, Settings
from tests._support.services import require_postgres
from tests.api._support.db import postgres_database, sqlite_copy, sqlite_template, truncate_all


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sqlite_template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    with postgres_database(require_postgres()) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template_path")
        return sqlite_copy(template, tmp_path)
    url: str = request.getfixturevalue("postgres_session_url")
    truncate_all(url)
    return url


@pytest.fixture
def rate_limits() -> RateLimitSettings:
    """Limits for the test's app; override in a module to test them (off by default)."""
    return RateLimitSettings(enabled=False)


@pytest.fixture
def settings(tmp_path: Path, db_url: str, rate_limits: RateLimitSettings) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=db_url, auto_migrate=False),
        api=ApiSettings(rate_limits=rate_limits, consume_events=False),
    )


@pytest.fixture
def notifier() -> MemoryNotifier:
    return MemoryNotifier()


@pytest.fixture
def app(settings: Settings, notifier: MemoryNotifier) -> FastAPI:
    return create_app(settings, notifier=notifier)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http
