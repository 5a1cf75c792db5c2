"""Helpers for sync tests: batch items and calls."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx

from api.db import new_id
from tests.api._support.users import TestUser
from tests.api.practice.support import T0, session_body

BATCH = "/api/v1/sync/batch"
CHANGES = "/api/v1/sync/changes"


def item(
    session_id: uuid.UUID | None = None,
    *,
    edited: datetime = T0 + timedelta(hours=1),
    deleted: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """A batch item: a valid session edited at ``edited`` (device clock)."""
    body = session_body(**fields)
    body.update(id=str(session_id or new_id()), updated_at=edited.isoformat(), deleted=deleted)
    return body


async def send(
    client: httpx.AsyncClient, user: TestUser, items: list[dict[str, Any]],
    key: str | None = None,
) -> httpx.Response:
    """POST a batch under ``key`` (a fresh one by default)."""
    headers = {**user.headers, "Idempotency-Key": key or uuid.uuid4().hex}
    return await client.post(BATCH, json={"sessions": items}, headers=headers)


async def pull(client: httpx.AsyncClient, user: TestUser, since: str | None = None,
               limit: int = 500) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if since is not None:
        params["since"] = since
    response = await client.get(CHANGES, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
