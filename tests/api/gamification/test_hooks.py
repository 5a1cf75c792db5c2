"""The wiring of gamification into the rest: default challenges at registration, and the
Redis leaderboard kept current by session writes (REST and sync) without any explicit
refresh call."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from api.db import utcnow
from api.gamification.leaderboard import week_key
from api.gamification.rules import DEFAULT_CHALLENGES, week_start
from mpt.settings import Settings
from tests._support.services import redis_namespace
from tests.api._support.users import make_user
from tests.api.gamification.test_leaderboard import _redis_client

pytestmark = pytest.mark.anyio


async def test_registration_activates_the_default_challenges(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/register", json={
        "email": "new.student@example.com", "password": "a long enough password",
        "role": "student", "display_name": "New", "timezone": "Europe/Berlin",
    })
    assert response.status_code == 201, response.text
    body = response.json()
    headers = {"Authorization": f"Bearer {body['tokens']['access_token']}"}
    challenges = await client.get(f"/api/v1/students/{body['user']['id']}/challenges",
                                  headers=headers)
    assert challenges.status_code == 200, challenges.text
    codes = sorted(c["code"] for c in challenges.json()["items"])
    assert codes == sorted(rule.code for rule in DEFAULT_CHALLENGES)


async def test_session_writes_keep_the_redis_board_current(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    with redis_namespace() as ns:
        async with _redis_client(settings, ns.url, ns.prefix) as (redis_app, http):
            student = await make_user(redis_app)
            state = redis_app.state.mpt
            start = utcnow() - timedelta(minutes=30)
            key = week_key(ns.prefix, week_start(start).date())
            created = await http.post("/api/v1/sessions", headers=student.headers, json={
                "started_at": start.isoformat(),
                "ended_at": (start + timedelta(minutes=20)).isoformat(),
            })
            assert created.status_code == 201, created.text
            assert await state.redis.zscore(key, str(student.id)) == 20.0
            batch = await http.post(
                "/api/v1/sync/batch",
                headers={**student.headers, "Idempotency-Key": "k1"},
                json={"sessions": [{
                    "id": str(uuid.uuid4()), "updated_at": utcnow().isoformat(),
                    "deleted": False, "started_at": start.isoformat(),
                    "ended_at": (start + timedelta(minutes=5)).isoformat(),
                }]},
            )
            assert batch.status_code == 200, batch.text
            assert await state.redis.zscore(key, str(student.id)) == 25.0
            deleted = await http.delete(f"/api/v1/sessions/{created.json()['id']}",
                                        headers=student.headers)
            assert deleted.status_code == 204
            assert await state.redis.zscore(key, str(student.id)) == 5.0


async def test_moving_a_session_out_of_an_old_week_updates_both_boards(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    with redis_namespace() as ns:
        async with _redis_client(settings, ns.url, ns.prefix) as (redis_app, http):
            student = await make_user(redis_app)
            redis = redis_app.state.mpt.redis
            old = utcnow() - timedelta(days=30)
            new = utcnow() - timedelta(minutes=40)
            old_key = week_key(ns.prefix, week_start(old).date())
            new_key = week_key(ns.prefix, week_start(new).date())
            created = await http.post("/api/v1/sessions", headers=student.headers, json={
                "started_at": old.isoformat(),
                "ended_at": (old + timedelta(minutes=15)).isoformat(),
            })
            assert created.status_code == 201, created.text
            assert await redis.zscore(old_key, str(student.id)) == 15.0
            moved = await http.patch(f"/api/v1/sessions/{created.json()['id']}",
                                     headers=student.headers, json={
                "started_at": new.isoformat(),
                "ended_at": (new + timedelta(minutes=15)).isoformat(),
            })
            assert moved.status_code == 200, moved.text
            assert await redis.zscore(old_key, str(student.id)) is None
            assert await redis.zscore(new_key, str(student.id)) == 15.0
