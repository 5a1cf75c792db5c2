"""Points and streaks over HTTP: the best source counts once (a stream's engine points over
the manual minutes), the week starts Monday 00:00 UTC, streaks follow the student's time
zone and bridge a missed day with an earned freeze; who may read them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from api.db import utcnow
from api.gamification.rules import week_start
from api.metrics.service import apply_stream_summary, record_manual_metrics
from api.practice.models import PracticeSession
from tests.api._support.world import add_session, add_user, build_world
from tests.api.metrics._events import summary_event, timing_report

pytestmark = pytest.mark.anyio


async def _manual(app: FastAPI, student_id: uuid.UUID, start: datetime, minutes: float,
                  **fields: object) -> uuid.UUID:
    """A session logged by hand, with its manual metrics recorded as the practice routes
    record them."""
    session_id = await add_session(app, student_id, started_at=start,
                                   ended_at=start + timedelta(minutes=minutes), **fields)
    async with app.state.mpt.sessions() as db, db.begin():
        row = await db.get(PracticeSession, session_id)
        assert row is not None
        await record_manual_metrics(db, row)
    return session_id


async def test_points_count_the_best_source_once(app: FastAPI,
                                                 client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Ada")
    monday = week_start(utcnow())
    old = await _manual(app, student.id, monday - timedelta(days=20), 20)
    manual = await _manual(app, student.id, monday + timedelta(minutes=1), 30)
    both = await _manual(app, student.id, monday + timedelta(minutes=40), 45.9)
    event_id, payload = summary_event(user_id=student.id, session_id=both,
                                      started_at=monday + timedelta(minutes=40),
                                      timing=timing_report(accuracy_pct=95.0))
    async with app.state.mpt.sessions() as db:
        assert await apply_stream_summary(db, payload, event_id=event_id) == "applied"

    r = await client.get(f"/api/v1/students/{student.id}/points", headers=student.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    # old: 20 manual minutes; manual: 30; both: the stream's engine points (12), not 45
    assert (body["total_points"], body["week_points"]) == (62, 42)
    assert body["week_start"].startswith(monday.date().isoformat())
    rows = [(s["session_id"], s["source"], s["points"]) for s in body["sessions"]]
    assert rows == [(str(both), "stream", 12), (str(manual), "manual", 30),
                    (str(old), "manual", 20)]
    assert body["sessions"][0]["minutes"] == pytest.approx(2.5)
    assert body["sessions"][0]["accuracy_pct"] == pytest.approx(95.0)

    r = await client.get(f"/api/v1/students/{student.id}/points?limit=1",
                         headers=student.headers)
    assert [s["session_id"] for s in r.json()["sessions"]] == [str(both)]
    assert r.json()["total_points"] == 62


async def test_who_may_read_points_and_streaks(app: FastAPI,
                                               client: httpx.AsyncClient) -> None:
    world = await build_world(app)
    await _manual(app, world.student.id, utcnow() - timedelta(hours=2), 15)
    cases = [
        ("student", world.student.id, 200), ("teacher", world.student.id, 200),
        ("admin", world.student.id, 200), ("other_student", world.student.id, 403),
        ("other_teacher", world.student.id, 403), ("former_teacher", world.student.id, 403),
        ("teacher", world.minor.id, 200), ("teacher", world.minor_no_consent.id, 403),
        ("admin", uuid.uuid4(), 404), ("admin", world.teacher.id, 404),
    ]
    for actor, target, expected in cases:
        for what in ("points", "streak"):
            r = await client.get(f"/api/v1/students/{target}/{what}",
                                 headers=world.actor(actor).headers)
            assert r.status_code == expected, (actor, what, r.text)
    r = await client.get(f"/api/v1/students/{world.minor_no_consent.id}/points",
                         headers=world.teacher.headers)
    assert r.json()["code"] == "consent_required"
    r = await client.get(f"/api/v1/students/{world.student.id}/points",
                         headers=world.teacher.headers)
    assert r.json()["total_points"] == 15
    assert (await client.get(f"/api/v1/students/{world.student.id}/streak")).status_code == 401
    r = await client.get(f"/api/v1/students/{world.student.id}/points?limit=0",
                         headers=world.student.headers)
    assert r.status_code == 422


async def test_streak_in_the_students_zone_with_a_freeze(app: FastAPI,
                                                         client: httpx.AsyncClient) -> None:
    zone_name = "America/Los_Angeles"
    zone = ZoneInfo(zone_name)
    student = await add_user(app, "Night Owl", timezone=zone_name)
    now = utcnow()
    today = now.astimezone(zone).date()
    # local 23:30 on d-9..d-3 (7 days: earns a freeze), d-2 missed, d-1 and today practised.
    # In UTC those evenings fall on the next day, so a UTC count would see d-1 missed.
    for back in (9, 8, 7, 6, 5, 4, 3, 1):
        day = today - timedelta(days=back)
        local = datetime(day.year, day.month, day.day, 23, 30, tzinfo=zone)
        await add_session(app, student.id, started_at=local,
                          ended_at=local + timedelta(minutes=20))
    await add_session(app, student.id, started_at=now - timedelta(seconds=1),
                      ended_at=now + timedelta(minutes=10))

    r = await client.get(f"/api/v1/students/{student.id}/streak", headers=student.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["timezone"] == zone_name
    assert body["today"] == today.isoformat()
    assert (body["current_days"], body["longest_days"], body["freezes_available"]) == (9, 9, 0)
    assert body["frozen_days"] == [(today - timedelta(days=2)).isoformat()]
    assert body["last_practice_day"] == today.isoformat()
