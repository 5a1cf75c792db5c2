"""Pure progress rules: the per-session facts, minutes per local day and week, weekly trends,
the clean-tempo history of a piece, and bar/beat timing heat maps.

Everything here is a function of its arguments: no database, no clock, no globals that
change. Datetimes must be time-zone aware (naive ones are refused); day and week boundaries
are those of the user's IANA time zone (``zoneinfo``). Invalid input raises
:class:`api.errors.UnprocessableError` (HTTP 422) with a message naming the value, so a
router that forwards user input never turns it into a 500.

Conventions
-----------
* A session belongs entirely to the local day (and ISO week) in which it *started*; a
  session across midnight is not split.
* ``minutes`` are ``duration_s / 60`` (floats, not rounded).
* Slow practice is ``mode == "slow"`` or a played tempo below the target (the engine's test,
  ignoring floating-point rounding); meditation is a target below 60 BPM.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from api.errors import UnprocessableError

__all__ = [
    "MEDITATION_BELOW_BPM",
    "MODES",
    "SOURCES",
    "BeatSummary",
    "Cell",
    "Mode",
    "SessionFacts",
    "Source",
    "SourceNumbers",
    "TrendValue",
    "bar_beat_heatmap",
    "clean_tempo_history",
    "deviation_by_beat",
    "is_meditation",
    "is_slow_practice",
    "load_zone",
    "local_day",
    "merge_heatmaps",
    "minutes_by_day",
    "minutes_by_week",
    "played_slower",
    "require_aware",
    "slope_per_week",
    "week_monday",
    "weekly_trend",
]

Mode = Literal["normal", "slow", "performance"]
Source = Literal["manual", "stream", "recording"]
TrendValue = Literal["accuracy_pct", "steadiness_ms"]

MODES: Final = ("normal", "slow", "performance")
SOURCES: Final = ("manual", "stream", "recording")
MEDITATION_BELOW_BPM: Final = 60.0
"""A target strictly below this tempo is meditation practice (as in the engine)."""

MAX_SPAN_DAYS: Final = 3700
"""Longest day range (about ten years) the per-day and per-week series accept."""

_MAX_SUBDIVISION: Final = 16
# A note exactly on the tolerance edge is on time despite rounding (the engine's slack).
_TOLERANCE_SLACK_MS: Final = 1e-6


# ------------------------------------------------------------------------------ inputs


def _finite(
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnprocessableError(f"{name} must be a number; got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise UnprocessableError(f"{name} must be finite; got {value!r}")
    if low is not None and (v <= low if low_open else v < low):
        op = ">" if low_open else ">="
        raise UnprocessableError(f"{name} must be {op} {low:g}; got {value!r}")
    if high is not None and v > high:
        raise UnprocessableError(f"{name} must be <= {high:g}; got {value!r}")
    return v


def _optional(
    name: str,
    value: float | None,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    if value is not None:
        _finite(name, value, low=low, high=high, low_open=low_open)


def require_aware(name: str, ts: datetime) -> datetime:
    """Return ``ts`` if it is an aware datetime, else raise.

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    ts : datetime
        The value to check.

    Returns
    -------
    datetime
        ``ts`` unchanged.
    """
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise UnprocessableError(f"{name} must be a time-zone aware datetime; got {ts!r}")
    return ts


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """One practice session, already reduced to its best source.

    Attributes
    ----------
    session_id, student_id : UUID
        The session and its student.
    started_at : datetime
        Start, time-zone aware.
    duration_s : float
        Practised (for stream/recording: analysed) duration in seconds, >= 0.
    mode : {"normal", "slow", "performance"}
        The mode the student chose.
    target_bpm : float or None
        Target tempo in BPM, > 0.
    accuracy_pct : float or None
        Share of notes within the tolerance, in percent (0-100).
    tempo_bpm_played : float or None
        Tempo actually played, in BPM, > 0.
    steadiness_ms : float or None
        Standard deviation of the timing deviations in ms, >= 0.
    drift_bpm_per_min : float or None
        Tempo drift in BPM per minute (positive = speeding up, i.e. rushing).
    source : {"manual", "stream", "recording"}
        Where the numbers come from.
    engine_points : int or None
        Points the engine computed for the take (stream/recording), >= 0.
    piece_ids : tuple of UUID
        Pieces practised in the session.
    """

    session_id: UUID
    student_id: UUID
    started_at: datetime
    duration_s: float
    mode: Mode = "normal"
    target_bpm: float | None = None
    accuracy_pct: float | None = None
    tempo_bpm_played: float | None = None
    steadiness_ms: float | None = None
    drift_bpm_per_min: float | None = None
    source: Source = "manual"
    engine_points: int | None = None
    piece_ids: tuple[UUID, ...] = ()

    def __post_init__(self) -> None:
        require_aware("started_at", self.started_at)
        _finite("duration_s", self.duration_s, low=0.0)
        if self.mode not in MODES:
            raise UnprocessableError(f"mode must be one of {MODES}; got {self.mode!r}")
        if self.source not in SOURCES:
            raise UnprocessableError(f"source must be one of {SOURCES}; got {self.source!r}")
        _optional("target_bpm", self.target_bpm, low=0.0, low_open=True)
        _optional("accuracy_pct", self.accuracy_pct, low=0.0, high=100.0)
        _optional("tempo_bpm_played", self.tempo_bpm_played, low=0.0, low_open=True)
        _optional("steadiness_ms", self.steadiness_ms, low=0.0)
        _optional("drift_bpm_per_min", self.drift_bpm_per_min)
        if self.engine_points is not None and (
            isinstance(self.engine_points, bool)
            or not isinstance(self.engine_points, int)
            or self.engine_points < 0
        ):
            raise UnprocessableError(
                f"engine_points must be an integer >= 0; got {self.engine_points!r}"
            )

    @property
    def minutes(self) -> float:
        """Duration in minutes."""
        return self.duration_s / 60.0


@dataclass(frozen=True, slots=True)
class SourceNumbers:
    """The numbers one source reported for a session (before choosing the best source).

    Attributes
    ----------
    source : {"manual", "stream", "recording"}
        The source.
    minutes : float
        Practised or analysed minutes.
    accuracy_pct, tempo_bpm_played, steadiness_ms, drift_bpm_per_min : float or None
        As in :class:`SessionFacts`.
    points : int or None
        Points the engine computed (stream/recording only).
    """

    source: Source
    minutes: float
    accuracy_pct: float | None = None
    tempo_bpm_played: float | None = None
    steadiness_ms: float | None = None
    drift_bpm_per_min: float | None = None
    points: int | None = None


# ---------------------------------------------------------------------- predicates


def played_slower(played_bpm: float | None, target_bpm: float | None) -> bool:
    """Whether a take was played below its target (the engine's slow-practice test).

    Equal tempos up to floating-point rounding (relative 1e-9) are not slower.

    Parameters
    ----------
    played_bpm, target_bpm : float or None
        Played and target tempo in BPM.

    Returns
    -------
    bool
        False when either is unknown.
    """
    if played_bpm is None or target_bpm is None:
        return False
    return played_bpm < target_bpm and not math.isclose(played_bpm, target_bpm, rel_tol=1e-9)


def is_slow_practice(facts: SessionFacts) -> bool:
    """Slow practice: mode ``slow`` or a played tempo below the target."""
    return facts.mode == "slow" or played_slower(facts.tempo_bpm_played, facts.target_bpm)


def is_meditation(facts: SessionFacts) -> bool:
    """Meditation practice: a target tempo strictly below 60 BPM."""
    return facts.target_bpm is not None and facts.target_bpm < MEDITATION_BELOW_BPM


# ----------------------------------------------------------------------- local time


def load_zone(tz_name: str) -> ZoneInfo:
    """The IANA time zone ``tz_name``.

    Parameters
    ----------
    tz_name : str
        E.g. ``"Europe/Berlin"``.

    Returns
    -------
    ZoneInfo
        The zone (cached by :mod:`zoneinfo`).

    Raises
    ------
    UnprocessableError
        Unknown or malformed names.
    """
    if not isinstance(tz_name, str) or not tz_name or len(tz_name) > 64:
        raise UnprocessableError(f"unknown time zone {tz_name!r}")
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise UnprocessableError(f"unknown time zone {tz_name!r}") from exc


def local_day(ts: datetime, tz_name: str) -> date:
    """The calendar day of the aware instant ``ts`` in the time zone ``tz_name``.

    Parameters
    ----------
    ts : datetime
        An aware datetime.
    tz_name : str
        IANA time zone name.

    Returns
    -------
    date
        The local date.
    """
    return require_aware("ts", ts).astimezone(load_zone(tz_name)).date()


def week_monday(day: date) -> date:
    """The Monday of the ISO week containing ``day``."""
    return day - timedelta(days=day.weekday())


def _check_range(start_day: date, end_day: date) -> int:
    if end_day < start_day:
        raise UnprocessableError(f"end_day {end_day} is before start_day {start_day}")
    span = (end_day - start_day).days + 1
    if span > MAX_SPAN_DAYS:
        raise UnprocessableError(
            f"the range {start_day}..{end_day} spans {span} days; at most {MAX_SPAN_DAYS}"
        )
    return span


def _minutes_per_local_day(facts: Iterable[SessionFacts], tz_name: str) -> dict[date, float]:
    zone = load_zone(tz_name)
    out: dict[date, float] = defaultdict(float)
    for f in facts:
        out[f.started_at.astimezone(zone).date()] += f.minutes
    return out


# ---------------------------------------------------------------------------- minutes


def minutes_by_day(
    facts: Iterable[SessionFacts], tz_name: str, start_day: date, end_day: date
) -> list[tuple[date, float]]:
    """Practice minutes per local day, every day of ``start_day..end_day`` (inclusive).

    Parameters
    ----------
    facts : iterable of SessionFacts
        Sessions (any order); those starting outside the range are ignored.
    tz_name : str
        The user's IANA time zone.
    start_day, end_day : date
        First and last local day, at most :data:`MAX_SPAN_DAYS` days.

    Returns
    -------
    list of (date, float)
        ``(day, minutes)`` in day order, zeros included.
    """
    span = _check_range(start_day, end_day)
    per_day = _minutes_per_local_day(facts, tz_name)
    days = [start_day + timedelta(days=i) for i in range(span)]
    return [(d, per_day.get(d, 0.0)) for d in days]


def minutes_by_week(
    facts: Iterable[SessionFacts], tz_name: str, start_day: date, end_day: date
) -> list[tuple[date, float]]:
    """Practice minutes per local ISO week (Monday to Sunday) for every week touching the range.

    The range is widened to whole weeks: the first week starts on the Monday on or before
    ``start_day``, the last ends on the Sunday on or after ``end_day``, and each week counts
    all of its days.

    Parameters
    ----------
    facts : iterable of SessionFacts
        Sessions (any order).
    tz_name : str
        The user's IANA time zone.
    start_day, end_day : date
        First and last local day.

    Returns
    -------
    list of (date, float)
        ``(monday, minutes)`` in week order, zeros included.
    """
    _check_range(start_day, end_day)
    first, last = week_monday(start_day), week_monday(end_day)
    per_week: dict[date, float] = defaultdict(float)
    for day, minutes in _minutes_per_local_day(facts, tz_name).items():
        per_week[week_monday(day)] += minutes
    n_weeks = (last - first).days // 7 + 1
    mondays = [first + timedelta(weeks=i) for i in range(n_weeks)]
    return [(m, per_week.get(m, 0.0)) for m in mondays]


# ----------------------------------------------------------------------------- trends


def weekly_trend(
    facts: Iterable[SessionFacts],
    tz_name: str,
    weeks: int,
    today: date,
    value: TrendValue = "accuracy_pct",
) -> list[tuple[date, float | None]]:
    """Mean of a per-session value per local ISO week, for the last ``weeks`` weeks.

    Each session with a known value counts once (not weighted by duration).

    Parameters
    ----------
    facts : iterable of SessionFacts
        Sessions (any order).
    tz_name : str
        The user's IANA time zone.
    weeks : int
        Number of weeks, 1-520, ending with the week that contains ``today``.
    today : date
        The user's local today.
    value : {"accuracy_pct", "steadiness_ms"}
        Which value to average (percent or ms).

    Returns
    -------
    list of (date, float or None)
        ``(monday, mean)`` oldest first; None for a week without a value.
    """
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not 1 <= weeks <= 520:
        raise UnprocessableError(f"weeks must be an integer in 1..520; got {weeks!r}")
    if value not in ("accuracy_pct", "steadiness_ms"):
        raise UnprocessableError(f"value must be accuracy_pct or steadiness_ms; got {value!r}")
    zone = load_zone(tz_name)
    last = week_monday(today)
    mondays = [last - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    sums: dict[date, list[float]] = defaultdict(list)
    for f in facts:
        v = f.accuracy_pct if value == "accuracy_pct" else f.steadiness_ms
        if v is not None:
            sums[week_monday(f.started_at.astimezone(zone).date())].append(v)
    return [(m, math.fsum(sums[m]) / len(sums[m]) if sums.get(m) else None) for m in mondays]


def slope_per_week(points: Sequence[tuple[date, float | None]]) -> float | None:
    """Least-squares slope of a weekly series, in units per week.

    Parameters
    ----------
    points : sequence of (date, float or None)
        E.g. the output of :func:`weekly_trend`; None values are skipped.

    Returns
    -------
    float or None
        The slope (value units per 7 days); None with fewer than two known values on
        different dates.
    """
    known = [(d, y) for d, y in points if y is not None]
    if len(known) < 2:
        return None
    origin = known[0][0]
    xs = [(d - origin).days / 7.0 for d, _ in known]
    ys = [y for _, y in known]
    mx, my = math.fsum(xs) / len(xs), math.fsum(ys) / len(ys)
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    if sxx == 0.0:
        return None
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / sxx


# ------------------------------------------------------------------------ clean tempo


def clean_tempo_history(
    facts: Iterable[SessionFacts],
    piece_id: UUID,
    threshold_pct: float = 90.0,
    *,
    tz_name: str = "UTC",
) -> list[tuple[date, float]]:
    """The best tempo played cleanly on a piece so far, per local day with a clean session.

    A session is clean when it includes ``piece_id`` and ``accuracy_pct >= threshold_pct``;
    its tempo is ``tempo_bpm_played``, else ``target_bpm`` when the played tempo is unknown
    (a clean session with neither is skipped).

    Parameters
    ----------
    facts : iterable of SessionFacts
        Sessions (any order).
    piece_id : UUID
        The piece.
    threshold_pct : float
        Accuracy in percent from which a take is clean (0-100).
    tz_name : str
        Time zone for the dates (default UTC).

    Returns
    -------
    list of (date, float)
        ``(day, best_bpm_so_far)`` in day order, one per day with a clean session; the
        tempo (BPM) never decreases.
    """
    threshold = _finite("threshold_pct", threshold_pct, low=0.0, high=100.0)
    zone = load_zone(tz_name)
    clean: list[tuple[datetime, float]] = []
    for f in facts:
        if piece_id not in f.piece_ids or f.accuracy_pct is None or f.accuracy_pct < threshold:
            continue
        tempo = f.tempo_bpm_played if f.tempo_bpm_played is not None else f.target_bpm
        if tempo is not None:
            clean.append((f.started_at, tempo))
    clean.sort(key=lambda item: item[0])
    out: list[tuple[date, float]] = []
    best = -math.inf
    for ts, tempo in clean:
        best = max(best, tempo)
        day = ts.astimezone(zone).date()
        if out and out[-1][0] == day:
            out[-1] = (day, best)
        else:
            out.append((day, best))
    return out


# ----------------------------------------------------------------------------- heat map


@dataclass(frozen=True, slots=True)
class Cell:
    """Timing of the notes on one beat of one bar.

    Attributes
    ----------
    bar : int
        1-based bar number (0 and below: notes before the grid start, a pick-up).
    beat : int
        1-based beat of the bar.
    n : int
        Number of notes, >= 1.
    mean_abs_dev_ms : float
        Mean absolute deviation from the grid, ms.
    mean_dev_ms : float
        Mean signed deviation, ms (positive = late).
    off_pct : float
        Share of notes outside the tolerance, percent.
    """

    bar: int
    beat: int
    n: int
    mean_abs_dev_ms: float
    mean_dev_ms: float
    off_pct: float


@dataclass(frozen=True, slots=True)
class BeatSummary:
    """Timing of all notes on one beat of the bar, over all bars.

    Attributes
    ----------
    beat : int
        1-based beat of the bar.
    n : int
        Number of notes.
    mean_abs_dev_ms, mean_dev_ms : float
        Mean absolute and signed deviation, ms (positive = late).
    off_pct : float
        Share of notes outside the tolerance, percent.
    """

    beat: int
    n: int
    mean_abs_dev_ms: float
    mean_dev_ms: float
    off_pct: float


def bar_beat_heatmap(
    notes: Sequence[tuple[float, float]],
    *,
    grid_start_s: float,
    target_bpm: float,
    subdivision: int,
    beats_per_bar: int = 4,
    tolerance_ms: float = 25.0,
) -> list[Cell]:
    """Summarise per-note timing deviations per (bar, beat).

    A note's grid line is ``time_s - deviation_ms / 1000`` (the engine's deviation is
    measured from the nearest grid line, positive = late); its index ``k`` on the grid of
    ``subdivision`` steps per beat is that time's distance from ``grid_start_s`` rounded to
    whole steps (which also absorbs an input latency smaller than half a step). The beat
    counted from the start is ``k // subdivision``, so off-beat notes belong to the beat they
    subdivide.

    Parameters
    ----------
    notes : sequence of (float, float)
        ``(time_s, deviation_ms)`` per note, seconds from the start of the take and ms.
    grid_start_s : float
        Time of the first beat (bar 1, beat 1), seconds.
    target_bpm : float
        Target tempo, BPM (0 < target <= 1000).
    subdivision : int
        Grid steps per beat, 1-16.
    beats_per_bar : int
        Beats per bar, 1-32.
    tolerance_ms : float
        A note further than this from its grid line is off, ms (> 0).

    Returns
    -------
    list of Cell
        One cell per (bar, beat) with notes, ordered by bar then beat.
    """
    start = _finite("grid_start_s", grid_start_s)
    target = _finite("target_bpm", target_bpm, low=0.0, high=1000.0, low_open=True)
    tolerance = _finite("tolerance_ms", tolerance_ms, low=0.0, low_open=True)
    for name, v, hi in (
        ("subdivision", subdivision, _MAX_SUBDIVISION),
        ("beats_per_bar", beats_per_bar, 32),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
            raise UnprocessableError(f"{name} must be an integer in 1..{hi}; got {v!r}")
    step_s = 60.0 / target / subdivision
    groups: dict[tuple[int, int], list[float]] = defaultdict(list)
    for i, note in enumerate(notes):
        t = _finite(f"notes[{i}].time_s", note[0])
        dev = _finite(f"notes[{i}].deviation_ms", note[1])
        k = round((t - dev / 1000.0 - start) / step_s)
        beat_index = k // subdivision
        bar, beat = divmod(beat_index, beats_per_bar)
        groups[(bar + 1, beat + 1)].append(dev)
    cells = []
    for (bar, beat), devs in sorted(groups.items()):
        n = len(devs)
        off = sum(1 for d in devs if abs(d) > tolerance + _TOLERANCE_SLACK_MS)
        cells.append(
            Cell(
                bar=bar,
                beat=beat,
                n=n,
                mean_abs_dev_ms=math.fsum(abs(d) for d in devs) / n,
                mean_dev_ms=math.fsum(devs) / n,
                off_pct=100.0 * off / n,
            )
        )
    return cells


def _combine(cells: Sequence[Cell]) -> tuple[int, float, float, float]:
    """``(n, mean_abs_dev_ms, mean_dev_ms, off_pct)`` of cells together, weighted by ``n``."""
    n = sum(c.n for c in cells)
    if n == 0:
        return 0, 0.0, 0.0, 0.0
    return (
        n,
        math.fsum(c.n * c.mean_abs_dev_ms for c in cells) / n,
        math.fsum(c.n * c.mean_dev_ms for c in cells) / n,
        math.fsum(c.n * c.off_pct for c in cells) / n,
    )


def merge_heatmaps(cells_per_session: Iterable[Sequence[Cell]]) -> list[Cell]:
    """Merge heat maps (e.g. of several sessions of a piece), weighting each cell by its ``n``.

    Parameters
    ----------
    cells_per_session : iterable of sequences of Cell
        Heat maps to merge.

    Returns
    -------
    list of Cell
        One cell per (bar, beat) present anywhere, ordered by bar then beat; the merge equals
        the heat map of all notes together.
    """
    groups: dict[tuple[int, int], list[Cell]] = defaultdict(list)
    for cells in cells_per_session:
        for c in cells:
            groups[(c.bar, c.beat)].append(c)
    merged = []
    for (bar, beat), group in sorted(groups.items()):
        n, abs_dev, dev, off = _combine(group)
        if n:
            merged.append(Cell(bar, beat, n, abs_dev, dev, off))
    return merged


def deviation_by_beat(cells: Iterable[Cell]) -> list[BeatSummary]:
    """Summarise a heat map per beat of the bar (all bars together, weighted by ``n``).

    Parameters
    ----------
    cells : iterable of Cell
        A heat map (one session's or merged).

    Returns
    -------
    list of BeatSummary
        One per beat with notes, in beat order.
    """
    groups: dict[int, list[Cell]] = defaultdict(list)
    for c in cells:
        groups[c.beat].append(c)
    out = []
    for beat, group in sorted(groups.items()):
        n, abs_dev, dev, off = _combine(group)
        if n:
            out.append(BeatSummary(beat, n, abs_dev, dev, off))
    return out
