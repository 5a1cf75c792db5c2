"""Pure rules of practice sessions: time windows, durations and sync decisions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api.practice.rules import (
    SegmentContent,
    ServerVersion,
    SessionContent,
    decide_sync,
    duration_s,
    time_window_problem,
)

T0 = datetime(2025, 3, 1, 17, 0, tzinfo=UTC)


def content(**changes: object) -> SessionContent:
    base: dict[str, object] = dict(
        focus="scales", started_at=T0, ended_at=T0 + timedelta(minutes=30), self_rating=3,
        note=None, target_bpm=None, accuracy_pct=None, mode="normal", tag_ids=frozenset(),
        segments=(SegmentContent(None, "a", 1, 8, 2, 60.0, 90.0),),
    )
    base.update(changes)
    return SessionContent(**base)  # type: ignore[arg-type]


def test_time_window() -> None:
    assert time_window_problem(T0, None) is None
    assert time_window_problem(T0, T0) is None
    assert time_window_problem(T0, T0 + timedelta(hours=24)) is None
    late = time_window_problem(T0, T0 + timedelta(hours=24, seconds=1))
    assert late is not None and "24 h" in late
    early = time_window_problem(T0, T0 - timedelta(seconds=1))
    assert early is not None and "before started_at" in early
    old = time_window_problem(datetime(1901, 1, 1, tzinfo=UTC), None)
    assert old is not None and "started_at 1901" in old


def test_duration() -> None:
    assert duration_s(T0, None) is None
    assert duration_s(T0, T0 + timedelta(minutes=90)) == 5400.0


def test_content_compares_tags_as_a_set_and_segments_in_order() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert content(tag_ids=frozenset([a, b])) == content(tag_ids=frozenset([b, a]))
    s1 = SegmentContent(None, "a", 1, 8, 2, None, None)
    s2 = SegmentContent(None, "b", 9, 16, 0, None, None)
    assert content(segments=(s1, s2)) != content(segments=(s2, s1))


@pytest.mark.parametrize(
    ("client_at", "client", "deleted", "server_deleted", "expected"),
    [
        (T0 + timedelta(seconds=1), content(note="new"), False, False, "apply"),
        (T0 - timedelta(seconds=1), content(note="old"), False, False, "conflict"),
        (T0, content(note="other"), False, False, "conflict"),
        (T0, content(), False, False, "unchanged"),
        (T0 - timedelta(days=1), content(), False, False, "unchanged"),
        (T0 + timedelta(seconds=1), content(), True, False, "apply"),
        (T0 - timedelta(seconds=1), content(), True, False, "conflict"),
        (T0 - timedelta(seconds=1), content(), True, True, "unchanged"),
        (T0 + timedelta(seconds=1), content(), False, True, "apply"),
        (T0 - timedelta(seconds=1), content(), False, True, "conflict"),
    ],
)
def test_decide_sync(client_at: datetime, client: SessionContent, deleted: bool,
                     server_deleted: bool, expected: str) -> None:
    server = ServerVersion(content=content(), deleted=server_deleted, client_updated_at=T0)
    assert decide_sync(content=client, deleted=deleted, updated_at=client_at,
                       server=server) == expected


def test_decide_sync_unknown_id_creates_and_unknown_clock_loses() -> None:
    assert decide_sync(content=content(), deleted=True, updated_at=T0, server=None) == "create"
    server = ServerVersion(content=content(), deleted=False, client_updated_at=None)
    assert decide_sync(content=content(note="x"), deleted=False, updated_at=T0,
                       server=server) == "apply"
