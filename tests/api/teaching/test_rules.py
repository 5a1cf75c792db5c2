"""Pure rules of the teaching domain: invite codes, weekly minutes and accuracy trends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.teaching.rules import (
    CODE_ALPHABET,
    SessionPoint,
    invite_state,
    least_squares_slope,
    local_today,
    make_invite_code,
    normalize_code,
    week_start,
    weekly_summary,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def session(start: str, minutes: float | None, accuracy: float | None = None) -> SessionPoint:
    started = utc(start)
    ended = None if minutes is None else started + timedelta(minutes=minutes)
    return (started, ended, accuracy)


# --- invite codes ----------------------------------------------------------------------------


def test_codes_are_eight_unambiguous_characters() -> None:
    codes = {make_invite_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 8 and set(code) <= set(CODE_ALPHABET)
    assert not set("01ILO") & set(CODE_ALPHABET)


@pytest.mark.parametrize(("typed", "stored"), [
    ("k7px3mqa", "K7PX3MQA"),
    (" K7PX-3MQA ", "K7PX3MQA"),
    ("k7px 3mqa", "K7PX3MQA"),
])
def test_normalize_code(typed: str, stored: str) -> None:
    assert normalize_code(typed) == stored


NOW = utc("2025-03-12T12:00:00")


@pytest.mark.parametrize(("status", "used", "max_uses", "expires_at", "expected"), [
    ("active", 0, 1, NOW + timedelta(days=1), "usable"),
    ("active", 4, 5, NOW + timedelta(seconds=1), "usable"),
    ("active", 1, 1, NOW + timedelta(days=1), "used_up"),
    ("active", 0, 1, NOW, "expired"),
    ("active", 1, 1, NOW - timedelta(days=1), "expired"),
    ("revoked", 0, 1, NOW + timedelta(days=1), "revoked"),
    ("revoked", 1, 1, NOW - timedelta(days=1), "revoked"),
])
def test_invite_state(status: str, used: int, max_uses: int, expires_at: datetime,
                      expected: str) -> None:
    assert invite_state(status=status, used_count=used, max_uses=max_uses,
                        expires_at=expires_at, now=NOW) == expected


# --- weeks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("day", "monday"), [
    (date(2025, 3, 10), date(2025, 3, 10)),   # a Monday
    (date(2025, 3, 16), date(2025, 3, 10)),   # its Sunday
    (date(2025, 1, 1), date(2024, 12, 30)),   # ISO week 1 of 2025 starts in 2024
])
def test_week_start(day: date, monday: date) -> None:
    assert week_start(day) == monday


@pytest.mark.parametrize(("now", "tz", "today"), [
    (utc("2025-03-10T03:30:00"), "UTC", date(2025, 3, 10)),
    (utc("2025-03-10T03:30:00"), "America/New_York", date(2025, 3, 9)),
    (utc("2025-03-09T15:30:00"), "Asia/Tokyo", date(2025, 3, 10)),
    (utc("2025-03-09T15:30:00"), "No/Such_Zone", date(2025, 3, 9)),  # falls back to UTC
])
def test_local_today(now: datetime, tz: str, today: date) -> None:
    assert local_today(now, tz) == today


# Each case: sessions, zone, weeks, today (local) ->
#   [(week_start, minutes, sessions, mean accuracy)], slope
Case = tuple[list[SessionPoint], str, int, date, list[tuple[date, float, int, float | None]],
             float | None]
CASES: dict[str, Case] = {
    "utc basics, open session counts 0 minutes but its accuracy counts": (
        [session("2025-03-04T09:00", 60, 70.0), session("2025-03-04T18:00", None, 90.0),
         session("2025-03-10T10:00", 30, 80.0)],
        "UTC", 2, date(2025, 3, 12),
        [(date(2025, 3, 3), 60.0, 2, 80.0), (date(2025, 3, 10), 30.0, 1, 80.0)], 0.0,
    ),
    "sunday night in New York is the previous week (UTC says Monday)": (
        [session("2025-03-10T03:30", 45, 60.0)],
        "America/New_York", 2, date(2025, 3, 12),
        [(date(2025, 3, 3), 45.0, 1, 60.0), (date(2025, 3, 10), 0.0, 0, None)], None,
    ),
    "the same session in UTC": (
        [session("2025-03-10T03:30", 45, 60.0)],
        "UTC", 2, date(2025, 3, 12),
        [(date(2025, 3, 3), 0.0, 0, None), (date(2025, 3, 10), 45.0, 1, 60.0)], None,
    ),
    "monday 00:30 in Tokyo is the new week (UTC says Sunday)": (
        [session("2025-03-09T15:30", 20)],
        "Asia/Tokyo", 2, date(2025, 3, 12),
        [(date(2025, 3, 3), 0.0, 0, None), (date(2025, 3, 10), 20.0, 1, None)], None,
    ),
    "spring forward: 01:30 EST to 03:30 EDT is one real hour": (
        [(utc("2025-03-09T06:30"), utc("2025-03-09T07:30"), None)],
        "America/New_York", 1, date(2025, 3, 9),
        [(date(2025, 3, 3), 60.0, 1, None)], None,
    ),
    "fall back in Berlin: 02:30 CEST to 03:30 CET is two real hours, on Sunday": (
        [(utc("2025-10-26T00:30"), utc("2025-10-26T02:30"), 75.5)],
        "Europe/Berlin", 2, date(2025, 10, 28),
        [(date(2025, 10, 20), 120.0, 1, 75.5), (date(2025, 10, 27), 0.0, 0, None)], None,
    ),
    "the Monday after DST starts in Berlin begins at 22:00 UTC on Sunday": (
        [session("2025-03-30T21:59", 10), session("2025-03-30T22:00", 15)],
        "Europe/Berlin", 2, date(2025, 4, 2),
        [(date(2025, 3, 24), 10.0, 1, None), (date(2025, 3, 31), 15.0, 1, None)], None,
    ),
    "outside the window is ignored (before the first week, after the current one)": (
        [session("2025-02-23T10:00", 30), session("2025-03-17T10:00", 30),
         session("2025-03-03T00:00", 12.5)],
        "UTC", 2, date(2025, 3, 12),
        [(date(2025, 3, 3), 12.5, 1, None), (date(2025, 3, 10), 0.0, 0, None)], None,
    ),
    "slope over the weeks with data only (60, 70, -, 90: +10 per week)": (
        [session("2025-02-17T10:00", 10, 60.0), session("2025-02-24T10:00", 10, 65.0),
         session("2025-02-25T10:00", 10, 75.0), session("2025-03-10T10:00", 10, 90.0)],
        "UTC", 4, date(2025, 3, 12),
        [(date(2025, 2, 17), 10.0, 1, 60.0), (date(2025, 2, 24), 20.0, 2, 70.0),
         (date(2025, 3, 3), 0.0, 0, None), (date(2025, 3, 10), 10.0, 1, 90.0)], 10.0,
    ),
    "a falling trend and rounding to 0.01": (
        [session("2025-03-03T10:00", 0.5, 90.0), session("2025-03-04T10:00", 1 / 3, 80.0),
         session("2025-03-04T11:00", None, 81.0), session("2025-03-10T10:00", 1, 70.0)],
        "UTC", 2, date(2025, 3, 12),
        [(date(2025, 3, 3), 0.83, 3, 83.67), (date(2025, 3, 10), 1.0, 1, 70.0)], -13.667,
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_weekly_summary(case: str) -> None:
    sessions, tz, weeks, today, expected, slope = CASES[case]
    summary = weekly_summary(sessions, tz=tz, weeks=weeks, today=today)
    got = [(w.week_start, w.minutes, w.sessions, w.mean_accuracy_pct) for w in summary.weeks]
    assert got == expected
    assert summary.accuracy_slope_pct_per_week == slope


def test_weekly_summary_refuses_zero_weeks() -> None:
    with pytest.raises(ValueError, match="weeks must be at least 1, not 0"):
        weekly_summary([], tz="UTC", weeks=0, today=date(2025, 3, 12))


@pytest.mark.parametrize(("points", "slope"), [
    ([], None),
    ([(0.0, 50.0)], None),
    ([(0.0, 50.0), (0.0, 60.0)], None),
    ([(0.0, 50.0), (1.0, 60.0)], 10.0),
    ([(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)], 0.5),
])
def test_least_squares_slope(points: list[tuple[float, float]], slope: float | None) -> None:
    assert least_squares_slope(points) == slope


@pytest.mark.parametrize(("tz", "monday"), [
    ("America/Sao_Paulo", date(1997, 10, 6)),  # clocks went from 00:00 to 01:00 that Monday
    ("Africa/Cairo", date(1990, 10, 1)),  # ... and back from 00:00 to 23:00 this one
    ("Africa/Casablanca", date(2009, 6, 1)),
    ("Pacific/Apia", date(2012, 1, 2)),  # the week after Samoa skipped 30 December 2011
    ("Australia/Lord_Howe", date(2025, 4, 7)),  # half-hour DST
    ("Asia/Kathmandu", date(2025, 3, 10)),
    ("UTC", date(2025, 3, 10)),
])
def test_weekly_summary_puts_each_session_in_the_week_of_its_local_start_date(
    tz: str, monday: date
) -> None:
    """Around a Monday's local midnight (across DST changes on it too), every five minutes:
    the week is that of the local date the session started on (the slow obvious rule)."""
    zone = ZoneInfo(tz)
    midnight = datetime.combine(monday, datetime.min.time(), UTC)
    starts = [midnight + timedelta(minutes=5 * k) for k in range(-26 * 12, 26 * 12)]
    # aware in UTC, as the database gives them, and in the student's zone
    starts += [s.astimezone(zone) for s in starts[::7]]
    weeks = (monday - timedelta(weeks=1), monday)
    summary = weekly_summary([(s, s + timedelta(minutes=1), None) for s in starts], tz=tz,
                             weeks=2, today=monday + timedelta(days=3))
    expected = [sum(week_start(s.astimezone(zone).date()) == w for s in starts) for w in weeks]
    assert [w.week_start for w in summary.weeks] == list(weeks)
    assert [w.sessions for w in summary.weeks] == expected
    assert [w.minutes for w in summary.weeks] == [float(n) for n in expected]
