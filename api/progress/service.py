"""Progress reads: a student's minutes, trends, clean tempo, timing heat map, charts and
recommendations, computed by the pure rules over :func:`~api.progress.facts.load_facts`.

Every read first asks :func:`~api.teaching.access.ensure_can_view_student` (403), then finds
the student (404 when the id is not an active student; a caller without access never learns
which ids exist), then checks the ``piece_id`` / ``tag_id`` filters (404 for an id the
student cannot use: unknown, another user's own tag, or a ``piece_id`` that is not a piece).
Queries per request are bounded: access (1-3), the student (1), the filters (1-2), the
facts (3 per 500 sessions), the timing cells (1 per 500 sessions).
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Principal
from api.errors import NotFoundError, UnprocessableError
from api.gamification.rules import compute_streak, practice_days
from api.practice.models import PracticeSegment, PracticeSession, SessionTag, Tag
from api.progress import charts
from api.progress.factcache import FactsVersion
from api.progress.facts import active_student, load_facts, load_timing_cells
from api.progress.recommend import recommend
from api.progress.rules import (
    Cell,
    SessionFacts,
    TrendValue,
    clean_tempo_history,
    deviation_by_beat,
    load_zone,
    merge_heatmaps,
    minutes_by_day,
    minutes_by_week,
    slope_per_week,
    week_monday,
    weekly_trend,
)
from api.progress.schemas import (
    BeatResponse,
    CellResponse,
    CleanTempoPoint,
    CleanTempoResponse,
    DayMinutes,
    HeatmapResponse,
    ProgressResponse,
    ProgressTotals,
    RecommendationListResponse,
    RecommendationResponse,
    Trend,
    WeekMinutes,
    WeekValue,
)
from api.teaching.access import ensure_can_view_student

__all__ = [
    "CLEAN_THRESHOLD_PCT",
    "ChartKind",
    "Filters",
    "HeatmapValue",
    "chart_svg",
    "clean_tempo",
    "heatmap",
    "progress",
    "recommendations",
]

CLEAN_THRESHOLD_PCT = 90.0
ChartKind = Literal["minutes", "accuracy", "steadiness", "clean-tempo", "heatmap"]
HeatmapValue = charts.HeatmapValue


@dataclass(frozen=True, slots=True)
class Filters:
    """Optional filters: sessions with this piece (tag or segment) / with this tag."""

    piece_id: uuid.UUID | None = None
    tag_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class _Student:
    id: uuid.UUID
    tz_name: str
    zone: ZoneInfo
    version: FactsVersion


# --- shared steps --------------------------------------------------------------------------


async def _student(db: AsyncSession, viewer: Principal, student_id: uuid.UUID) -> _Student:
    await ensure_can_view_student(db, viewer, student_id)
    student = await active_student(db, student_id)
    if student is None:
        raise NotFoundError(f"student {student_id} does not exist")
    return _Student(student_id, student.timezone, load_zone(student.timezone), student.version)


async def _check_filters(db: AsyncSession, student: _Student, filters: Filters) -> None:
    """404 unless each filter names a tag the student can use (global or their own)."""
    wanted = [i for i in (filters.piece_id, filters.tag_id) if i is not None]
    if not wanted:
        return
    rows = (await db.execute(select(Tag.id, Tag.owner_id, Tag.kind)
                             .where(Tag.id.in_(wanted)))).all()
    found = {row.id: row for row in rows if row.owner_id in (None, student.id)}
    if filters.piece_id is not None:
        piece = found.get(filters.piece_id)
        if piece is None or piece.kind != "piece":
            raise NotFoundError(f"piece {filters.piece_id} does not exist")
    if filters.tag_id is not None and filters.tag_id not in found:
        raise NotFoundError(f"tag {filters.tag_id} does not exist")


async def _tagged_session_ids(db: AsyncSession, student: _Student, tag_id: uuid.UUID,
                              since: datetime | None) -> set[uuid.UUID]:
    stmt = (
        select(SessionTag.session_id)
        .join(PracticeSession, PracticeSession.id == SessionTag.session_id)
        .where(SessionTag.tag_id == tag_id, PracticeSession.student_id == student.id)
    )
    if since is not None:
        stmt = stmt.where(PracticeSession.started_at >= since)
    return set((await db.execute(stmt)).scalars())


async def _facts(db: AsyncSession, student: _Student, filters: Filters,
                 since: datetime | None) -> list[SessionFacts]:
    """The student's facts since ``since``, filtered by piece and tag (oldest first)."""
    await _check_filters(db, student, filters)
    facts = await load_facts(db, student.id, since=since, pieces=filters.piece_id is not None,
                             version=student.version)
    if filters.piece_id is not None:
        facts = [f for f in facts if filters.piece_id in f.piece_ids]
    if filters.tag_id is not None:
        tagged = await _tagged_session_ids(db, student, filters.tag_id, since)
        facts = [f for f in facts if f.session_id in tagged]
    return facts


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _today(now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date()


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UnprocessableError(f"{name} must be an integer in {low}..{high}; got {value!r}")


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


# --- progress ------------------------------------------------------------------------------


def _trend(facts: Sequence[SessionFacts], student: _Student, weeks: int, today: date,
           value: TrendValue) -> Trend:
    points = weekly_trend(facts, student.tz_name, weeks, today, value)
    counts: dict[date, int] = defaultdict(int)
    for f in facts:
        v = f.accuracy_pct if value == "accuracy_pct" else f.steadiness_ms
        if v is not None:
            counts[week_monday(f.started_at.astimezone(student.zone).date())] += 1
    slope = slope_per_week(points)
    return Trend(
        unit="pct" if value == "accuracy_pct" else "ms",
        points=[WeekValue(week_start=m, value=_round(v), sessions=counts.get(m, 0))
                for m, v in points],
        slope_per_week=_round(slope, 3),
    )


class _Window(NamedTuple):
    """What a progress read covers: the student, their local today, the first day of the
    ``days`` and the Monday of the ``weeks``, and the facts since the earlier of the two."""

    student: _Student
    today: date
    first_day: date
    first_monday: date
    facts: Sequence[SessionFacts]


async def _window(
    db: AsyncSession, viewer: Principal, student_id: uuid.UUID, *, days: int, weeks: int,
    filters: Filters, now: datetime,
) -> _Window:
    _check_int("days", days, 1, 366)
    _check_int("weeks", weeks, 1, 52)
    student = await _student(db, viewer, student_id)
    today = _today(now, student.zone)
    first_day = today - timedelta(days=days - 1)
    first_monday = week_monday(today) - timedelta(weeks=weeks - 1)
    since = _local_midnight(min(first_day, first_monday), student.zone)
    return _Window(student, today, first_day, first_monday,
                   await _facts(db, student, filters, since))


async def progress(
    db: AsyncSession, viewer: Principal, student_id: uuid.UUID, *, days: int, weeks: int,
    filters: Filters, now: datetime,
) -> ProgressResponse:
    """Daily and weekly minutes, weekly accuracy and steadiness trends, and totals."""
    student, today, first_day, first_monday, facts = await _window(
        db, viewer, student_id, days=days, weeks=weeks, filters=filters, now=now)
    daily = minutes_by_day(facts, student.tz_name, first_day, today)
    weekly = minutes_by_week(facts, student.tz_name, first_monday, today)
    in_window = [f for f in facts if f.started_at.astimezone(student.zone).date() >= first_day]
    accuracies = [f.accuracy_pct for f in in_window if f.accuracy_pct is not None]
    steadiness = [f.steadiness_ms for f in in_window if f.steadiness_ms is not None]
    return ProgressResponse(
        student_id=student.id,
        timezone=student.tz_name,
        today=today,
        days=days,
        weeks=weeks,
        piece_id=filters.piece_id,
        tag_id=filters.tag_id,
        daily_minutes=[DayMinutes(day=d, minutes=round(m, 2)) for d, m in daily],
        weekly_minutes=[WeekMinutes(week_start=d, minutes=round(m, 2)) for d, m in weekly],
        accuracy=_trend(facts, student, weeks, today, "accuracy_pct"),
        steadiness=_trend(facts, student, weeks, today, "steadiness_ms"),
        totals=ProgressTotals(
            sessions=len(in_window),
            minutes=round(math.fsum(f.minutes for f in in_window), 2),
            active_days=sum(1 for _d, m in daily if m > 0),
            accuracy_pct_mean=_round(_mean(accuracies)),
            steadiness_ms_mean=_round(_mean(steadiness)),
        ),
    )


# --- clean tempo ---------------------------------------------------------------------------


async def clean_tempo(
    db: AsyncSession, viewer: Principal, student_id: uuid.UUID, piece_id: uuid.UUID,
) -> CleanTempoResponse:
    """The best tempo played cleanly (accuracy >= 90 %) on a piece, per local day."""
    student = await _student(db, viewer, student_id)
    facts = await _facts(db, student, Filters(piece_id=piece_id), None)
    history = clean_tempo_history(facts, piece_id, CLEAN_THRESHOLD_PCT, tz_name=student.tz_name)
    best = history[-1][1] if history else None
    reached = next((d for d, bpm in history if bpm == best), None)
    return CleanTempoResponse(
        student_id=student.id,
        piece_id=piece_id,
        threshold_pct=CLEAN_THRESHOLD_PCT,
        history=[CleanTempoPoint(day=d, best_bpm=round(bpm, 2)) for d, bpm in history],
        current_best_bpm=_round(best),
        reached_on=reached,
    )


# --- heat map ------------------------------------------------------------------------------


async def _merged_cells(
    db: AsyncSession, viewer: Principal, student_id: uuid.UUID, *, days: int, filters: Filters,
    now: datetime,
) -> tuple[list[Cell], int]:
    _check_int("days", days, 1, 366)
    student = await _student(db, viewer, student_id)
    first_day = _today(now, student.zone) - timedelta(days=days - 1)
    facts = await _facts(db, student, filters, _local_midnight(first_day, student.zone))
    analysed = [f.session_id for f in facts if f.source != "manual"]
    takes = await load_timing_cells(db, analysed) if analysed else []
    return merge_heatmaps(takes), len(takes)


async def heatmap(
    db: AsyncSession, viewer: Principal, student_id: uuid.UUID, *, days: int, filters: Filters,
    now: datetime,
) -> HeatmapResponse:
    """The bar x beat timing cells of the student's analysed takes (streams, recordings) of
    the last ``days`` local days (filtered), merged, with the per-beat summary."""
    merged, takes = await _merged_cells(db, viewer, student_id, days=days, filters=filters,
                                        now=now)
    return HeatmapResponse(
        student_id=student_id,
        piece_id=filters.piece_id,
        tag_id=filters.tag_id,
        days=days,
        takes=takes,
        cells=[CellResponse(bar=c.bar, beat=c.beat, n=c.n,
                            mean_abs_dev_ms=round(c.mean_abs_dev_ms, 3),
                            mean_dev_ms=round(c.mean_dev_ms, 3), off_pct=round(c.off_pct, 2))
               for c in merged],
        beats=[BeatResponse(beat=b.beat, n=b.n, mean_abs_dev_ms=round(b.mean_abs_dev_ms, 3),
                            mean_dev_ms=round(b.mean_dev_ms, 3), off_pct=round(b.off_pct, 2))
               for b in deviation_by_beat(merged)],
    )


# --- charts --------------------------------------------------------------------------------


async def chart_svg(
    db: AsyncSession, viewer: Principal, student_id: uuid.UUID, kind: ChartKind, *, days: int,
    weeks: int, filters: Filters, value: HeatmapValue, now: datetime,
) -> str:
    """One SVG chart: ``minutes`` (daily bars), ``accuracy`` / ``steadiness`` (weekly lines),
    ``clean-tempo`` (needs ``piece_id``), ``heatmap`` (bar x beat, coloured by ``value``)."""
    if kind == "clean-tempo":
        if filters.piece_id is None:
            raise UnprocessableError("the clean-tempo chart needs a piece_id")
        tempo = await clean_tempo(db, viewer, student_id, filters.piece_id)
        return charts.line_chart_svg(
            [charts.Series("best clean tempo",
                           [(p.day.isoformat(), p.best_bpm) for p in tempo.history])],
            title=f"Highest clean tempo (accuracy >= {CLEAN_THRESHOLD_PCT:g} %)",
            y_label="BPM",
        )
    if kind == "heatmap":
        cells, _takes = await _merged_cells(db, viewer, student_id, days=days,
                                            filters=filters, now=now)
        return charts.heatmap_svg(cells, title=f"Timing by bar and beat, last {days} days",
                                  value=value)
    # only what the chart shows, by the rules of the progress read (not all of it)
    student, today, first_day, _monday, facts = await _window(
        db, viewer, student_id, days=days, weeks=weeks, filters=filters, now=now)
    if kind == "minutes":
        return charts.bar_chart_svg(
            [(d.strftime("%m-%d"), round(m, 2))
             for d, m in minutes_by_day(facts, student.tz_name, first_day, today)],
            title=f"Minutes practised per day, last {days} days", y_label="minutes",
        )
    trend = _trend(facts, student, weeks, today,
                   "accuracy_pct" if kind == "accuracy" else "steadiness_ms")
    name = "accuracy" if kind == "accuracy" else "steadiness"
    unit = "%" if kind == "accuracy" else "ms"
    return charts.line_chart_svg(
        [charts.Series(name, [(p.week_start.isoformat(), p.value) for p in trend.points])],
        title=f"Weekly {name}, last {weeks} weeks", y_label=f"{name} ({unit})",
    )


# --- recommendations -----------------------------------------------------------------------


async def _segment_accuracy(
    db: AsyncSession, student_id: uuid.UUID, since: datetime
) -> dict[tuple[uuid.UUID, int, int], float]:
    """Mean accuracy per (piece, first bar, last bar) of the student's segments with an
    accuracy, in active sessions started since ``since``."""
    rows = await db.execute(
        select(PracticeSegment.piece_id, PracticeSegment.start_bar, PracticeSegment.end_bar,
               PracticeSegment.accuracy_pct)
        .join(PracticeSession, PracticeSession.id == PracticeSegment.session_id)
        .where(PracticeSession.student_id == student_id, PracticeSession.status == "active",
               PracticeSession.started_at >= since, PracticeSegment.piece_id.is_not(None),
               PracticeSegment.accuracy_pct.is_not(None))
    )
    values: dict[tuple[uuid.UUID, int, int], list[float]] = defaultdict(list)
    for piece_id, start_bar, end_bar, accuracy in rows:
        if piece_id is not None and accuracy is not None:
            values[(piece_id, start_bar, end_bar)].append(float(accuracy))
    return {key: math.fsum(v) / len(v) for key, v in values.items()}


async def recommendations(
    db: AsyncSession, viewer: Principal, student_id: uuid.UUID, *, now: datetime,
) -> RecommendationListResponse:
    """Suggestions from the last seven local days; the streak counts the whole history."""
    student = await _student(db, viewer, student_id)
    today = _today(now, student.zone)
    facts = await load_facts(db, student.id, version=student.version)
    streak = compute_streak(practice_days(facts, student.tz_name), today)
    window_start = datetime.combine(today - timedelta(days=6), time(), tzinfo=student.zone)
    items = recommend(facts, now=now, tz_name=student.tz_name,
                      segment_accuracy=await _segment_accuracy(db, student.id, window_start),
                      streak_days=streak.current_days)
    return RecommendationListResponse(
        items=[RecommendationResponse(kind=r.kind, title=r.title, reason=r.reason,
                                      data=dict(r.data)) for r in items],
        today=today,
        streak_days=streak.current_days,
    )
