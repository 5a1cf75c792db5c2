"""Tags and pieces over HTTP: CRUD, uniqueness per scope, admin-only global tags, visibility
(another's personal tag is 404), validation, soft delete, listing with search and cursors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.pagination import encode_cursor
from tests.api._support.users import TestUser, make_user

pytestmark = pytest.mark.anyio

TAGS = "/api/v1/tags"
PIECES = "/api/v1/pieces"


async def _create(client: httpx.AsyncClient, user: TestUser, body: dict[str, Any],
                  url: str = TAGS, expect: int = 201) -> dict[str, Any]:
    response = await client.post(url, json=body, headers=user.headers)
    assert response.status_code == expect, response.text
    data: dict[str, Any] = response.json()
    return data


async def _names(client: httpx.AsyncClient, user: TestUser, url: str = TAGS,
                 **params: Any) -> list[str]:
    response = await client.get(url, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


async def test_tag_crud_round_trip(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    created = await _create(client, student, {"name": "  Major   scales "})
    assert created["name"] == "Major scales"
    assert created["global"] is False and created["owner_id"] == str(student.id)
    assert created["status"] == "active"
    url = f"{TAGS}/{created['id']}"

    got = await client.get(url, headers=student.headers)
    assert got.status_code == 200 and got.json() == created

    renamed = await client.patch(url, json={"name": "Minor scales"}, headers=student.headers)
    assert renamed.status_code == 200 and renamed.json()["name"] == "Minor scales"
    recased = await client.patch(url, json={"name": "MINOR scales"}, headers=student.headers)
    assert recased.status_code == 200 and recased.json()["name"] == "MINOR scales"

    deleted = await client.delete(url, headers=student.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert await _names(client, student) == []
    shown = await client.get(url, headers=student.headers)
    assert shown.status_code == 200 and shown.json()["status"] == "deleted"
    again = await client.delete(url, headers=student.headers)
    assert again.status_code == 204
    patched = await client.patch(url, json={"name": "x"}, headers=student.headers)
    assert patched.status_code == 404
    # the name is free again once deleted
    fresh = await _create(client, student, {"name": "minor scales"})
    assert fresh["id"] != created["id"]
    assert await _names(client, student) == ["minor scales"]


async def test_names_are_unique_per_scope_ignoring_case(client: httpx.AsyncClient,
                                                         app: FastAPI) -> None:
    alice, bob = await make_user(app), await make_user(app)
    admin = await make_user(app, role="admin")
    first = await _create(client, alice, {"name": "Scales"})
    conflict = await client.post(TAGS, json={"name": " sCALES "}, headers=alice.headers)
    assert conflict.status_code == 409
    body = conflict.json()
    assert body["code"] == "tag_exists" and "'sCALES'" in body["detail"]
    assert body["existing_id"] == first["id"]
    # another student's scope is separate
    await _create(client, bob, {"name": "scales"})
    # a global "Scales" may sit beside the personal ones; a second global one may not
    await _create(client, admin, {"name": "Scales", "global": True})
    again = await client.post(TAGS, json={"name": "SCALES", "global": True},
                              headers=admin.headers)
    assert again.status_code == 409 and again.json()["code"] == "tag_exists"
    # a personal tag may share a global tag's name (the admin's own, too)
    await _create(client, admin, {"name": "Scales"})
    assert await _names(client, alice) == ["Scales", "Scales"]
    # a tag and a piece are different kinds: the same name is fine
    await _create(client, alice, {"name": "Scales"}, url=PIECES)
    # renaming onto an existing name conflicts
    other = await _create(client, alice, {"name": "Arpeggios"})
    clash = await client.patch(f"{TAGS}/{other['id']}", json={"name": "SCALES"},
                               headers=alice.headers)
    assert clash.status_code == 409 and clash.json()["code"] == "tag_exists"


async def test_only_admins_create_and_change_global_tags(client: httpx.AsyncClient,
                                                        app: FastAPI) -> None:
    student = await make_user(app)
    teacher = await make_user(app, role="teacher")
    admin = await make_user(app, role="admin")
    for user in (student, teacher):
        refused = await client.post(TAGS, json={"name": "Warm-up", "global": True},
                                    headers=user.headers)
        assert refused.status_code == 403, user.role
        assert refused.json()["code"] == "forbidden"
    made = await _create(client, admin, {"name": "Warm-up", "global": True})
    assert made["global"] is True and made["owner_id"] is None
    url = f"{TAGS}/{made['id']}"
    # everyone sees it, nobody but an admin changes it
    assert (await client.get(url, headers=student.headers)).json()["name"] == "Warm-up"
    assert (await client.patch(url, json={"name": "x"}, headers=student.headers)).status_code \
        == 403
    assert (await client.delete(url, headers=teacher.headers)).status_code == 403
    other_admin = await make_user(app, role="admin")
    renamed = await client.patch(url, json={"name": "Warm-ups"}, headers=other_admin.headers)
    assert renamed.status_code == 200 and renamed.json()["name"] == "Warm-ups"
    assert (await client.delete(url, headers=other_admin.headers)).status_code == 204
    assert await _names(client, student) == []


async def test_personal_tags_are_invisible_to_others(client: httpx.AsyncClient,
                                                     app: FastAPI) -> None:
    alice, bob = await make_user(app), await make_user(app)
    teacher = await make_user(app, role="teacher")
    admin = await make_user(app, role="admin")
    mine = await _create(client, alice, {"name": "Secret etude"})
    await _create(client, admin, {"name": "Global one", "global": True})
    await _create(client, admin, {"name": "Admin's own"})
    url = f"{TAGS}/{mine['id']}"
    for other in (bob, teacher, admin):
        for method in ("GET", "PATCH", "DELETE"):
            kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
            response = await client.request(method, url, headers=other.headers, **kwargs)
            assert response.status_code == 404, (other.role, method)
            assert response.json()["code"] == "not_found"
            assert mine["id"] in response.json()["detail"]
        names = await _names(client, other)
        assert "Secret etude" not in names
    assert await _names(client, alice) == ["Global one", "Secret etude"]
    assert await _names(client, admin) == ["Admin's own", "Global one"]
    assert await _names(client, alice, scope="personal") == ["Secret etude"]
    assert await _names(client, alice, scope="global") == ["Global one"]
    # a piece is not a tag at the tag routes, and the reverse
    piece = await _create(client, alice, {"name": "Etude"}, url=PIECES)
    assert (await client.get(f"{TAGS}/{piece['id']}", headers=alice.headers)).status_code == 404
    assert (await client.get(f"{PIECES}/{mine['id']}", headers=alice.headers)).status_code == 404
    unknown = await client.get(f"{TAGS}/01890000-0000-7000-8000-000000000000",
                               headers=alice.headers)
    assert unknown.status_code == 404
    malformed = await client.get(f"{TAGS}/not-a-uuid", headers=alice.headers)
    assert malformed.status_code == 422


async def test_list_search_and_pagination(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    admin = await make_user(app, role="admin")
    for name in ("bravo", "Alpha", "charlie", "delta"):
        await _create(client, student, {"name": name})
    for name in ("echo", "Alpha-Global"):
        await _create(client, admin, {"name": name, "global": True})
    await _create(client, student, {"name": "100%_done"})
    await _create(client, student, {"name": "100 done"})

    assert await _names(client, student, q="ALPHA") == ["Alpha", "Alpha-Global"]
    assert await _names(client, student, q="lph") == ["Alpha", "Alpha-Global"]
    assert await _names(client, student, q="%") == ["100%_done"]  # LIKE wildcards are literal
    assert await _names(client, student, q="_") == ["100%_done"]
    assert await _names(client, student, q="zzz") == []

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(TAGS, params=params, headers=student.headers)
        assert response.status_code == 200
        body = response.json()
        assert len(body["items"]) <= 3
        seen += [item["name"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 8
    # the database's collation orders punctuation; plain words come in case-blind order
    words = [n for n in seen if n.isalpha()]
    assert words == ["Alpha", "bravo", "charlie", "delta", "echo"]
    assert set(seen) == {"bravo", "Alpha", "charlie", "delta", "echo", "Alpha-Global",
                         "100%_done", "100 done"}

    forged = [encode_cursor("tags", ["\x00", "0" * 32]), encode_cursor("tags", [1, 2]),
              encode_cursor("tags", ["a", "not-an-id"]), "garbage!"]
    for cursor in forged:
        bad = await client.get(TAGS, params={"cursor": cursor}, headers=student.headers)
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor", cursor
    first = await client.get(TAGS, params={"limit": 1}, headers=student.headers)
    piece_page = await client.get(PIECES, params={"cursor": first.json()["next_cursor"]},
                                  headers=student.headers)
    assert piece_page.status_code == 422 and piece_page.json()["code"] == "invalid_cursor"
    for params in ({"limit": 0}, {"limit": 201}, {"scope": "everyone"}, {"q": "a\x01b"},
                   {"q": "x" * 101}):
        response = await client.get(TAGS, params=params, headers=student.headers)
        assert response.status_code == 422, params


INVALID_TAG_BODIES: list[dict[str, Any]] = [
    {},
    {"name": ""},
    {"name": "   "},
    {"name": "x" * 101},
    {"name": "Sca\nles"},
    {"name": "Sca\u0007les"},
    {"name": 5},
    {"name": None},
    {"name": "ok", "global": "maybe"},
    {"name": "ok", "colour": "red"},
    {"name": "ok", "composer": "Bach"},  # pieces only
]


async def test_invalid_tag_bodies_are_422(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    for body in INVALID_TAG_BODIES:
        response = await client.post(TAGS, json=body, headers=student.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "validation_failed"
    made = await _create(client, student, {"name": "ok"})
    for patch in ({"name": None}, {"name": ""}, {"name": "a\x1bb"}, {"global": True},
                  {"difficulty": 3}):
        response = await client.patch(f"{TAGS}/{made['id']}", json=patch,
                                      headers=student.headers)
        assert response.status_code == 422, (patch, response.text)
    assert await _names(client, student) == ["ok"]


async def test_tags_need_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get(TAGS)).status_code == 401
    assert (await client.post(PIECES, json={"name": "x"})).status_code == 401
