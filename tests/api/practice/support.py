"""Helpers for practice and sync tests: tags and pieces inserted straight into the database
(the library routes are another domain's), request bodies, row counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from api.db import new_id
from api.practice.models import PracticeSegment, PracticeSession, SessionTag, Tag

T0 = datetime(2025, 3, 1, 17, 0, tzinfo=UTC)


async def insert_tag(
    app: FastAPI,
    *,
    owner_id: uuid.UUID | None,
    name: str | None = None,
    kind: str = "tag",
    status: str = "active",
) -> uuid.UUID:
    """A tag (``kind="piece"`` for a piece) of ``owner_id`` (None: global)."""
    tag_id = new_id()
    name = name or f"{kind}-{tag_id.hex[-8:]}"
    async with app.state.mpt.sessions() as db, db.begin():
        db.add(Tag(id=tag_id, owner_id=owner_id,
                   scope="global" if owner_id is None else owner_id.hex,
                   kind=kind, name=name, name_key=name.lower(), status=status))
    return tag_id


def session_body(at: datetime = T0, minutes: float = 30, **fields: Any) -> dict[str, Any]:
    """A valid ``POST /sessions`` body starting at ``at``."""
    body: dict[str, Any] = {
        "focus": "scales",
        "started_at": at.isoformat(),
        "ended_at": (at + timedelta(minutes=minutes)).isoformat(),
        "self_rating": 3,
        "mode": "normal",
    }
    body.update(fields)
    return body


async def count_sessions(app: FastAPI, student_id: uuid.UUID | None = None) -> int:
    async with app.state.mpt.sessions() as db:
        stmt = select(func.count()).select_from(PracticeSession)
        if student_id is not None:
            stmt = stmt.where(PracticeSession.student_id == student_id)
        return int((await db.execute(stmt)).scalar_one())


async def count_children(app: FastAPI) -> tuple[int, int]:
    """(session tags, segments) rows in the database."""
    async with app.state.mpt.sessions() as db:
        tags = (await db.execute(select(func.count()).select_from(SessionTag))).scalar_one()
        segs = (await db.execute(select(func.count()).select_from(PracticeSegment))).scalar_one()
        return int(tags), int(segs)

