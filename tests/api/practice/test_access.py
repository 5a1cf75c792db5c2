"""Who reads a student's sessions: the owner, an admin, a linked teacher (with a guardian's
consent for a minor) — the rule of ``api.teaching.access``, over the cast of
``tests.api._support.world``."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from api.teaching.models import SessionFeedback
from tests.api._support.world import build_world
from tests.api.practice.support import T0, insert_tag, session_body

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


async def test_every_read_gives_the_same_view(client: httpx.AsyncClient, app: FastAPI) -> None:
    """A session's read, its place on a list page (first page, after a cursor, filtered, a
    teacher's) carry the same tags (by kind, then name), segments (in id order) and
    active feedback count: on PostgreSQL the reads fetch them in one statement, elsewhere in
    three."""
    world = await build_world(app)
    student = world.student
    tags = {name: await insert_tag(app, owner_id=student.id, name=name, kind=kind)
            for name, kind in (("zeta", "tag"), ("Alpha", "tag"), ("Bach", "piece"))}
    body = session_body(
        tag_ids=[str(tags["zeta"]), str(tags["Bach"]), str(tags["Alpha"])],
        segments=[{"label": f"bars {k}", "start_bar": k, "end_bar": k + 3, "click_count": k,
                   "piece_id": str(tags["Bach"]), "duration_s": 30.0 * k, "tempo_bpm": 80.0,
                   "accuracy_pct": 90.0 - k} for k in (1, 5, 9)],
    )
    made = (await client.post(URL, json=body, headers=student.headers)).json()
    newer = session_body(at=T0 + timedelta(hours=1))
    assert (await client.post(URL, json=newer, headers=student.headers)).status_code == 201
    async with app.state.mpt.sessions() as db, db.begin():
        for status in ("active", "deleted", "active"):
            db.add(SessionFeedback(session_id=uuid.UUID(made["id"]), teacher_id=world.teacher.id,
                                   at_s=2.0, text="lean in", status=status))

    one = (await client.get(f"{URL}/{made['id']}", headers=student.headers)).json()
    assert [t["name"] for t in one["tags"]] == ["Bach", "Alpha", "zeta"]
    assert [t["kind"] for t in one["tags"]] == ["piece", "tag", "tag"]
    assert one["tag_ids"] == [t["id"] for t in one["tags"]]
    assert [(s["start_bar"], s["click_count"], s["accuracy_pct"]) for s in one["segments"]] == [
        (1, 1, 89.0), (5, 5, 85.0), (9, 9, 81.0)]
    assert [s["id"] for s in one["segments"]] == sorted(s["id"] for s in one["segments"])
    assert one["feedback_count"] == 2
    assert one | {"feedback_count": 0} == made

    first = (await client.get(URL, params={"limit": 1}, headers=student.headers)).json()
    after = (await client.get(URL, params={"limit": 1, "cursor": first["next_cursor"]},
                              headers=student.headers)).json()
    filtered = (await client.get(URL, params={"tag_id": str(tags["Alpha"])},
                                 headers=student.headers)).json()
    teachers = (await client.get(URL, params={"student_id": str(student.id)},
                                 headers=world.teacher.headers)).json()
    assert first["items"][0]["id"] != made["id"]
    assert first["items"][0]["tags"] == [] and first["items"][0]["feedback_count"] == 0
    assert after["items"] == [one]
    assert filtered["items"] == [one]
    assert teachers["items"][1] == one
