"""Timestamped feedback: positions, text rules, ordering, authorship, soft delete."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api.db import utcnow
from api.practice.models import PracticeSession
from api.teaching.models import SessionFeedback
from tests.api._support.world import World, add_session, build_world

pytestmark = pytest.mark.anyio


def url(session_id: uuid.UUID, feedback_id: object = None) -> str:
    base = f"/api/v1/sessions/{session_id}/feedback"
    return base if feedback_id is None else f"{base}/{feedback_id}"


async def _post(client: httpx.AsyncClient, world: World, session_id: uuid.UUID, at_s: float,
                text: str = "Watch the left hand") -> dict[str, object]:
    response = await client.post(url(session_id), json={"at_s": at_s, "text": text},
                                 headers=world.teacher.headers)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def _change_seq(app: FastAPI, session_id: uuid.UUID) -> int:
    async with app.state.mpt.sessions() as db:
        seq = (await db.execute(select(PracticeSession.change_seq)
                                .where(PracticeSession.id == session_id))).scalar_one()
    return int(seq)


async def test_create_and_list_in_order(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    session_id = await add_session(app, world.student.id)  # 30 minutes
    seq_before = await _change_seq(app, session_id)
    late = await _post(client, world, session_id, 300, "Tempo drifts here")
    assert late["teacher_id"] == str(world.teacher.id)
    assert late["teacher_display_name"] == "Teacher" and late["at_s"] == 300
    assert await _change_seq(app, session_id) > seq_before  # sync sees the new count
    early = await _post(client, world, session_id, 10)
    middle = await _post(client, world, session_id, 120.5)
    end = await _post(client, world, session_id, 1800)  # exactly the end is fine
    listed = await client.get(url(session_id), headers=world.student.headers)
    assert listed.status_code == 200
    assert [f["id"] for f in listed.json()["items"]] == [early["id"], middle["id"],
                                                        late["id"], end["id"]]
    first = (await client.get(url(session_id), params={"limit": 3},
                              headers=world.student.headers)).json()
    rest = (await client.get(url(session_id), params={"limit": 3, "cursor": first["next_cursor"]},
                             headers=world.student.headers)).json()
    assert [f["at_s"] for f in first["items"]] == [10, 120.5, 300]
    assert [f["at_s"] for f in rest["items"]] == [1800] and rest["next_cursor"] is None
    session = (await client.get(f"/api/v1/sessions/{session_id}",
                                headers=world.student.headers))
    if session.status_code == 200:  # the practice routes count live feedback
        assert session.json()["feedback_count"] == 4


async def test_position_must_be_inside_an_ended_session(client: httpx.AsyncClient,
                                                        app: FastAPI) -> None:
    world = await build_world(app)
    ended = await add_session(app, world.student.id)
    response = await client.post(url(ended), json={"at_s": 1800.5, "text": "too late"},
                                 headers=world.teacher.headers)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "at_s_beyond_session" and "1800.5" in body["detail"]
    still_open = await add_session(app, world.student.id, ended_at=None)
    await _post(client, world, still_open, 5000)


@pytest.mark.parametrize("body", [
    {"at_s": -1, "text": "x"},
    {"at_s": 1, "text": ""},
    {"at_s": 1, "text": "   \n"},
    {"at_s": 1, "text": "x" * 2001},
    {"at_s": 1, "text": "nul\x00"},
    {"at_s": 90_000, "text": "x"},
    {"at_s": "NaN", "text": "x"},
    {"text": "x"},
])
async def test_body_is_validated(client: httpx.AsyncClient, app: FastAPI,
                                 body: dict[str, object]) -> None:
    world = await build_world(app)
    session_id = await add_session(app, world.student.id, ended_at=None)
    response = await client.post(url(session_id), json=body, headers=world.teacher.headers)
    assert response.status_code == 422


async def test_longest_text_is_accepted(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    session_id = await add_session(app, world.student.id)
    made = await _post(client, world, session_id, 1, "é" * 2000)
    assert made["text"] == "é" * 2000


@pytest.mark.parametrize("actor", ["student", "admin", "other_student"])
async def test_only_teachers_write_feedback(client: httpx.AsyncClient, app: FastAPI,
                                            actor: str) -> None:
    world = await build_world(app)
    session_id = await add_session(app, world.student.id)
    response = await client.post(url(session_id), json={"at_s": 1, "text": "hi"},
                                 headers=world.actor(actor).headers)
    assert response.status_code == 403


async def test_missing_or_deleted_session_is_404(client: httpx.AsyncClient,
                                                 app: FastAPI) -> None:
    world = await build_world(app)
    deleted = await add_session(app, world.student.id, status="deleted", deleted_at=utcnow())
    for session_id in (deleted, uuid.uuid4()):
        listed = await client.get(url(session_id), headers=world.admin.headers)
        assert listed.status_code == 404 and listed.json()["code"] == "session_not_found"
        made = await client.post(url(session_id), json={"at_s": 1, "text": "x"},
                                 headers=world.teacher.headers)
        assert made.status_code == 404


async def test_author_edits_and_deletes(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    session_id = await add_session(app, world.student.id)
    made = await _post(client, world, session_id, 60)
    fid = made["id"]
    changed = await client.patch(url(session_id, fid), json={"text": "Better now", "at_s": 90},
                                 headers=world.teacher.headers)
    assert changed.status_code == 200
    assert changed.json()["text"] == "Better now" and changed.json()["at_s"] == 90
    too_far = await client.patch(url(session_id, fid), json={"at_s": 4000},
                                 headers=world.teacher.headers)
    assert too_far.status_code == 422 and too_far.json()["code"] == "at_s_beyond_session"
    unchanged = await client.patch(url(session_id, fid), json={},
                                   headers=world.teacher.headers)
    assert unchanged.status_code == 200 and unchanged.json()["text"] == "Better now"

    seq = await _change_seq(app, session_id)
    assert (await client.delete(url(session_id, fid),
                                headers=world.teacher.headers)).status_code == 204
    assert await _change_seq(app, session_id) > seq
    listed = (await client.get(url(session_id), headers=world.student.headers)).json()
    assert listed["items"] == []
    gone = await client.patch(url(session_id, fid), json={"text": "x"},
                              headers=world.teacher.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "feedback_not_found"
    async with app.state.mpt.sessions() as db:
        row = await db.get(SessionFeedback, uuid.UUID(str(fid)))
    assert row is not None and row.status == "deleted"  # hidden, not erased


async def test_feedback_on_another_session_is_404(client: httpx.AsyncClient,
                                                  app: FastAPI) -> None:
    world = await build_world(app)
    first = await add_session(app, world.student.id)
    second = await add_session(app, world.student.id,
                               started_at=utcnow() - timedelta(hours=5))
    made = await _post(client, world, first, 1)
    response = await client.patch(url(second, made["id"]), json={"text": "x"},
                                  headers=world.teacher.headers)
    assert response.status_code == 404


async def test_only_the_author_or_an_admin_edits(client: httpx.AsyncClient,
                                                 app: FastAPI) -> None:
    world = await build_world(app)
    session_id = await add_session(app, world.student.id)
    made = await _post(client, world, session_id, 1)
    # a second teacher of the same student may read but not edit the first one's remark
    invite = (await client.post("/api/v1/teachers/me/invites", json={},
                                headers=world.other_teacher.headers)).json()
    assert (await client.post("/api/v1/students/me/teachers", json={"code": invite["code"]},
                              headers=world.student.headers)).status_code == 201
    assert (await client.get(url(session_id), headers=world.other_teacher.headers)
            ).status_code == 200
    for actor in ("other_teacher", "student"):
        headers = world.actor(actor).headers
        assert (await client.patch(url(session_id, made["id"]), json={"text": "x"},
                                   headers=headers)).status_code == 403
        assert (await client.delete(url(session_id, made["id"]),
                                    headers=headers)).status_code == 403
    by_admin = await client.patch(url(session_id, made["id"]), json={"text": "Moderated"},
                                  headers=world.admin.headers)
    assert by_admin.status_code == 200 and by_admin.json()["text"] == "Moderated"
    assert by_admin.json()["teacher_id"] == str(world.teacher.id)
    assert (await client.delete(url(session_id, made["id"]),
                                headers=world.admin.headers)).status_code == 204


async def test_author_who_lost_access_cannot_edit(client: httpx.AsyncClient,
                                                  app: FastAPI) -> None:
    world = await build_world(app)
    session_id = await add_session(app, world.student.id)
    made = await _post(client, world, session_id, 1)
    assert (await client.delete(f"/api/v1/students/me/teachers/{world.teacher.id}",
                                headers=world.student.headers)).status_code == 204
    response = await client.patch(url(session_id, made["id"]), json={"text": "x"},
                                  headers=world.teacher.headers)
    assert response.status_code == 403
    # the student still sees what was said
    listed = (await client.get(url(session_id), headers=world.student.headers)).json()
    assert [f["id"] for f in listed["items"]] == [made["id"]]
