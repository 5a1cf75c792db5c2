"""Pure gamification rules: sources, points, streaks, achievements, challenges, boards."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import UnprocessableError
from api.gamification.rules import (
    ACHIEVEMENTS,
    DEFAULT_CHALLENGES,
    REPUTATION_POINTS,
    AchievementStats,
    ChallengeRule,
    accuracy_gain,
    achievement_progress,
    achievement_stats,
    best_source,
    challenge_deadline,
    challenge_progress,
    compute_streak,
    local_day,
    practice_days,
    rank,
    reputation_for,
    session_points,
    streak_milestones_crossed,
    week_start,
)
from api.progress.rules import SessionFacts
from audio_engine.timing import practice_points

STUDENT = uuid.UUID(int=1)
T0 = datetime(2024, 5, 6, 18, 0, tzinfo=UTC)  # a Monday
D0 = date(2024, 5, 6)


def facts(**kw: Any) -> SessionFacts:
    base: dict[str, Any] = {
        "session_id": uuid.uuid4(),
        "student_id": STUDENT,
        "started_at": T0,
        "duration_s": 600.0,
    }
    base.update(kw)
    return SessionFacts(**base)


def days(*offsets: int) -> list[date]:
    return [D0 + timedelta(days=o) for o in offsets]


# ------------------------------------------------------------------------- best source


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ((), None),
        (("manual",), "manual"),
        (("manual", "stream"), "stream"),
        (("stream", "manual"), "stream"),
        (("manual", "recording"), "recording"),
        (("stream", "recording"), "recording"),
        (("recording", "stream", "manual"), "recording"),
    ],
)
def test_best_source_prefers_recording_then_stream(
    keys: tuple[str, ...], expected: str | None
) -> None:
    assert best_source(dict.fromkeys(keys, 1.0)) == expected


def test_best_source_refuses_unknown_source() -> None:
    with pytest.raises(UnprocessableError, match="'video'"):
        best_source({"video": 1, "manual": 2})


# ----------------------------------------------------------------------------- points


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        # manual: whole minutes x 1, never a bonus or a multiplier
        ({"source": "manual", "duration_s": 59.0}, 0),
        ({"source": "manual", "duration_s": 600.0, "accuracy_pct": 99.0}, 10),
        ({"source": "manual", "duration_s": 600.0, "target_bpm": 50.0}, 10),
        ({"source": "manual", "duration_s": 600.0, "engine_points": 99}, 10),
        # stream with engine points: taken as they are
        ({"source": "stream", "duration_s": 600.0, "engine_points": 37}, 37),
        ({"source": "recording", "duration_s": 600.0, "engine_points": 0}, 0),
        # the rule: 0.99 minutes floor to 0
        ({"source": "stream", "duration_s": 59.4, "target_bpm": 100.0}, 0),
        ({"source": "stream", "duration_s": 60.0, "target_bpm": 100.0}, 1),
        # meditation boundary: strictly below 60 BPM
        ({"source": "stream", "duration_s": 600.0, "target_bpm": 59.99}, 30),
        ({"source": "stream", "duration_s": 600.0, "target_bpm": 60.0}, 10),
        # meditation beats slow practice
        ({"source": "stream", "duration_s": 600.0, "target_bpm": 50.0,
          "tempo_bpm_played": 40.0}, 30),
        # slow practice: played below target; equal (up to rounding) is not slow
        ({"source": "stream", "duration_s": 600.0, "target_bpm": 100.0,
          "tempo_bpm_played": 99.5}, 20),
        ({"source": "stream", "duration_s": 600.0, "target_bpm": 100.0,
          "tempo_bpm_played": 99.99999999999999}, 10),
        ({"source": "stream", "duration_s": 600.0, "target_bpm": 100.0,
          "tempo_bpm_played": 104.0}, 10),
        # mode "slow" without a slower played tempo: the engine rule ignores the mode
        ({"source": "stream", "duration_s": 600.0, "target_bpm": 100.0, "mode": "slow"}, 10),
        # accuracy bonus: strictly above 85
        ({"source": "recording", "duration_s": 600.0, "target_bpm": 100.0,
          "accuracy_pct": 85.0}, 10),
        ({"source": "recording", "duration_s": 600.0, "target_bpm": 100.0,
          "accuracy_pct": 85.01}, 20),
        ({"source": "recording", "duration_s": 30.0, "target_bpm": 100.0,
          "accuracy_pct": 90.0}, 10),
        ({"source": "stream", "duration_s": 1260.0, "target_bpm": 80.0,
          "tempo_bpm_played": 70.0, "accuracy_pct": 92.0}, 52),
    ],
)  # fmt: skip
def test_session_points_table(kw: dict[str, Any], expected: int) -> None:
    assert session_points(facts(**kw)) == expected


@settings(max_examples=300, deadline=None)
@given(
    duration_s=st.floats(0, 20_000, allow_nan=False),
    target=st.floats(20, 400, allow_nan=False),
    played=st.none() | st.floats(10, 500, allow_nan=False),
    accuracy=st.none() | st.floats(0, 100, allow_nan=False),
)
def test_session_points_matches_the_engine_rule(
    duration_s: float, target: float, played: float | None, accuracy: float | None
) -> None:
    f = facts(
        source="stream",
        duration_s=duration_s,
        target_bpm=target,
        tempo_bpm_played=played,
        accuracy_pct=accuracy,
    )
    slow = (
        played is not None
        and played < target
        and not abs(played - target) <= 1e-9 * max(abs(played), abs(target))
    )
    assert session_points(f) == practice_points(
        duration_s, meditation=target < 60.0, slow_practice=slow, accuracy_pct=accuracy
    )


# ---------------------------------------------------------------------------- local day


@pytest.mark.parametrize(
    ("ts", "tz", "expected"),
    [
        # 23:30 local on the 4th is already the 5th in UTC (New York, EDT = UTC-4)
        (datetime(2024, 7, 5, 3, 30, tzinfo=UTC), "America/New_York", date(2024, 7, 4)),
        (datetime(2024, 7, 5, 3, 30, tzinfo=UTC), "UTC", date(2024, 7, 5)),
        # 23:30 in Berlin (CEST = UTC+2) is 21:30 UTC, same day
        (datetime(2024, 7, 4, 21, 30, tzinfo=UTC), "Europe/Berlin", date(2024, 7, 4)),
        # 00:30 in Berlin is 22:30 UTC the day before
        (datetime(2024, 7, 4, 22, 30, tzinfo=UTC), "Europe/Berlin", date(2024, 7, 5)),
        # Berlin spring forward, 2024-03-31 02:00 -> 03:00: local midnight is 23:00 UTC before
        (datetime(2024, 3, 30, 22, 59, tzinfo=UTC), "Europe/Berlin", date(2024, 3, 30)),
        (datetime(2024, 3, 30, 23, 0, tzinfo=UTC), "Europe/Berlin", date(2024, 3, 31)),
        (datetime(2024, 3, 31, 21, 59, tzinfo=UTC), "Europe/Berlin", date(2024, 3, 31)),
        (datetime(2024, 3, 31, 22, 0, tzinfo=UTC), "Europe/Berlin", date(2024, 4, 1)),
        # Berlin fall back, 2024-10-27 (a 25-hour day): midnight is 22:00 UTC before, 23:00 after
        (datetime(2024, 10, 26, 22, 0, tzinfo=UTC), "Europe/Berlin", date(2024, 10, 27)),
        (datetime(2024, 10, 27, 22, 59, tzinfo=UTC), "Europe/Berlin", date(2024, 10, 27)),
        (datetime(2024, 10, 27, 23, 0, tzinfo=UTC), "Europe/Berlin", date(2024, 10, 28)),
        # New York fall back, 2024-11-03: local midnight of the 4th is 05:00 UTC
        (datetime(2024, 11, 4, 4, 59, tzinfo=UTC), "America/New_York", date(2024, 11, 3)),
        (datetime(2024, 11, 4, 5, 0, tzinfo=UTC), "America/New_York", date(2024, 11, 4)),
        # New York spring forward, 2024-03-10: midnight of the 10th is 05:00 UTC, of the 11th 04:00
        (datetime(2024, 3, 10, 4, 59, tzinfo=UTC), "America/New_York", date(2024, 3, 9)),
        (datetime(2024, 3, 11, 3, 59, tzinfo=UTC), "America/New_York", date(2024, 3, 10)),
        (datetime(2024, 3, 11, 4, 0, tzinfo=UTC), "America/New_York", date(2024, 3, 11)),
        # an aware non-UTC input is converted, not reinterpreted
        (datetime(2024, 7, 4, 23, 30, tzinfo=ZoneInfo("America/New_York")), "UTC",
         date(2024, 7, 5)),
    ],
)  # fmt: skip
def test_local_day(ts: datetime, tz: str, expected: date) -> None:
    assert local_day(ts, tz) == expected


@pytest.mark.parametrize("bad", ["Mars/Olympus", "", "../etc/passwd", "Europe/Berlin\x00"])
def test_local_day_refuses_unknown_zones(bad: str) -> None:
    with pytest.raises(UnprocessableError, match="time zone"):
        local_day(T0, bad)


def test_local_day_refuses_naive_datetimes() -> None:
    with pytest.raises(UnprocessableError, match="aware"):
        local_day(datetime(2024, 1, 1, 12, 0), "UTC")


@pytest.mark.parametrize(
    ("tz", "local_times"),
    [
        # one session a night at 23:30 local across the DST changes
        ("Europe/Berlin", [datetime(2024, 3, d, 23, 30) for d in (29, 30, 31)]
         + [datetime(2024, 4, 1, 23, 30)]),
        ("Europe/Berlin", [datetime(2024, 10, d, 23, 30) for d in (25, 26, 27, 28)]),
        ("America/New_York", [datetime(2024, 3, d, 23, 30) for d in (8, 9, 10, 11)]),
        ("America/New_York", [datetime(2024, 11, d, 23, 30) for d in (1, 2, 3, 4)]),
        # and just after midnight
        ("America/New_York", [datetime(2024, 11, d, 0, 15) for d in (2, 3, 4, 5)]),
    ],
)  # fmt: skip
def test_streak_across_dst_changes(tz: str, local_times: list[datetime]) -> None:
    zone = ZoneInfo(tz)
    sessions = [facts(started_at=t.replace(tzinfo=zone).astimezone(UTC)) for t in local_times]
    got = practice_days(sessions, tz)
    expected_days = {t.date() for t in local_times}
    assert got == expected_days
    state = compute_streak(got, max(expected_days))
    assert (state.current_days, state.longest_days) == (4, 4)
    # in UTC the New York late sessions fall on the next day, Berlin's on the same day
    assert len(practice_days(sessions, "UTC")) == 4


def test_practice_days_needs_a_minute_per_day() -> None:
    sessions = [
        facts(started_at=T0, duration_s=30.0),
        facts(started_at=T0 + timedelta(hours=1), duration_s=30.0),  # 1 minute together
        facts(started_at=T0 + timedelta(days=1), duration_s=59.9),
        facts(started_at=T0 + timedelta(days=2), duration_s=60.0),
    ]
    assert practice_days(sessions, "UTC") == {D0, D0 + timedelta(days=2)}


# ------------------------------------------------------------------------------ streaks


@pytest.mark.parametrize(
    ("practised", "today", "kw", "expected"),
    [
        ([], 0, {}, (0, 0, 0, (), None)),
        ([0], 0, {}, (1, 1, 0, (), 0)),
        # today not practised yet: the streak is still running
        ([0], 1, {}, (1, 1, 0, (), 0)),
        ([0, 1, 2], 3, {}, (3, 3, 0, (), 2)),
        # yesterday missed without a freeze: broken
        ([0], 2, {}, (0, 1, 0, (), 0)),
        # 7 days earn a freeze; it stays banked
        ([0, 1, 2, 3, 4, 5, 6], 6, {}, (7, 7, 1, (), 6)),
        ([0, 1, 2, 3, 4, 5], 5, {}, (6, 6, 0, (), 5)),
        # freeze earned then used on day 7 (missed), practice again on day 8
        ([0, 1, 2, 3, 4, 5, 6, 8], 8, {}, (8, 8, 0, (7,), 8)),
        # ...and the freeze bridges yesterday while today is not practised yet
        ([0, 1, 2, 3, 4, 5, 6], 8, {}, (7, 7, 0, (7,), 6)),
        # two missed days need two freezes (14 days earn two)
        ([*range(14), 16], 16, {}, (15, 15, 0, (14, 15), 16)),
        # two missed days with one freeze: broken, the freeze is spent on the first
        ([*range(7), 9], 9, {}, (1, 7, 0, (), 9)),
        # freezes are capped at max_freezes (21 days would earn 3)
        (list(range(21)), 20, {}, (21, 21, 2, (), 20)),
        (list(range(21)), 20, {"max_freezes": 3}, (21, 21, 3, (), 20)),
        (list(range(21)), 20, {"max_freezes": 0}, (21, 21, 0, (), 20)),
        # at the cap nothing is owed: day 21 spends one, day 28 (the 28th practised) earns one
        ([*range(21), *range(22, 29)], 28, {}, (28, 28, 2, (21,), 28)),
        # bridged days do not count towards earning: 6 days, freeze-less gap breaks
        ([0, 1, 2, 3, 4, 5, 7], 7, {}, (1, 6, 0, (), 7)),
        # a smaller earning period
        ([0, 1, 2, 4, 5, 6], 6, {"earn_every_days": 3, "max_freezes": 1},
         (6, 6, 1, (3,), 6)),
        # longest vs current
        ([*range(10), 12, 13, 14], 14, {}, (3, 10, 0, (), 14)),
        # days after today are ignored; duplicates are fine
        ([0, 0, 1, 5], 1, {}, (2, 2, 0, (), 1)),
    ],
)  # fmt: skip
def test_compute_streak_table(
    practised: list[int],
    today: int,
    kw: dict[str, int],
    expected: tuple[int, int, int, tuple[int, ...], int | None],
) -> None:
    state = compute_streak(days(*practised), D0 + timedelta(days=today), **kw)
    current, longest, freezes, frozen, last = expected
    assert state.current_days == current
    assert state.longest_days == longest
    assert state.freezes_available == freezes
    assert state.frozen_days == tuple(days(*frozen))
    assert state.last_practice_day == (None if last is None else D0 + timedelta(days=last))


@pytest.mark.parametrize(
    ("kw", "name"),
    [({"earn_every_days": 0}, "earn_every_days"), ({"max_freezes": -1}, "max_freezes")],
)
def test_compute_streak_refuses_bad_parameters(kw: dict[str, int], name: str) -> None:
    with pytest.raises(UnprocessableError, match=name):
        compute_streak([D0], D0, **kw)


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.sets(st.integers(0, 60), max_size=45),
    today=st.integers(0, 70),
    earn=st.integers(1, 10),
    cap=st.integers(0, 3),
)
def test_compute_streak_invariants(offsets: set[int], today: int, earn: int, cap: int) -> None:
    practised = set(days(*offsets))
    t = D0 + timedelta(days=today)
    state = compute_streak(practised, t, earn_every_days=earn, max_freezes=cap)
    assert 0 <= state.current_days <= state.longest_days <= len(practised)
    assert 0 <= state.freezes_available <= cap
    assert not set(state.frozen_days) & practised
    assert all(d < t for d in state.frozen_days)
    if state.current_days:
        # the running streak covers every day from its first practised day to its last one
        last = state.last_practice_day
        assert last is not None
        span = state.current_days + sum(1 for d in state.frozen_days if d < last)
        first = last - timedelta(days=span - 1)
        assert all(
            (d in practised) != (d in state.frozen_days)
            for d in (first + timedelta(days=i) for i in range(span))
        )
    if not state.frozen_days and practised and max(practised) <= t:
        # without freezes a streak is a plain run of consecutive days
        run = 0
        d = t if t in practised else t - timedelta(days=1)
        while d in practised:
            run, d = run + 1, d - timedelta(days=1)
        assert state.current_days == run


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [(0, 6, ()), (6, 7, (7,)), (7, 8, ()), (0, 100, (7, 30, 100)), (364, 400, (365,))],
)
def test_streak_milestones_crossed(before: int, after: int, expected: tuple[int, ...]) -> None:
    assert streak_milestones_crossed(before, after) == expected


# ------------------------------------------------------------------------ achievements


def test_catalogue_has_the_required_codes_and_fits_the_table() -> None:
    codes = [a.code for a in ACHIEVEMENTS]
    assert len(set(codes)) == len(codes)
    for required in ("first_session", "streak_7", "slow_100", "meditation_master",
                     "clean_tempo", "sessions_50", "accuracy_90_x10"):  # fmt: skip
        assert required in codes
    assert all(len(c) <= 48 and a.title and a.description and a.target > 0
               for c, a in zip(codes, ACHIEVEMENTS, strict=True))  # fmt: skip


def _progress(stats: AchievementStats) -> dict[str, tuple[float, bool]]:
    return {p.code: (p.current, p.achieved) for p in achievement_progress(stats)}


@pytest.mark.parametrize(
    ("stats", "code", "current", "achieved"),
    [
        (AchievementStats(), "first_session", 0, False),
        (AchievementStats(total_sessions=1), "first_session", 1, True),
        (AchievementStats(total_sessions=49), "sessions_50", 49, False),
        (AchievementStats(total_sessions=50), "sessions_50", 50, True),
        (AchievementStats(longest_streak_days=6), "streak_7", 6, False),
        (AchievementStats(longest_streak_days=7), "streak_7", 7, True),
        (AchievementStats(slow_minutes=99.9), "slow_100", 99.9, False),
        (AchievementStats(slow_minutes=99.99999999999999), "slow_100", 99.99999999999999, True),
        (AchievementStats(meditation_minutes=299.0), "meditation_master", 299, False),
        (AchievementStats(meditation_minutes=301.0), "meditation_master", 301, True),
        (AchievementStats(clean_tempo_pieces=1), "clean_tempo", 1, True),
        (AchievementStats(accurate_sessions=9), "accuracy_90_x10", 9, False),
        (AchievementStats(accurate_sessions=10), "accuracy_90_x10", 10, True),
    ],
)
def test_achievement_progress_table(
    stats: AchievementStats, code: str, current: float, achieved: bool
) -> None:
    assert _progress(stats)[code] == (current, achieved)


def test_achievement_stats_from_sessions() -> None:
    piece_a, piece_b = uuid.UUID(int=10), uuid.UUID(int=11)
    sessions = [
        # slow mode, 30 min
        facts(duration_s=1800.0, mode="slow"),
        # played below target: slow, 20 min; accurate but below tempo: not clean
        facts(duration_s=1200.0, target_bpm=100.0, tempo_bpm_played=90.0, accuracy_pct=95.0,
              piece_ids=(piece_a,)),
        # meditation, 10 min, clean at tempo on both pieces
        facts(duration_s=600.0, target_bpm=50.0, tempo_bpm_played=50.0, accuracy_pct=90.0,
              piece_ids=(piece_a, piece_b)),
        # 89.99 % is not accurate
        facts(duration_s=600.0, target_bpm=100.0, tempo_bpm_played=120.0, accuracy_pct=89.99,
              piece_ids=(piece_b,)),
    ]  # fmt: skip
    stats = achievement_stats(sessions, longest_streak_days=3)
    assert stats == AchievementStats(
        total_sessions=4,
        total_minutes=70.0,
        slow_minutes=50.0,
        meditation_minutes=10.0,
        longest_streak_days=3,
        clean_tempo_pieces=2,
        accurate_sessions=2,
    )


# -------------------------------------------------------------------------- challenges


def test_default_challenges() -> None:
    assert [(c.metric, c.target, c.duration_days) for c in DEFAULT_CHALLENGES] == [
        ("minutes", 150, 7),
        ("sessions", 5, 7),
        ("slow_sessions", 3, 14),
    ]
    assert all(len(c.code) <= 48 for c in DEFAULT_CHALLENGES)


MINUTES_150 = DEFAULT_CHALLENGES[0]
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DEADLINE = challenge_deadline(MINUTES_150, START)


def test_challenge_deadline() -> None:
    assert challenge_deadline(MINUTES_150, START) == datetime(2024, 5, 8, 12, 0, tzinfo=UTC)
    with pytest.raises(UnprocessableError, match="aware"):
        challenge_deadline(MINUTES_150, datetime(2024, 5, 1))


@pytest.mark.parametrize(
    ("rule", "sessions", "now", "expected"),
    [
        # nothing yet, window open
        (MINUTES_150, [], START + timedelta(days=1), (0.0, False, False, None)),
        # [started_at, deadline): a session at the start counts, one at the deadline does not
        (MINUTES_150, [(START, 3600.0), (DEADLINE, 9000.0),
                       (START - timedelta(seconds=1), 9000.0)],
         START + timedelta(days=1), (60.0, False, False, None)),
        # reached on the third session: completed_at is that session's end
        (MINUTES_150, [(START + timedelta(days=d), 3600.0) for d in (0, 1, 2)],
         START + timedelta(days=3),
         (180.0, True, False, START + timedelta(days=2, hours=1))),
        # exactly the target
        (MINUTES_150, [(START, 4500.0), (START + timedelta(days=1), 4500.0)],
         DEADLINE + timedelta(days=1),
         (150.0, True, False, START + timedelta(days=1, seconds=4500))),
        # deadline passed short of the target: expired
        (MINUTES_150, [(START, 8940.0)], DEADLINE, (149.0, False, True, None)),
        (MINUTES_150, [(START, 8940.0)], DEADLINE - timedelta(microseconds=1),
         (149.0, False, False, None)),
        # counting sessions
        (DEFAULT_CHALLENGES[1], [(START + timedelta(hours=h), 60.0) for h in range(5)],
         START + timedelta(days=1), (5.0, True, False, START + timedelta(hours=4, seconds=60))),
    ],
)  # fmt: skip
def test_challenge_progress_table(
    rule: ChallengeRule,
    sessions: list[tuple[datetime, float]],
    now: datetime,
    expected: tuple[float, bool, bool, datetime | None],
) -> None:
    facts_list = [facts(started_at=t, duration_s=s) for t, s in sessions]
    got = challenge_progress(rule, START, DEADLINE, facts_list, now)
    assert (got.current, got.completed, got.expired, got.completed_at) == expected
    assert got.target == rule.target


@pytest.mark.parametrize(
    ("metric", "expected"),
    [("slow_sessions", 2.0), ("slow_minutes", 30.0), ("accurate_sessions", 1.0),
     ("sessions", 3.0), ("minutes", 40.0)],
)  # fmt: skip
def test_challenge_metrics(metric: Any, expected: float) -> None:
    rule = ChallengeRule("c", "c", metric, 100, 14)
    sessions = [
        facts(started_at=START, duration_s=600.0, mode="slow"),
        facts(started_at=START, duration_s=1200.0, target_bpm=90.0, tempo_bpm_played=80.0),
        facts(started_at=START, duration_s=600.0, accuracy_pct=90.0),
    ]
    deadline = challenge_deadline(rule, START)
    assert challenge_progress(rule, START, deadline, sessions, START).current == expected


def test_challenge_rejects_bad_input() -> None:
    with pytest.raises(UnprocessableError, match="deadline"):
        challenge_progress(MINUTES_150, START, START, [], START)
    with pytest.raises(UnprocessableError, match="metric"):
        ChallengeRule("c", "c", "pushups", 1, 1)  # type: ignore[arg-type]
    with pytest.raises(UnprocessableError, match="target"):
        ChallengeRule("c", "c", "minutes", 0, 1)


# ------------------------------------------------------------------------- leaderboard


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (datetime(2024, 5, 6, 0, 0, tzinfo=UTC), datetime(2024, 5, 6, tzinfo=UTC)),
        (datetime(2024, 5, 5, 23, 59, 59, tzinfo=UTC), datetime(2024, 4, 29, tzinfo=UTC)),
        (datetime(2024, 5, 12, 23, 0, tzinfo=UTC), datetime(2024, 5, 6, tzinfo=UTC)),
        # Monday 01:00 in Berlin is still Sunday in UTC: the board is on UTC's week
        (datetime(2024, 5, 6, 1, 0, tzinfo=ZoneInfo("Europe/Berlin")),
         datetime(2024, 4, 29, tzinfo=UTC)),
        # ISO week 1 of 2025 starts on Monday 2024-12-30
        (datetime(2025, 1, 1, 12, 0, tzinfo=UTC), datetime(2024, 12, 30, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_week_start(ts: datetime, expected: datetime) -> None:
    got = week_start(ts)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


U = [uuid.UUID(int=i) for i in range(6)]


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], []),
        ([(U[1], 5.0)], [(1, U[1], 5.0)]),
        # "1224": ties share a rank, the next rank skips; ties ordered by user id
        ([(U[4], 10.0), (U[3], 20.0), (U[2], 20.0), (U[1], 30.0)],
         [(1, U[1], 30.0), (2, U[2], 20.0), (2, U[3], 20.0), (4, U[4], 10.0)]),
        ([(U[5], 1.0), (U[1], 1.0), (U[3], 1.0)],
         [(1, U[1], 1.0), (1, U[3], 1.0), (1, U[5], 1.0)]),
        ([(U[1], -2.5), (U[2], 0.0)], [(1, U[2], 0.0), (2, U[1], -2.5)]),
    ],
)  # fmt: skip
def test_rank_table(
    entries: list[tuple[uuid.UUID, float]], expected: list[tuple[int, uuid.UUID, float]]
) -> None:
    assert [(r.rank, r.user_id, r.score) for r in rank(entries)] == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.uuids(), st.integers(0, 5).map(float)), unique_by=lambda e: e[0]))
def test_rank_is_independent_of_input_order(entries: list[tuple[uuid.UUID, float]]) -> None:
    ranked = rank(entries)
    assert ranked == rank(list(reversed(entries)))
    for r in ranked:  # rank = 1 + number of strictly better scores
        assert r.rank == 1 + sum(1 for _, s in entries if s > r.score)


def test_rank_refuses_nan() -> None:
    with pytest.raises(UnprocessableError, match="finite"):
        rank([(U[1], float("nan"))])


@pytest.mark.parametrize(
    ("this", "last", "expected"),
    [([], [80.0], None), ([80.0], [], None), ([], [], None),
     ([90.0, 80.0], [70.0], 15.0), ([60.0], [70.0, 80.0], -15.0)],
)  # fmt: skip
def test_accuracy_gain(this: list[float], last: list[float], expected: float | None) -> None:
    assert accuracy_gain(this, last) == expected


# -------------------------------------------------------------------------- reputation


@pytest.mark.parametrize(
    ("event", "points"),
    [("achievement", 10), ("streak_milestone", 5), ("challenge_completed", 5),
     ("answer_accepted", 15), ("post_upvoted", 2), ("post_downvoted", -1)],
)  # fmt: skip
def test_reputation_table(event: Any, points: int) -> None:
    assert reputation_for(event) == points


def test_reputation_rejects_unknown_events_and_table_is_read_only() -> None:
    with pytest.raises(UnprocessableError, match="'bribe'"):
        reputation_for("bribe")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        REPUTATION_POINTS["achievement"] = 1000  # type: ignore[index]
