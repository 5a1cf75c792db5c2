"""Pure rules of the teaching domain: invite codes and the dashboard's weekly numbers.

Nothing here touches the database or the clock; callers pass ``now`` / ``today``.

Weeks are ISO weeks (Monday to Sunday) in the *student's* time zone: a session belongs to
the week of the local date on which it started, whole (a session over midnight on Sunday
counts in the week it began). Minutes come from ``ended_at - started_at`` (real elapsed
time, so a session across a DST change counts what was really played); open sessions count
0 minutes but their accuracy still counts.
"""

from __future__ import annotations

import secrets
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "InviteState",
    "SessionPoint",
    "WeekStat",
    "WeekTotals",
    "WeeklySummary",
    "invite_state",
    "least_squares_slope",
    "local_today",
    "make_invite_code",
    "normalize_code",
    "resolve_zone",
    "summary_of_weeks",
    "week_bounds",
    "week_start",
    "week_totals",
    "weekly_summary",
]

# No 0/O, 1/I/L: a code read aloud or typed from paper survives.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8

InviteState = Literal["usable", "revoked", "expired", "used_up"]

SessionPoint = tuple[datetime, datetime | None, float | None]
"""``(started_at, ended_at, accuracy_pct)`` of one session; times aware."""


def make_invite_code(length: int = CODE_LENGTH) -> str:
    """A random code of ``length`` characters from :data:`CODE_ALPHABET` (``secrets``)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalize_code(raw: str) -> str:
    """The stored form of a typed code: upper case, without spaces and dashes."""
    return "".join(ch for ch in raw.upper() if ch not in " -\t")


def invite_state(
    *, status: str, used_count: int, max_uses: int, expires_at: datetime, now: datetime
) -> InviteState:
    """Whether an invite can be redeemed at ``now``, and if not, why (revoked first)."""
    if status != "active":
        return "revoked"
    if expires_at <= now:
        return "expired"
    if used_count >= max_uses:
        return "used_up"
    return "usable"


def resolve_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; UTC when it is unknown (stored zones are validated on write,
    so this only guards against a zone database that lost a name)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_today(now: datetime, tz: str) -> date:
    """The calendar date in zone ``tz`` at the instant ``now`` (aware)."""
    return now.astimezone(resolve_zone(tz)).date()


def week_start(day: date) -> date:
    """The Monday of the ISO week containing ``day``."""
    return day - timedelta(days=day.weekday())


class WeekStat(NamedTuple):
    """One week of a student's practice.

    ``minutes``: practised minutes (rounded to 0.01); ``mean_accuracy_pct``: mean over the
    week's sessions that carry an accuracy (rounded to 0.01), None when none does. (A named
    tuple: a dashboard makes one per student and week, and a frozen dataclass costs three
    times as much to make.)
    """

    week_start: date
    minutes: float
    sessions: int
    mean_accuracy_pct: float | None


@dataclass(frozen=True, slots=True)
class WeeklySummary:
    """The last ``len(weeks)`` weeks, oldest first, and the accuracy slope (percentage
    points per week, least squares over the weeks that have a mean; None if fewer than 2)."""

    weeks: list[WeekStat]
    accuracy_slope_pct_per_week: float | None


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """The slope of the least-squares line through ``(x, y)`` points (None if < 2 or if all
    x are equal)."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return sxy / sxx


@dataclass(frozen=True, slots=True)
class WeekTotals:
    """What a week's sessions add up to: how many, their elapsed seconds (ended sessions),
    and the sum and count of the accuracies they carry."""

    sessions: int = 0
    seconds: float = 0.0
    accuracy_sum: float = 0.0
    accuracy_count: int = 0


def week_bounds(*, tz: str, weeks: int, today: date) -> list[datetime]:
    """The ``weeks + 1`` UTC instants that bound the ``weeks`` weeks ending with ``today``'s
    in zone ``tz``: the local midnights of their Mondays (the first instant of that date,
    also across a DST change) and of the Monday after. A session started at ``t`` belongs
    to week ``i`` when ``bounds[i] <= t < bounds[i + 1]``, the week of its local start date.

    Raises
    ------
    ValueError
        If ``weeks`` < 1.
    """
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, not {weeks}")
    return list(_week_bounds(tz, weeks, today))


@lru_cache(maxsize=4096)
def _week_bounds(tz: str, weeks: int, today: date) -> tuple[datetime, ...]:
    # remembered: a dashboard asks for the same zone's bounds for every student in it, and
    # each bound is a zone conversion
    zone = resolve_zone(tz)
    days = [*_week_starts(today, weeks), week_start(today) + timedelta(weeks=1)]
    return tuple(datetime.combine(day, time.min, zone).astimezone(UTC) for day in days)


def week_totals(sessions: Iterable[SessionPoint], bounds: Sequence[datetime]) -> list[WeekTotals]:
    """Each week's totals (:class:`WeekTotals`) of ``sessions``, the weeks bounded by
    ``bounds`` (:func:`week_bounds`); sessions outside them are ignored."""
    weeks = len(bounds) - 1
    seconds = [0.0] * weeks
    counts = [0] * weeks
    acc_sum = [0.0] * weeks
    acc_n = [0] * weeks
    # a binary search per session instead of a zone conversion
    for started_at, ended_at, accuracy_pct in sessions:
        i = bisect_right(bounds, started_at) - 1
        if not 0 <= i < weeks:
            continue
        counts[i] += 1
        if ended_at is not None:
            seconds[i] += max(0.0, (ended_at - started_at).total_seconds())
        if accuracy_pct is not None:
            acc_sum[i] += accuracy_pct
            acc_n[i] += 1
    return [WeekTotals(counts[i], seconds[i], acc_sum[i], acc_n[i]) for i in range(weeks)]


def summary_of_weeks(totals: Sequence[WeekTotals], *, today: date) -> WeeklySummary:
    """The :class:`WeeklySummary` of the weeks ending with ``today``'s, from their totals
    (oldest first)."""
    means = [t.accuracy_sum / t.accuracy_count if t.accuracy_count else None for t in totals]
    slope = least_squares_slope([(float(i), m) for i, m in enumerate(means) if m is not None])
    return WeeklySummary(
        weeks=[
            WeekStat(start, round(t.seconds / 60, 2), t.sessions,
                     None if mean is None else round(mean, 2))
            for start, t, mean in zip(_week_starts(today, len(totals)), totals, means,
                                      strict=True)
        ],
        accuracy_slope_pct_per_week=None if slope is None else round(slope, 3),
    )


@lru_cache(maxsize=1024)
def _week_starts(today: date, weeks: int) -> tuple[date, ...]:
    """The Mondays of the ``weeks`` weeks ending with ``today``'s, oldest first."""
    current = week_start(today)
    return tuple(current - timedelta(weeks=weeks - 1 - i) for i in range(weeks))


def weekly_summary(
    sessions: Iterable[SessionPoint], *, tz: str, weeks: int, today: date
) -> WeeklySummary:
    """Minutes and accuracy per ISO week of the ``weeks`` weeks ending with ``today``'s.

    Parameters
    ----------
    sessions : iterable of (started_at, ended_at, accuracy_pct)
        The student's (active) sessions; those outside the window are ignored.
    tz : str
        The student's IANA time zone: week boundaries are local midnights on Mondays.
    weeks : int
        How many weeks, >= 1; the last one is the (partial) current week.
    today : date
        The current date in ``tz``.
    """
    bounds = week_bounds(tz=tz, weeks=weeks, today=today)
    return summary_of_weeks(week_totals(sessions, bounds), today=today)
