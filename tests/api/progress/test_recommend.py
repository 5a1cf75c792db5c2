"""Recommendations: each trigger, its near misses, the numbers in the reason and data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.errors import UnprocessableError
from api.progress.recommend import recommend
from api.progress.rules import SessionFacts

STUDENT = uuid.UUID(int=1)
PIECE_A = uuid.UUID(int=0xA)
PIECE_B = uuid.UUID(int=0xB)
NOW = datetime(2024, 5, 12, 20, 0, tzinfo=UTC)  # Sunday evening


def facts(days_ago: float, duration_s: float = 1200.0, **kw: Any) -> SessionFacts:
    return SessionFacts(
        uuid.UUID(int=int(days_ago * 1000) + len(kw) * 7919 + int(duration_s)),
        STUDENT,
        NOW - timedelta(days=days_ago, hours=1),
        duration_s,
        **kw,
    )


def kinds(recs: list[Any]) -> list[str]:
    return [r.kind for r in recs]


# ------------------------------------------------------------------------ slow practice


@pytest.mark.parametrize(
    ("accuracies", "targets", "expected_bpm"),
    [
        ([60.0, 70.0], [100.0, 120.0], 84),  # mean 65 %, latest target 120 -> 84
        ([69.99], [85.0], 60),  # 59.5 rounds half up to 60
        ([50.0, None], [100.0, 110.0], 77),  # sessions without accuracy do not count
    ],
)
def test_slow_practice_triggers(
    accuracies: list[float | None], targets: list[float], expected_bpm: int
) -> None:
    # oldest first: the last target is the most recent
    n = len(accuracies)
    items = [
        facts(n - i, accuracy_pct=a, target_bpm=t, piece_ids=(PIECE_A,))
        for i, (a, t) in enumerate(zip(accuracies, targets, strict=True))
    ]
    [rec] = recommend(items, now=NOW, tz_name="UTC")
    assert rec.kind == "slow_practice"
    assert rec.data["suggested_bpm"] == expected_bpm
    assert rec.data["target_bpm"] == targets[-1]
    assert rec.data["piece_id"] == str(PIECE_A)
    assert f"{expected_bpm} BPM" in rec.reason
    known = [a for a in accuracies if a is not None]
    mean = sum(known) / len(known)
    assert f"{mean:.1f} %" in rec.reason
    assert rec.data["sessions"] == len(known)


@pytest.mark.parametrize(
    "items",
    [
        [facts(1, accuracy_pct=70.0, target_bpm=100.0, piece_ids=(PIECE_A,))],  # not below 70
        [facts(1, accuracy_pct=50.0, piece_ids=(PIECE_A,))],  # no target tempo to scale
        [facts(1, accuracy_pct=50.0, target_bpm=100.0)],  # no piece
        [facts(8, accuracy_pct=50.0, target_bpm=100.0, piece_ids=(PIECE_A,))],  # too old
        [facts(1, target_bpm=100.0, piece_ids=(PIECE_A,))],  # no accuracy at all
    ],
)
def test_slow_practice_near_misses(items: list[SessionFacts]) -> None:
    assert recommend(items, now=NOW, tz_name="UTC") == []


def test_slow_practice_for_segments_and_order() -> None:
    items = [
        facts(2, accuracy_pct=40.0, target_bpm=90.0, piece_ids=(PIECE_B,)),
        facts(1, accuracy_pct=60.0, target_bpm=100.0, piece_ids=(PIECE_A,)),
        facts(1.5, accuracy_pct=95.0, target_bpm=140.0, piece_ids=(PIECE_A,)),  # mean 77.5
    ]
    segments = {
        (PIECE_A, 9, 12): 55.0,
        (PIECE_A, 1, 8): 90.0,  # fine
        (PIECE_B, 5, 6): 69.0,
        (uuid.UUID(int=0xC), 1, 4): 10.0,  # a piece without a target this week
    }
    recs = recommend(items, now=NOW, tz_name="UTC", segment_accuracy=segments)
    assert [(r.kind, r.data.get("piece_id"), r.data.get("start_bar")) for r in recs] == [
        ("slow_practice", str(PIECE_B), None),
        ("slow_practice", str(PIECE_A), 9),
        ("slow_practice", str(PIECE_B), 5),
    ]
    # PIECE_A's latest target is 100 (day 1 is later than day 1.5): 70 BPM
    assert recs[1].data["suggested_bpm"] == 70
    assert "bars 9-12" in recs[1].title
    assert recs[0].data["suggested_bpm"] == 63


# ------------------------------------------------------------------- steadiness drill


def drift(days_ago: float, value: float | None, target: float | None = 100.0) -> SessionFacts:
    return facts(days_ago, target_bpm=target, drift_bpm_per_min=value, tempo_bpm_played=100.0)


@pytest.mark.parametrize(
    ("drifts", "direction", "median"),
    [
        ([1.0, 2.0, 1.5], "rushing", 1.5),
        ([-1.0, -3.0, -2.0, -1.2], "dragging", -1.6),
        # 4 of 5 (80 %) the same way is enough
        ([2.0, 2.0, 2.0, 2.0, -5.0], "rushing", 2.0),
    ],
)
def test_steadiness_drill_triggers(drifts: list[float], direction: str, median: float) -> None:
    items = [drift(i + 1, d) for i, d in enumerate(drifts)]
    [rec] = recommend(items, now=NOW, tz_name="UTC")
    assert rec.kind == "steadiness_drill"
    assert rec.data["direction"] == direction
    assert rec.data["median_drift_bpm_per_min"] == median
    assert direction in rec.title
    assert f"{median:+.1f} BPM/min" in rec.reason


@pytest.mark.parametrize(
    "items",
    [
        [drift(1, 2.0), drift(2, 2.0)],  # only two sessions
        [drift(1, 2.0), drift(2, 2.0), drift(3, None), drift(4, None)],  # two with a drift
        [drift(1, 2.0), drift(2, 2.0), drift(3, 0.99)],  # third below 1 % of 100 BPM
        [drift(1, 2.0), drift(2, 2.0), drift(3, 2.0), drift(4, -2.0)],  # 75 % only
        [drift(1, 0.5), drift(2, 0.5), drift(3, 0.5)],  # steady
        # 1 % of a 200 BPM target is 2 BPM/min
        [drift(1, 1.9, 200.0), drift(2, 1.9, 200.0), drift(3, 1.9, 200.0)],
    ],
)
def test_steadiness_drill_near_misses(items: list[SessionFacts]) -> None:
    assert recommend(items, now=NOW, tz_name="UTC") == []


def test_steadiness_uses_played_tempo_without_target() -> None:
    items = [drift(i, 1.0, target=None) for i in (1, 2, 3)]
    assert kinds(recommend(items, now=NOW, tz_name="UTC")) == ["steadiness_drill"]


# ---------------------------------------------------------------------------------- rest


def long_days(minutes: list[float]) -> list[SessionFacts]:
    """One session a day, the last element today (12:00 UTC)."""
    today_noon = NOW.replace(hour=12)
    return [
        SessionFacts(uuid.UUID(int=1000 + i), STUDENT,
                     today_noon - timedelta(days=len(minutes) - 1 - i), m * 60.0)
        for i, m in enumerate(minutes)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("minutes", "streak", "rule"),
    [
        ([0, 90, 90, 90, 90, 90, 90], 0, "long_days_in_a_row"),
        ([90, 90, 90, 90, 90, 90, 0], 0, "long_days_in_a_row"),  # today not yet
        ([0, 0, 0, 0, 0, 0, 840], 14, "long_streak_heavy_load"),  # average exactly 120
        ([130] * 7, 20, "long_days_in_a_row"),  # both: the run is reported
    ],
)
def test_rest_triggers(minutes: list[float], streak: int, rule: str) -> None:
    recs = recommend(long_days(minutes), now=NOW, tz_name="UTC", streak_days=streak)
    assert kinds(recs) == ["rest"]
    rec = recs[0]
    assert rec.data["rule"] == rule
    if rule == "long_days_in_a_row":
        assert f"on {rec.data['long_days_in_a_row']} days in a row" in rec.reason
    else:
        assert f"streak is {streak} days" in rec.reason
        assert f"{rec.data['average_daily_minutes']:.0f} minutes a day" in rec.reason


@pytest.mark.parametrize(
    ("minutes", "streak"),
    [
        ([90, 90, 90, 0, 90, 90, 90], 30),  # two runs of three
        ([89.9, 90, 90, 90, 90, 90, 0], 0),  # five in a row
        ([0, 0, 0, 0, 0, 0, 839], 14),  # average just under 120
        ([0, 0, 0, 0, 0, 0, 840], 13),  # streak just under 14
    ],
)
def test_rest_near_misses(minutes: list[float], streak: int) -> None:
    assert recommend(long_days(minutes), now=NOW, tz_name="UTC", streak_days=streak) == []


def test_rest_counts_local_days() -> None:
    # six evenings (6th-11th) of 90 minutes at 21:30 UTC: 23:30 in Berlin, 17:30 in New York
    now = datetime(2024, 5, 12, 21, 0, tzinfo=UTC)  # the 12th in both: window 6th-12th
    items = [
        SessionFacts(uuid.UUID(int=i), STUDENT, datetime(2024, 5, 6 + i, 21, 30, tzinfo=UTC),
                     5400.0)
        for i in range(6)
    ]  # fmt: skip
    assert kinds(recommend(items, now=now, tz_name="Europe/Berlin")) == ["rest"]
    assert kinds(recommend(items, now=now, tz_name="America/New_York")) == ["rest"]
    # 22:30 UTC is already the 13th in Berlin (window 7th-13th: five long days left),
    # still the 12th in New York
    later = datetime(2024, 5, 12, 22, 30, tzinfo=UTC)
    assert recommend(items, now=later, tz_name="Europe/Berlin") == []
    assert kinds(recommend(items, now=later, tz_name="America/New_York")) == ["rest"]


def test_all_kinds_in_a_fixed_order_and_deterministic() -> None:
    items = [
        *long_days([90] * 7),
        facts(1, accuracy_pct=50.0, target_bpm=100.0, piece_ids=(PIECE_A,)),
        *(drift(i, -3.0) for i in (2, 3, 4)),
    ]
    recs = recommend(items, now=NOW, tz_name="UTC")
    assert kinds(recs) == ["rest", "slow_practice", "steadiness_drill"]
    assert recommend(list(reversed(items)), now=NOW, tz_name="UTC") == recs


def test_recommend_rejects_bad_input() -> None:
    with pytest.raises(UnprocessableError, match="aware"):
        recommend([], now=datetime(2024, 1, 1), tz_name="UTC")
    with pytest.raises(UnprocessableError, match="time zone"):
        recommend([], now=NOW, tz_name="Mars/Base")
    with pytest.raises(UnprocessableError, match="streak_days"):
        recommend([], now=NOW, tz_name="UTC", streak_days=-1)
