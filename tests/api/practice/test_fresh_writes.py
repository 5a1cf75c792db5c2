"""A write that creates sessions answers and caches what it inserted instead of reading it
back: the response equals the session read again, and the student's cached facts equal
their history loaded from the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.db import utcnow
from api.practice.models import Tag
from api.progress.factcache import FactsCache
from api.progress.facts import active_student, load_facts
from api.progress.rules import SessionFacts
from tests.api._support.world import add_user

pytestmark = pytest.mark.anyio

_TIMES = ("started_at", "ended_at", "created_at", "updated_at", "client_updated_at",
          "deleted_at")


def _instants(body: dict[str, Any]) -> dict[str, Any]:
    """The body with its times as instants (a response keeps the client's offset)."""
    return {k: datetime.fromisoformat(v) if k in _TIMES and v else v for k, v in body.items()}


async def _tags(app: FastAPI) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    async with app.state.mpt.sessions() as db, db.begin():
        tags = [Tag(scope="global", kind="piece", name="Etude", name_key="etude"),
                Tag(scope="global", kind="piece", name="Sonata", name_key="sonata"),
                Tag(scope="global", kind="tag", name="Scales", name_key="scales")]
        db.add_all(tags)
        await db.flush()
        return tags[0].id, tags[1].id, tags[2].id


async def _check_cache(app: FastAPI, student_id: uuid.UUID) -> None:
    """Both cached entries stand at the student's current version and hold exactly what a
    load from the database gives."""
    cache: FactsCache = app.state.mpt.facts_cache
    async with app.state.mpt.sessions() as db:
        student = await active_student(db, student_id)
        assert student is not None
        version = student.version
        for pieces in (False, True):
            loaded = await load_facts(db, student_id, pieces=pieces)
            cached = cache._entries.get((student_id, pieces))
            assert cached is not None and cached[0] == version, (pieces, cached, version)
            got: list[SessionFacts] = list(cached[1])
            assert got == loaded


async def _warm(app: FastAPI, student_id: uuid.UUID) -> None:
    async with app.state.mpt.sessions() as db:
        student = await active_student(db, student_id)
        assert student is not None
        for pieces in (False, True):
            await load_facts(db, student_id, pieces=pieces, version=student.version)


async def test_created_session_answers_as_read_back(app: FastAPI,
                                                     client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Fresh")
    etude, sonata, scales = await _tags(app)
    start = datetime(2026, 3, 1, 17, tzinfo=UTC).astimezone()
    bodies: list[dict[str, Any]] = [
        {"started_at": start.isoformat()},
        {"started_at": "2026-03-02T17:00:00+01:00", "ended_at": "2026-03-02T17:40:00+01:00",
         "focus": "coda", "self_rating": 4, "note": "n", "target_bpm": 96,
         "accuracy_pct": 87.5, "mode": "slow", "tag_ids": [etude],
         "segments": [{"label": "B", "start_bar": 9, "end_bar": 16, "click_count": 5,
                       "duration_s": 300, "tempo_bpm": 88, "accuracy_pct": 64},
                      {"piece_id": str(sonata), "start_bar": 1, "end_bar": 2}]},
        {"id": str(uuid.uuid4()), "started_at": "2026-03-03T09:00:00Z",
         "ended_at": "2026-03-03T09:10:00Z", "tag_ids": [str(scales), str(etude)],
         "segments": [{"start_bar": 3, "end_bar": 3}] * 3},
    ]
    for body in bodies:
        created = await client.post("/api/v1/sessions", headers=student.headers,
                                    json={**body, "tag_ids": [str(t) for t in
                                                              body.get("tag_ids", [])]})
        assert created.status_code == 201, created.text
        read = await client.get(f"/api/v1/sessions/{created.json()['id']}",
                                headers=student.headers)
        assert read.status_code == 200, read.text
        assert _instants(created.json()) == _instants(read.json())


async def test_created_sessions_extend_the_cached_facts(app: FastAPI,
                                                         client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Cached")
    etude, sonata, scales = await _tags(app)
    now = utcnow()
    first = await client.post("/api/v1/sessions", headers=student.headers, json={
        "started_at": (now - timedelta(days=2)).isoformat(),
        "ended_at": (now - timedelta(days=2) + timedelta(minutes=25)).isoformat()})
    assert first.status_code == 201, first.text
    await _warm(app, student.id)
    cache: FactsCache = app.state.mpt.facts_cache

    # by hand: minutes, accuracy and target tempo as metrics, pieces from a tag and a segment,
    # a start with an offset, and one before the first session
    for body in (
        {"started_at": (now - timedelta(days=1)).astimezone(
            datetime.now().astimezone().tzinfo).isoformat(),
         "ended_at": (now - timedelta(days=1, seconds=-2233.7)).isoformat(),
         "accuracy_pct": 87.3, "target_bpm": 72, "self_rating": 2, "mode": "slow",
         "tag_ids": [str(etude), str(scales)],
         "segments": [{"piece_id": str(sonata), "start_bar": 1, "end_bar": 8}]},
        {"started_at": (now - timedelta(days=3)).isoformat(), "self_rating": 5},
        {"started_at": (now - timedelta(hours=5)).isoformat(), "id": str(uuid.uuid4())},
    ):
        misses = cache.misses
        created = await client.post("/api/v1/sessions", headers=student.headers, json=body)
        assert created.status_code == 201, created.text
        assert cache.misses == misses, "the leaderboard refresh found the facts cached"
        await _check_cache(app, student.id)

    # a sync batch of new sessions (one created deleted) extends it too
    items = [
        {"id": str(uuid.uuid4()), "started_at": (now - timedelta(hours=h)).isoformat(),
         "ended_at": (now - timedelta(hours=h, seconds=-h * 71.3)).isoformat(),
         "updated_at": now.isoformat(), "deleted": h == 2, "tag_ids": [str(etude)],
         "accuracy_pct": 50.1 + h}
        for h in (1, 2, 3)
    ]
    synced = await client.post("/api/v1/sync/batch", json={"sessions": items},
                               headers={**student.headers, "Idempotency-Key": "k1"})
    assert synced.status_code == 200, synced.text
    await _check_cache(app, student.id)

    # an edit is not an insert: the cache is reloaded, and still right
    edited = await client.patch(f"/api/v1/sessions/{first.json()['id']}",
                                headers=student.headers, json={"accuracy_pct": 10})
    assert edited.status_code == 200, edited.text
    await _warm(app, student.id)
    await _check_cache(app, student.id)


def _facts(session_id: uuid.UUID, hour: int) -> SessionFacts:
    return SessionFacts(session_id=session_id, student_id=uuid.UUID(int=1),
                        started_at=datetime(2026, 11, 2, hour, tzinfo=UTC), duration_s=60.0)


def test_extend_only_the_base_version_and_never_twice() -> None:
    cache = FactsCache()
    student = uuid.uuid4()
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put(student, pieces=False, version=(3, 1), facts=[_facts(a, 9), _facts(b, 11)])
    assert cache.extend(student, base=(2, 1), version=(4, 1),
                        added=lambda pieces: [_facts(c, 10)]) == 0  # another version
    assert cache.get(student, pieces=False, version=(4, 1)) is None
    assert cache.extend(student, base=(3, 1), version=(4, 1),
                        added=lambda pieces: [_facts(c, 9), _facts(uuid.UUID(int=2), 12)]) == 1
    got = cache.get(student, pieces=False, version=(4, 1))
    assert got is not None
    assert [f.session_id for f in got] == [a, c, b, uuid.UUID(int=2)]  # after equal starts
    # an entry that already holds an added session (read after the write) stays as it is
    assert cache.extend(student, base=(4, 1), version=(5, 1),
                        added=lambda pieces: [_facts(c, 9)]) == 0
    assert cache.get(student, pieces=False, version=(5, 1)) is None


def test_an_entry_read_after_the_write_is_not_extended_with_it() -> None:
    # a reader that loaded the new session but stored it under the version before the
    # write: the first extend looks the added ids up among the entry's (then remembers them)
    cache = FactsCache()
    student = uuid.uuid4()
    a, c, d = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put(student, pieces=True, version=(7, 1), facts=[_facts(a, 9), _facts(c, 10)])
    assert cache.extend(student, base=(7, 1), version=(8, 1),
                        added=lambda pieces: [_facts(c, 10)]) == 0
    assert cache.get(student, pieces=True, version=(8, 1)) is None
    assert cache.extend(student, base=(7, 1), version=(8, 1),
                        added=lambda pieces: [_facts(d, 11)]) == 1
    assert cache.extend(student, base=(8, 1), version=(9, 1),
                        added=lambda pieces: [_facts(a, 12)]) == 0  # held since the put
    got = cache.get(student, pieces=True, version=(8, 1))
    assert got is not None and [f.session_id for f in got] == [a, c, d]
