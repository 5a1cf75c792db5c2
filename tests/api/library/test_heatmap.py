"""The heatmap over HTTP: numbers on known segments, which sessions count, who may see it,
which pieces are visible, and the bar cap."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.db import utcnow
from api.practice.models import PracticeSegment
from tests.api._support.users import TestUser, make_user
from tests.api._support.world import World, add_session, build_world

pytestmark = pytest.mark.anyio

Seg = tuple[int, int, int, float | None]


async def add_segments(app: FastAPI, session_id: uuid.UUID, piece_id: uuid.UUID | None,
                       segments: list[Seg]) -> None:
    async with app.state.mpt.sessions() as db, db.begin():
        db.add_all(PracticeSegment(session_id=session_id, piece_id=piece_id, start_bar=a,
                                   end_bar=b, click_count=c, duration_s=d)
                   for a, b, c, d in segments)


async def make_piece(client: httpx.AsyncClient, user: TestUser, name: str, *,
                     is_global: bool = False) -> uuid.UUID:
    response = await client.post("/api/v1/pieces", json={"name": name, "global": is_global},
                                 headers=user.headers)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def heatmap(client: httpx.AsyncClient, user: TestUser, piece_id: uuid.UUID,
                  **params: Any) -> httpx.Response:
    return await client.get(f"/api/v1/pieces/{piece_id}/heatmap", params=params,
                            headers=user.headers)


async def test_heatmap_numbers_on_known_segments(client: httpx.AsyncClient,
                                                 app: FastAPI) -> None:
    student, other_student = await make_user(app), await make_user(app)
    admin = await make_user(app, role="admin")
    piece = await make_piece(client, admin, "Etude Op. 10 No. 1", is_global=True)
    other_piece = await make_piece(client, student, "Other")
    now = utcnow()
    s1 = await add_session(app, student.id, started_at=now - timedelta(days=3))
    s2 = await add_session(app, student.id, started_at=now - timedelta(days=1))
    gone = await add_session(app, student.id, status="deleted", deleted_at=now)
    theirs = await add_session(app, other_student.id)
    await add_segments(app, s1, piece, [(1, 4, 2, 8.0), (3, 3, 5, 10.0)])
    await add_segments(app, s1, other_piece, [(1, 9, 50, 90.0)])
    await add_segments(app, s1, None, [(1, 9, 50, 90.0)])
    await add_segments(app, s2, piece, [(3, 5, 1, 3.0)])
    await add_segments(app, gone, piece, [(1, 1, 100, 1.0)])
    await add_segments(app, theirs, piece, [(1, 1, 100, 1.0)])

    response = await heatmap(client, student, piece)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["student_id"] == str(student.id)
    assert body["piece"]["id"] == str(piece) and body["piece"]["global"] is True
    assert [(b["bar"], b["clicks"], b["seconds"], b["sessions"], b["intensity"])
            for b in body["bars"]] == [
        (1, 2, 2.0, 1, 0.25),
        (2, 2, 2.0, 1, 0.25),
        (3, 8, 13.0, 2, 1.0),
        (4, 3, 3.0, 2, 0.375),
        (5, 1, 1.0, 1, 0.125),
    ]
    assert body["top_sections"] == [{"start_bar": 3, "end_bar": 3, "clicks": 8}]
    assert body["total_clicks"] == 8 and body["total_seconds"] == 21.0

    # only sessions started in [started_from, started_to)
    recent = await heatmap(client, student, piece,
                           started_from=(now - timedelta(days=2)).isoformat())
    assert [(b["bar"], b["clicks"]) for b in recent.json()["bars"]] == [
        (1, 0), (2, 0), (3, 1), (4, 1), (5, 1)]
    older = await heatmap(client, student, piece,
                          started_to=(now - timedelta(days=1)).isoformat())
    assert older.json()["total_clicks"] == 7
    none = await heatmap(client, student, piece,
                         started_from=(now - timedelta(days=3)).isoformat(),
                         started_to=(now - timedelta(days=3)).isoformat())
    assert none.json()["bars"] == [] and none.json()["total_clicks"] == 0

    # a deleted piece keeps its history
    assert (await client.delete(f"/api/v1/pieces/{piece}",
                                headers=admin.headers)).status_code == 204
    after = await heatmap(client, student, piece)
    assert after.status_code == 200 and after.json()["total_clicks"] == 8
    assert after.json()["piece"]["status"] == "deleted"


async def test_heatmap_without_segments_is_empty(client: httpx.AsyncClient,
                                                 app: FastAPI) -> None:
    student = await make_user(app)
    piece = await make_piece(client, student, "Unplayed")
    await add_session(app, student.id)
    body = (await heatmap(client, student, piece)).json()
    assert body["bars"] == [] and body["top_sections"] == []
    assert (body["total_clicks"], body["total_seconds"]) == (0, 0.0)


# (viewer, student, expected status, expected code)
ACCESS = [
    ("student", "student", 200, None),
    ("teacher", "student", 200, None),
    ("admin", "student", 200, None),
    ("teacher", "minor", 200, None),
    ("minor", "minor", 200, None),
    ("teacher", "minor_no_consent", 403, "consent_required"),
    ("other_teacher", "student", 403, "forbidden"),
    ("former_teacher", "student", 403, "forbidden"),
    ("other_student", "student", 403, "forbidden"),
    ("student", "other_student", 403, "forbidden"),
]


async def test_heatmap_access(client: httpx.AsyncClient, app: FastAPI) -> None:
    w: World = await build_world(app)
    pieces = {}
    for name in ("student", "minor", "minor_no_consent", "other_student"):
        student = w.actor(name)
        pieces[name] = await make_piece(client, student, "Sonatina")  # their own piece
        session = await add_session(app, student.id)
        await add_segments(app, session, pieces[name], [(2, 3, 4, 6.0)])
    for viewer, target, status, code in ACCESS:
        student = w.actor(target)
        response = await heatmap(client, w.actor(viewer), pieces[target],
                                 student_id=str(student.id))
        assert response.status_code == status, (viewer, target, response.text)
        if status == 200:
            body = response.json()
            assert body["student_id"] == str(student.id)
            assert [(b["bar"], b["clicks"], b["seconds"]) for b in body["bars"]] == [
                (1, 0, 0.0), (2, 4, 3.0), (3, 4, 3.0)]
            assert body["top_sections"] == [{"start_bar": 2, "end_bar": 3, "clicks": 4}]
        else:
            assert response.json()["code"] == code, (viewer, target)


async def test_heatmap_piece_must_be_visible_to_the_student(client: httpx.AsyncClient,
                                                            app: FastAPI) -> None:
    w = await build_world(app)
    others = await make_piece(client, w.other_student, "Not yours")
    teachers_own = await make_piece(client, w.teacher, "Teacher's piece")
    tag = await client.post("/api/v1/tags", json={"name": "A tag"}, headers=w.student.headers)
    for viewer, piece in ((w.student, others), (w.admin, others), (w.teacher, teachers_own),
                          (w.student, uuid.UUID(tag.json()["id"])),
                          (w.student, uuid.UUID(int=7))):
        response = await heatmap(client, viewer, piece, student_id=str(w.student.id))
        assert response.status_code == 404, (viewer.role, response.text)
        assert str(piece) in response.json()["detail"]
    # the teacher's own piece is fine for the teacher themselves
    assert (await heatmap(client, w.teacher, teachers_own)).status_code == 200
    missing = await heatmap(client, w.admin, others, student_id=str(uuid.UUID(int=9)))
    assert missing.status_code == 404 and "student" in missing.json()["detail"]


async def test_heatmap_input_checks_and_bar_cap(client: httpx.AsyncClient,
                                                app: FastAPI) -> None:
    student = await make_user(app)
    piece = await make_piece(client, student, "Very long piece")
    for params in ({"started_from": "2026-01-01T00:00:00"},  # no time zone
                   {"started_from": "2026-02-01T00:00:00Z", "started_to": "2026-01-01T00:00:00Z"},
                   {"student_id": "nobody"},
                   {"started_from": "0001-01-01T00:00:00+14:00"},  # before year 1 in UTC
                   {"started_to": "9999-12-31T23:59:59-14:00"}):  # after 9999 in UTC
        response = await heatmap(client, student, piece, **params)
        assert response.status_code == 422, params
    session = await add_session(app, student.id)
    await add_segments(app, session, piece, [(1, 2000, 1, None)])
    capped = await heatmap(client, student, piece)
    assert capped.status_code == 200 and len(capped.json()["bars"]) == 2000
    await add_segments(app, session, piece, [(1999, 2001, 1, None)])
    refused = await heatmap(client, student, piece)
    assert refused.status_code == 422
    assert refused.json()["code"] == "too_many_bars" and "2001" in refused.json()["detail"]
