"""The teacher's dashboard: exact weekly numbers in the student's zone, consent, bounded
queries."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from api.accounts.models import User
from api.db import new_id, utcnow
from api.practice.changes import next_change_seq
from api.practice.models import PracticeSession
from api.teaching.models import TeacherStudentLink
from api.teaching.rules import week_bounds, week_start, week_totals
from api.teaching.service import _week_totals
from tests.api._support.queries import count_queries
from tests.api._support.world import add_session, add_user, build_world

pytestmark = pytest.mark.anyio

DASHBOARD = "/api/v1/teachers/me/dashboard"
TOKYO = ZoneInfo("Asia/Tokyo")


def at(day: date, hh: int, mm: int = 0) -> datetime:
    """A local Tokyo wall-clock time."""
    return datetime.combine(day, time(hh, mm), TOKYO)


async def test_numbers_in_the_students_zone(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    async with app.state.mpt.sessions() as db, db.begin():
        await db.execute(update(User).where(User.id == world.student.id)
                         .values(timezone="Asia/Tokyo"))
    monday = week_start(utcnow().astimezone(TOKYO).date())
    sid = world.student.id
    this_monday = await add_session(app, sid, started_at=at(monday, 10),
                                    ended_at=at(monday, 10, 30), accuracy_pct=80.0,
                                    focus="scales", mode="slow", target_bpm=90.0,
                                    self_rating=4)
    last_tue = await add_session(app, sid, started_at=at(monday - timedelta(days=6), 10),
                                 ended_at=at(monday - timedelta(days=6), 10, 45),
                                 accuracy_pct=70.0)
    last_wed_open = await add_session(app, sid, started_at=at(monday - timedelta(days=5), 20),
                                      ended_at=None)
    # Sunday 23:30 in Tokyo is Sunday 14:30 UTC: last week, whatever UTC's week says
    last_sun = await add_session(app, sid, started_at=at(monday - timedelta(days=1), 23, 30),
                                 ended_at=at(monday - timedelta(days=1), 23, 45))
    before_thu = await add_session(app, sid, started_at=at(monday - timedelta(days=11), 10),
                                   ended_at=at(monday - timedelta(days=11), 10, 20),
                                   accuracy_pct=60.0)
    await add_session(app, sid, started_at=at(monday - timedelta(days=70), 10),
                      ended_at=at(monday - timedelta(days=70), 10, 10), accuracy_pct=99.0)
    await add_session(app, sid, started_at=at(monday, 12), ended_at=at(monday, 13, 40),
                      accuracy_pct=1.0, status="deleted")

    response = await client.get(DASHBOARD, params={"weeks": 3}, headers=world.teacher.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["weeks"] == 3
    students = {s["student_id"]: s for s in body["students"]}
    assert set(students) == {str(world.student.id), str(world.minor.id),
                             str(world.minor_no_consent.id)}
    me = students[str(world.student.id)]
    assert me["consent_required"] is False and me["timezone"] == "Asia/Tokyo"
    weeks = [(monday - timedelta(weeks=n)).isoformat() for n in (2, 1, 0)]
    assert me["minutes_per_week"] == [
        {"week_start": weeks[0], "minutes": 20.0, "sessions": 1},
        {"week_start": weeks[1], "minutes": 60.0, "sessions": 3},
        {"week_start": weeks[2], "minutes": 30.0, "sessions": 1},
    ]
    assert me["accuracy_trend"] == [
        {"week_start": weeks[0], "mean_accuracy_pct": 60.0},
        {"week_start": weeks[1], "mean_accuracy_pct": 70.0},
        {"week_start": weeks[2], "mean_accuracy_pct": 80.0},
    ]
    assert me["accuracy_slope_pct_per_week"] == 10.0
    recent = me["recent_sessions"]
    assert [r["id"] for r in recent] == [str(x) for x in (this_monday, last_sun, last_wed_open,
                                                          last_tue, before_thu)]
    assert recent[0] | {"started_at": None, "ended_at": None} == {
        "id": str(this_monday), "started_at": None, "ended_at": None, "duration_s": 1800.0,
        "focus": "scales", "mode": "slow", "target_bpm": 90.0, "accuracy_pct": 80.0,
        "self_rating": 4,
    }
    assert recent[2]["duration_s"] is None

    minor = students[str(world.minor.id)]
    assert minor["is_minor"] is True and minor["consent_required"] is False
    assert minor["recent_sessions"] == [] and len(minor["minutes_per_week"]) == 3
    assert minor["accuracy_slope_pct_per_week"] is None
    hidden = students[str(world.minor_no_consent.id)]
    assert hidden["is_minor"] is True and hidden["consent_required"] is True
    assert hidden["recent_sessions"] is None and hidden["minutes_per_week"] is None
    assert hidden["accuracy_trend"] is None


async def test_default_weeks_and_bounds(client: httpx.AsyncClient, app: FastAPI) -> None:
    world = await build_world(app)
    body = (await client.get(DASHBOARD, headers=world.teacher.headers)).json()
    assert body["weeks"] == 8
    assert all(len(s["minutes_per_week"]) == 8 for s in body["students"]
               if not s["consent_required"])
    for weeks in (0, 53, "x"):
        response = await client.get(DASHBOARD, params={"weeks": weeks},
                                    headers=world.teacher.headers)
        assert response.status_code == 422
    assert (await client.get(DASHBOARD, params={"weeks": 52},
                             headers=world.teacher.headers)).status_code == 200


async def test_unconsented_minor_data_is_not_sent(client: httpx.AsyncClient,
                                                  app: FastAPI) -> None:
    world = await build_world(app)
    secret = await add_session(app, world.minor_no_consent.id, accuracy_pct=42.0,
                               focus="secret focus")
    text = (await client.get(DASHBOARD, headers=world.teacher.headers)).text
    assert str(secret) not in text and "secret focus" not in text


async def test_only_teachers_and_only_their_students(client: httpx.AsyncClient,
                                                     app: FastAPI) -> None:
    world = await build_world(app)
    for user in (world.student, world.admin):
        assert (await client.get(DASHBOARD, headers=user.headers)).status_code == 403
    assert (await client.get(DASHBOARD, headers=world.other_teacher.headers)
            ).json()["students"] == []
    assert (await client.get(DASHBOARD, headers=world.former_teacher.headers)
            ).json()["students"] == []


# Zones and "todays" whose week bounds cross DST changes on a Monday's midnight, a skipped
# day, half-hour offsets; two students share a zone (its bounds are sent to the database
# once).
ZONED_TODAYS = [
    ("America/Sao_Paulo", date(1997, 10, 8)),  # clocks went from 00:00 to 01:00 that Monday
    ("Africa/Cairo", date(1990, 10, 3)),  # ... and back from 00:00 to 23:00 this one
    ("Pacific/Apia", date(2012, 1, 4)),
    ("Australia/Lord_Howe", date(2025, 4, 9)),
    ("Asia/Kathmandu", date(2025, 3, 12)),
    ("Asia/Kathmandu", date(2025, 3, 12)),
    ("UTC", date(2025, 3, 12)),
]


async def test_week_totals_from_the_database_are_the_rule(client: httpx.AsyncClient,
                                                          app: FastAPI) -> None:
    """What the database adds up per student and week (one query on PostgreSQL) equals
    :func:`~api.teaching.rules.week_totals` over the same sessions: sessions a minute
    either side of every week bound, open ones, ones without accuracy, deleted ones."""
    rng = random.Random(7)
    weeks = 3
    bounds_of: dict[uuid.UUID, list[datetime]] = {}
    points: dict[uuid.UUID, list[tuple[datetime, datetime | None, float | None]]] = {}
    rows = []
    for i, (tz, today) in enumerate(ZONED_TODAYS):
        student = await add_user(app, f"Zoned {i}", timezone=tz)
        bounds = week_bounds(tz=tz, weeks=weeks, today=today)
        bounds_of[student.id] = bounds
        points[student.id] = []
        for edge in bounds:
            for offset_s in (-60.0, 0.0, 60.0, rng.uniform(-3 * 86400, 3 * 86400)):
                started_at = edge + timedelta(seconds=offset_s)
                ended_at = (None if rng.random() < 0.2
                            else started_at + timedelta(seconds=rng.uniform(0, 5400)))
                accuracy = None if rng.random() < 0.3 else round(rng.uniform(0, 100), 3)
                status = "deleted" if rng.random() < 0.1 else "active"
                rows.append((student.id, started_at, ended_at, accuracy, status))
                if status == "active":
                    points[student.id].append((started_at, ended_at, accuracy))
    async with app.state.mpt.sessions() as db, db.begin():
        for sid, started_at, ended_at, accuracy, status in rows:
            db.add(PracticeSession(
                id=new_id(), student_id=sid, change_seq=await next_change_seq(db, sid),
                started_at=started_at, ended_at=ended_at, accuracy_pct=accuracy,
                status=status))
    async with app.state.mpt.sessions() as db:
        got = await _week_totals(db, bounds_of)
    assert set(got) == set(bounds_of)
    for sid, bounds in bounds_of.items():
        expected = week_totals(points[sid], bounds)
        assert [t.sessions for t in got[sid]] == [t.sessions for t in expected]
        assert [t.accuracy_count for t in got[sid]] == [t.accuracy_count for t in expected]
        assert [t.seconds for t in got[sid]] == pytest.approx(
            [t.seconds for t in expected], abs=0.01)
        assert [t.accuracy_sum for t in got[sid]] == pytest.approx(
            [t.accuracy_sum for t in expected], abs=0.01)
    # the sessions fall in every week: a rule that put them all in one would fail above
    assert all(t.sessions > 0 for totals in got.values() for t in totals)


async def test_queries_do_not_grow_with_students(client: httpx.AsyncClient,
                                                 app: FastAPI) -> None:
    world = await build_world(app)
    await add_session(app, world.student.id)
    # warm-up: the first call of a token also looks its user up (api.usergate, cached)
    assert (await client.get(DASHBOARD, headers=world.teacher.headers)).status_code == 200
    with count_queries(app) as few:
        assert (await client.get(DASHBOARD, headers=world.teacher.headers)).status_code == 200
    for i in range(4):
        extra = await add_user(app, f"Extra {i}")
        async with app.state.mpt.sessions() as db, db.begin():
            db.add(TeacherStudentLink(teacher_id=world.teacher.id, student_id=extra.id))
        for _ in range(2):
            await add_session(app, extra.id)
    with count_queries(app) as many:
        body = (await client.get(DASHBOARD, headers=world.teacher.headers)).json()
    assert len(body["students"]) == 7
    assert len(few) == len(many) <= 6
