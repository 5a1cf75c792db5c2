"""The stream-summary consumer against the real durable queue (SQLite file and Redis
Streams), and its exactly-once effects when the consumer process is SIGKILLed mid-batch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api.metrics.consumer import ConsumerStats, consume_once, run_consumer, sweep_pending
from api.metrics.models import PracticeMetric, ProcessedEvent
from mpt.queue import open_queue
from mpt.settings import RedisSettings, Settings
from tests._support.services import redis_namespace
from tests.api._support.users import make_user
from tests.api._support.world import add_session
from tests.api.metrics._events import summary_event

pytestmark = pytest.mark.anyio
TOPIC = "stream.summary.v1"


async def _count(app: FastAPI, model: type, **where: object) -> int:
    async with app.state.mpt.sessions() as db:
        stmt = select(func.count()).select_from(model)
        for key, value in where.items():
            stmt = stmt.where(getattr(model, key) == value)
        return int((await db.execute(stmt)).scalar() or 0)


async def _publish_for_new_sessions(app: FastAPI, settings: Settings, n: int) -> list[str]:
    student = await make_user(app)
    ids = []
    queue = open_queue(settings)
    try:
        for _ in range(n):
            session_id = await add_session(app, student.id)
            event_id, payload = summary_event(user_id=student.id, session_id=session_id)
            assert queue.publish(TOPIC, event_id, payload)
            assert not queue.publish(TOPIC, event_id, payload)  # the queue keeps one copy
            ids.append(event_id)
    finally:
        queue.close()
    return ids


async def test_consumes_from_the_sqlite_queue(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    ids = await _publish_for_new_sessions(app, settings, 3)
    queue = open_queue(settings)
    stats = ConsumerStats()
    hooked: list[str] = []

    async def after_applied(payload: dict[str, object]) -> None:
        hooked.append(str(payload["event_id"]))

    try:
        handled = await consume_once(queue, app.state.mpt.sessions, consumer="t1", stats=stats,
                                     block_s=0.0, after_applied=after_applied)
        again = await consume_once(queue, app.state.mpt.sessions, consumer="t1", stats=stats,
                                   block_s=0.0)
    finally:
        queue.close()
    assert (handled, again, stats.outcomes) == (3, 0, {"applied": 3})
    assert sorted(hooked) == sorted(ids)
    assert await _count(app, ProcessedEvent, status="applied") == len(ids)


async def test_consumes_from_redis_streams(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    with redis_namespace() as ns:
        redis_settings = settings.model_copy(
            update={"redis": RedisSettings(url=ns.url, key_prefix=ns.prefix)}
        )
        await _publish_for_new_sessions(app, redis_settings, 2)
        stop = asyncio.Event()
        stats = ConsumerStats()
        task = asyncio.create_task(run_consumer(redis_settings, app.state.mpt.sessions,
                                                stop=stop, stats=stats, block_s=0.1))
        deadline = time.monotonic() + 10
        while stats.outcomes.get("applied", 0) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert stats.outcomes == {"applied": 2}


async def test_sweep_applies_events_whose_session_arrived(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    student = await make_user(app)
    session_id = uuid.uuid4()
    event_id, payload = summary_event(user_id=student.id, session_id=session_id)
    from api.metrics.service import apply_stream_summary

    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "pending"
    assert await sweep_pending(app.state.mpt.sessions) == 0  # the session is not there yet
    await add_session(app, student.id, id=session_id)
    assert await sweep_pending(app.state.mpt.sessions) == 1
    assert await _count(app, ProcessedEvent, status="applied") == 1


def _start_consumer(settings: Settings, db_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, MPT_DATA_DIR=str(settings.data_dir), MPT_DATABASE__URL=db_url,
               MPT_DATABASE__AUTO_MIGRATE="false")
    env.pop("MPT_REDIS__URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "api.metrics.consumer", "--sweep-every-s", "3600",
         "--lease-s", "1", "--batch", "20"],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab"),
    )


@pytest.mark.slow
async def test_sigkill_mid_batch_loses_nothing_and_applies_nothing_twice(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, db_url: str, tmp_path: Path
) -> None:
    n = 120
    ids = await _publish_for_new_sessions(app, settings, n)
    log = tmp_path / "consumer.log"
    kills = 0
    proc = _start_consumer(settings, db_url, log)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            done = await _count(app, ProcessedEvent)
            if done >= n:
                break
            if kills < 3 and done >= (kills + 1) * n // 4:
                proc.send_signal(signal.SIGKILL)  # mid-batch: some applied, none acked
                proc.wait(10)
                kills += 1
                proc = _start_consumer(settings, db_url, log)
            await asyncio.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(15)
    assert kills == 3, log.read_text()[-2000:]
    assert await _count(app, ProcessedEvent, status="applied") == n
    async with app.state.mpt.sessions() as db:
        per_event = (await db.execute(
            select(PracticeMetric.event_id, func.count()).where(PracticeMetric.metric == "minutes")
            .group_by(PracticeMetric.event_id)
        )).all()
    assert sorted(e for e, _ in per_event) == sorted(ids)
    assert {c for _, c in per_event} == {1}  # every event's metrics written exactly once
