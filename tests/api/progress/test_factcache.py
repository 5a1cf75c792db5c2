"""The per-process facts cache: reused while the student's data version stands, never
stale after a write through any path (a session logged over HTTP, a stream summary from
the engine), bounded in size."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from api.db import utcnow
from api.metrics.service import apply_stream_summary
from api.progress.factcache import FactsCache
from api.progress.rules import SessionFacts
from tests.api._support.queries import count_queries
from tests.api._support.world import add_user
from tests.api.metrics._events import summary_event

pytestmark = pytest.mark.anyio


def _facts(minutes: float) -> SessionFacts:
    return SessionFacts(session_id=uuid.uuid4(), student_id=uuid.uuid4(),
                        started_at=datetime(2026, 11, 2, 9, tzinfo=UTC),
                        duration_s=minutes * 60.0)


def test_cache_answers_only_its_version_and_evicts_the_least_recent() -> None:
    cache = FactsCache(max_entries=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert cache.get(a, pieces=False, version=(1, 0)) is None
    stored = cache.put(a, pieces=False, version=(1, 0), facts=[_facts(10)])
    assert cache.get(a, pieces=False, version=(1, 0)) == stored
    assert cache.get(a, pieces=False, version=(2, 0)) is None  # a session was written
    assert cache.get(a, pieces=False, version=(1, 1)) is None  # a metric was written
    assert cache.get(a, pieces=True, version=(1, 0)) is None  # no piece ids in the entry
    cache.put(b, pieces=True, version=(5, 5), facts=[_facts(20)])
    assert cache.get(b, pieces=False, version=(5, 5)) is not None  # the superset answers
    cache.get(a, pieces=False, version=(1, 0))  # a is now the most recent
    cache.put(c, pieces=False, version=(1, 0), facts=[])
    assert len(cache) == 2
    assert cache.get(b, pieces=True, version=(5, 5)) is None  # b was evicted
    assert cache.get(a, pieces=False, version=(1, 0)) is not None
    with pytest.raises(ValueError, match="max_entries"):
        FactsCache(max_entries=0)


def _session(start: datetime, minutes: int) -> dict[str, str]:
    return {"started_at": start.isoformat(),
            "ended_at": (start + timedelta(minutes=minutes)).isoformat()}


async def _points(client: httpx.AsyncClient, student_id: uuid.UUID,
                  headers: dict[str, str]) -> dict[str, object]:
    response = await client.get(f"/api/v1/students/{student_id}/points", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_facts_are_reused_until_a_write_then_reloaded(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    student = await add_user(app, "Cached")
    start = utcnow() - timedelta(hours=3)
    created = await client.post("/api/v1/sessions", headers=student.headers,
                                json=_session(start, 20))
    assert created.status_code == 201, created.text
    cache: FactsCache = app.state.mpt.facts_cache
    assert (await _points(client, student.id, student.headers))["total_points"] == 20
    with count_queries(app) as reused:
        hits = cache.hits
        assert (await _points(client, student.id, student.headers))["total_points"] == 20
    assert cache.hits == hits + 1
    assert not any("practice_sessions" in s for s in reused), "the facts came from the cache"

    # a session logged over HTTP bumps change_seq: the next read sees it
    second = await client.post("/api/v1/sessions", headers=student.headers,
                               json=_session(start + timedelta(hours=1), 15))
    assert second.status_code == 201, second.text
    assert (await _points(client, student.id, student.headers))["total_points"] == 35

    # a stream summary (the engine's points: 12) bumps facts_seq and replaces the manual 15
    session_id = uuid.UUID(second.json()["id"])
    event_id, payload = summary_event(user_id=student.id, session_id=session_id,
                                      started_at=start + timedelta(hours=1))
    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "applied"
    body = await _points(client, student.id, student.headers)
    assert body["total_points"] == 20 + 12

    # the progress routes share the cache and slice it by their window
    progress = await client.get(f"/api/v1/students/{student.id}/progress",
                                headers=student.headers)
    assert progress.status_code == 200, progress.text
    assert progress.json()["totals"]["sessions"] == 2


async def test_a_slice_read_on_a_miss_leaves_the_cache_alone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """``fill=False`` (the leaderboard refresh after a write): on a miss only the slice is
    read and the cache keeps no entry; with ``fill`` the history is cached, and the slice
    is the same either way."""
    from api.progress.facts import active_student, load_facts

    student = await add_user(app, "Sliced")
    now = utcnow()
    for start, minutes in ((now - timedelta(hours=3), 20), (now - timedelta(days=10), 45)):
        created = await client.post("/api/v1/sessions", headers=student.headers,
                                    json=_session(start, minutes))
        assert created.status_code == 201, created.text
    cache: FactsCache = app.state.mpt.facts_cache
    cache.clear()
    window = {"since": now - timedelta(days=1), "until": now, "pieces": False}
    async with app.state.mpt.read_sessions() as db:
        found = await active_student(db, student.id)
        assert found is not None
        with count_queries(app) as sliced:
            alone = await load_facts(db, student.id, version=found.version, fill=False,
                                     **window)
        assert [f.minutes for f in alone] == [20.0]
        assert len(cache) == 0
        assert any("practice_sessions" in s for s in sliced)
        filled = await load_facts(db, student.id, version=found.version, **window)
        assert [f.minutes for f in filled] == [20.0]
        assert len(cache) == 1
        with count_queries(app) as cached:
            again = await load_facts(db, student.id, version=found.version, fill=False,
                                     **window)
        assert [f.minutes for f in again] == [20.0]
        assert not any("practice_sessions" in s for s in cached), "a hit reads nothing"
