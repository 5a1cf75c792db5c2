"""Links: who lists whom, leaving and removing (which cuts the teacher's access at once)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api.teaching.models import TeacherStudentLink
from tests.api._support.world import World, add_session, add_user, build_world

pytestmark = pytest.mark.anyio

MY_TEACHERS = "/api/v1/students/me/teachers"
MY_STUDENTS = "/api/v1/teachers/me/students"
DASHBOARD = "/api/v1/teachers/me/dashboard"


async def test_student_lists_active_teachers_only(client: httpx.AsyncClient,
                                                  app: FastAPI) -> None:
    world = await build_world(app)
    items = (await client.get(MY_TEACHERS, headers=world.student.headers)).json()["items"]
    assert [(t["teacher_id"], t["consent_status"]) for t in items] == [
        (str(world.teacher.id), "not_required")]  # not the former teacher
    minor = (await client.get(MY_TEACHERS, headers=world.minor.headers)).json()["items"]
    assert [t["consent_status"] for t in minor] == ["granted"]
    unconsented = (await client.get(MY_TEACHERS,
                                    headers=world.minor_no_consent.headers)).json()["items"]
    assert [t["consent_status"] for t in unconsented] == ["missing"]
    assert (await client.get(MY_TEACHERS, headers=world.teacher.headers)).status_code == 403


async def test_teacher_lists_students_with_consent_status(client: httpx.AsyncClient,
                                                          app: FastAPI) -> None:
    world = await build_world(app)
    body = (await client.get(MY_STUDENTS, headers=world.teacher.headers)).json()
    got = {s["student_id"]: (s["is_minor"], s["consent_status"]) for s in body["items"]}
    assert got == {
        str(world.student.id): (False, "not_required"),
        str(world.minor.id): (True, "granted"),
        str(world.minor_no_consent.id): (True, "missing"),
    }
    assert body["next_cursor"] is None
    first = (await client.get(MY_STUDENTS, params={"limit": 2},
                              headers=world.teacher.headers)).json()
    second = (await client.get(MY_STUDENTS, params={"limit": 2, "cursor": first["next_cursor"]},
                               headers=world.teacher.headers)).json()
    paged = [s["student_id"] for s in first["items"] + second["items"]]
    assert paged == [s["student_id"] for s in body["items"]]
    assert second["next_cursor"] is None
    assert (await client.get(MY_STUDENTS, headers=world.former_teacher.headers)
            ).json()["items"] == []
    bad = await client.get(MY_STUDENTS, params={"cursor": "nonsense"},
                           headers=world.teacher.headers)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"


async def _teacher_sees(client: httpx.AsyncClient, world: World, session_id: object) -> int:
    return (await client.get(f"/api/v1/sessions/{session_id}/feedback",
                             headers=world.teacher.headers)).status_code


async def test_student_leaving_cuts_access(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    session_id = await add_session(app, world.student.id)
    assert await _teacher_sees(client, world, session_id) == 200
    response = await client.delete(f"{MY_TEACHERS}/{world.teacher.id}",
                                   headers=world.student.headers)
    assert response.status_code == 204
    assert await _teacher_sees(client, world, session_id) == 403
    async with app.state.mpt.sessions() as db:
        link = await db.get(TeacherStudentLink, world.links["student"])
    assert link is not None and link.status == "ended" and link.ended_at is not None
    dashboard = (await client.get(DASHBOARD, headers=world.teacher.headers)).json()
    assert str(world.student.id) not in {s["student_id"] for s in dashboard["students"]}
    students = (await client.get(MY_STUDENTS, headers=world.teacher.headers)).json()["items"]
    assert str(world.student.id) not in {s["student_id"] for s in students}
    again = await client.delete(f"{MY_TEACHERS}/{world.teacher.id}",
                                headers=world.student.headers)
    assert again.status_code == 404 and again.json()["code"] == "link_not_found"


async def test_teacher_removing_cuts_access_and_relinking_restores_it(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    world = await build_world(app)
    session_id = await add_session(app, world.student.id)
    response = await client.delete(f"{MY_STUDENTS}/{world.student.id}",
                                   headers=world.teacher.headers)
    assert response.status_code == 204
    assert await _teacher_sees(client, world, session_id) == 403
    assert (await client.delete(f"{MY_STUDENTS}/{world.other_student.id}",
                                headers=world.teacher.headers)).status_code == 404
    invite = (await client.post("/api/v1/teachers/me/invites", json={},
                                headers=world.teacher.headers)).json()
    relinked = await client.post(MY_TEACHERS, json={"code": invite["code"]},
                                 headers=world.student.headers)
    assert relinked.status_code == 201
    assert relinked.json()["link_id"] != str(world.links["student"])
    assert await _teacher_sees(client, world, session_id) == 200
    async with app.state.mpt.sessions() as db:
        statuses = sorted((await db.execute(
            select(TeacherStudentLink.status).where(
                TeacherStudentLink.teacher_id == world.teacher.id,
                TeacherStudentLink.student_id == world.student.id)
        )).scalars())
    assert statuses == ["active", "ended"]


async def test_only_the_right_roles_end_links(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    assert (await client.delete(f"{MY_STUDENTS}/{world.student.id}",
                                headers=world.student.headers)).status_code == 403
    assert (await client.delete(f"{MY_TEACHERS}/{world.teacher.id}",
                                headers=world.teacher.headers)).status_code == 403
    stranger = await add_user(app, "Stranger")
    response = await client.delete(f"{MY_TEACHERS}/{world.teacher.id}",
                                   headers=stranger.headers)
    assert response.status_code == 404
    bad = await client.delete(f"{MY_TEACHERS}/not-a-uuid", headers=world.student.headers)
    assert bad.status_code == 422
