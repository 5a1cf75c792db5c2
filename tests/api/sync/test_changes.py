"""GET /sync/changes: what changed after a cursor, in write order, page by page."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api.accounts.models import User
from api.db import new_id
from tests.api._support.users import make_user
from tests.api.practice.support import session_body
from tests.api.sync.support import CHANGES, item, pull, send

pytestmark = pytest.mark.anyio


async def user_updated_at(app: FastAPI, user_id: uuid.UUID) -> datetime:
    async with app.state.mpt.sessions() as db:
        value: datetime = (
            await db.execute(select(User.updated_at).where(User.id == user_id))
        ).scalar_one()
        return value


async def test_since_returns_exactly_the_later_changes(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    other = await make_user(app)
    profile_updated = await user_updated_at(app, student.id)
    empty = await pull(client, student)
    assert empty == {"sessions": [], "tombstones": [], "cursor": "0", "has_more": False}

    ids = [new_id() for _ in range(3)]
    first = await send(client, student, [item(i) for i in ids])
    await send(client, other, [item()])
    cursor = first.json()["cursor"]
    everything = await pull(client, student)
    assert [s["id"] for s in everything["sessions"]] == [str(i) for i in ids]
    assert everything["cursor"] == cursor and not everything["has_more"]
    assert await pull(client, student, since=cursor) == {
        "sessions": [], "tombstones": [], "cursor": cursor, "has_more": False}

    # later: an edit over REST, a delete, a new session
    await client.patch(f"/api/v1/sessions/{ids[1]}", json={"note": "later"},
                       headers=student.headers)
    await client.delete(f"/api/v1/sessions/{ids[0]}", headers=student.headers)
    made = (await client.post("/api/v1/sessions", json=session_body(),
                              headers=student.headers)).json()
    later = await pull(client, student, since=cursor)
    assert [s["id"] for s in later["sessions"]] == [str(ids[1]), made["id"]]
    assert later["sessions"][0]["note"] == "later"
    assert [t["id"] for t in later["tombstones"]] == [str(ids[0])]
    assert int(later["cursor"]) == int(cursor) + 3
    seqs = [s["change_seq"] for s in later["sessions"]]
    assert seqs == sorted(seqs) and all(seq > int(cursor) for seq in seqs)
    # the counter is bookkeeping: the user's profile was not "updated"
    assert await user_updated_at(app, student.id) == profile_updated


async def test_pages_with_has_more(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    ids = [new_id() for _ in range(7)]
    await send(client, student, [item(i) for i in ids[:5]])
    await send(client, student, [item(ids[5]), item(ids[6], deleted=True)])
    seen: list[str] = []
    cursor = None
    pages = []
    while True:
        page = await pull(client, student, since=cursor, limit=3)
        pages.append(page["has_more"])
        seen += [s["id"] for s in page["sessions"]] + [t["id"] for t in page["tombstones"]]
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert pages == [True, True, False]
    assert seen == [str(i) for i in ids]


async def test_bad_since_and_limit(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    for params in ({"since": "abc"}, {"since": "-1"}, {"since": "9" * 20}):
        response = await client.get(CHANGES, params=params, headers=student.headers)
        assert response.status_code == 422, params
        assert response.json()["code"] == "invalid_cursor"
    for limit in (0, 501):
        response = await client.get(CHANGES, params={"limit": limit}, headers=student.headers)
        assert response.status_code == 422
    teacher = await make_user(app, role="teacher")
    assert (await client.get(CHANGES, headers=teacher.headers)).status_code == 403
    assert (await client.get(CHANGES)).status_code == 401
