"""Practice recommendations from the last seven local days (pure; no database, no clock).

Three kinds, always in this order (then by the order given under each):

``rest``
    After long streaks of long sessions. Triggers when either

    * the last 7 local days (today included) contain a run of >= 6 consecutive days each
      with >= 90 minutes, or
    * ``streak_days >= 14`` and the 7-day average is >= 120 minutes a day (total minutes of
      the 7 days divided by 7, rest days included).
``slow_practice``
    For each piece whose mean session accuracy over the window is below 70 % (sessions
    without an accuracy do not count), then each weak segment from ``segment_accuracy``:
    practise at 70 % of the piece's most recent target tempo, rounded half up to a whole
    BPM. Pieces without a known target tempo in the window get no suggestion (there is no
    tempo to scale). Ordered by accuracy (worst first), then piece id and bars.
``steadiness_drill``
    When the tempo drift goes one way: at least 3 sessions with a drift and a reference
    tempo (the target, else the played tempo), and at least 80 % of them drifting the same
    way by at least 1 % of that tempo per minute — rushing when speeding up, dragging when
    slowing down. The reason quotes the median drift of those sessions.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final, Literal
from uuid import UUID

from api.errors import UnprocessableError
from api.progress.rules import SessionFacts, load_zone, require_aware

__all__ = [
    "DRIFT_MIN_FRACTION",
    "DRIFT_MIN_SESSIONS",
    "LONG_DAY_MINUTES",
    "SLOW_ACCURACY_BELOW_PCT",
    "SLOW_TEMPO_PCT",
    "WINDOW_DAYS",
    "JsonScalar",
    "Recommendation",
    "RecommendationKind",
    "recommend",
]

RecommendationKind = Literal["rest", "slow_practice", "steadiness_drill"]
JsonScalar = str | int | float | bool | None

WINDOW_DAYS: Final = 7
SLOW_ACCURACY_BELOW_PCT: Final = 70.0
SLOW_TEMPO_PCT: Final = 70
DRIFT_MIN_SESSIONS: Final = 3
DRIFT_SAME_WAY_PCT: Final = 80
DRIFT_MIN_FRACTION: Final = 0.01
"""|drift| of at least this fraction of the reference tempo per minute counts."""
LONG_DAY_MINUTES: Final = 90.0
LONG_DAYS_IN_A_ROW: Final = 6
LONG_STREAK_DAYS: Final = 14
HEAVY_AVERAGE_MINUTES: Final = 120.0


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One suggestion.

    Attributes
    ----------
    kind : {"rest", "slow_practice", "steadiness_drill"}
        What is suggested.
    title : str
        Short headline.
    reason : str
        Why, with the numbers.
    data : dict
        The numbers behind it (JSON scalars; ids as strings).
    """

    kind: RecommendationKind
    title: str
    reason: str
    data: dict[str, JsonScalar] = field(default_factory=dict)


def _half_up(x: float) -> int:
    return max(1, math.floor(x + 0.5))


def _suggested_bpm(target_bpm: float) -> int:
    # target * 70 / 100 rather than target * 0.7: 85 * 0.7 is 59.49999999999999
    return _half_up(target_bpm * SLOW_TEMPO_PCT / 100)


def _rest(
    per_day: Mapping[date, float], window: list[date], streak_days: int
) -> Recommendation | None:
    run = best_run = 0
    for d in window:
        run = run + 1 if per_day.get(d, 0.0) >= LONG_DAY_MINUTES else 0
        best_run = max(best_run, run)
    total = math.fsum(per_day.values())
    average = total / WINDOW_DAYS
    data: dict[str, JsonScalar] = {
        "long_days_in_a_row": best_run,
        "long_day_minutes": LONG_DAY_MINUTES,
        "average_daily_minutes": round(average, 1),
        "streak_days": streak_days,
    }
    if best_run >= LONG_DAYS_IN_A_ROW:
        data["rule"] = "long_days_in_a_row"
        reason = (
            f"You practised at least {LONG_DAY_MINUTES:g} minutes on {best_run} days in a row; "
            "a rest day helps your hands and your memory consolidate."
        )
    elif streak_days >= LONG_STREAK_DAYS and average >= HEAVY_AVERAGE_MINUTES:
        data["rule"] = "long_streak_heavy_load"
        reason = (
            f"Your streak is {streak_days} days and you averaged {average:.0f} minutes a day "
            f"this week; take a rest day (a freeze keeps the streak)."
        )
    else:
        return None
    return Recommendation("rest", "Take a rest day", reason, data)


