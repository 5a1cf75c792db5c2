"""GET /students/{id}/recommendations: triggered by known data of the last seven local days,
with the streak over the whole history."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from tests.api._support.world import add_session, add_user
from tests.api.progress._routes_support import add_tag, local, stream, tag_session, today_in

pytestmark = pytest.mark.anyio

TZ = "America/Los_Angeles"


def url(student_id: object) -> str:
    return f"/api/v1/students/{student_id}/recommendations"


async def test_low_accuracy_piece_gets_slow_practice(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    student = await add_user(app, "Lena", timezone=TZ)
    weak, strong = await add_tag(app, "Fugue"), await add_tag(app, "Minuet")
    today = today_in(TZ)
    for n, accuracy, target in ((2, 60.0, 90.0), (1, 65.0, 100.0)):
        sid = await add_session(app, student.id, accuracy_pct=accuracy, target_bpm=target,
                                started_at=local(TZ, today - timedelta(days=n), 12))
        await tag_session(app, sid, weak)
    sid = await add_session(app, student.id, accuracy_pct=95.0, target_bpm=120.0,
                            started_at=local(TZ, today - timedelta(days=1), 15))
    await tag_session(app, sid, strong)
    # eight days ago: outside the window, but part of the streak
    old = await add_session(app, student.id, accuracy_pct=10.0, target_bpm=100.0,
                            started_at=local(TZ, today - timedelta(days=8), 12))
    await tag_session(app, old, strong)

    response = await client.get(url(student.id), headers=student.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["today"], body["streak_days"], body["next_cursor"]) == (
        today.isoformat(), 2, None)
    assert body["items"] == [{
        "kind": "slow_practice",
        "title": "Slow practice at 70 BPM",
        "reason": "Your accuracy on this piece averaged 62.5 % over 2 sessions this week "
                  "(below 70 %); practise it at 70 BPM, 70 % of your target of 100 BPM.",
        "data": {"piece_id": str(weak), "accuracy_pct": 62.5, "sessions": 2,
                 "target_bpm": 100.0, "suggested_bpm": 70},
    }]


async def test_drift_one_way_gets_a_steadiness_drill(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    student = await add_user(app, "Rusher", timezone=TZ)
    today = today_in(TZ)
    for n in (1, 2, 3):
        sid = await add_session(app, student.id,
                                started_at=local(TZ, today - timedelta(days=n), 9))
        # +0.2 BPM/min is under 1 % of 120 BPM: not counted; +2 BPM/min is
        await stream(app, student.id, sid, accuracy_pct=95.0)
    body = (await client.get(url(student.id), headers=student.headers)).json()
    assert body["items"] == [] and body["streak_days"] == 3

    rushing = await add_user(app, "Really rushing", timezone=TZ)
    for n in (1, 2, 3):
        sid = await add_session(app, rushing.id,
                                started_at=local(TZ, today - timedelta(days=n), 9))
        await stream(app, rushing.id, sid, accuracy_pct=95.0,
                     overrides={"drift_bpm_per_min": 2.0})
    body = (await client.get(url(rushing.id), headers=rushing.headers)).json()
    assert [item["kind"] for item in body["items"]] == ["steadiness_drill"]
    assert body["items"][0]["data"] == {"direction": "rushing", "sessions": 3,
                                        "same_direction_sessions": 3,
                                        "median_drift_bpm_per_min": 2.0}


async def test_no_practice_no_suggestions(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await add_user(app, "New")
    body = (await client.get(url(student.id), headers=student.headers)).json()
    assert (body["items"], body["streak_days"]) == ([], 0)


async def test_weak_segment_of_a_good_piece_gets_slow_practice(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The piece averages 90 %, but bars 9-12 (as the app measured them) only 55 %: the
    segment, recorded through the sessions API with its accuracy, gets its own suggestion."""
    student = await add_user(app, "Sam", timezone=TZ)
    piece = await add_tag(app, "Gavotte")
    start = local(TZ, today_in(TZ) - timedelta(days=1), 10)
    response = await client.post("/api/v1/sessions", headers=student.headers, json={
        "started_at": start.isoformat(), "ended_at": (start + timedelta(minutes=30)).isoformat(),
        "accuracy_pct": 90.0, "target_bpm": 80.0, "tag_ids": [str(piece)],
        "segments": [
            {"piece_id": str(piece), "start_bar": 1, "end_bar": 8, "accuracy_pct": 95.0},
            {"piece_id": str(piece), "start_bar": 9, "end_bar": 12, "accuracy_pct": 55.0},
        ],
    })
    assert response.status_code == 201, response.text
    assert [s["accuracy_pct"] for s in response.json()["segments"]] == [95.0, 55.0]
    body = (await client.get(url(student.id), headers=student.headers)).json()
    assert [(i["kind"], i["data"].get("start_bar"), i["data"].get("end_bar"),
             i["data"].get("suggested_bpm")) for i in body["items"]] == [
        ("slow_practice", 9, 12, 56)]
