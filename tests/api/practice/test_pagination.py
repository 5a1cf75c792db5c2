"""Keyset cursors (``api.pagination``) and paging through a student's sessions."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from api.errors import UnprocessableError
from api.pagination import (
    decode_cursor,
    decode_time_id_cursor,
    encode_cursor,
    encode_time_id_cursor,
    split_page,
)
from tests.api._support.users import make_user
from tests.api.practice.support import T0, session_body

pytestmark = pytest.mark.anyio


def test_time_id_cursor_round_trips_and_is_url_safe() -> None:
    row_id = uuid.uuid4()
    cursor = encode_time_id_cursor("sessions", T0, row_id)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor
    assert decode_time_id_cursor(cursor, kind="sessions") == (T0, row_id)


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        encode_cursor("pieces", ["2025-03-01T17:00:00+00:00", uuid.uuid4().hex]),
        encode_cursor("sessions", ["2025-03-01T17:00:00+00:00"]),
        encode_cursor("sessions", ["2025-03-01T17:00:00", uuid.uuid4().hex]),
        encode_cursor("sessions", ["yesterday", uuid.uuid4().hex]),
        encode_cursor("sessions", ["2025-03-01T17:00:00+00:00", "zz"]),
        encode_cursor("sessions", [1, 2]),
        encode_cursor("sessions", ["9999-12-31T23:59:59-23:59", uuid.uuid4().hex]),
    ],
)
def test_bad_cursors_are_invalid_cursor(cursor: str) -> None:
    with pytest.raises(UnprocessableError) as caught:
        decode_time_id_cursor(cursor, kind="sessions")
    assert caught.value.code == "invalid_cursor"


def test_decode_cursor_checks_arity() -> None:
    assert decode_cursor(encode_cursor("x", [1, "a", None]), kind="x", arity=3) == [1, "a", None]


def test_split_page() -> None:
    assert split_page([1, 2, 3], 2, str) == ([1, 2], "2")
    assert split_page([1, 2], 2, str) == ([1, 2], None)
    assert split_page([], 2, str) == ([], None)


async def test_paging_25_sessions_by_10_has_no_gaps_or_duplicates(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    student = await make_user(app)
    made = []
    # ties on started_at (groups of 3 share one) must still order stably by id
    for i in range(25):
        at = T0 + timedelta(hours=i // 3)
        response = await client.post("/api/v1/sessions", json=session_body(at, focus=f"s{i}"),
                                     headers=student.headers)
        assert response.status_code == 201
        made.append((response.json()["started_at"], response.json()["id"]))
    expected = [sid for _at, sid in sorted(made, reverse=True)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/api/v1/sessions", params=params, headers=student.headers)
        assert response.status_code == 200
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == expected

    # a session added while paging (older than the cursor) shows on the page it belongs to
    first = (await client.get("/api/v1/sessions", params={"limit": 10},
                              headers=student.headers)).json()
    await client.post("/api/v1/sessions", json=session_body(T0 - timedelta(days=1)),
                      headers=student.headers)
    rest = (await client.get("/api/v1/sessions",
                             params={"limit": 200, "cursor": first["next_cursor"]},
                             headers=student.headers)).json()
    assert len(first["items"]) + len(rest["items"]) == 26
    assert rest["next_cursor"] is None


async def test_bad_cursor_and_limit_are_422(client: httpx.AsyncClient, app: FastAPI) -> None:
    student = await make_user(app)
    response = await client.get("/api/v1/sessions", params={"cursor": "garbage"},
                                headers=student.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"
    assert "garbage" in response.json()["detail"]
    for limit in (0, 201):
        response = await client.get("/api/v1/sessions", params={"limit": limit},
                                    headers=student.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["query", "limit"]
