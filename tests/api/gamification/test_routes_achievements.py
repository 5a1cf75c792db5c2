"""Achievements and reputation: unlocked once and persisted with their time, a streak
milestone granted once, concurrent evaluations granting once, the public reputation
route."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api.accounts.models import User
from api.db import utcnow
from api.gamification.models import ReputationGrant, UserAchievement
from api.gamification.rules import ACHIEVEMENTS
from api.gamification.service import evaluate_user, grant_reputation
from tests.api._support.world import add_session, add_user, build_world

pytestmark = pytest.mark.anyio


async def _grants(app: FastAPI, user_id: uuid.UUID) -> tuple[int, list[str], int]:
    async with app.state.mpt.sessions() as db:
        keys = list((await db.execute(
            select(ReputationGrant.key).where(ReputationGrant.user_id == user_id)
            .order_by(ReputationGrant.key)
        )).scalars())
        unlocked = (await db.execute(
            select(func.count()).select_from(UserAchievement)
            .where(UserAchievement.user_id == user_id)
        )).scalar_one()
        reputation = (await db.execute(
            select(User.reputation).where(User.id == user_id)
        )).scalar_one()
    return int(unlocked), keys, int(reputation)


async def test_achievements_unlock_once_with_streak_milestone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    student = await add_user(app, "Seven Days")
    now = utcnow()
    for back in range(7):  # a 7-day streak ending today (UTC), 30 minutes a day
        await add_session(app, student.id, started_at=now - timedelta(days=back, minutes=40))

    r = await client.get(f"/api/v1/students/{student.id}/achievements",
                         headers=student.headers)
    assert r.status_code == 200, r.text
    items = {a["code"]: a for a in r.json()["items"]}
    assert list(items) == [rule.code for rule in ACHIEVEMENTS]
    assert {c for c, a in items.items() if a["achieved"]} == {"first_session", "streak_7"}
    assert items["first_session"]["current"] == 7.0
    assert items["first_session"]["achieved_at"] is not None
    assert items["minutes_1000"]["current"] == pytest.approx(210.0)
    assert (items["minutes_1000"]["achieved"], items["minutes_1000"]["achieved_at"]) == (
        False, None)
    first_at = items["first_session"]["achieved_at"]

    assert await _grants(app, student.id) == (
        2, ["achievement:first_session", "achievement:streak_7", "streak:7"], 25)

    r = await client.post("/api/v1/students/me/evaluate", headers=student.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"unlocked": [], "completed_challenges": [], "expired_challenges": [],
                        "granted": [], "reputation_gained": 0, "reputation": 25}
    r = await client.get(f"/api/v1/students/{student.id}/achievements",
                         headers=student.headers)
    assert {a["code"]: a for a in r.json()["items"]}["first_session"]["achieved_at"] == first_at
    assert (await _grants(app, student.id))[2] == 25

    r = await client.get(f"/api/v1/users/{student.id}/reputation?limit=2",
                         headers=student.headers)
    assert r.status_code == 200, r.text
    assert r.json()["reputation"] == 25
    assert len(r.json()["grants"]) == 2
    assert {g["points"] for g in r.json()["grants"]} <= {10, 5}


async def test_concurrent_evaluations_grant_once(app: FastAPI,
                                                 client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Racer")
    await add_session(app, student.id)
    now = utcnow()
    async with app.state.mpt.sessions() as one, app.state.mpt.sessions() as two:
        results = await asyncio.gather(evaluate_user(one, student.id, now),
                                       evaluate_user(two, student.id, now))
    assert sorted(r.unlocked for r in results) == [(), ("first_session",)]
    assert sorted(r.reputation_gained for r in results) == [0, 10]
    assert {r.reputation for r in results} == {10}
    assert await _grants(app, student.id) == (1, ["achievement:first_session"], 10)


async def test_who_may_read_achievements_and_reputation(app: FastAPI,
                                                        client: httpx.AsyncClient) -> None:
    world = await build_world(app)
    await add_session(app, world.student.id)
    for actor, expected in (("teacher", 200), ("admin", 200), ("other_student", 403),
                            ("former_teacher", 403)):
        r = await client.get(f"/api/v1/students/{world.student.id}/achievements",
                             headers=world.actor(actor).headers)
        assert r.status_code == expected, (actor, r.text)
    # reputation is public to anyone logged in
    r = await client.get(f"/api/v1/users/{world.student.id}/reputation",
                         headers=world.other_student.headers)
    assert r.status_code == 200
    assert r.json()["reputation"] == 10
    assert [g["key"] for g in r.json()["grants"]] == ["achievement:first_session"]
    r = await client.get(f"/api/v1/users/{uuid.uuid4()}/reputation",
                         headers=world.other_student.headers)
    assert r.status_code == 404
    assert (await client.get(f"/api/v1/users/{world.student.id}/reputation")).status_code == 401
    r = await client.post("/api/v1/students/me/evaluate", headers=world.teacher.headers)
    assert r.status_code == 403


async def test_grant_reputation_once_per_key(app: FastAPI, client: httpx.AsyncClient) -> None:
    author = await add_user(app, "Author")
    now = utcnow()
    outcomes = []
    for _ in range(2):
        async with app.state.mpt.sessions() as db, db.begin():
            outcomes.append(await grant_reputation(db, author.id, "answer_accepted:42", 15,
                                                   now=now))
    assert outcomes == [True, False]
    assert await _grants(app, author.id) == (0, ["answer_accepted:42"], 15)
