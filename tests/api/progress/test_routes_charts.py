"""GET /students/{id}/charts/{kind}.svg: well-formed SVG with the right number of marks, the
headers a browser needs, and ``?access_token=`` for browsers that cannot send a header."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from api.progress.rules import week_monday
from tests.api._support.world import add_session, add_user
from tests.api.progress._routes_support import add_tag, local, stream, tag_session, today_in

pytestmark = pytest.mark.anyio

NS = "{http://www.w3.org/2000/svg}"


def chart_url(student_id: uuid.UUID, kind: str) -> str:
    return f"/api/v1/students/{student_id}/charts/{kind}.svg"


def marks(svg: str, tag: str, cls: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return [e for e in root.iter(f"{NS}{tag}") if e.get("class") == cls]


async def test_each_chart_kind(app: FastAPI, client: httpx.AsyncClient) -> None:
    tz = "Australia/Sydney"
    student = await add_user(app, "Charlie", timezone=tz)
    piece = await add_tag(app, "Prelude")
    today = today_in(tz)
    for n, accuracy in ((1, 92.0), (3, 95.0)):
        sid = await add_session(app, student.id, started_at=local(tz, today - timedelta(days=n),
                                                                  10))
        await tag_session(app, sid, piece)
        await stream(app, student.id, sid, target_bpm=130.0 - 10 * n, accuracy_pct=accuracy)

    async def get(kind: str, **params: object) -> str:
        response = await client.get(chart_url(student.id, kind), params=params,
                                    headers=student.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.headers["cache-control"] == "private, max-age=60"
        assert response.headers["referrer-policy"] == "no-referrer"
        return response.text

    minutes = marks(await get("minutes", days=10), "rect", "bar")
    assert len(minutes) == 10
    tips = [bar.find(f"{NS}title") for bar in minutes]
    assert [t.text for t in tips if t is not None][-2] == (
        f"{(today - timedelta(days=1)).strftime('%m-%d')}: 2.5")
    weeks = 5
    accuracy = await get("accuracy", weeks=weeks)
    known = {week_monday(today - timedelta(days=n)) for n in (1, 3)}
    assert len(marks(accuracy, "circle", "point")) == len(known)
    assert len(marks(await get("steadiness", weeks=weeks), "circle", "point")) == len(known)
    # played 99 BPM, then 119 BPM (target - 1), both clean: two points, rising
    tempo = marks(await get("clean-tempo", piece_id=str(piece)), "circle", "point")
    assert len(tempo) == 2
    assert float(tempo[0].get("cy", "0")) > float(tempo[1].get("cy", "0"))
    heat = await get("heatmap")
    assert len(marks(heat, "rect", "cell")) == 16
    assert len(marks(await get("heatmap", value="mean_dev_ms", days=1), "rect", "cell")) == 0

    for params in ({}, {"piece_id": str(uuid.uuid4())}):  # clean-tempo needs a known piece
        response = await client.get(chart_url(student.id, "clean-tempo"), params=params,
                                    headers=student.headers)
        assert response.status_code == (422 if not params else 404)
    for bad in (chart_url(student.id, "pie"), chart_url(student.id, "minutes").replace(".svg",
                                                                                      ".png")):
        assert (await client.get(bad, headers=student.headers)).status_code in (404, 422)
    response = await client.get(chart_url(student.id, "heatmap"), params={"value": "color"},
                                headers=student.headers)
    assert response.status_code == 422


async def test_access_token_in_the_query(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Browser")
    other = await add_user(app, "Nosy")
    await add_session(app, student.id)
    url = chart_url(student.id, "minutes")

    response = await client.get(url, params={"access_token": student.token, "days": 3})
    assert response.status_code == 200
    assert len(marks(response.text, "rect", "bar")) == 3

    for token in ("not-a-token", student.token[:-4] + "AAAA"):
        response = await client.get(url, params={"access_token": token})
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "token_invalid"
    assert (await client.get(url)).status_code == 401
    # the header wins over the query; a valid token of someone without access is a 403
    response = await client.get(url, params={"access_token": "garbage"},
                                headers=student.headers)
    assert response.status_code == 200
    assert (await client.get(url, params={"access_token": other.token})).status_code == 403
    # only the chart routes take a token in the query
    progress = f"/api/v1/students/{student.id}/progress"
    assert (await client.get(progress, params={"access_token": student.token})
            ).status_code == 401


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


async def test_charts_show_the_numbers_of_the_progress_read(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A chart computes only what it shows, by the progress read's rules: every bar and
    point carries the progress read's number for its day or week."""
    tz = "America/New_York"
    student = await add_user(app, "Dana", timezone=tz)
    today = today_in(tz)
    for n, accuracy in ((0, 81.0), (2, 88.5), (9, 70.25), (16, 93.0)):
        sid = await add_session(app, student.id, started_at=local(tz, today - timedelta(days=n),
                                                                  23))
        await stream(app, student.id, sid, target_bpm=100.0, accuracy_pct=accuracy)
    params = {"days": 21, "weeks": 4}
    read = await client.get(f"/api/v1/students/{student.id}/progress", params=params,
                            headers=student.headers)
    assert read.status_code == 200, read.text
    body = read.json()

    async def tips(kind: str, tag: str, cls: str) -> list[str]:
        response = await client.get(chart_url(student.id, kind), params=params,
                                    headers=student.headers)
        assert response.status_code == 200, response.text
        found = [mark.find(f"{NS}title") for mark in marks(response.text, tag, cls)]
        return [t.text or "" for t in found if t is not None]

    days = [(day["day"][5:], day["minutes"]) for day in body["daily_minutes"]]
    assert await tips("minutes", "rect", "bar") == [f"{d}: {_num(m)}" for d, m in days]
    assert any(m > 0 for _, m in days)
    for kind in ("accuracy", "steadiness"):
        points = [(p["week_start"], p["value"]) for p in body[kind]["points"]
                  if p["value"] is not None]
        assert len(points) >= 2
        assert await tips(kind, "circle", "point") == [
            f"{kind}: {w} = {_num(v)}" for w, v in points]
