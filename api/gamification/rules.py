"""Pure gamification rules: best source, points, streaks, achievements, challenges,
leaderboards and reputation.

No database, no clock, no mutable globals: callers pass ``today`` / ``now`` and the user's
time zone. Sessions come in as :class:`api.progress.rules.SessionFacts` (one per session,
already reduced to its best source, see :func:`best_source`), so a session's numbers are
never counted twice. Invalid input raises :class:`api.errors.UnprocessableError` (422).

Decisions
---------
* **Source order** is ``recording > stream > manual``. Stream and recording both beat a
  manual entry (measured beats typed). A recording beats a stream because it is the whole
  take analysed offline: the analysis can look ahead, and it is not cut short by a dropped
  connection or a late start, whereas the stream summary is causal and may miss parts.
* **Points** are the engine's timing-report rule (see :func:`session_points`).
* **Streaks** (see :func:`compute_streak`) are simulated day by day in the user's time
  zone: a freeze is spent at the end of each missed day while one is banked, so a gap longer
  than the bank ends the streak with the bank empty — what the user saw each evening stays
  true afterwards. Freezes are earned by *practised* days only (every ``earn_every_days``-th
  practised day of a streak); bridged days neither add to the streak nor to that count.
* **Leaderboards** use ISO weeks starting Monday 00:00 **UTC**: a board shared by users in
  many zones needs one clock, so every entry competes over the same instants.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Final, Literal, TypeVar
from uuid import UUID

from api.errors import UnprocessableError
from api.progress.rules import (
    SOURCES,
    SessionFacts,
    is_meditation,
    is_slow_practice,
    load_zone,
    local_day,
    played_slower,
    require_aware,
)

__all__ = [
    "ACCURACY_BONUS_ABOVE_PCT",
    "ACCURATE_PCT",
    "ACHIEVEMENTS",
    "CHALLENGE_METRICS",
    "DEFAULT_CHALLENGES",
    "REPUTATION_POINTS",
    "SOURCE_PRIORITY",
    "STREAK_MILESTONES",
    "AchievementProgress",
    "AchievementRule",
    "AchievementStats",
    "ChallengeMetric",
    "ChallengeProgress",
    "ChallengeRule",
    "RankedEntry",
    "ReputationEvent",
    "StreakState",
    "accuracy_gain",
    "achievement_progress",
    "achievement_stats",
    "best_source",
    "challenge_deadline",
    "challenge_progress",
    "compute_streak",
    "local_day",
    "practice_days",
    "rank",
    "reputation_for",
    "session_points",
    "streak_milestones_crossed",
    "week_start",
]

T = TypeVar("T")

SOURCE_PRIORITY: Final = ("recording", "stream", "manual")
"""Best first: the whole take analysed offline, then the live stream, then a manual entry."""

ACCURACY_BONUS_ABOVE_PCT: Final = 85.0
"""Accuracy strictly above this earns the +10 bonus (stream/recording only)."""

ACCURACY_BONUS_POINTS: Final = 10

ACCURATE_PCT: Final = 90.0
"""A session with accuracy at or above this is "accurate" (achievements, challenges)."""

MIN_PRACTICE_DAY_MINUTES: Final = 1.0
"""A local day counts for streaks with at least this many minutes of practice."""


# ------------------------------------------------------------------------ best source


def best_source(sources: Mapping[str, T]) -> str | None:
    """The source whose numbers count for a session.

    Parameters
    ----------
    sources : mapping of str to anything
        The session's numbers keyed by source (``manual``, ``stream``, ``recording``).

    Returns
    -------
    str or None
        The best key present by :data:`SOURCE_PRIORITY` (recording over stream over manual);
        None for an empty mapping.

    Raises
    ------
    UnprocessableError
        A key that is not a known source.
    """
    for key in sources:
        if key not in SOURCES:
            raise UnprocessableError(f"unknown source {key!r}; expected one of {SOURCES}")
    return next((s for s in SOURCE_PRIORITY if s in sources), None)


# ----------------------------------------------------------------------------- points


def session_points(facts: SessionFacts) -> int:
    """Points earned by one session.

    Stream and recording sessions: ``engine_points`` when given (the engine applied this
    rule), else the timing-report rule ``floor(minutes) x multiplier + bonus`` where the
    multiplier is 3 for meditation (target below 60 BPM), else 2 for slow practice (played
    tempo below the target), else 1, and the bonus is 10 when ``accuracy_pct > 85``.
    Manual sessions: ``floor(minutes)``, no multiplier and no bonus (nothing was measured).

    Parameters
    ----------
    facts : SessionFacts
        The session (its best source).

    Returns
    -------
    int
        Points, >= 0.
    """
    whole_minutes = math.floor(facts.duration_s / 60.0)
    if facts.source == "manual":
        return whole_minutes
    if facts.engine_points is not None:
        return facts.engine_points
    if is_meditation(facts):
        multiplier = 3
    elif played_slower(facts.tempo_bpm_played, facts.target_bpm):
        multiplier = 2
    else:
        multiplier = 1
    bonus = (
        ACCURACY_BONUS_POINTS
        if facts.accuracy_pct is not None and facts.accuracy_pct > ACCURACY_BONUS_ABOVE_PCT
        else 0
    )
    return whole_minutes * multiplier + bonus


# ---------------------------------------------------------------------------- streaks


@dataclass(frozen=True, slots=True)
class StreakState:
    """A user's practice streak as of a local day.

    Attributes
    ----------
    current_days : int
        Practised days in the running streak (bridged days not counted); 0 when broken.
    longest_days : int
        The most practised days any streak reached.
    freezes_available : int
        Banked freezes.
    frozen_days : tuple of date
        Missed days of the running streak bridged by a freeze, in order.
    last_practice_day : date or None
        The latest practised day up to ``today``.
    """

    current_days: int
    longest_days: int
    freezes_available: int
    frozen_days: tuple[date, ...]
    last_practice_day: date | None


def practice_days(
    facts: Iterable[SessionFacts],
    tz_name: str,
    *,
    min_minutes: float = MIN_PRACTICE_DAY_MINUTES,
) -> frozenset[date]:
    """Local days with at least ``min_minutes`` of practice (summed over the day's sessions).

    Parameters
    ----------
    facts : iterable of SessionFacts
        Sessions; each belongs to the local day it started on.
    tz_name : str
        The user's IANA time zone.
    min_minutes : float
        Minutes a day needs, >= 0.

    Returns
    -------
    frozenset of date
        The days, for :func:`compute_streak`.
    """
    if not math.isfinite(min_minutes) or min_minutes < 0:
        raise UnprocessableError(f"min_minutes must be >= 0; got {min_minutes!r}")
    zone = load_zone(tz_name)
    per_day: dict[date, float] = defaultdict(float)
    for f in facts:
        per_day[f.started_at.astimezone(zone).date()] += f.duration_s
    # compare in seconds: 60 x 1.0 minute is exact, summed minutes need not be
    return frozenset(d for d, s in per_day.items() if s >= min_minutes * 60.0)


def compute_streak(
    practice_days: Iterable[date],
    today: date,
    *,
    earn_every_days: int = 7,
    max_freezes: int = 2,
) -> StreakState:
    """The streak as of ``today`` (the user's local day), with rest-day freezes.

    Rules, simulated day by day from the first practised day:

    * a practised day adds 1 to the streak; every ``earn_every_days``-th practised day of a
      streak earns a freeze if fewer than ``max_freezes`` are banked (at the cap nothing is
      earned, and nothing is owed later);
    * at the end of a missed day of a running streak a banked freeze is spent: the streak
      goes on, the day is recorded in ``frozen_days`` and adds nothing; with no freeze left
      the streak ends (a gap of *g* days needs *g* freezes);
    * ``today`` not practised (yet) breaks nothing: the day has not ended;
    * days after ``today`` are ignored.

    Parameters
    ----------
    practice_days : iterable of date
        Local days with >= 1 minute of practice (see :func:`practice_days`); duplicates
        are fine.
    today : date
        The user's local today.
    earn_every_days : int
        Practised days per freeze, >= 1.
    max_freezes : int
        Most freezes banked at once, >= 0.

    Returns
    -------
    StreakState
        Current and longest streak, banked freezes, the running streak's frozen days.
    """
    for name, value, low in (
        ("earn_every_days", earn_every_days, 1),
        ("max_freezes", max_freezes, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UnprocessableError(f"{name} must be an integer >= {low}; got {value!r}")
    days = sorted({d for d in practice_days if d <= today})
    current = longest = freezes = 0
    frozen: list[date] = []
    previous: date | None = None

    def miss(first: date, count: int) -> None:
        nonlocal current, freezes, frozen
        if count <= 0 or current == 0:
            return
        if count <= freezes:
            freezes -= count
            frozen.extend(first + timedelta(days=i) for i in range(count))
        else:  # freezes run out one missed day at a time, then the streak ends
            current, freezes, frozen = 0, 0, []

    for day in days:
        if previous is not None:
            miss(previous + timedelta(days=1), (day - previous).days - 1)
        current += 1
        if current % earn_every_days == 0 and freezes < max_freezes:
            freezes += 1
        longest = max(longest, current)
        previous = day
    if previous is not None:  # the days missed since, up to yesterday
        miss(previous + timedelta(days=1), (today - previous).days - 1)
    return StreakState(
        current_days=current,
        longest_days=longest,
        freezes_available=freezes,
        frozen_days=tuple(frozen),
        last_practice_day=previous,
    )


STREAK_MILESTONES: Final = (7, 30, 100, 365)
"""Streak lengths (practised days) that earn reputation once each."""


def streak_milestones_crossed(before_days: int, after_days: int) -> tuple[int, ...]:
    """Milestones in :data:`STREAK_MILESTONES` reached going from ``before_days`` to
    ``after_days`` (``before < m <= after``)."""
    return tuple(m for m in STREAK_MILESTONES if before_days < m <= after_days)


# ------------------------------------------------------------------------ achievements


@dataclass(frozen=True, slots=True)
class AchievementStats:
    """A user's lifetime numbers that achievements are measured on.

    Attributes
    ----------
    total_sessions : int
        Sessions.
    total_minutes : float
        Practice minutes.
    slow_minutes : float
        Minutes of slow practice (mode ``slow`` or played below the target).
    meditation_minutes : float
        Minutes with a target below 60 BPM.
    longest_streak_days : int
        Longest streak, practised days.
    clean_tempo_pieces : int
        Pieces with a session at accuracy >= 90 % and played tempo >= its target.
    accurate_sessions : int
        Sessions with accuracy >= 90 %.
    """

    total_sessions: int = 0
    total_minutes: float = 0.0
    slow_minutes: float = 0.0
    meditation_minutes: float = 0.0
    longest_streak_days: int = 0
    clean_tempo_pieces: int = 0
    accurate_sessions: int = 0


def achievement_stats(
    facts: Iterable[SessionFacts], *, longest_streak_days: int = 0
) -> AchievementStats:
    """Build :class:`AchievementStats` from all of a user's sessions.

    Parameters
    ----------
    facts : iterable of SessionFacts
        Every session (best source each).
    longest_streak_days : int
        From :func:`compute_streak`.

    Returns
    -------
    AchievementStats
        The numbers.
    """
    sessions = 0
    minutes = slow = meditation = 0.0
    accurate = 0
    clean: set[UUID] = set()
    for f in facts:
        sessions += 1
        minutes += f.minutes
        if is_slow_practice(f):
            slow += f.minutes
        if is_meditation(f):
            meditation += f.minutes
        if f.accuracy_pct is not None and f.accuracy_pct >= ACCURATE_PCT:
            accurate += 1
            if (
                f.tempo_bpm_played is not None
                and f.target_bpm is not None
                and not played_slower(f.tempo_bpm_played, f.target_bpm)
            ):
                clean.update(f.piece_ids)
    return AchievementStats(
        total_sessions=sessions,
        total_minutes=minutes,
        slow_minutes=slow,
        meditation_minutes=meditation,
        longest_streak_days=longest_streak_days,
        clean_tempo_pieces=len(clean),
        accurate_sessions=accurate,
    )


@dataclass(frozen=True, slots=True)
class AchievementRule:
    """One achievement of the catalogue.

    Attributes
    ----------
    code : str
        Stable id (stored with the unlock), <= 48 characters.
    title, description : str
        For people.
    target : float
        Value of ``measure`` that unlocks it.
    unit : str
        Unit of ``target`` (``sessions``, ``minutes``, ``days``, ``pieces``).
    measure : callable
        ``AchievementStats -> float``, the current value.
    """

    code: str
    title: str
    description: str
    target: float
    unit: str
    measure: Callable[[AchievementStats], float]


@dataclass(frozen=True, slots=True)
class AchievementProgress:
    """How far a user is towards one achievement.

    Attributes
    ----------
    code : str
        The achievement.
    current : float
        The measured value (not capped at the target).
    target : float
        The value that unlocks it.
    achieved : bool
        ``current >= target``.
    """

    code: str
    current: float
    target: float
    achieved: bool


def _sessions(s: AchievementStats) -> float:
    return float(s.total_sessions)


def _minutes(s: AchievementStats) -> float:
    return s.total_minutes


def _streak(s: AchievementStats) -> float:
    return float(s.longest_streak_days)


def _slow(s: AchievementStats) -> float:
    return s.slow_minutes


def _meditation(s: AchievementStats) -> float:
    return s.meditation_minutes


def _clean(s: AchievementStats) -> float:
    return float(s.clean_tempo_pieces)


def _accurate(s: AchievementStats) -> float:
    return float(s.accurate_sessions)


ACHIEVEMENTS: Final[tuple[AchievementRule, ...]] = (
    AchievementRule("first_session", "First steps", "Log your first practice session.",
                    1, "sessions", _sessions),
    AchievementRule("sessions_50", "Fifty sessions", "Log 50 practice sessions.",
                    50, "sessions", _sessions),
    AchievementRule("minutes_1000", "A thousand minutes", "Practise 1000 minutes in total.",
                    1000, "minutes", _minutes),
    AchievementRule("streak_7", "One week strong", "Reach a 7-day practice streak.",
                    7, "days", _streak),
    AchievementRule("streak_30", "A month of practice", "Reach a 30-day practice streak.",
                    30, "days", _streak),
    AchievementRule("slow_100", "Slow and steady",
                    "Practise 100 minutes slowly (slow mode or below your target tempo).",
                    100, "minutes", _slow),
    AchievementRule("meditation_master", "Meditation master",
                    "Practise 300 minutes with a target tempo below 60 BPM.",
                    300, "minutes", _meditation),
    AchievementRule("clean_tempo", "Clean at tempo",
                    "Play a piece at or above its target tempo with at least 90 % accuracy.",
                    1, "pieces", _clean),
    AchievementRule("accuracy_90_x10", "Precision",
                    "Reach at least 90 % accuracy in 10 sessions.",
                    10, "sessions", _accurate),
)  # fmt: skip
"""The achievement catalogue, in display order."""

# Sums of float minutes may land a hair under a round target (e.g. 99.99999999999999).
_ACHIEVED_EPS: Final = 1e-9


def achievement_progress(stats: AchievementStats) -> list[AchievementProgress]:
    """Progress towards every achievement of :data:`ACHIEVEMENTS`, in catalogue order.

    Parameters
    ----------
    stats : AchievementStats
        The user's numbers (see :func:`achievement_stats`).

    Returns
    -------
    list of AchievementProgress
        One per achievement.
    """
    out = []
    for rule in ACHIEVEMENTS:
        current = float(rule.measure(stats))
        out.append(
            AchievementProgress(
                code=rule.code,
                current=current,
                target=float(rule.target),
                achieved=current >= rule.target - _ACHIEVED_EPS,
            )
        )
    return out


# -------------------------------------------------------------------------- challenges

ChallengeMetric = Literal[
    "minutes", "sessions", "slow_minutes", "slow_sessions", "accurate_sessions"
]
CHALLENGE_METRICS: Final = (
    "minutes",
    "sessions",
    "slow_minutes",
    "slow_sessions",
    "accurate_sessions",
)


@dataclass(frozen=True, slots=True)
class ChallengeRule:
    """A time-boxed goal.

    Attributes
    ----------
    code : str
        Stable id, <= 48 characters.
    title : str
        For people.
    metric : {"minutes", "sessions", "slow_minutes", "slow_sessions", "accurate_sessions"}
        What is counted (minutes; sessions; slow-practice minutes or sessions; sessions with
        accuracy >= 90 %).
    target : float
        Amount of ``metric`` to reach.
    duration_days : int
        Length of the window, days (the deadline is ``started_at + duration_days``).
    """

    code: str
    title: str
    metric: ChallengeMetric
    target: float
    duration_days: int

    def __post_init__(self) -> None:
        if self.metric not in CHALLENGE_METRICS:
            raise UnprocessableError(
                f"metric must be one of {CHALLENGE_METRICS}; got {self.metric!r}"
            )
        if not math.isfinite(self.target) or self.target <= 0:
            raise UnprocessableError(f"target must be > 0; got {self.target!r}")
        if self.duration_days < 1:
            raise UnprocessableError(f"duration_days must be >= 1; got {self.duration_days!r}")


DEFAULT_CHALLENGES: Final[tuple[ChallengeRule, ...]] = (
    ChallengeRule("minutes_150_in_7d", "150 minutes in 7 days", "minutes", 150, 7),
    ChallengeRule("sessions_5_in_7d", "5 sessions in 7 days", "sessions", 5, 7),
    ChallengeRule(
        "slow_sessions_3_in_14d", "3 slow-practice sessions in 14 days", "slow_sessions", 3, 14
    ),
)
"""Challenges every new user starts at registration."""


@dataclass(frozen=True, slots=True)
class ChallengeProgress:
    """How a challenge stands at ``now``.

    Attributes
    ----------
    current : float
        Amount of the metric so far (minutes or sessions).
    target : float
        The goal.
    completed : bool
        ``current >= target`` (within the window).
    expired : bool
        The deadline has passed without completing.
    completed_at : datetime or None
        End (start + duration) of the session that reached the target.
    """

    current: float
    target: float
    completed: bool
    expired: bool
    completed_at: datetime | None = None


def challenge_deadline(rule: ChallengeRule, started_at: datetime) -> datetime:
    """``started_at + rule.duration_days`` (an aware datetime)."""
    return require_aware("started_at", started_at) + timedelta(days=rule.duration_days)


def _challenge_amount(metric: ChallengeMetric, f: SessionFacts) -> float:
    if metric == "minutes":
        return f.minutes
    if metric == "sessions":
        return 1.0
    if metric == "slow_minutes":
        return f.minutes if is_slow_practice(f) else 0.0
    if metric == "slow_sessions":
        return 1.0 if is_slow_practice(f) else 0.0
    return 1.0 if f.accuracy_pct is not None and f.accuracy_pct >= ACCURATE_PCT else 0.0


def challenge_progress(
    rule: ChallengeRule,
    started_at: datetime,
    deadline: datetime,
    sessions: Sequence[SessionFacts],
    now: datetime,
) -> ChallengeProgress:
    """Progress of a challenge, counting sessions that started in ``[started_at, deadline)``.

    Parameters
    ----------
    rule : ChallengeRule
        The challenge.
    started_at, deadline : datetime
        The window (aware); ``deadline > started_at``.
    sessions : sequence of SessionFacts
        The user's sessions (any order; others outside the window are ignored).
    now : datetime
        The current instant (aware).

    Returns
    -------
    ChallengeProgress
        ``expired`` is ``now >= deadline and not completed``.
    """
    require_aware("started_at", started_at)
    require_aware("deadline", deadline)
    require_aware("now", now)
    if deadline <= started_at:
        raise UnprocessableError(f"deadline {deadline} is not after started_at {started_at}")
    inside = sorted(
        (f for f in sessions if started_at <= f.started_at < deadline),
        key=lambda f: (f.started_at, f.session_id),
    )
    current = 0.0
    completed_at: datetime | None = None
    for f in inside:
        current += _challenge_amount(rule.metric, f)
        if completed_at is None and current >= rule.target - _ACHIEVED_EPS:
            completed_at = f.started_at + timedelta(seconds=f.duration_s)
    completed = completed_at is not None
    return ChallengeProgress(
        current=current,
        target=float(rule.target),
        completed=completed,
        expired=not completed and now >= deadline,
        completed_at=completed_at,
    )


# ------------------------------------------------------------------------- leaderboard


@dataclass(frozen=True, slots=True)
class RankedEntry:
    """One row of a leaderboard.

    Attributes
    ----------
    rank : int
        Competition rank (ties share a rank; the next rank skips: 1, 2, 2, 4).
    user_id : UUID
        The user.
    score : float
        The score (higher is better).
    """

    rank: int
    user_id: UUID
    score: float


def week_start(ts: datetime) -> datetime:
    """Start of the ISO week containing ``ts``: Monday 00:00 UTC.

    A shared leaderboard needs one clock, so weeks are UTC weeks for everyone.

    Parameters
    ----------
    ts : datetime
        An aware instant.

    Returns
    -------
    datetime
        The Monday 00:00:00 UTC at or before ``ts``, aware (UTC).
    """
    utc = require_aware("ts", ts).astimezone(UTC)
    monday = utc.date() - timedelta(days=utc.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def rank(entries: Sequence[tuple[UUID, float]]) -> list[RankedEntry]:
    """Rank ``(user_id, score)`` pairs, highest score first, with competition ranking.

    Parameters
    ----------
    entries : sequence of (UUID, float)
        One entry per user; scores must be finite.

    Returns
    -------
    list of RankedEntry
        Best first; ties share a rank ("1224") and are ordered by user id, so the order is
        stable whatever the input order.
    """
    for user_id, score in entries:
        if isinstance(score, bool) or not math.isfinite(score):
            raise UnprocessableError(f"score of {user_id} must be finite; got {score!r}")
    ordered = sorted(entries, key=lambda e: (-e[1], e[0]))
    out: list[RankedEntry] = []
    for i, (user_id, score) in enumerate(ordered):
        r = out[-1].rank if out and out[-1].score == score else i + 1
        out.append(RankedEntry(rank=r, user_id=user_id, score=float(score)))
    return out


def accuracy_gain(this_week: Sequence[float], last_week: Sequence[float]) -> float | None:
    """Mean accuracy this week minus last week, in percentage points.

    Parameters
    ----------
    this_week, last_week : sequence of float
        Session accuracies, percent.

    Returns
    -------
    float or None
        The difference of the means; None when either week has no value.
    """
    if not this_week or not last_week:
        return None
    return math.fsum(this_week) / len(this_week) - math.fsum(last_week) / len(last_week)


# -------------------------------------------------------------------------- reputation

ReputationEvent = Literal[
    "achievement",
    "streak_milestone",
    "challenge_completed",
    "answer_accepted",
    "post_upvoted",
    "post_downvoted",
]

REPUTATION_POINTS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "achievement": 10,  # an achievement unlocked (once per code)
        "streak_milestone": 5,  # a streak reaching 7, 30, 100 or 365 days (once each)
        "challenge_completed": 5,  # a challenge completed before its deadline
        "answer_accepted": 15,  # forum: your answer accepted by the asker
        "post_upvoted": 2,  # forum: an upvote on your post
        "post_downvoted": -1,  # forum: a downvote on your post
    }
)
"""Reputation per event (read-only). Grants are keyed so each is given once."""


def reputation_for(event: ReputationEvent) -> int:
    """Reputation points for one event (see :data:`REPUTATION_POINTS`).

    Parameters
    ----------
    event : str
        One of the keys of :data:`REPUTATION_POINTS`.

    Returns
    -------
    int
        Points (negative for a downvote).
    """
    try:
        return REPUTATION_POINTS[event]
    except KeyError:
        raise UnprocessableError(
            f"unknown reputation event {event!r}; expected one of {tuple(REPUTATION_POINTS)}"
        ) from None
