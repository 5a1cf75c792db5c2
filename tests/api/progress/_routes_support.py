"""Helpers for the progress route tests: local times, pieces and tags, applied streams,
a query counter."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from api.db import new_id
from api.metrics.service import apply_stream_summary
from api.practice.models import SessionTag, Tag
from tests.api._support.queries import count_queries
from tests.api.metrics._events import summary_event, timing_report

__all__ = ["add_tag", "count_queries", "local", "stream", "tag_session", "today_in"]


def today_in(tz_name: str) -> date:
    """The local today in ``tz_name``."""
    return datetime.now(UTC).astimezone(ZoneInfo(tz_name)).date()


def local(tz_name: str, day: date, hour: int, minute: int = 0) -> datetime:
    """The instant of ``day`` ``hour:minute`` local time in ``tz_name``, as UTC."""
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(tz_name)).astimezone(UTC)


async def add_tag(app: FastAPI, name: str, *, kind: str = "piece",
                  owner_id: uuid.UUID | None = None) -> uuid.UUID:
    """A global (or personal) tag or piece; returns its id."""
    tag = Tag(id=new_id(), scope=owner_id.hex if owner_id else "global", kind=kind,
              owner_id=owner_id, name=name, name_key=f"{name.lower()}-{new_id().hex[-6:]}")
    async with app.state.mpt.sessions() as db, db.begin():
        db.add(tag)
    return tag.id


async def tag_session(app: FastAPI, session_id: uuid.UUID, *tag_ids: uuid.UUID) -> None:
    async with app.state.mpt.sessions() as db, db.begin():
        db.add_all([SessionTag(session_id=session_id, tag_id=t) for t in tag_ids])


async def stream(app: FastAPI, student_id: uuid.UUID, session_id: uuid.UUID, *,
                 overrides: dict[str, Any] | None = None, **timing: Any) -> None:
    """Apply one 150 s stream summary to a session: a :func:`timing_report` made with
    ``timing``, then its fields replaced by ``overrides``."""
    report = timing_report(**timing) | (overrides or {})
    event_id, payload = summary_event(user_id=student_id, session_id=session_id,
                                      timing=report)
    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "applied"



