"""Challenges: the default ones activated once, progress counted inside their window,
completion (with reputation) and expiry, joining again, who may read them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api.db import utcnow
from api.gamification.models import ReputationGrant
from api.gamification.rules import DEFAULT_CHALLENGES
from api.gamification.service import activate_default_challenges
from tests.api._support.world import add_session, add_user, build_world

pytestmark = pytest.mark.anyio


async def test_default_challenges_complete_and_expire(app: FastAPI,
                                                      client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Challenger")
    start = utcnow() - timedelta(days=20)
    async with app.state.mpt.sessions() as db, db.begin():
        made = await activate_default_challenges(db, student.id, start)
    assert sorted(r.code for r in made) == sorted(r.code for r in DEFAULT_CHALLENGES)
    async with app.state.mpt.sessions() as db, db.begin():  # idempotent
        assert await activate_default_challenges(db, student.id, utcnow()) == []
    await add_session(app, student.id, started_at=start - timedelta(hours=1))  # before: no
    ends = []
    for i, minutes in enumerate((30, 30, 30, 30, 20)):  # 5 sessions, 140 minutes, 1 slow
        at = start + timedelta(hours=1 + 2 * i)
        ends.append(at + timedelta(minutes=minutes))
        await add_session(app, student.id, started_at=at, ended_at=ends[-1],
                          mode="slow" if i == 0 else "normal")

    r = await client.get(f"/api/v1/students/{student.id}/challenges", headers=student.headers)
    assert r.status_code == 200, r.text
    items = {c["code"]: c for c in r.json()["items"]}
    assert set(items) == {r.code for r in DEFAULT_CHALLENGES}
    done = items["sessions_5_in_7d"]
    assert (done["status"], done["current"], done["target"]) == ("completed", 5.0, 5.0)
    assert done["completed_at"].startswith(ends[-1].isoformat()[:19])
    minutes = items["minutes_150_in_7d"]
    assert (minutes["status"], minutes["current"], minutes["completed_at"]) == (
        "expired", pytest.approx(140.0), None)
    slow = items["slow_sessions_3_in_14d"]
    assert (slow["status"], slow["current"], slow["title"]) == (
        "expired", 1.0, "3 slow-practice sessions in 14 days")
    async with app.state.mpt.sessions() as db:
        keys = list((await db.execute(select(ReputationGrant.key).where(
            ReputationGrant.user_id == student.id))).scalars())
    assert sorted(keys) == ["achievement:first_session", f"challenge:{done['id']}"]

    # join one again: active from now, nothing counted yet; not twice; not an unknown one
    r = await client.post("/api/v1/students/me/challenges", headers=student.headers,
                          json={"code": "minutes_150_in_7d"})
    assert r.status_code == 201, r.text
    again = r.json()
    assert (again["status"], again["current"], again["target"]) == ("active", 0.0, 150.0)
    r = await client.post("/api/v1/students/me/challenges", headers=student.headers,
                          json={"code": "minutes_150_in_7d"})
    assert (r.status_code, r.json()["code"]) == (409, "challenge_active")
    r = await client.post("/api/v1/students/me/challenges", headers=student.headers,
                          json={"code": "nope"})
    assert (r.status_code, r.json()["code"]) == (422, "unknown_challenge")

    r = await client.get(f"/api/v1/students/{student.id}/challenges?limit=2",
                         headers=student.headers)
    page = r.json()
    assert page["items"][0]["id"] == again["id"]  # newest first
    assert len(page["items"]) == 2 and page["next_cursor"]
    r = await client.get(f"/api/v1/students/{student.id}/challenges?limit=2&cursor="
                         f"{page['next_cursor']}", headers=student.headers)
    assert len(r.json()["items"]) == 2 and r.json()["next_cursor"] is None


async def test_challenges_started_lazily_and_access(app: FastAPI,
                                                    client: httpx.AsyncClient) -> None:
    world = await build_world(app)
    await add_session(app, world.student.id)  # before the challenges start: not counted
    r = await client.get(f"/api/v1/students/{world.student.id}/challenges",
                         headers=world.teacher.headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert sorted(c["code"] for c in items) == sorted(r.code for r in DEFAULT_CHALLENGES)
    assert {(c["status"], c["current"]) for c in items} == {("active", 0.0)}
    for actor, target, expected in (("other_student", world.student.id, 403),
                                    ("former_teacher", world.student.id, 403),
                                    ("admin", uuid.uuid4(), 404)):
        r = await client.get(f"/api/v1/students/{target}/challenges",
                             headers=world.actor(actor).headers)
        assert r.status_code == expected, (actor, r.text)
    r = await client.post("/api/v1/students/me/challenges", headers=world.teacher.headers,
                          json={"code": "sessions_5_in_7d"})
    assert r.status_code == 403
    r = await client.get(f"/api/v1/students/{world.student.id}/challenges?cursor=xyz",
                         headers=world.student.headers)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_cursor")
