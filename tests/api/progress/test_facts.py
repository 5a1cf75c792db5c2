"""Sessions as facts: the best source counts (stream over manual), several streams of one
session combine, pieces come from tags and segments, deleted sessions are left out."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from api.metrics.service import apply_stream_summary, record_manual_metrics
from api.practice.models import PracticeSegment, PracticeSession, SessionTag, Tag
from api.progress.facts import load_facts
from tests.api._support.users import make_user
from tests.api._support.world import add_session
from tests.api.metrics._events import summary_event, timing_report

pytestmark = pytest.mark.anyio


async def test_manual_only_session(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await make_user(app)
    session_id = await add_session(app, student.id, accuracy_pct=71.0, target_bpm=90.0)
    async with app.state.mpt.sessions() as db, db.begin():
        row = await db.get(PracticeSession, session_id)
        assert row is not None
        await record_manual_metrics(db, row)
    async with app.state.mpt.sessions() as db:
        (facts,) = await load_facts(db, student.id)
    assert (facts.source, facts.duration_s, facts.accuracy_pct, facts.target_bpm) == (
        "manual", 1800.0, 71.0, 90.0)
    assert facts.engine_points is None


async def test_streams_beat_manual_and_combine(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await make_user(app)
    session_id = await add_session(app, student.id, accuracy_pct=50.0)
    async with app.state.mpt.sessions() as db, db.begin():
        row = await db.get(PracticeSession, session_id)
        assert row is not None
        await record_manual_metrics(db, row)
    for accuracy in (80.0, 100.0):  # two streams of 150 s each into one session
        event_id, payload = summary_event(user_id=student.id, session_id=session_id,
                                          timing=timing_report(accuracy_pct=accuracy))
        async with app.state.mpt.sessions() as db:
            assert await apply_stream_summary(db, payload, event_id=event_id) == "applied"
    async with app.state.mpt.sessions() as db:
        (facts,) = await load_facts(db, student.id)
    assert facts.source == "stream"
    assert facts.duration_s == pytest.approx(300.0)
    assert facts.accuracy_pct == pytest.approx(90.0)
    assert facts.engine_points == 24


async def test_pieces_and_deleted_sessions(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await make_user(app)
    kept = await add_session(app, student.id)
    await add_session(app, student.id, status="deleted")
    async with app.state.mpt.sessions() as db, db.begin():
        tagged = Tag(scope="global", kind="piece", name="Etude", name_key="etude")
        segment_piece = Tag(scope="global", kind="piece", name="Sonata", name_key="sonata")
        db.add_all([tagged, segment_piece])
        await db.flush()
        db.add(SessionTag(session_id=kept, tag_id=tagged.id))
        db.add(PracticeSegment(session_id=kept, piece_id=segment_piece.id, start_bar=1,
                               end_bar=4, click_count=3))
    async with app.state.mpt.sessions() as db:
        facts = await load_facts(db, student.id)
    assert [f.session_id for f in facts] == [kept]
    assert set(facts[0].piece_ids) == {tagged.id, segment_piece.id}
