"""Sync under real concurrency: two app instances (each with its own connection pool) on one
database, requests raced with ``asyncio.gather``, requests cancelled mid-flight, and a key
taken by a transaction the batch cannot see yet. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from api.accounts.models import User
from api.db import new_id
from api.main import create_app
from api.notify import MemoryNotifier
from api.sync.models import IdempotencyRecord
from api.sync.schemas import SyncBatchRequest
from api.sync.service import request_hash
from mpt.settings import Settings
from tests.api._support.users import TestUser, make_user
from tests.api.practice.support import count_sessions
from tests.api.sync.support import BATCH, item, pull, send

pytestmark = pytest.mark.anyio


@pytest.fixture
async def second(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second app instance on the same database."""
    other_app = create_app(settings, notifier=MemoryNotifier())
    async with LifespanManager(other_app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def user_seq(app: FastAPI, user: TestUser) -> int:
    async with app.state.mpt.sessions() as db:
        return int((await db.execute(select(User.change_seq).where(User.id == user.id)))
                   .scalar_one())


async def test_same_key_raced_over_two_apps_applies_once(
    client: httpx.AsyncClient, second: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    total = 0
    for round_ in range(4):
        items = [item(segments=[{"start_bar": 1, "end_bar": 4}]) for _ in range(60)]
        key = f"race-{round_}"
        one, two = await asyncio.gather(send(client, student, items, key=key),
                                        send(second, student, items, key=key))
        total += len(items)
        assert one.status_code == two.status_code == 200, (one.text, two.text)
        assert one.json() == two.json()
        replayed = sorted(r.headers.get("idempotent-replayed", "no") for r in (one, two))
        assert replayed == ["no", "true"]
        assert [r["status"] for r in one.json()["results"]] == ["created"] * len(items)
        assert await count_sessions(app, student.id) == total
        assert int(one.json()["cursor"]) == await user_seq(app, student)


async def test_cancelled_requests_apply_all_or_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """A client that gives up mid-request (its task cancelled) leaves either the whole
    batch or nothing; its retry with the same key ends with exactly one application."""
    student = await make_user(app)
    warm = [item() for _ in range(300)]
    began = time.perf_counter()
    assert (await send(client, student, warm)).status_code == 200
    elapsed = time.perf_counter() - began
    cancelled = 0
    for fraction in (0.0, 0.05, 0.2, 0.5):
        items = [item() for _ in range(300)]
        key = f"cut-{fraction}"
        before = await count_sessions(app, student.id)
        task = asyncio.create_task(send(client, student, items, key=key))
        await asyncio.sleep(elapsed * fraction)
        task.cancel()
        try:
            # it may have finished first (or a layer of the stack may have absorbed the
            # cancellation); either way the batch must be whole or absent
            await task
        except asyncio.CancelledError:
            cancelled += 1
        for _ in range(5):  # never a part of it, however often we look
            assert await count_sessions(app, student.id) - before in (0, len(items))
            await asyncio.sleep(elapsed * 0.1)
        retry = await send(client, student, items, key=key)
        assert retry.status_code == 200, retry.text
        assert [r["status"] for r in retry.json()["results"]] == ["created"] * len(items)
        assert await count_sessions(app, student.id) - before == len(items)
        again = await send(client, student, items, key=key)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == retry.json()
    assert cancelled >= 1


async def test_a_key_committed_by_another_transaction_wins(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    """The unique (user_id, key) is the last word: a batch that finds no record, then
    collides with one committed meanwhile, answers with the committed response."""
    student = await make_user(app)
    items = [item() for _ in range(3)]
    digest = request_hash(SyncBatchRequest.model_validate({"sessions": items}))
    stored = {"results": [], "cursor": "42"}
    assert settings.database.url
    engine = create_async_engine(settings.database.url)
    try:
        async with engine.connect() as conn:
            await conn.execute(insert(IdempotencyRecord).values(
                id=new_id(), user_id=student.id, key="taken", request_hash=digest,
                status_code=200, response=stored))
            task = asyncio.create_task(send(client, student, items, key="taken"))
            await asyncio.sleep(0.3)
            assert not task.done()
            await conn.commit()
        response = await asyncio.wait_for(task, timeout=20)
    finally:
        await engine.dispose()
    assert response.status_code == 200
    assert response.json() == stored
    assert response.headers["idempotent-replayed"] == "true"
    assert await count_sessions(app, student.id) == 0


async def test_pulls_see_every_change_of_concurrent_writers(
    client: httpx.AsyncClient, second: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    batches = [[item() for _ in range(15)] for _ in range(8)]
    done = asyncio.Event()
    seen: list[str] = []
    cursors: list[int] = []

    async def puller() -> None:
        cursor = None
        while True:
            finished = done.is_set()
            page = await pull(client, student, since=cursor, limit=7)
            seen.extend(s["id"] for s in page["sessions"])
            cursor = page["cursor"]
            cursors.append(int(cursor))
            if finished and not page["has_more"]:
                return
            if not page["has_more"]:
                await asyncio.sleep(0.005)

    async def writers() -> list[httpx.Response]:
        try:
            return list(await asyncio.gather(*(
                send(client if i % 2 else second, student, batch)
                for i, batch in enumerate(batches)
            )))
        finally:
            done.set()

    responses, _ = await asyncio.gather(writers(), puller())
    assert all(r.status_code == 200 for r in responses)
    expected = {i["id"] for batch in batches for i in batch}
    assert len(seen) == len(expected) and set(seen) == expected
    assert cursors == sorted(cursors)
    batch_cursors: list[Any] = sorted(int(r.json()["cursor"]) for r in responses)
    assert len(set(batch_cursors)) == len(batches)
    assert batch_cursors[-1] == await user_seq(app, student) == cursors[-1]


async def test_replay_keeps_status_and_content_type(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    body = {"sessions": [item()]}
    headers = {**student.headers, "Idempotency-Key": "http-1"}
    first = await client.post(BATCH, json=body, headers=headers)
    again = await client.post(BATCH, json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == "application/json"
