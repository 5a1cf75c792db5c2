"""Pure progress rules: minutes per day/week, trends, clean tempo, heat maps."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import UnprocessableError
from api.progress.rules import (
    BeatSummary,
    Cell,
    SessionFacts,
    bar_beat_heatmap,
    clean_tempo_history,
    deviation_by_beat,
    merge_heatmaps,
    minutes_by_day,
    minutes_by_week,
    slope_per_week,
    weekly_trend,
)

STUDENT = uuid.UUID(int=1)
PIECE = uuid.UUID(int=100)
OTHER = uuid.UUID(int=101)


def facts(started_at: datetime, duration_s: float = 600.0, **kw: Any) -> SessionFacts:
    return SessionFacts(uuid.uuid4(), STUDENT, started_at, duration_s, **kw)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ------------------------------------------------------------------------------- facts


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"started_at": datetime(2024, 1, 1)}, "started_at"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"duration_s": math.inf}, "duration_s"),
        ({"accuracy_pct": 100.5}, "accuracy_pct"),
        ({"target_bpm": 0.0}, "target_bpm"),
        ({"tempo_bpm_played": math.nan}, "tempo_bpm_played"),
        ({"mode": "fast"}, "mode"),
        ({"source": "video"}, "source"),
        ({"engine_points": -3}, "engine_points"),
    ],
)
def test_session_facts_validate(kw: dict[str, Any], name: str) -> None:
    base: dict[str, Any] = {"started_at": utc(2024, 1, 1), "duration_s": 60.0}
    base.update(kw)
    with pytest.raises(UnprocessableError, match=name):
        facts(**base)


# ----------------------------------------------------------------------------- minutes

BERLIN_DAY = [
    # 2024-10-27 is Berlin's 25-hour day (fall back): local midnight 22:00 UTC before it,
    # 23:00 UTC after it
    facts(utc(2024, 10, 26, 21, 59), 600.0),  # 23:59 on the 26th
    facts(utc(2024, 10, 26, 22, 0), 1200.0),  # 00:00 on the 27th
    facts(utc(2024, 10, 27, 22, 30), 300.0),  # 23:30 on the 27th
    facts(utc(2024, 10, 27, 23, 0), 1800.0),  # 00:00 on the 28th
    facts(utc(2024, 10, 30, 12, 0), 60.0),
]


def test_minutes_by_day_in_the_users_zone_with_zeros() -> None:
    got = minutes_by_day(BERLIN_DAY, "Europe/Berlin", date(2024, 10, 25), date(2024, 10, 29))
    assert got == [
        (date(2024, 10, 25), 0.0),
        (date(2024, 10, 26), 10.0),
        (date(2024, 10, 27), 25.0),
        (date(2024, 10, 28), 30.0),
        (date(2024, 10, 29), 0.0),
    ]
    # the same sessions in UTC fall on other days
    got_utc = minutes_by_day(BERLIN_DAY, "UTC", date(2024, 10, 26), date(2024, 10, 27))
    assert got_utc == [(date(2024, 10, 26), 30.0), (date(2024, 10, 27), 35.0)]


def test_minutes_by_day_single_day_and_bad_ranges() -> None:
    assert minutes_by_day([], "UTC", date(2024, 1, 1), date(2024, 1, 1)) == [
        (date(2024, 1, 1), 0.0)
    ]
    with pytest.raises(UnprocessableError, match="before"):
        minutes_by_day([], "UTC", date(2024, 1, 2), date(2024, 1, 1))
    with pytest.raises(UnprocessableError, match="spans"):
        minutes_by_day([], "UTC", date(2000, 1, 1), date(2024, 1, 1))
    with pytest.raises(UnprocessableError, match="time zone"):
        minutes_by_day([], "Nowhere/Land", date(2024, 1, 1), date(2024, 1, 1))


def test_minutes_by_week_uses_local_iso_weeks() -> None:
    # Sunday 2024-10-27 23:30 Berlin is in the week of Monday 21st; 00:00 on the 28th is
    # the next week (in UTC it would be Sunday 23:00, the earlier week)
    got = minutes_by_week(BERLIN_DAY, "Europe/Berlin", date(2024, 10, 23), date(2024, 10, 29))
    assert got == [(date(2024, 10, 21), 35.0), (date(2024, 10, 28), 31.0)]
    got_utc = minutes_by_week(BERLIN_DAY, "UTC", date(2024, 10, 23), date(2024, 10, 29))
    assert got_utc == [(date(2024, 10, 21), 65.0), (date(2024, 10, 28), 1.0)]
    empty = minutes_by_week([], "UTC", date(2024, 10, 21), date(2024, 11, 10))
    assert empty == [(date(2024, 10, 21), 0.0), (date(2024, 10, 28), 0.0),
                     (date(2024, 11, 4), 0.0)]  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 60 * 24 * 40), st.floats(0, 7200, allow_nan=False)),
        max_size=40,
    ),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu"]),
)
def test_minutes_by_day_and_week_conserve_minutes(
    sessions: list[tuple[int, float]], tz: str
) -> None:
    t0 = utc(2024, 3, 1)
    items = [facts(t0 + timedelta(minutes=m), s) for m, s in sessions]
    first, last = date(2024, 2, 28), date(2024, 4, 12)
    per_day = minutes_by_day(items, tz, first, last)
    per_week = minutes_by_week(items, tz, first, last)
    total = sum(s for _, s in sessions) / 60.0
    assert len(per_day) == (last - first).days + 1
    assert math.isclose(sum(m for _, m in per_day), total, abs_tol=1e-6)
    assert math.isclose(sum(m for _, m in per_week), total, abs_tol=1e-6)
    assert all(d.weekday() == 0 for d, _ in per_week)


# ------------------------------------------------------------------------------ trends


def test_weekly_trend_means_per_week_with_gaps() -> None:
    today = date(2024, 5, 15)  # Wednesday; weeks start Apr 22, Apr 29, May 6, May 13
    items = [
        facts(utc(2024, 4, 22, 9), accuracy_pct=60.0, steadiness_ms=20.0),
        facts(utc(2024, 4, 28, 9), accuracy_pct=70.0),
        facts(utc(2024, 5, 13, 9), accuracy_pct=90.0, steadiness_ms=10.0),
        facts(utc(2024, 5, 14, 9)),  # no values
        facts(utc(2024, 4, 1, 9), accuracy_pct=10.0),  # before the window
    ]
    acc = weekly_trend(items, "UTC", 4, today)
    assert acc == [
        (date(2024, 4, 22), 65.0),
        (date(2024, 4, 29), None),
        (date(2024, 5, 6), None),
        (date(2024, 5, 13), 90.0),
    ]
    steady = weekly_trend(items, "UTC", 2, today, value="steadiness_ms")
    assert steady == [(date(2024, 5, 6), None), (date(2024, 5, 13), 10.0)]
    # slope: from 65 to 90 over 3 weeks
    assert slope_per_week(acc) == pytest.approx(25.0 / 3.0)


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([], None),
        ([(date(2024, 1, 1), 5.0)], None),
        ([(date(2024, 1, 1), 5.0), (date(2024, 1, 8), None)], None),
        ([(date(2024, 1, 1), 5.0), (date(2024, 1, 8), 7.0)], 2.0),
        ([(date(2024, 1, 1), 5.0), (date(2024, 1, 15), 5.0)], 0.0),
        ([(date(2024, 1, 1), 1.0), (date(2024, 1, 8), 2.0), (date(2024, 1, 15), 6.0)], 2.5),
        ([(date(2024, 1, 1), 4.0), (date(2024, 1, 1), 6.0)], None),
    ],
)
def test_slope_per_week(points: list[tuple[date, float | None]], expected: float | None) -> None:
    got = slope_per_week(points)
    assert got == (None if expected is None else pytest.approx(expected))


def test_weekly_trend_rejects_bad_arguments() -> None:
    with pytest.raises(UnprocessableError, match="weeks"):
        weekly_trend([], "UTC", 0, date(2024, 1, 1))
    with pytest.raises(UnprocessableError, match="value"):
        weekly_trend([], "UTC", 4, date(2024, 1, 1), value="points")  # type: ignore[arg-type]


# ------------------------------------------------------------------------- clean tempo


def test_clean_tempo_history() -> None:
    items = [
        facts(utc(2024, 5, 1, 10), accuracy_pct=95.0, tempo_bpm_played=80.0, piece_ids=(PIECE,)),
        # not clean (89.9 %), faster
        facts(utc(2024, 5, 2, 10), accuracy_pct=89.9, tempo_bpm_played=120.0, piece_ids=(PIECE,)),
        # clean, slower: the best so far stays
        facts(utc(2024, 5, 3, 10), accuracy_pct=92.0, tempo_bpm_played=70.0, piece_ids=(PIECE,)),
        # clean, played tempo unknown: the target counts
        facts(utc(2024, 5, 4, 10), accuracy_pct=90.0, target_bpm=90.0, piece_ids=(PIECE, OTHER)),
        # another piece only
        facts(utc(2024, 5, 5, 10), accuracy_pct=99.0, tempo_bpm_played=200.0, piece_ids=(OTHER,)),
        # two clean sessions on one day: one point, the day's best
        facts(utc(2024, 5, 6, 8), accuracy_pct=91.0, tempo_bpm_played=100.0, piece_ids=(PIECE,)),
        facts(utc(2024, 5, 6, 9), accuracy_pct=91.0, tempo_bpm_played=96.0, piece_ids=(PIECE,)),
        # clean without any tempo: skipped
        facts(utc(2024, 5, 7, 9), accuracy_pct=99.0, piece_ids=(PIECE,)),
    ]  # fmt: skip
    assert clean_tempo_history(items, PIECE) == [
        (date(2024, 5, 1), 80.0),
        (date(2024, 5, 3), 80.0),
        (date(2024, 5, 4), 90.0),
        (date(2024, 5, 6), 100.0),
    ]
    assert clean_tempo_history(items, PIECE, threshold_pct=95.0) == [(date(2024, 5, 1), 80.0)]
    assert clean_tempo_history(items, OTHER) == [(date(2024, 5, 4), 90.0),
                                                 (date(2024, 5, 5), 200.0)]  # fmt: skip
    # a session at 23:00 UTC is the next day in Berlin
    late = [facts(utc(2024, 5, 1, 23), accuracy_pct=95.0, tempo_bpm_played=60.0,
                  piece_ids=(PIECE,))]  # fmt: skip
    assert clean_tempo_history(late, PIECE, tz_name="Europe/Berlin") == [(date(2024, 5, 2), 60.0)]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 60 * 24 * 30), st.floats(0, 100), st.floats(20, 300)),
        max_size=30,
    )
)
def test_clean_tempo_history_is_monotone(sessions: list[tuple[int, float, float]]) -> None:
    t0 = utc(2024, 1, 1)
    items = [
        facts(t0 + timedelta(minutes=m), accuracy_pct=a, tempo_bpm_played=b, piece_ids=(PIECE,))
        for m, a, b in sessions
    ]
    history = clean_tempo_history(items, PIECE)
    days = [d for d, _ in history]
    tempos = [b for _, b in history]
    assert days == sorted(set(days))
    assert tempos == sorted(tempos)
    clean = [b for _, a, b in sessions if a >= 90.0]
    assert (tempos[-1] if tempos else None) == (max(clean) if clean else None)


# ---------------------------------------------------------------------------- heat map


def test_bar_beat_heatmap_known_answer() -> None:
    # 120 BPM: a beat every 0.5 s; eighths (subdivision 2): a step every 0.25 s; 3/4 time
    notes = [
        (1.005, 5.0),  # grid 1.0 -> step 4 -> beat 2 -> bar 1 beat 3
        (1.27, 20.0),  # grid 1.25 -> step 5 -> still beat 2 (the "and") -> bar 1 beat 3
        (1.47, -30.0),  # grid 1.5 -> step 6 -> beat 3 -> bar 2 beat 1
        (0.04, 40.0),  # grid 0.0 -> bar 1 beat 1
        (3.0, 0.0),  # step 12 -> beat 6 -> bar 3 beat 1
        (-0.5, 0.0),  # a pick-up beat before the grid start: bar 0 beat 3
    ]
    cells = bar_beat_heatmap(
        notes, grid_start_s=0.0, target_bpm=120.0, subdivision=2, beats_per_bar=3
    )
    assert cells == [
        Cell(0, 3, 1, 0.0, 0.0, 0.0),
        Cell(1, 1, 1, 40.0, 40.0, 100.0),
        Cell(1, 3, 2, 12.5, 12.5, 0.0),
        Cell(2, 1, 1, 30.0, -30.0, 100.0),
        Cell(3, 1, 1, 0.0, 0.0, 0.0),
    ]


@pytest.mark.parametrize(("dev", "off"), [(25.0, 0.0), (-25.0, 0.0), (25.01, 100.0)])
def test_heatmap_tolerance_edge(dev: float, off: float) -> None:
    [cell] = bar_beat_heatmap([(10.0 + dev / 1000, dev)], grid_start_s=10.0, target_bpm=60.0,
                              subdivision=1)  # fmt: skip
    assert (cell.bar, cell.beat, cell.off_pct) == (1, 1, off)


def test_heatmap_absorbs_a_latency_below_half_a_step() -> None:
    # deviations measured after removing 40 ms latency: the times are 40 ms late
    notes = [(k * 0.5 + 0.040 + 0.003, 3.0) for k in range(8)]
    cells = bar_beat_heatmap(notes, grid_start_s=0.0, target_bpm=120.0, subdivision=1)
    assert [(c.bar, c.beat, c.n) for c in cells] == [
        (b, k, 1) for b in (1, 2) for k in (1, 2, 3, 4)
    ]


@pytest.mark.parametrize(
    ("kw", "name"),
    [({"target_bpm": 0.0}, "target_bpm"), ({"subdivision": 0}, "subdivision"),
     ({"beats_per_bar": 33}, "beats_per_bar"), ({"tolerance_ms": 0.0}, "tolerance_ms"),
     ({"grid_start_s": math.nan}, "grid_start_s")],
)  # fmt: skip
def test_heatmap_rejects_bad_parameters(kw: dict[str, Any], name: str) -> None:
    args: dict[str, Any] = {"grid_start_s": 0.0, "target_bpm": 100.0, "subdivision": 1}
    args.update(kw)
    with pytest.raises(UnprocessableError, match=name):
        bar_beat_heatmap([(0.0, 0.0)], **args)


notes_strategy = st.lists(
    st.tuples(st.floats(0, 30, allow_nan=False), st.floats(-100, 100, allow_nan=False)),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(notes_strategy, max_size=4))
def test_merge_equals_heatmap_of_all_notes(sessions: list[list[tuple[float, float]]]) -> None:
    kw: dict[str, Any] = {"grid_start_s": 0.0, "target_bpm": 90.0, "subdivision": 2}
    merged = merge_heatmaps([bar_beat_heatmap(s, **kw) for s in sessions])
    together = bar_beat_heatmap([n for s in sessions for n in s], **kw)
    assert [(c.bar, c.beat, c.n) for c in merged] == [(c.bar, c.beat, c.n) for c in together]
    for a, b in zip(merged, together, strict=True):
        assert a.mean_abs_dev_ms == pytest.approx(b.mean_abs_dev_ms)
        assert a.mean_dev_ms == pytest.approx(b.mean_dev_ms, abs=1e-9)
        assert a.off_pct == pytest.approx(b.off_pct)
    assert sum(c.n for c in merged) == sum(len(s) for s in sessions)


def test_deviation_by_beat_weights_by_n() -> None:
    cells = [
        Cell(1, 1, 3, 10.0, 10.0, 0.0),
        Cell(2, 1, 1, 30.0, -30.0, 100.0),
        Cell(1, 2, 2, 5.0, -5.0, 50.0),
    ]
    assert deviation_by_beat(cells) == [
        BeatSummary(1, 4, 15.0, 0.0, 25.0),
        BeatSummary(2, 2, 5.0, -5.0, 50.0),
    ]
    assert deviation_by_beat([]) == []
    assert merge_heatmaps([]) == []
