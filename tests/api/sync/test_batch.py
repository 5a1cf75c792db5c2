"""POST /sync/batch: per-item outcomes, idempotent replays, all-or-nothing batches."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from api.db import new_id, utcnow
from tests.api._support.users import make_user
from tests.api.practice.support import (
    T0,
    count_children,
    count_sessions,
    insert_tag,
    session_body,
)
from tests.api.sync.support import BATCH, item, pull, send

pytestmark = pytest.mark.anyio


async def test_outcomes_per_item(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    other = await make_user(app)
    piece = await insert_tag(app, owner_id=student.id, kind="piece")
    a, b, c, d = (new_id() for _ in range(4))
    t = T0 + timedelta(hours=1)
    first = await send(client, student, [
        item(a, edited=t, note="v1", tag_ids=[str(piece)],
             segments=[{"piece_id": str(piece), "start_bar": 1, "end_bar": 8}]),
        item(b, edited=t),
        item(c, edited=t, deleted=True),
    ])
    assert first.status_code == 200, first.text
    assert [(r["id"], r["status"]) for r in first.json()["results"]] == [
        (str(a), "created"), (str(b), "created"), (str(c), "deleted")]
    assert first.headers.get("idempotent-replayed") is None
    owned_by_other = (await client.post(
        "/api/v1/sessions", json=session_body(id=str(d)), headers=other.headers)).json()

    later, earlier = t + timedelta(minutes=5), t - timedelta(minutes=5)
    second = await send(client, student, [
        item(a, edited=later, note="v2"),                 # newer: applied, lists replaced
        item(b, edited=earlier, note="stale"),            # older and different: conflict
        item(b, edited=t),                                # same clock, same content
        item(c, edited=earlier, note="zombie"),           # older edit of a tombstone
        item(d, edited=later, note="mine now?"),          # another user's id
    ])
    results = second.json()["results"]
    assert [r["status"] for r in results] == [
        "updated", "conflict", "unchanged", "conflict", "rejected"]
    assert results[0]["server"] is None and results[2]["server"] is None
    assert results[1]["server"]["id"] == str(b) and results[1]["server"]["note"] is None
    assert "kept" in results[1]["reason"]
    assert results[3]["server"]["status"] == "deleted"
    assert results[4]["server"] is None and "another account" in results[4]["reason"]
    assert "mine now?" not in second.text and owned_by_other["focus"] not in results[4]["reason"]

    pulled = await pull(client, student)
    by_id = {s["id"]: s for s in pulled["sessions"]}
    assert set(by_id) == {str(a), str(b)}
    assert by_id[str(a)]["note"] == "v2" and by_id[str(a)]["tag_ids"] == []
    assert by_id[str(a)]["segments"] == [] and by_id[str(b)]["note"] is None
    assert by_id[str(a)]["client_updated_at"] == later.isoformat().replace("+00:00", "Z")
    assert [t["id"] for t in pulled["tombstones"]] == [str(c)]
    assert pulled["cursor"] == second.json()["cursor"]
    got = await client.get(f"/api/v1/sessions/{d}", headers=other.headers)
    assert got.json()["note"] is None

    # a newer edit restores a deleted session; a newer tombstone deletes a live one
    third = await send(client, student, [item(c, edited=later, note="back"),
                                         item(b, edited=later, deleted=True)])
    assert [r["status"] for r in third.json()["results"]] == ["updated", "deleted"]
    live = await client.get("/api/v1/sessions", headers=student.headers)
    assert sorted(s["id"] for s in live.json()["items"]) == sorted([str(a), str(c)])


async def test_rest_writes_take_part_in_sync(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    made = (await client.post("/api/v1/sessions", json=session_body(note="rest"),
                              headers=student.headers)).json()
    server_clock = made["client_updated_at"]
    # an offline edit older than the REST write loses; one made after it wins
    stale = await send(client, student, [item(uuid.UUID(made["id"]), note="offline")])
    assert stale.json()["results"][0]["status"] == "conflict"
    assert stale.json()["results"][0]["server"]["note"] == "rest"
    fresh = await send(client, student, [item(uuid.UUID(made["id"]), note="offline",
                                              edited=utcnow() + timedelta(seconds=1))])
    assert fresh.json()["results"][0]["status"] == "updated"
    got = (await client.get(f"/api/v1/sessions/{made['id']}", headers=student.headers)).json()
    assert got["note"] == "offline" and got["client_updated_at"] > server_clock
    # a REST delete is a tombstone for devices
    await client.delete(f"/api/v1/sessions/{made['id']}", headers=student.headers)
    pulled = await pull(client, student, since=fresh.json()["cursor"])
    assert pulled["sessions"] == [] and [t["id"] for t in pulled["tombstones"]] == [made["id"]]
    assert pulled["tombstones"][0]["deleted_at"] is not None


async def test_replay_returns_the_stored_answer_and_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    tag = await insert_tag(app, owner_id=None)
    items = [item(tag_ids=[str(tag)], segments=[{"start_bar": 1, "end_bar": 2}])
             for _ in range(5)]
    first = await send(client, student, items, key="batch-1")
    assert first.status_code == 200
    state = (await count_sessions(app), await count_children(app), await pull(client, student))
    assert state[:2] == (5, (5, 5))
    for _ in range(2):
        again = await send(client, student, items, key="batch-1")
        assert again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    assert (await count_sessions(app), await count_children(app),
            await pull(client, student)) == state
    # another user may use the same key for their own batch
    other = await make_user(app)
    theirs = await send(client, other, [item()], key="batch-1")
    assert theirs.status_code == 200 and "idempotent-replayed" not in theirs.headers


async def test_same_key_other_body_is_422(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    session_id = new_id()
    assert (await send(client, student, [item(session_id)], key="k")).status_code == 200
    reused = await send(client, student, [item(session_id, note="changed")], key="k")
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert "'k'" in reused.json()["detail"]
    got = await client.get(f"/api/v1/sessions/{session_id}", headers=student.headers)
    assert got.json()["note"] is None


async def test_idempotency_key_is_required_and_checked(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    body = {"sessions": [item()]}
    missing = await client.post(BATCH, json=body, headers=student.headers)
    assert missing.status_code == 400 and missing.json()["code"] == "idempotency_key_required"
    for bad in ("x" * 256, "tab\there"):
        response = await client.post(BATCH, json=body,
                                     headers={**student.headers, "Idempotency-Key": bad})
        assert response.status_code == 400, bad
        assert response.json()["code"] == "idempotency_key_invalid"
    assert await count_sessions(app) == 0
    teacher = await make_user(app, role="teacher")
    assert (await send(client, teacher, [item()])).status_code == 403
    assert (await client.post(BATCH, json=body, headers={"Idempotency-Key": "k"})
            ).status_code == 401


async def test_a_bad_item_refuses_the_whole_batch(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    other = await make_user(app)
    foreign = await insert_tag(app, owner_id=other.id)
    before = await pull(client, student)
    items = [item(), item(), item(tag_ids=[str(foreign)]), item()]
    refused = await send(client, student, items, key="half-way")
    assert refused.status_code == 422
    assert refused.json()["code"] == "unknown_tag"
    assert f"sessions.2.tag_ids: tag {foreign}" in refused.json()["detail"]
    assert await count_sessions(app) == 0 and await count_children(app) == (0, 0)
    assert (await pull(client, student))["cursor"] == before["cursor"]
    # nothing was recorded under the key: the corrected batch goes through with it
    items[2] = item()
    fixed = await send(client, student, items, key="half-way")
    assert fixed.status_code == 200 and "idempotent-replayed" not in fixed.headers
    assert [r["status"] for r in fixed.json()["results"]] == ["created"] * 4
    assert await count_sessions(app) == 4


async def test_batch_validation(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    cases = [
        ([item() for _ in range(501)], "sessions"),
        ([item(), {**item(), "started_at": "2025-03-01T17:00:00"}], "sessions.1.started_at"),
        ([{k: v for k, v in item().items() if k != "updated_at"}], "sessions.0.updated_at"),
        ([{k: v for k, v in item().items() if k != "id"}], "sessions.0.id"),
        ([item(edited=utcnow() + timedelta(days=2))], "sessions.0.updated_at"),
        ([{**item(), "updated_at": "0001-01-01T00:00:00+23:59"}], "sessions.0.updated_at"),
    ]
    for items, where in cases:
        response = await send(client, student, items)
        assert response.status_code == 422, (where, response.text)
        assert where in response.json()["detail"], response.json()["detail"]
    assert await count_sessions(app) == 0
    empty = await send(client, student, [])
    assert empty.json() == {"results": [], "cursor": "1"}
