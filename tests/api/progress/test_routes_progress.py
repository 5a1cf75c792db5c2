"""GET /students/{id}/progress: minutes per local day and week in the student's time zone,
weekly trends with slopes, totals, the piece and tag filters, bounded queries."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from api.progress.rules import week_monday
from tests.api._support.world import add_session, add_user
from tests.api.progress._routes_support import (
    add_tag,
    count_queries,
    local,
    stream,
    tag_session,
    today_in,
)

pytestmark = pytest.mark.anyio

TOKYO = "Asia/Tokyo"  # UTC+9 all year: local mornings are the previous UTC day


def url(student_id: object) -> str:
    return f"/api/v1/students/{student_id}/progress"


async def test_minutes_per_local_day_in_the_students_zone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    student = await add_user(app, "Kenji", timezone=TOKYO)
    today = today_in(TOKYO)
    d1, d3 = today - timedelta(days=1), today - timedelta(days=3)
    # 08:00 in Tokyo is 23:00 UTC of the day before: it must count on d1, not d2
    await add_session(app, student.id, started_at=local(TOKYO, d1, 8),
                      ended_at=local(TOKYO, d1, 8, 30), accuracy_pct=80.0)
    # late evening across local midnight: the whole session belongs to its start day
    await add_session(app, student.id, started_at=local(TOKYO, d1, 23, 30),
                      ended_at=local(TOKYO, d1, 23, 30) + timedelta(minutes=45))
    await add_session(app, student.id, started_at=local(TOKYO, d3, 0, 10),
                      ended_at=local(TOKYO, d3, 0, 30), accuracy_pct=60.0)
    await add_session(app, student.id, started_at=local(TOKYO, today - timedelta(days=10), 12),
                      ended_at=local(TOKYO, today - timedelta(days=10), 13))  # outside
    await add_session(app, student.id, started_at=local(TOKYO, d1, 12),
                      ended_at=local(TOKYO, d1, 14), status="deleted")  # never counted

    response = await client.get(url(student.id), params={"days": 7, "weeks": 2},
                                headers=student.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["timezone"] == TOKYO and body["today"] == today.isoformat()
    expected = {today - timedelta(days=i): 0.0 for i in range(7)}
    expected[d1], expected[d3] = 75.0, 20.0
    assert body["daily_minutes"] == [
        {"day": d.isoformat(), "minutes": m} for d, m in sorted(expected.items())
    ]
    assert body["totals"] == {"sessions": 3, "minutes": 95.0, "active_days": 2,
                              "accuracy_pct_mean": 70.0, "steadiness_ms_mean": None}
    mondays = [week_monday(today) - timedelta(weeks=1), week_monday(today)]
    per_week = {m: 0.0 for m in mondays}
    for day, minutes in ((d1, 75.0), (d3, 20.0), (today - timedelta(days=10), 60.0)):
        if week_monday(day) in per_week:
            per_week[week_monday(day)] += minutes
    assert body["weekly_minutes"] == [
        {"week_start": m.isoformat(), "minutes": per_week[m]} for m in mondays
    ]


async def test_weekly_trends_and_slopes(app: FastAPI, client: httpx.AsyncClient) -> None:
    tz = "America/New_York"
    student = await add_user(app, "Ada", timezone=tz)
    this_monday = week_monday(today_in(tz))
    two_ago, last = this_monday - timedelta(weeks=2), this_monday - timedelta(weeks=1)
    for day, accuracy in ((two_ago + timedelta(days=1), 60.0), (last, 70.0),
                          (last + timedelta(days=6), 80.0)):
        await add_session(app, student.id, started_at=local(tz, day, 12),
                          accuracy_pct=accuracy)
    streamed = await add_session(app, student.id, started_at=local(tz, this_monday, 0, 5),
                                 accuracy_pct=10.0)  # the stream's numbers win
    await stream(app, student.id, streamed, accuracy_pct=90.0)

    body = (await client.get(url(student.id), params={"weeks": 3},
                             headers=student.headers)).json()
    weeks = [m.isoformat() for m in (two_ago, last, this_monday)]
    assert body["accuracy"] == {"unit": "pct", "slope_per_week": 15.0, "points": [
        {"week_start": weeks[0], "value": 60.0, "sessions": 1},
        {"week_start": weeks[1], "value": 75.0, "sessions": 2},
        {"week_start": weeks[2], "value": 90.0, "sessions": 1},
    ]}
    assert body["steadiness"] == {"unit": "ms", "slope_per_week": None, "points": [
        {"week_start": weeks[0], "value": None, "sessions": 0},
        {"week_start": weeks[1], "value": None, "sessions": 0},
        {"week_start": weeks[2], "value": 1.1, "sessions": 1},
    ]}
    assert [w["minutes"] for w in body["weekly_minutes"]] == [30.0, 60.0, 2.5]


async def test_piece_and_tag_filters(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Filtered")
    piece = await add_tag(app, "Etude")
    scales = await add_tag(app, "Scales", kind="tag", owner_id=student.id)
    with_piece = await add_session(app, student.id, accuracy_pct=50.0)
    with_both = await add_session(app, student.id, accuracy_pct=70.0,
                                  started_at=local("UTC", today_in("UTC"), 0, 1))
    await add_session(app, student.id, accuracy_pct=99.0)  # neither
    await tag_session(app, with_piece, piece)
    await tag_session(app, with_both, piece, scales)

    async def totals(**params: object) -> dict[str, object]:
        response = await client.get(url(student.id), params=params, headers=student.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["piece_id"] == params.get("piece_id")
        totals: dict[str, object] = body["totals"]
        return totals

    assert (await totals())["sessions"] == 3
    assert (await totals(piece_id=str(piece)))["accuracy_pct_mean"] == 60.0
    only_tag = await totals(tag_id=str(scales))
    assert (only_tag["sessions"], only_tag["accuracy_pct_mean"]) == (1, 70.0)
    both = await totals(piece_id=str(piece), tag_id=str(scales))
    assert both["sessions"] == 1


async def test_filters_and_ids_that_do_not_exist(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Someone")
    other = await add_user(app, "Other")
    theirs = await add_tag(app, "Their tag", kind="tag", owner_id=other.id)
    plain_tag = await add_tag(app, "Plain", kind="tag")
    teacher = await add_user(app, "Teach", role="teacher")
    admin = await add_user(app, "Root", role="admin")
    cases = [
        ({"piece_id": str(theirs)}, f"piece {theirs}"),  # another user's own tag
        ({"piece_id": str(plain_tag)}, f"piece {plain_tag}"),  # a tag, not a piece
        ({"tag_id": str(theirs)}, f"tag {theirs}"),
    ]
    for params, named in cases:
        response = await client.get(url(student.id), params=params, headers=student.headers)
        assert response.status_code == 404, params
        assert named in response.json()["detail"]
    # the admin may look anywhere, so an id that is not a student is a 404
    for not_a_student in (teacher.id, admin.id):
        response = await client.get(url(not_a_student), headers=admin.headers)
        assert response.status_code == 404
        assert response.json()["detail"] == f"student {not_a_student} does not exist"
    for params in ({"days": 0}, {"days": 367}, {"weeks": 53}, {"piece_id": "nope"}):
        response = await client.get(url(student.id), params=params, headers=student.headers)
        assert response.status_code == 422, params
    assert (await client.get("/api/v1/students/not-a-uuid/progress",
                             headers=student.headers)).status_code == 422
    assert (await client.get(url(student.id))).status_code == 401


async def test_queries_do_not_grow_with_sessions(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Busy")
    tag = await add_tag(app, "Warm-up", kind="tag")
    first = await add_session(app, student.id, accuracy_pct=75.0)
    await tag_session(app, first, tag)
    params = {"tag_id": str(tag)}
    # warm-up: the first request of a token also looks its user up (cached)
    assert (await client.get(url(student.id), params=params,
                             headers=student.headers)).status_code == 200
    app.state.mpt.facts_cache.clear()  # both measured requests load the facts
    with count_queries(app) as few:
        assert (await client.get(url(student.id), params=params,
                                 headers=student.headers)).status_code == 200
    for hours in range(2, 14):
        sid = await add_session(app, student.id, accuracy_pct=80.0,
                                started_at=local("UTC", today_in("UTC"), 0)
                                - timedelta(hours=hours))
        await tag_session(app, sid, tag)
    app.state.mpt.facts_cache.clear()
    with count_queries(app) as many:
        response = await client.get(url(student.id), params=params, headers=student.headers)
    assert response.json()["totals"]["sessions"] == 13
    selects = [s for s in few if s.lstrip().upper().startswith("SELECT")]
    assert len(many) == len(few) and len(selects) <= 7
