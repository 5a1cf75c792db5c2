"""GET .../pieces/{piece_id}/clean-tempo and .../timing-heatmap from applied stream summaries
(``timing_report`` plays beat k of each bar k-1 ms late, at ``target_bpm - 1``)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from tests.api._support.world import add_session, add_user
from tests.api.progress._routes_support import add_tag, local, stream, tag_session, today_in

pytestmark = pytest.mark.anyio

TZ = "Europe/Berlin"


def clean_url(student_id: uuid.UUID, piece_id: uuid.UUID) -> str:
    return f"/api/v1/students/{student_id}/pieces/{piece_id}/clean-tempo"


async def test_clean_tempo_over_time(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Clara", timezone=TZ)
    piece, other_piece = await add_tag(app, "Sonatina"), await add_tag(app, "Waltz")
    today = today_in(TZ)
    day = {n: today - timedelta(days=n) for n in range(2, 8)}

    async def take(n: int, target: float, accuracy: float, piece_id: uuid.UUID = piece) -> None:
        sid = await add_session(app, student.id, started_at=local(TZ, day[n], 18))
        await tag_session(app, sid, piece_id)
        await stream(app, student.id, sid, target_bpm=target, accuracy_pct=accuracy)

    # by hand, clean, no played tempo: the target counts
    manual = await add_session(app, student.id, started_at=local(TZ, day[7], 9),
                               target_bpm=80.0, accuracy_pct=91.0)
    await tag_session(app, manual, piece)
    await take(6, 150.0, 99.0, other_piece)  # another piece
    await take(5, 100.0, 95.0)  # clean at 99 BPM played
    await take(4, 120.0, 80.0)  # faster but not clean
    await take(3, 110.0, 90.0)  # clean exactly at the threshold: 109
    await take(2, 105.0, 99.0)  # clean but slower: the best stays 109

    response = await client.get(clean_url(student.id, piece), headers=student.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "student_id": str(student.id), "piece_id": str(piece), "threshold_pct": 90.0,
        "history": [{"day": day[7].isoformat(), "best_bpm": 80.0},
                    {"day": day[5].isoformat(), "best_bpm": 99.0},
                    {"day": day[3].isoformat(), "best_bpm": 109.0},
                    {"day": day[2].isoformat(), "best_bpm": 109.0}],
        "current_best_bpm": 109.0, "reached_on": day[3].isoformat(),
    }
    never = await add_tag(app, "Unplayed")
    body = (await client.get(clean_url(student.id, never), headers=student.headers)).json()
    assert (body["history"], body["current_best_bpm"], body["reached_on"]) == ([], None, None)
    not_a_piece = await add_tag(app, "Just a tag", kind="tag")
    for missing in (not_a_piece, uuid.uuid4()):
        response = await client.get(clean_url(student.id, missing), headers=student.headers)
        assert response.status_code == 404


async def test_heatmap_merges_the_streamed_takes(app: FastAPI, client: httpx.AsyncClient) -> None:
    student = await add_user(app, "Tim", timezone=TZ)
    piece = await add_tag(app, "March")
    first = await add_session(app, student.id)
    second = await add_session(app, student.id, started_at=local(TZ, today_in(TZ), 0, 30))
    loose = await add_session(app, student.id)  # no piece
    await add_session(app, student.id, accuracy_pct=50.0)  # by hand: no timing
    old = await add_session(app, student.id, started_at=local(TZ, today_in(TZ)
                                                              - timedelta(days=40), 12))
    for sid in (first, second):
        await tag_session(app, sid, piece)
        await stream(app, student.id, sid)  # 4 bars of 4 beats
    await stream(app, student.id, loose, n_beats=8)  # 2 bars
    await stream(app, student.id, old)  # outside the 28 days

    url = f"/api/v1/students/{student.id}/timing-heatmap"
    response = await client.get(url, params={"piece_id": str(piece)}, headers=student.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["takes"], body["days"], body["piece_id"]) == (2, 28, str(piece))
    assert body["cells"] == [
        {"bar": bar, "beat": beat, "n": 2, "mean_abs_dev_ms": float(beat - 1),
         "mean_dev_ms": float(beat - 1), "off_pct": 0.0}
        for bar in range(1, 5) for beat in range(1, 5)
    ]
    assert body["beats"] == [
        {"beat": beat, "n": 8, "mean_abs_dev_ms": float(beat - 1),
         "mean_dev_ms": float(beat - 1), "off_pct": 0.0} for beat in range(1, 5)
    ]

    everything = (await client.get(url, headers=student.headers)).json()
    assert everything["takes"] == 3
    assert [c["n"] for c in everything["cells"]] == [3] * 8 + [2] * 8
    assert [b["n"] for b in everything["beats"]] == [10] * 4
    longer = (await client.get(url, params={"days": 60}, headers=student.headers)).json()
    assert longer["takes"] == 4

    nobody = await add_user(app, "Silent")
    empty = (await client.get(f"/api/v1/students/{nobody.id}/timing-heatmap",
                              headers=nobody.headers)).json()
    assert (empty["takes"], empty["cells"], empty["beats"]) == (0, [], [])
