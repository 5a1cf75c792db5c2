"""Tests of mpt/events.py: the stream.summary.v1 envelope and its deterministic event id."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mpt.errors import EventError
from mpt.events import (
    STREAM_SUMMARY_NAMESPACE,
    STREAM_SUMMARY_TOPIC,
    stream_summary_event,
    stream_summary_event_id,
)
from mpt.queue_sqlite import SqliteQueue

STARTED = datetime(2025, 3, 1, 18, 0, 0, tzinfo=UTC)
ENDED = STARTED + timedelta(minutes=12, seconds=30)
SUMMARY = {"accuracy_pct": 88.5, "points": 22, "verdict": "steady", "notes": [[0.5, -3.0]]}


def _event(**overrides: Any) -> tuple[str, dict[str, Any]]:
    fields: dict[str, Any] = {
        "stream_id": "stream-42",
        "user_id": "user-7",
        "session_id": "session-9",
        "started_at": STARTED,
        "ended_at": ENDED,
        "summary": SUMMARY,
    }
    fields.update(overrides)
    return stream_summary_event(**fields)


def test_topic_and_namespace_are_fixed() -> None:
    assert STREAM_SUMMARY_TOPIC == "stream.summary.v1"
    # Pinned: changing either would give re-sent streams new event ids (counted twice).
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, "urn:mpt:event:stream.summary.v1")
    assert namespace == STREAM_SUMMARY_NAMESPACE
    assert stream_summary_event_id("stream-42") == str(
        uuid.uuid5(STREAM_SUMMARY_NAMESPACE, "stream-42")
    )
    assert stream_summary_event_id("stream-42") == "1b7f545d-76a5-535d-9e8c-1e2883527b74"


def test_envelope() -> None:
    event_id, payload = _event()

    assert event_id == stream_summary_event_id("stream-42")
    assert payload == {
        "event_id": event_id,
        "stream_id": "stream-42",
        "user_id": "user-7",
        "session_id": "session-9",
        "started_at": "2025-03-01T18:00:00+00:00",
        "ended_at": "2025-03-01T18:12:30+00:00",
        "summary": SUMMARY,
    }
    assert json.loads(json.dumps(payload)) == payload  # plain JSON


def test_event_id_depends_only_on_the_stream_id() -> None:
    first, _ = _event()
    resent, _ = _event(ended_at=ENDED + timedelta(seconds=5), summary={"points": 23})
    other, _ = _event(stream_id="stream-43")

    assert first == resent
    assert first != other


def test_uuids_are_accepted_in_canonical_form() -> None:
    stream = uuid.UUID("00000000-0000-4000-8000-000000000001")
    session = uuid.uuid4()

    event_id, payload = _event(stream_id=stream, session_id=session)

    assert event_id == stream_summary_event_id(str(stream))
    assert (payload["stream_id"], payload["session_id"]) == (str(stream), str(session))


def test_times_are_converted_to_utc() -> None:
    tz = timezone(timedelta(hours=2))
    _, payload = _event(started_at=STARTED.astimezone(tz), ended_at=ENDED.astimezone(tz))
    assert payload["started_at"] == "2025-03-01T18:00:00+00:00"
    assert datetime.fromisoformat(payload["ended_at"]) == ENDED


def test_summary_is_copied() -> None:
    summary: dict[str, Any] = {"notes": [(0.5, -3.0)]}
    _, payload = _event(summary=summary)
    summary["notes"].append((1.0, 2.0))

    assert payload["summary"] == {"notes": [[0.5, -3.0]]}


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"stream_id": ""}, "stream_id must be a non-empty"),
        ({"user_id": "  "}, "user_id must be a non-empty"),
        ({"session_id": None}, "session_id must be a non-empty"),
        ({"started_at": datetime(2025, 3, 1, 18)}, "started_at 2025-03-01T18:00:00 has no time"),
        ({"ended_at": STARTED - timedelta(seconds=1)}, "is before started_at"),
        ({"started_at": "2025-03-01"}, "started_at must be a datetime"),
        ({"summary": {"x": float("inf")}}, "is not JSON"),
        ({"summary": {"x": object()}}, "is not JSON"),
        ({"summary": [1, 2]}, "summary must be a mapping"),
    ],
)
def test_invalid_fields(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(EventError, match=match):
        _event(**overrides)


def test_a_resent_summary_is_published_once(tmp_path: Path) -> None:
    with SqliteQueue(tmp_path / "queue.sqlite3") as queue:
        assert queue.publish(STREAM_SUMMARY_TOPIC, *_event())
        assert not queue.publish(STREAM_SUMMARY_TOPIC, *_event(summary={"points": 0}))

        (message,) = queue.claim(STREAM_SUMMARY_TOPIC, "api", max_items=5)
    assert message.event_id == message.payload["event_id"]
    assert message.payload["summary"] == SUMMARY
