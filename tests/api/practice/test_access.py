"""Who reads a student's sessions: the owner, an admin, a linked teacher (with a guardian's
consent for a minor) — the rule of ``api.teaching.access``, over the cast of
``tests.api._support.world``."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from api.teaching.models import SessionFeedback
from tests.api._support.world import build_world
from tests.api.practice.support import session_body

pytestmark = pytest.mark.anyio

URL = "/api/v1/sessions"


OWNERS = ("student", "minor", "minor_no_consent")
# (reader, owner) -> (status, code); anything not listed is 403 "forbidden"
ALLOWED = {
    **{("admin", owner): (200, None) for owner in OWNERS},
    **{(owner, owner): (200, None) for owner in OWNERS},
    ("teacher", "student"): (200, None),
    ("teacher", "minor"): (200, None),
    ("teacher", "minor_no_consent"): (403, "consent_required"),
}
READERS = ("student", "other_student", "minor", "teacher", "other_teacher", "former_teacher",
           "admin")


async def test_read_access_follows_the_teaching_rule(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    world = await build_world(app)
    made = {}
    for owner in OWNERS:
        response = await client.post(URL, json=session_body(),
                                     headers=world.actor(owner).headers)
        assert response.status_code == 201
        made[owner] = response.json()["id"]

    for reader in READERS:
        viewer = world.actor(reader)
        for owner in OWNERS:
            status, code = ALLOWED.get((reader, owner), (403, "forbidden"))
            one = await client.get(f"{URL}/{made[owner]}", headers=viewer.headers)
            listed = await client.get(URL, params={"student_id": str(world.actor(owner).id)},
                                      headers=viewer.headers)
            for response in (one, listed):
                assert response.status_code == status, (reader, owner, response.text)
                if code:
                    assert response.json()["code"] == code
            if status == 200:
                assert one.json()["student_id"] == str(world.actor(owner).id)
                assert [i["id"] for i in listed.json()["items"]] == [made[owner]]

    # a teacher's own list is their own (empty) sessions, not their students'
    assert (await client.get(URL, headers=world.teacher.headers)).json()["items"] == []
    # deleted sessions are gone for every reader
    await client.delete(f"{URL}/{made['student']}", headers=world.student.headers)
    for viewer in (world.teacher, world.admin):
        assert (await client.get(f"{URL}/{made['student']}",
                                 headers=viewer.headers)).status_code == 404
        listed = await client.get(URL, params={"student_id": str(world.student.id)},
                                  headers=viewer.headers)
        assert listed.json()["items"] == []


async def test_feedback_count_counts_active_feedback(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    world = await build_world(app)
    student, teacher = world.student, world.teacher
    session_id = (await client.post(URL, json=session_body(),
                                    headers=student.headers)).json()["id"]
    async with app.state.mpt.sessions() as db, db.begin():
        for status in ("active", "active", "deleted"):
            db.add(SessionFeedback(session_id=uuid.UUID(session_id), teacher_id=teacher.id,
                                   at_s=1.0, text="steady", status=status))
    got = await client.get(f"{URL}/{session_id}", headers=teacher.headers)
    assert got.json()["feedback_count"] == 2
    listed = await client.get(URL, headers=student.headers)
    assert listed.json()["items"][0]["feedback_count"] == 2
