"""Rate limits of login, registration and reset requests: per client address and per
e-mail address, in the process and in Redis."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from api.main import create_app
from api.notify import MemoryNotifier
from mpt.settings import RateLimitSettings, RedisSettings, Settings
from tests._support.services import RedisNamespace, redis_namespace
from tests.api.accounts._support import API, PASSWORD, code, register
from tests.api.accounts.conftest import cheap_hasher

pytestmark = pytest.mark.anyio

LOGIN_PER_MIN = 3


@pytest.fixture
def rate_limits() -> RateLimitSettings:
    return RateLimitSettings(enabled=True, login_per_min=LOGIN_PER_MIN, register_per_hour=2,
                             reset_per_hour=2, user_per_min=1000)


@pytest.fixture
def namespace() -> Iterator[RedisNamespace]:
    with redis_namespace() as ns:
        yield ns


def _from(app: FastAPI, address: str) -> httpx.AsyncClient:
    """A client of the running ``app`` whose requests come from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def _away_from_window_edge(margin_s: float = 10.0) -> None:
    """Wait for the next minute if this one ends within ``margin_s``: fixed windows reset
    every 60 s (and hour), and a test running across a reset would see fresh counters."""
    left_s = 60 - time.time() % 60
    if left_s < margin_s:
        await asyncio.sleep(left_s + 0.1)


@asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[FastAPI]:
    await _away_from_window_edge()
    async with LifespanManager(app):
        app.state.mpt.hasher = cheap_hasher()
        yield app


def _assert_limited(response: httpx.Response, name: str, limit: int, window_s: int) -> None:
    assert response.status_code == 429, response.text
    assert code(response) == "rate_limited"
    assert f"{limit} per {window_s} s" in response.json()["detail"]
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= window_s
    assert response.headers["ratelimit-policy"] == f'"{name}";q={limit};w={window_s}'
    assert response.headers["ratelimit"] == f'"{name}";r=0;t={retry}'


async def _login(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post(f"{API}/auth/login", json={"email": email, "password": password})


async def _login_limits(app: FastAPI) -> None:
    async with _from(app, "10.0.0.1") as first:
        await register(first, "ada@example.com")
        await register(first, "bob@example.com")
        ok = await _login(first, "ada@example.com")
        assert ok.status_code == 200
        assert re.fullmatch(r'"login";r=2;t=\d+', ok.headers["ratelimit"])
        # failures count too
        assert (await _login(first, "bob@example.com", "wrong password")).status_code == 401
        assert (await _login(first, "ada@example.com")).status_code == 200
        _assert_limited(await _login(first, "bob@example.com"), "login", LOGIN_PER_MIN, 60)
    # the per-e-mail limit holds when the address changes
    for i in range(LOGIN_PER_MIN - 2):
        async with _from(app, f"10.0.1.{i}") as other:
            assert (await _login(other, "ada@example.com")).status_code == 200
    async with _from(app, "10.0.2.1") as fresh:
        _assert_limited(await _login(fresh, " ADA@example.com"), "login", LOGIN_PER_MIN, 60)
        # the OAuth2 form shares the counters
        form = await fresh.post(f"{API}/auth/token",
                                data={"username": "ada@example.com", "password": PASSWORD})
        _assert_limited(form, "login", LOGIN_PER_MIN, 60)
        # a fresh address and another e-mail are fine
        assert (await _login(fresh, "bob@example.com")).status_code == 200


async def test_login_limits_in_memory(app: FastAPI) -> None:
    async with _running(app):
        await _login_limits(app)


async def test_login_limits_in_redis(settings: Settings, namespace: RedisNamespace) -> None:
    shared = settings.model_copy(update={
        "redis": RedisSettings(url=namespace.url, key_prefix=namespace.prefix)})
    app = create_app(shared, notifier=MemoryNotifier())
    async with _running(app):
        await _login_limits(app)
    # the counters are in Redis under the namespace, and carry no e-mail address
    client = redis.Redis.from_url(namespace.url)
    try:
        keys = [k.decode() for k in client.scan_iter(match=f"{namespace.prefix}:rl:*")]
    finally:
        client.close()
    assert any(":rl:login:ip:10.0.0.1:60:" in k for k in keys)
    assert any(":rl:login:email:" in k for k in keys)
    assert not any("example.com" in k for k in keys)
    # a second app (another worker) sees the same counters
    again = create_app(shared, notifier=MemoryNotifier())
    async with _running(again), _from(again, "10.0.9.9") as other:
        _assert_limited(await _login(other, "ada@example.com"), "login", LOGIN_PER_MIN, 60)


async def test_register_limit_per_address(client: httpx.AsyncClient, app: FastAPI) -> None:
    await _away_from_window_edge()
    async with _from(app, "10.1.0.1") as one:
        first = await one.post(f"{API}/auth/register", json={
            "email": "a1@example.com", "password": PASSWORD, "role": "student",
            "display_name": "A"})
        assert first.status_code == 201
        assert re.fullmatch(r'"register";r=1;t=\d+', first.headers["ratelimit"])
        await register(one, "a2@example.com")
        third = await one.post(f"{API}/auth/register", json={
            "email": "a3@example.com", "password": PASSWORD, "role": "student",
            "display_name": "A"})
        _assert_limited(third, "register", 2, 3600)
    async with _from(app, "10.1.0.2") as two:
        await register(two, "a3@example.com")


async def test_reset_request_limits(client: httpx.AsyncClient, app: FastAPI,
                                    notifier: MemoryNotifier) -> None:
    await _away_from_window_edge()
    async with _from(app, "10.2.0.1") as one:
        await register(one, "ada@example.com")
        for _ in range(2):
            ok = await one.post(f"{API}/auth/password/reset-request",
                                json={"email": "ada@example.com"})
            assert ok.status_code == 202 and "ratelimit" in ok.headers
        by_address = await one.post(f"{API}/auth/password/reset-request",
                                    json={"email": "other@example.com"})
        _assert_limited(by_address, "reset", 2, 3600)
    async with _from(app, "10.2.0.2") as two:
        by_email = await two.post(f"{API}/auth/password/reset-request",
                                  json={"email": "ada@example.com"})
        _assert_limited(by_email, "reset", 2, 3600)
    # unknown e-mails are limited alike (no account enumeration through 429s)
    async with _from(app, "10.2.0.3") as three:
        for _ in range(2):
            assert (await three.post(f"{API}/auth/password/reset-request",
                                     json={"email": "nobody@example.com"})).status_code == 202
        _assert_limited(await three.post(f"{API}/auth/password/reset-request",
                                         json={"email": "nobody@example.com"}),
                        "reset", 2, 3600)
    assert len(notifier.sent) == 2
