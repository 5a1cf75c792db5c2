"""The shared authorization cast (``tests.api._support.world``) is what it claims to be."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api.accounts.models import User
from api.db import utcnow
from api.deps import Principal
from api.practice.models import PracticeSession
from api.teaching.access import can_view_student, visible_student_ids
from tests.api._support.world import add_session, build_world

pytestmark = pytest.mark.anyio


async def test_world_links_and_access(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    async with app.state.mpt.sessions() as db:
        visible = await visible_student_ids(db, world.teacher.id)
        assert set(visible) == {world.student.id, world.minor.id}
        former = Principal(id=world.former_teacher.id, role="teacher", jti="x", issued_at=utcnow())
        assert not await can_view_student(db, former, world.student.id)


async def test_add_session_bumps_change_seq(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    first = await add_session(app, world.student.id, accuracy_pct=80.0)
    second = await add_session(app, world.student.id, ended_at=None)
    async with app.state.mpt.sessions() as db:
        seqs = dict((await db.execute(
            select(PracticeSession.id, PracticeSession.change_seq)
        )).all())
        user_seq = (await db.execute(
            select(User.change_seq).where(User.id == world.student.id)
        )).scalar_one()
        ended = (await db.execute(
            select(PracticeSession.ended_at).where(PracticeSession.id == second)
        )).scalar_one()
    assert seqs == {first: 1, second: 2} and user_seq == 2
    assert ended is None