def _slow_practice(
    facts: list[SessionFacts],
    segment_accuracy: Mapping[tuple[UUID, int, int], float] | None,
) -> list[Recommendation]:
    accuracies: dict[UUID, list[float]] = defaultdict(list)
    latest_target: dict[UUID, tuple[datetime, UUID, float]] = {}
    for f in facts:
        for piece in f.piece_ids:
            if f.accuracy_pct is not None:
                accuracies[piece].append(f.accuracy_pct)
            if f.target_bpm is not None:
                key = (f.started_at, f.session_id, f.target_bpm)
                if piece not in latest_target or key[:2] > latest_target[piece][:2]:
                    latest_target[piece] = key
    pieces: list[tuple[float, UUID, int, float, int]] = []
    for piece, values in accuracies.items():
        mean = math.fsum(values) / len(values)
        if mean < SLOW_ACCURACY_BELOW_PCT and piece in latest_target:
            target = latest_target[piece][2]
            pieces.append((mean, piece, len(values), target, _suggested_bpm(target)))
    out = []
    for mean, piece, n, target, bpm in sorted(pieces):
        out.append(
            Recommendation(
                "slow_practice",
                f"Slow practice at {bpm} BPM",
                f"Your accuracy on this piece averaged {mean:.1f} % over {n} session"
                f"{'s' if n != 1 else ''} this week (below {SLOW_ACCURACY_BELOW_PCT:g} %); "
                f"practise it at {bpm} BPM, {SLOW_TEMPO_PCT} % of your target of "
                f"{target:g} BPM.",
                {
                    "piece_id": str(piece),
                    "accuracy_pct": round(mean, 1),
                    "sessions": n,
                    "target_bpm": target,
                    "suggested_bpm": bpm,
                },
            )
        )
    segments: list[tuple[float, UUID, int, int]] = []
    for (piece, start_bar, end_bar), acc in (segment_accuracy or {}).items():
        if not math.isfinite(acc):
            raise UnprocessableError(
                f"segment accuracy of {piece} bars {start_bar}-{end_bar} must be finite; "
                f"got {acc!r}"
            )
        if acc < SLOW_ACCURACY_BELOW_PCT and piece in latest_target:
            segments.append((acc, piece, start_bar, end_bar))
    for acc, piece, start_bar, end_bar in sorted(segments):
        target = latest_target[piece][2]
        bpm = _suggested_bpm(target)
        out.append(
            Recommendation(
                "slow_practice",
                f"Slow practice of bars {start_bar}-{end_bar} at {bpm} BPM",
                f"Your accuracy in bars {start_bar}-{end_bar} is {acc:.1f} % (below "
                f"{SLOW_ACCURACY_BELOW_PCT:g} %); practise them at {bpm} BPM, "
                f"{SLOW_TEMPO_PCT} % of your target of {target:g} BPM.",
                {
                    "piece_id": str(piece),
                    "start_bar": start_bar,
                    "end_bar": end_bar,
                    "accuracy_pct": round(acc, 1),
                    "target_bpm": target,
                    "suggested_bpm": bpm,
                },
            )
        )
    return out


def _steadiness(facts: list[SessionFacts]) -> Recommendation | None:
    drifts: list[tuple[float, float]] = []  # (drift BPM/min, reference tempo BPM)
    for f in sorted(facts, key=lambda f: (f.started_at, f.session_id)):
        reference = f.target_bpm if f.target_bpm is not None else f.tempo_bpm_played
        if f.drift_bpm_per_min is not None and reference is not None:
            drifts.append((f.drift_bpm_per_min, reference))
    n = len(drifts)
    if n < DRIFT_MIN_SESSIONS:
        return None
    rushing = sum(1 for d, ref in drifts if d >= DRIFT_MIN_FRACTION * ref)
    dragging = sum(1 for d, ref in drifts if d <= -DRIFT_MIN_FRACTION * ref)
    if rushing * 100 >= DRIFT_SAME_WAY_PCT * n:
        direction, count, verb = "rushing", rushing, "sped up"
    elif dragging * 100 >= DRIFT_SAME_WAY_PCT * n:
        direction, count, verb = "dragging", dragging, "slowed down"
    else:
        return None
    median = float(statistics.median(d for d, _ in drifts))
    return Recommendation(
        "steadiness_drill",
        f"Steadiness drill: you tend to be {direction}",
        f"In {count} of {n} sessions this week your tempo {verb} by at least "
        f"{DRIFT_MIN_FRACTION * 100:g} % of the target per minute (median drift "
        f"{median:+.1f} BPM/min); practise with the metronome and count the beats aloud.",
        {
            "direction": direction,
            "sessions": n,
            "same_direction_sessions": count,
            "median_drift_bpm_per_min": round(median, 2),
        },
    )


def recommend(
    facts_last_7_days: Iterable[SessionFacts],
    *,
    now: datetime,
    tz_name: str,
    segment_accuracy: Mapping[tuple[UUID, int, int], float] | None = None,
    streak_days: int = 0,
) -> list[Recommendation]:
    """Suggestions from a week of practice.

    Parameters
    ----------
    facts_last_7_days : iterable of SessionFacts
        The user's sessions; only those that started on the last 7 local days (today and
        the 6 before) count, so passing more is harmless.
    now : datetime
        The current instant (aware).
    tz_name : str
        The user's IANA time zone (day boundaries).
    segment_accuracy : mapping of (piece_id, start_bar, end_bar) to float, optional
        Accuracy in percent of practised segments over the window.
    streak_days : int
        The user's current streak, days (for the rest rule).

    Returns
    -------
    list of Recommendation
        ``rest``, then ``slow_practice``, then ``steadiness_drill`` (see the module doc).
    """
    require_aware("now", now)
    zone = load_zone(tz_name)
    today = now.astimezone(zone).date()
    window = [today - timedelta(days=WINDOW_DAYS - 1 - i) for i in range(WINDOW_DAYS)]
    first = window[0]
    if isinstance(streak_days, bool) or not isinstance(streak_days, int) or streak_days < 0:
        raise UnprocessableError(f"streak_days must be an integer >= 0; got {streak_days!r}")
    facts: list[SessionFacts] = []
    per_day: dict[date, float] = defaultdict(float)
    for f in facts_last_7_days:
        day = f.started_at.astimezone(zone).date()
        if first <= day <= today:
            facts.append(f)
            per_day[day] += f.minutes
    out: list[Recommendation] = []
    rest = _rest(per_day, window, streak_days)
    if rest is not None:
        out.append(rest)
    out.extend(_slow_practice(facts, segment_accuracy))
    drill = _steadiness(facts)
    if drill is not None:
        out.append(drill)
    return out
