"""The weekly leaderboard: competition ranking with ties, the caller's own entry, deleted
users left out, studio scope and who may see it, accuracy gained, and the Redis board
equal to the database board for the same data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import update

from api.accounts.models import User
from api.gamification.leaderboard import WEEK_KEY_TTL_S, refresh_user_week, week_key
from api.main import create_app
from api.metrics.service import apply_stream_summary
from api.notify import MemoryNotifier
from mpt.settings import RedisSettings, Settings
from tests._support.services import redis_namespace
from tests.api._support.users import TestUser
from tests.api._support.world import add_session, add_user, build_world
from tests.api.metrics._events import summary_event, timing_report

pytestmark = pytest.mark.anyio

WEEK = date(2026, 11, 9)  # a Monday
MONDAY = datetime(2026, 11, 9, 9, 0, tzinfo=UTC)
BOARD = "/api/v1/leaderboard"


async def _practice(app: FastAPI, student: TestUser, minutes: int, *,
                    at: datetime = MONDAY, **fields: Any) -> uuid.UUID:
    return await add_session(app, student.id, started_at=at,
                             ended_at=at + timedelta(minutes=minutes), **fields)


def _rows(body: dict[str, Any]) -> list[tuple[int, str, float]]:
    return [(e["rank"], e["display_name"], e["score"]) for e in body["items"]]


async def test_ranking_ties_me_and_deleted(app: FastAPI, client: httpx.AsyncClient) -> None:
    users = {name: await add_user(app, name) for name in ("Ann", "Bob", "Cid", "Dee", "Gone")}
    teacher = await add_user(app, "Teach", role="teacher")
    for name, minutes in (("Ann", 30), ("Bob", 30), ("Cid", 50), ("Dee", 10), ("Gone", 99)):
        await _practice(app, users[name], minutes)
    await _practice(app, users["Dee"], 500, at=MONDAY - timedelta(days=1))  # last week
    await _practice(app, users["Dee"], 500, at=MONDAY + timedelta(days=7))  # next week
    async with app.state.mpt.sessions() as db, db.begin():
        await db.execute(update(User).where(User.id == users["Gone"].id)
                         .values(status="deleted"))

    r = await client.get(f"{BOARD}?week={WEEK}&limit=3", headers=users["Dee"].headers)
    assert r.status_code == 200, r.text
    body = r.json()
    ann_first = users["Ann"].id < users["Bob"].id  # ties are ordered by user id
    tied = ["Ann", "Bob"] if ann_first else ["Bob", "Ann"]
    assert _rows(body) == [(1, "Cid", 50.0), (2, tied[0], 30.0), (2, tied[1], 30.0)]
    assert body["me"] == {"rank": 4, "user_id": str(users["Dee"].id), "display_name": "Dee",
                          "score": 10.0}
    assert (body["total_entries"], body["source"], body["week"]) == (4, "database",
                                                                     WEEK.isoformat())

    r = await client.get(f"{BOARD}?week={WEEK}&limit=1", headers=teacher.headers)
    assert _rows(r.json()) == [(1, "Cid", 50.0)]
    assert r.json()["me"] is None
    for query in ("week=2026-11-10", "week=0001-01-01", "teacher_id=" + str(teacher.id),
                  "limit=101", "by=speed", "scope=moon"):
        r = await client.get(f"{BOARD}?{query}", headers=teacher.headers)
        assert r.status_code == 422, (query, r.text)
    assert (await client.get(BOARD)).status_code == 401


async def test_studio_scope_and_who_may_see_it(app: FastAPI,
                                               client: httpx.AsyncClient) -> None:
    world = await build_world(app)
    for user, minutes in ((world.student, 20), (world.minor, 40), (world.other_student, 100)):
        await _practice(app, user, minutes)
    url = f"{BOARD}?scope=studio&week={WEEK}"
    r = await client.get(url, headers=world.teacher.headers)
    assert r.status_code == 200, r.text
    assert _rows(r.json()) == [(1, "Minor", 40.0), (2, "Student", 20.0)]
    assert r.json()["teacher_id"] == str(world.teacher.id)
    own = f"{url}&teacher_id={world.teacher.id}"
    r = await client.get(own, headers=world.student.headers)
    assert _rows(r.json()) == [(1, "Minor", 40.0), (2, "Student", 20.0)]
    assert r.json()["me"]["rank"] == 2
    assert (await client.get(own, headers=world.admin.headers)).status_code == 200
    cases = [
        (url, "student", 422), (url, "admin", 422),
        (own, "other_student", 403), (own, "other_teacher", 403),
        (f"{url}&teacher_id={world.former_teacher.id}", "student", 403),
        (f"{url}&teacher_id={uuid.uuid4()}", "admin", 404),
    ]
    for query, actor, expected in cases:
        r = await client.get(query, headers=world.actor(actor).headers)
        assert r.status_code == expected, (query, actor, r.text)
    r = await client.get(f"{BOARD}?week={WEEK}", headers=world.teacher.headers)
    assert _rows(r.json())[0] == (1, "Other Student", 100.0)


async def test_accuracy_gain_ordering(app: FastAPI, client: httpx.AsyncClient) -> None:
    x, y, z = [await add_user(app, n) for n in ("Xia", "Yan", "Zed")]
    last = MONDAY - timedelta(days=3)
    for user, before, now in ((x, [60.0], [80.0, 90.0]), (y, [90.0], [85.0]), (z, [], [99.0])):
        for accuracy in before:
            await _practice(app, user, 10, at=last, accuracy_pct=accuracy)
        for i, accuracy in enumerate(now):
            await _practice(app, user, 10, at=MONDAY + timedelta(hours=i),
                            accuracy_pct=accuracy)
    r = await client.get(f"{BOARD}?week={WEEK}&by=accuracy_gain", headers=y.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(rank, name) for rank, name, _score in _rows(body)] == [(1, "Xia"), (2, "Yan")]
    assert [score for *_, score in _rows(body)] == pytest.approx([25.0, -5.0])
    assert body["me"]["rank"] == 2 and body["total_entries"] == 2


@asynccontextmanager
async def _redis_client(settings: Settings, url: str,
                        prefix: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    redis_app = create_app(settings.model_copy(
        update={"redis": RedisSettings(url=url, key_prefix=prefix)}), notifier=MemoryNotifier())
    async with LifespanManager(redis_app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield redis_app, http


async def test_redis_board_equals_database_board(app: FastAPI, client: httpx.AsyncClient,
                                                 settings: Settings) -> None:
    world = await build_world(app)
    names = ("Ann", "Bob", "Cid", "Dee", "Eve", "Fay")
    users = {n: await add_user(app, n) for n in names}
    for name, minutes in zip(names, (30, 30, 50, 10, 5, 30), strict=True):
        await _practice(app, users[name], minutes)
    streamed = await _practice(app, world.student, 45)  # stream over manual: 12 points
    event_id, payload = summary_event(user_id=world.student.id, session_id=streamed,
                                      started_at=MONDAY, timing=timing_report())
    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "applied"

    # every cut of the top: a three-way tie (Ann, Bob, Fay) inside it, at its end, past it
    queries = [f"{BOARD}?week={WEEK}&limit=3", f"{BOARD}?week={WEEK}&limit=100",
               f"{BOARD}?week={WEEK}&scope=studio&teacher_id={world.teacher.id}",
               *(f"{BOARD}?week={WEEK}&limit={n}" for n in (1, 2, 4, 5, 6))]
    viewers = [users["Dee"], world.student, world.teacher]

    async def same_boards(redis_http: httpx.AsyncClient) -> None:
        for query in queries:
            for viewer in viewers:
                if "studio" in query and viewer is users["Dee"]:
                    continue
                from_db = await client.get(query, headers=viewer.headers)
                from_redis = await redis_http.get(query, headers=viewer.headers)
                assert from_db.status_code == from_redis.status_code == 200, from_redis.text
                assert from_redis.json()["source"] == "redis"
                assert {**from_redis.json(), "source": "database"} == from_db.json(), query

    with redis_namespace() as ns:
        async with _redis_client(settings, ns.url, ns.prefix) as (redis_app, redis_http):
            state = redis_app.state.mpt
            key = week_key(ns.prefix, WEEK)
            await same_boards(redis_http)  # the first read builds the set from the database
            assert await state.redis.zscore(key, str(world.student.id)) == 12.0

            # new practice moves the board only once refreshed (a set, not an increment)
            await _practice(app, users["Eve"], 60, at=MONDAY + timedelta(days=2))
            stale = await redis_http.get(queries[0], headers=users["Dee"].headers)
            assert stale.json()["items"][0]["display_name"] == "Cid"
            async with state.sessions() as db:
                for _ in range(2):
                    assert await refresh_user_week(state, db, users["Eve"].id,
                                                   MONDAY + timedelta(days=3)) == 65.0
            assert await state.redis.zscore(key, str(users["Eve"].id)) == 65.0
            # a week whose set did not exist yet gets a time to live with its first member
            later = MONDAY + timedelta(weeks=1, days=1)
            await _practice(app, users["Eve"], 30, at=later)
            async with state.sessions() as db:
                assert await refresh_user_week(state, db, users["Eve"].id, later) == 30.0
            ttl = await state.redis.ttl(week_key(ns.prefix, (later - timedelta(days=1)).date()))
            assert WEEK_KEY_TTL_S - 60 < ttl <= WEEK_KEY_TTL_S
            await same_boards(redis_http)
            fresh = await redis_http.get(queries[0], headers=users["Dee"].headers)
            assert _rows(fresh.json())[0] == (1, "Eve", 65.0)

            # a deleted user leaves both boards (Redis drops the stale member itself)
            async with app.state.mpt.sessions() as db, db.begin():
                await db.execute(update(User).where(User.id == users["Eve"].id)
                                 .values(status="deleted"))
            await same_boards(redis_http)
            assert await state.redis.zscore(key, str(users["Eve"].id)) is None
            async with state.sessions() as db:  # and a refresh of them removes them too
                assert await refresh_user_week(state, db, users["Eve"].id, WEEK) is None


async def test_a_refresh_loads_a_new_student_whole_and_a_stale_one_by_the_week(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """After a write the refresh reads through the facts cache: a student not cached yet
    is loaded whole (the next writes extend that entry); beside an entry of another
    version (concurrent writes extended it out of order) only the week is read, and the
    entry is left as it is. The total is the same either way."""
    from api.progress.factcache import FactsCache

    eve = await add_user(app, "Eve")
    await _practice(app, eve, 40)
    await _practice(app, eve, 25, at=MONDAY - timedelta(weeks=2))  # another week
    with redis_namespace() as ns:
        async with _redis_client(settings, ns.url, ns.prefix) as (redis_app, _http):
            state = redis_app.state.mpt
            cache: FactsCache = state.facts_cache
            cache.clear()
            async with state.read_sessions() as db:
                assert await refresh_user_week(state, db, eve.id, WEEK) == 40.0
            assert cache.holds(eve.id)
            cached = cache.get(eve.id, pieces=False, version=(0, 0))
            assert cached is None  # stored under the student's real version
            stale = cache.put(eve.id, pieces=False, version=(0, 0), facts=[])
            async with state.read_sessions() as db:
                assert await refresh_user_week(state, db, eve.id, WEEK) == 40.0
            assert cache.get(eve.id, pieces=False, version=(0, 0)) == stale
            assert len(cache) == 1


async def test_a_write_refreshes_from_the_facts_it_cached_and_an_older_total_loses(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """POST /sessions with Redis: once the student's facts are cached, the write extends
    them to the version it committed and the refresh sets the week's total from them,
    reading nothing from the database. Every total carries the student's data version, and
    one of an older version (a slower concurrent write of the student) does not replace a
    newer one; the same version sets it again."""
    from sqlalchemy import event

    from api.gamification.leaderboard import refresh_user_week_from

    eve = await add_user(app, "Eve")
    with redis_namespace() as ns:
        async with _redis_client(settings, ns.url, ns.prefix) as (redis_app, http):
            state = redis_app.state.mpt
            key = week_key(ns.prefix, WEEK)
            version_reads: list[str] = []

            def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
                if statement.lstrip().upper().startswith("SELECT") and "facts_seq" in statement:
                    version_reads.append(statement)

            event.listen(state.engine.sync_engine, "before_cursor_execute", seen)

            async def practise(minutes: int, at: datetime) -> None:
                r = await http.post("/api/v1/sessions", headers=eve.headers, json={
                    "started_at": at.isoformat(),
                    "ended_at": (at + timedelta(minutes=minutes)).isoformat()})
                assert r.status_code == 201, r.text

            await practise(40, MONDAY)  # not cached yet: read from the database, cached whole
            assert version_reads and await state.redis.zscore(key, str(eve.id)) == 40.0
            version_reads.clear()
            await practise(25, MONDAY + timedelta(days=1))
            assert version_reads == []  # the refresh came from the facts the write cached
            assert await state.redis.zscore(key, str(eve.id)) == 65.0

            async with state.read_sessions() as db:
                student = await db.get(User, eve.id)
                assert student is not None
                version = (student.change_seq, student.facts_seq)
            facts = state.facts_cache.get(eve.id, pieces=False, version=version)
            assert facts is not None and len(facts) == 2
            older = (version[0] - 1, version[1])
            assert await refresh_user_week_from(state, eve.id, WEEK, facts[:1], older) is None
            assert await state.redis.zscore(key, str(eve.id)) == 65.0
            assert await refresh_user_week_from(state, eve.id, WEEK, facts[:1], version) == 40.0
            assert await state.redis.zscore(key, str(eve.id)) == 40.0
            async with state.read_sessions() as db:  # the database path sets its version too
                assert await refresh_user_week(state, db, eve.id, WEEK) == 65.0
            assert await refresh_user_week_from(state, eve.id, WEEK, facts[:1], older) is None
            assert await state.redis.zscore(key, str(eve.id)) == 65.0
