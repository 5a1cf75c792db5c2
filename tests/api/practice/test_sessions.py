"""Practice sessions: create, read, update, soft delete, validation, filters."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.db import new_id
from tests.api._support.users import TestUser, make_user
from tests.api.practice.support import (
    T0,
    count_children,
    count_sessions,
    insert_tag,
    session_body,
)

pytestmark = pytest.mark.anyio

URL = "/api/v1/sessions"


async def create(client: httpx.AsyncClient, user: TestUser, **kwargs: Any) -> dict[str, Any]:
    response = await client.post(URL, json=session_body(**kwargs), headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_read_update_delete(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    piece = await insert_tag(app, owner_id=None, kind="piece", name="Etude 3")
    mine = await insert_tag(app, owner_id=student.id, name="warm-up")
    body = session_body(
        T0, minutes=45, note="bar 12 rushes", target_bpm=96, accuracy_pct=87.5, mode="slow",
        tag_ids=[str(piece), str(mine), str(mine)],
        segments=[{"piece_id": str(piece), "label": "coda", "start_bar": 9, "end_bar": 16,
                   "click_count": 5, "duration_s": 300, "tempo_bpm": 88},
                  {"label": "intro", "start_bar": 1, "end_bar": 1}],
    )
    response = await client.post(URL, json=body, headers=student.headers)
    assert response.status_code == 201
    made = response.json()
    assert made["student_id"] == str(student.id)
    assert made["duration_s"] == 2700.0
    assert made["status"] == "active" and made["deleted_at"] is None
    assert made["mode"] == "slow" and made["accuracy_pct"] == 87.5
    assert sorted(made["tag_ids"]) == sorted([str(piece), str(mine)])
    assert {(t["name"], t["kind"]) for t in made["tags"]} == {("Etude 3", "piece"),
                                                              ("warm-up", "tag")}
    assert [s["label"] for s in made["segments"]] == ["coda", "intro"]
    assert made["segments"][0]["click_count"] == 5 and made["segments"][1]["click_count"] == 0
    assert made["feedback_count"] == 0 and made["change_seq"] == 1

    got = await client.get(f"{URL}/{made['id']}", headers=student.headers)
    assert got.status_code == 200 and got.json() == made

    patched = await client.patch(f"{URL}/{made['id']}", headers=student.headers,
                                 json={"self_rating": 5, "tag_ids": [str(piece)]})
    assert patched.status_code == 200
    after = patched.json()
    assert after["self_rating"] == 5 and after["note"] == "bar 12 rushes"
    assert after["tag_ids"] == [str(piece)]
    assert after["segments"] == made["segments"]  # not given: kept, same ids
    assert after["change_seq"] == 2 and after["updated_at"] > made["updated_at"]

    cleared = (await client.patch(f"{URL}/{made['id']}", headers=student.headers,
                                  json={"segments": [], "ended_at": None, "note": None})).json()
    assert cleared["segments"] == [] and cleared["duration_s"] is None and cleared["note"] is None
    assert await count_children(app) == (1, 0)

    deleted = await client.delete(f"{URL}/{made['id']}", headers=student.headers)
    assert deleted.status_code == 204
    assert (await client.get(f"{URL}/{made['id']}", headers=student.headers)).status_code == 404
    assert (await client.get(URL, headers=student.headers)).json()["items"] == []
    assert (await client.delete(f"{URL}/{made['id']}",
                                headers=student.headers)).status_code == 404
    again = await client.patch(f"{URL}/{made['id']}", json={"note": "x"},
                               headers=student.headers)
    assert again.status_code == 404
    assert await count_sessions(app) == 1  # a tombstone, not erased


async def test_client_chosen_id_and_duplicate_is_409(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    other = await make_user(app)
    session_id = str(new_id())
    made = await create(client, student, id=session_id)
    assert made["id"] == session_id
    for user in (student, other):
        response = await client.post(URL, json=session_body(id=session_id),
                                     headers=user.headers)
        assert response.status_code == 409
        assert session_id in response.json()["detail"]
    assert await count_sessions(app) == 1


INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"started_at": "2025-03-01T17:00:00"}, "started_at", "timezone"),
    ({"started_at": None}, "started_at", ""),
    ({"started_at": "9999-12-31T23:59:59-23:59", "ended_at": None}, "body", "outside"),
    ({"ended_at": "2025-03-01T16:59:59Z"}, "body", "before started_at"),
    ({"ended_at": "2025-03-02T17:00:01Z"}, "body", "24 h"),
    ({"self_rating": 6}, "self_rating", "less than or equal to 5"),
    ({"self_rating": 0}, "self_rating", "greater than or equal to 1"),
    ({"focus": "x" * 201}, "focus", "at most 200"),
    ({"note": "x" * 5001}, "note", "at most 5000"),
    ({"note": "a\x00b"}, "note", "NUL"),
    ({"target_bpm": 19}, "target_bpm", "20"),
    ({"accuracy_pct": 100.5}, "accuracy_pct", "100"),
    ({"mode": "turbo"}, "mode", "normal"),
    ({"id": "not-a-uuid"}, "id", "UUID"),
    ({"tag_ids": [str(uuid.uuid4()) for _ in range(51)]}, "tag_ids", "at most 50"),
    ({"segments": [{"start_bar": 1, "end_bar": 1}] * 201}, "segments", "at most 200"),
    ({"segments": [{"start_bar": 0, "end_bar": 1}]}, "start_bar", "greater than"),
    ({"segments": [{"start_bar": 5, "end_bar": 4}]}, "segments", "end_bar 4 is before"),
    ({"segments": [{"start_bar": 1, "end_bar": 2, "click_count": -1}]}, "click_count",
     "greater"),
    ({"segments": [{"start_bar": 1, "end_bar": 2, "duration_s": -1}]}, "duration_s",
     "greater"),
    ({"surprise": 1}, "surprise", "Extra"),
]


async def test_create_validation(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    for change, where, text in INVALID:
        body = session_body()
        body.update(change)
        response = await client.post(URL, json=body, headers=student.headers)
        assert response.status_code == 422, (change, response.text)
        problem = response.json()
        assert problem["code"] == "validation_failed"
        assert where in problem["detail"] and text in problem["detail"], (change, problem)
    assert await count_sessions(app) == 0


async def test_tags_and_pieces_must_be_visible(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    stranger = await make_user(app)
    foreign = await insert_tag(app, owner_id=stranger.id)
    gone = await insert_tag(app, owner_id=student.id, status="deleted")
    plain = await insert_tag(app, owner_id=None, kind="tag")
    unknown = uuid.uuid4()
    for bad in (foreign, gone, unknown):
        response = await client.post(URL, json=session_body(tag_ids=[str(bad)]),
                                     headers=student.headers)
        assert response.status_code == 422
        assert response.json()["code"] == "unknown_tag"
        assert str(bad) in response.json()["detail"]
    seg = [{"start_bar": 1, "end_bar": 2, "piece_id": str(plain)}]
    response = await client.post(URL, json=session_body(segments=seg), headers=student.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_piece"
    assert f"segments.0.piece_id: piece {plain}" in response.json()["detail"]
    assert await count_sessions(app) == 0


async def test_a_tag_deleted_later_stays_on_its_session(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    tag = await insert_tag(app, owner_id=student.id)
    made = await create(client, student, tag_ids=[str(tag)])
    async with app.state.mpt.sessions() as db, db.begin():
        from api.practice.models import Tag
        row = await db.get(Tag, tag)
        assert row is not None
        row.status = "deleted"
    response = await client.patch(f"{URL}/{made['id']}", json={"tag_ids": [str(tag)]},
                                  headers=student.headers)
    assert response.status_code == 200 and response.json()["tag_ids"] == [str(tag)]
    response = await client.post(URL, json=session_body(tag_ids=[str(tag)]),
                                 headers=student.headers)
    assert response.status_code == 422


async def test_update_validation_merges_with_stored_values(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    made = await create(client, student, minutes=30)
    url = f"{URL}/{made['id']}"
    too_late = (T0 + timedelta(hours=25)).isoformat()
    response = await client.patch(url, json={"ended_at": too_late}, headers=student.headers)
    assert response.status_code == 422 and "24 h" in response.json()["detail"]
    response = await client.patch(url, json={"started_at": (T0 + timedelta(hours=1)).isoformat()},
                                  headers=student.headers)
    assert response.status_code == 422 and "before started_at" in response.json()["detail"]
    for bad in ({"mode": None}, {"tag_ids": None}, {"self_rating": 9},
                {"started_at": "2025-03-01T17:00:00"}):
        response = await client.patch(url, json=bad, headers=student.headers)
        assert response.status_code == 422, bad
    got = (await client.get(url, headers=student.headers)).json()
    assert got["change_seq"] == made["change_seq"] and got["updated_at"] == made["updated_at"]


async def test_only_the_owner_writes_and_only_students_create(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    other = await make_user(app)
    admin = await make_user(app, role="admin")
    teacher = await make_user(app, role="teacher")
    made = await create(client, student)
    url = f"{URL}/{made['id']}"
    for user in (other, admin, teacher):
        assert (await client.patch(url, json={"note": "x"},
                                   headers=user.headers)).status_code == 403
        assert (await client.delete(url, headers=user.headers)).status_code == 403
    assert (await client.get(url, headers=other.headers)).status_code == 403
    response = await client.post(URL, json=session_body(), headers=teacher.headers)
    assert response.status_code == 403
    assert (await client.get(url)).status_code == 401
    assert (await client.get(f"{URL}/{uuid.uuid4()}",
                             headers=student.headers)).status_code == 404
    assert (await client.get(f"{URL}/nope", headers=student.headers)).status_code == 422
    got = (await client.get(url, headers=student.headers)).json()
    assert got["note"] is None and got["status"] == "active"


async def test_list_filters(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    other = await make_user(app)
    piece = await insert_tag(app, owner_id=None, kind="piece")
    tag = await insert_tag(app, owner_id=student.id)
    a = await create(client, student, at=T0, tag_ids=[str(piece)])
    b = await create(client, student, at=T0 + timedelta(days=1), mode="slow",
                     segments=[{"start_bar": 1, "end_bar": 4, "piece_id": str(piece)}])
    c = await create(client, student, at=T0 + timedelta(days=2), tag_ids=[str(tag)],
                     mode="performance")
    await create(client, other, at=T0)

    async def ids(**params: Any) -> list[str]:
        response = await client.get(URL, params=params, headers=student.headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids() == [c["id"], b["id"], a["id"]]
    assert await ids(piece_id=str(piece)) == [b["id"], a["id"]]
    assert await ids(tag_id=str(piece)) == [a["id"]]
    assert await ids(tag_id=str(tag)) == [c["id"]]
    assert await ids(mode="slow") == [b["id"]]
    day1 = (T0 + timedelta(days=1)).isoformat()
    assert await ids(started_from=day1) == [c["id"], b["id"]]
    assert await ids(started_to=day1) == [a["id"]]
    assert await ids(started_from=day1, started_to=(T0 + timedelta(days=2)).isoformat()) == [
        b["id"]
    ]
    assert await ids(tag_id=str(uuid.uuid4())) == []
    for params in ({"started_from": "2025-03-01T00:00:00"}, {"mode": "turbo"},
                   {"started_from": "0001-01-01T00:00:00+23:59"},
                   {"started_to": "9999-12-31T23:59:59-23:59"},
                   {"started_from": day1, "started_to": T0.isoformat()}):
        response = await client.get(URL, params=params, headers=student.headers)
        assert response.status_code == 422, params
