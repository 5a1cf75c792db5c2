"""Pieces over HTTP: their extra fields, validation of each, clearing with null, and the
seed of global tags."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.library.service import SEED_TAGS, seed_global_tags
from tests.api._support.users import make_user

pytestmark = pytest.mark.anyio

PIECES = "/api/v1/pieces"


async def test_piece_crud_with_its_fields(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    response = await client.post(PIECES, headers=student.headers, json={
        "name": "Clair de lune", "composer": "  Claude   Debussy ", "difficulty": 7,
        "typical_duration_s": 300,
    })
    assert response.status_code == 201, response.text
    piece = response.json()
    assert piece["composer"] == "Claude Debussy"
    assert piece["difficulty"] == 7 and piece["typical_duration_s"] == 300.0
    assert piece["global"] is False and piece["status"] == "active"
    url = f"{PIECES}/{piece['id']}"

    changed = await client.patch(url, json={"difficulty": 8, "composer": None},
                                 headers=student.headers)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["composer"], body["difficulty"], body["typical_duration_s"]) == \
        ("Clair de lune", None, 8, 300.0)
    blank = await client.patch(url, json={"composer": "   "}, headers=student.headers)
    assert blank.json()["composer"] is None
    fetched = await client.get(url, headers=student.headers)
    assert fetched.json() == blank.json()

    listed = await client.get(PIECES, params={"q": "LUNE"}, headers=student.headers)
    assert [p["id"] for p in listed.json()["items"]] == [piece["id"]]
    assert listed.json()["items"][0]["difficulty"] == 8

    assert (await client.delete(url, headers=student.headers)).status_code == 204
    assert (await client.get(PIECES, headers=student.headers)).json()["items"] == []


INVALID_PIECES: list[dict[str, Any]] = [
    {"name": "p", "difficulty": 0},
    {"name": "p", "difficulty": 11},
    {"name": "p", "difficulty": 5.5},
    {"name": "p", "difficulty": "5"},
    {"name": "p", "typical_duration_s": 0},
    {"name": "p", "typical_duration_s": -3},
    {"name": "p", "typical_duration_s": 36000.5},
    {"name": "p", "composer": "x" * 201},
    {"name": "p", "composer": "Ba\x00ch"},
]


async def test_invalid_piece_fields_are_422(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    for body in INVALID_PIECES:
        response = await client.post(PIECES, json=body, headers=student.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "validation_failed"
    # NaN and Infinity are not JSON, but Python's parser reads them: refused all the same
    for literal in ("NaN", "Infinity"):
        response = await client.post(
            PIECES, content=f'{{"name": "p", "typical_duration_s": {literal}}}',
            headers={**student.headers, "Content-Type": "application/json"})
        assert response.status_code == 422, literal
    edge = await client.post(PIECES, headers=student.headers, json={
        "name": "p", "difficulty": 10, "typical_duration_s": 36000, "composer": "y" * 200})
    assert edge.status_code == 201, edge.text
    assert (await client.get(PIECES, headers=student.headers)).json()["items"][0]["name"] == "p"


async def test_global_pieces_are_for_admins(client: httpx.AsyncClient, app: FastAPI) -> None:
    student, admin = await make_user(app), await make_user(app, role="admin")
    refused = await client.post(PIECES, json={"name": "Für Elise", "global": True},
                                headers=student.headers)
    assert refused.status_code == 403
    made = await client.post(PIECES, json={"name": "Für Elise", "global": True,
                                           "composer": "Beethoven"}, headers=admin.headers)
    assert made.status_code == 201 and made.json()["global"] is True
    seen = await client.get(PIECES, params={"scope": "global"}, headers=student.headers)
    assert [p["name"] for p in seen.json()["items"]] == ["Für Elise"]
    dup = await client.post(PIECES, json={"name": "FÜR ELISE", "global": True},
                            headers=admin.headers)
    assert dup.status_code == 409 and dup.json()["code"] == "tag_exists"


async def test_seed_global_tags_is_idempotent(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin, student = await make_user(app, role="admin"), await make_user(app)
    taken = await client.post("/api/v1/tags", json={"name": "scales", "global": True},
                              headers=admin.headers)
    assert taken.status_code == 201
    async with app.state.mpt.sessions() as db:
        first = await seed_global_tags(db)
    assert first == [name for name in SEED_TAGS if name != "Scales"]
    listed = await client.get("/api/v1/tags", params={"scope": "global"},
                              headers=student.headers)
    names = [t["name"] for t in listed.json()["items"]]
    assert sorted(names, key=str.casefold) == sorted(
        ["scales", *first], key=str.casefold)
    # an admin deletes one; seeding again creates nothing and does not revive it
    etudes = next(t for t in listed.json()["items"] if t["name"] == "Etudes")
    assert (await client.delete(f"/api/v1/tags/{etudes['id']}",
                                headers=admin.headers)).status_code == 204
    async with app.state.mpt.sessions() as db:
        assert await seed_global_tags(db) == []
    again = await client.get("/api/v1/tags", params={"scope": "global"},
                             headers=student.headers)
    assert len(again.json()["items"]) == len(names) - 1
