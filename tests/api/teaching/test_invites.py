"""Invite codes: creating, listing, revoking, redeeming (with its concurrency guarantee)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from api.db import utcnow
from api.teaching.models import InviteCode, TeacherStudentLink
from tests.api._support.world import World, add_user, build_world

pytestmark = pytest.mark.anyio

INVITES = "/api/v1/teachers/me/invites"
REDEEM = "/api/v1/students/me/teachers"


async def _invite(client: httpx.AsyncClient, world: World, **body: int) -> dict[str, object]:
    response = await client.post(INVITES, json=body, headers=world.teacher.headers)
    assert response.status_code == 201, response.text
    invite: dict[str, object] = response.json()
    return invite


async def _used_count(app: FastAPI, invite_id: object) -> int:
    async with app.state.mpt.sessions() as db:
        count = (await db.execute(
            select(InviteCode.used_count).where(InviteCode.id == uuid.UUID(str(invite_id)))
        )).scalar_one()
    return int(count)


async def test_create_defaults_and_list(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    before = utcnow()
    first = await _invite(client, world)
    second = await _invite(client, world, max_uses=5, expires_in_days=90)
    assert first["max_uses"] == 1 and first["used_count"] == 0
    assert first["status"] == "active" and first["state"] == "usable"
    code = str(first["code"])
    assert len(code) == 8 and code == code.upper() and not set(code) & set("01ILO")
    expires = datetime.fromisoformat(str(first["expires_at"]))
    assert timedelta(days=14) - timedelta(minutes=1) < expires - before < timedelta(days=14,
                                                                                   minutes=1)
    assert second["max_uses"] == 5
    listed = (await client.get(INVITES, headers=world.teacher.headers)).json()
    assert [i["id"] for i in listed["items"]] == [second["id"], first["id"]]
    page = (await client.get(INVITES, params={"limit": 1},
                             headers=world.teacher.headers)).json()
    assert [i["id"] for i in page["items"]] == [second["id"]] and page["next_cursor"]
    rest = (await client.get(INVITES, params={"limit": 1, "cursor": page["next_cursor"]},
                             headers=world.teacher.headers)).json()
    assert [i["id"] for i in rest["items"]] == [first["id"]] and rest["next_cursor"] is None
    # another teacher sees none of them
    other = (await client.get(INVITES, headers=world.other_teacher.headers)).json()
    assert other["items"] == []


@pytest.mark.parametrize("body", [{"max_uses": 0}, {"max_uses": 101},
                                  {"expires_in_days": 0}, {"expires_in_days": 91},
                                  {"max_uses": 1, "extra": True}])
async def test_create_validates(client: httpx.AsyncClient, app: FastAPI,
                                body: dict[str, object]) -> None:
    world = await build_world(app)
    response = await client.post(INVITES, json=body, headers=world.teacher.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"


async def test_only_teachers_manage_invites(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    for user in (world.student, world.admin):
        assert (await client.post(INVITES, json={}, headers=user.headers)).status_code == 403
        assert (await client.get(INVITES, headers=user.headers)).status_code == 403
    assert (await client.post(INVITES, json={})).status_code == 401


async def test_redeem_is_case_insensitive_and_idempotent(client: httpx.AsyncClient,
                                                         app: FastAPI) -> None:
    world = await build_world(app)
    invite = await _invite(client, world, max_uses=2)
    code = str(invite["code"])
    typed = f" {code[:4].lower()}-{code[4:].lower()} "
    first = await client.post(REDEEM, json={"code": typed}, headers=world.other_student.headers)
    assert first.status_code == 201, first.text
    link = first.json()
    assert link["teacher_id"] == str(world.teacher.id) and link["status"] == "active"
    assert link["display_name"] == "Teacher" and link["consent_status"] == "not_required"
    again = await client.post(REDEEM, json={"code": code}, headers=world.other_student.headers)
    assert again.status_code == 200
    assert again.json()["link_id"] == link["link_id"]
    assert await _used_count(app, invite["id"]) == 1
    students = (await client.get("/api/v1/teachers/me/students",
                                 headers=world.teacher.headers)).json()["items"]
    assert str(world.other_student.id) in {s["student_id"] for s in students}


async def test_already_linked_student_uses_nothing(client: httpx.AsyncClient,
                                                   app: FastAPI) -> None:
    world = await build_world(app)
    invite = await _invite(client, world)
    response = await client.post(REDEEM, json={"code": invite["code"]},
                                 headers=world.student.headers)
    assert response.status_code == 200
    assert response.json()["link_id"] == str(world.links["student"])
    assert await _used_count(app, invite["id"]) == 0


async def test_unknown_code_is_404(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    response = await client.post(REDEEM, json={"code": "ZZZZ2222"},
                                 headers=world.other_student.headers)
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "invite_not_found" and "ZZZZ2222" in body["detail"]


async def test_revoked_expired_and_used_up_are_409(client: httpx.AsyncClient,
                                                   app: FastAPI) -> None:
    world = await build_world(app)
    revoked, expired, used = [await _invite(client, world) for _ in range(3)]
    assert (await client.delete(f"{INVITES}/{revoked['id']}",
                                headers=world.teacher.headers)).status_code == 204
    async with app.state.mpt.sessions() as db, db.begin():
        await db.execute(update(InviteCode).where(InviteCode.id == uuid.UUID(str(expired["id"])))
                         .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert (await client.post(REDEEM, json={"code": used["code"]},
                              headers=world.other_student.headers)).status_code == 201
    latecomer = await add_user(app, "Latecomer")
    for invite, reason in ((revoked, "revoked"), (expired, "expired"), (used, "used_up")):
        response = await client.post(REDEEM, json={"code": invite["code"]},
                                     headers=latecomer.headers)
        assert response.status_code == 409, reason
        body = response.json()
        assert body["code"] == "invite_unusable" and body["reason"] == reason
    states = {i["id"]: i["state"] for i in
              (await client.get(INVITES, headers=world.teacher.headers)).json()["items"]}
    assert states == {revoked["id"]: "revoked", expired["id"]: "expired",
                      used["id"]: "used_up"}


async def test_revoke_is_only_for_the_owner(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    invite = await _invite(client, world)
    response = await client.delete(f"{INVITES}/{invite['id']}",
                                   headers=world.other_teacher.headers)
    assert response.status_code == 404 and response.json()["code"] == "invite_not_found"
    assert (await client.delete(f"{INVITES}/{invite['id']}",
                                headers=world.teacher.headers)).status_code == 204
    # revoking twice is fine
    assert (await client.delete(f"{INVITES}/{invite['id']}",
                                headers=world.teacher.headers)).status_code == 204


async def test_only_students_redeem(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    invite = await _invite(client, world)
    for user in (world.other_teacher, world.admin):
        response = await client.post(REDEEM, json={"code": invite["code"]},
                                     headers=user.headers)
        assert response.status_code == 403
    assert await _used_count(app, invite["id"]) == 0


async def test_concurrent_redemptions_never_exceed_max_uses(client: httpx.AsyncClient,
                                                            app: FastAPI) -> None:
    world = await build_world(app)
    invite = await _invite(client, world, max_uses=3)
    students = [await add_user(app, f"Racer {i}") for i in range(7)]
    responses = await asyncio.gather(*(
        client.post(REDEEM, json={"code": invite["code"]}, headers=s.headers)
        for s in students
    ))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 201, 201, 409, 409, 409, 409]
    assert await _used_count(app, invite["id"]) == 3
    async with app.state.mpt.sessions() as db:
        links = (await db.execute(
            select(func.count()).select_from(TeacherStudentLink)
            .where(TeacherStudentLink.student_id.in_([s.id for s in students]))
        )).scalar_one()
    assert links == 3


async def test_one_student_redeeming_twice_at_once_links_once(client: httpx.AsyncClient,
                                                              app: FastAPI) -> None:
    world = await build_world(app)
    invite = await _invite(client, world, max_uses=5)
    responses = await asyncio.gather(*(
        client.post(REDEEM, json={"code": invite["code"]}, headers=world.other_student.headers)
        for _ in range(4)
    ))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["link_id"] for r in responses}) == 1
    assert await _used_count(app, invite["id"]) == 1
