"""Pure rules of the library domain: name normalisation and the practice heatmap of a piece.

Nothing here touches the database; the service feeds it rows and turns its errors into HTTP
problems. :class:`LibraryRuleError` is the one exception (a ``ValueError``); its message names
the offending value.

Heatmap definitions (``compute_heatmap``):

- a segment of bars ``a..b`` (inclusive) with ``click_count`` c adds c to the ``clicks`` of every
  bar ``a..b``, and ``duration_s`` d adds ``d / (b - a + 1)`` to their ``seconds`` (a missing
  duration adds nothing);
- a bar's ``sessions`` is the number of distinct sessions with a segment touching it;
- ``bars`` runs densely from bar 1 to the last bar any segment touches (untouched bars in
  between have zeros); no segments give no bars;
- ``intensity`` = ``clicks / max(clicks)`` over the bars (0 everywhere when no bar has clicks);
- a *hot section* is a maximal run of consecutive bars whose intensity is at least
  :data:`HOT_INTENSITY` (0.5); its ``clicks`` is the peak per-bar click total inside it. The
  ``top_sections`` are the :data:`TOP_SECTIONS` (5) hot sections with the highest peak, ties
  broken by the longer run, then the earlier start;
- ``total_clicks`` and ``total_seconds`` sum the segments themselves (each repetition once),
  so ``total_clicks`` is not the sum of per-bar clicks when a segment spans several bars.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = [
    "HOT_INTENSITY",
    "MAX_BARS",
    "MAX_COMPOSER_CHARS",
    "MAX_KEY_CHARS",
    "MAX_NAME_CHARS",
    "TOP_SECTIONS",
    "BarStat",
    "Heatmap",
    "HeatmapTooLargeError",
    "HotSection",
    "LibraryRuleError",
    "SegmentInput",
    "compute_heatmap",
    "hot_sections",
    "name_key",
    "normalize_name",
    "normalize_optional_text",
]

MAX_NAME_CHARS: Final = 100
MAX_COMPOSER_CHARS: Final = 200
MAX_KEY_CHARS: Final = 200  # the width of ``tags.name_key``
MAX_BARS: Final = 2000
HOT_INTENSITY: Final = 0.5
TOP_SECTIONS: Final = 5


class LibraryRuleError(ValueError):
    """An input that breaks a library rule (the message names the value)."""


class HeatmapTooLargeError(LibraryRuleError):
    """A segment reaches beyond :data:`MAX_BARS`."""


# --- names -------------------------------------------------------------------------------


def _control_chars(text: str) -> list[str]:
    # Cc: C0/C1 controls (tab and newline included); Cs: lone surrogates, which JSON can carry
    # ("\ud800") but no database can store.
    return [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cs")]


def normalize_optional_text(text: str, *, field: str, max_chars: int) -> str | None:
    """NFC-normalise, strip and collapse inner whitespace runs to one space.

    Returns None for a blank text. Raises :class:`LibraryRuleError` for control characters or
    more than ``max_chars`` characters after normalisation.
    """
    bad = _control_chars(text)
    if bad:
        raise LibraryRuleError(
            f"{field} {text!r} contains the control character {bad[0]!r}; remove it"
        )
    clean = " ".join(unicodedata.normalize("NFC", text).split())
    if not clean:
        return None
    if len(clean) > max_chars:
        raise LibraryRuleError(
            f"{field} is {len(clean)} characters long after normalisation; "
            f"at most {max_chars} are allowed"
        )
    return clean


def normalize_name(name: str) -> str:
    """A tag or piece name, normalised (see :func:`normalize_optional_text`); 1..100 chars."""
    clean = normalize_optional_text(name, field="name", max_chars=MAX_NAME_CHARS)
    if clean is None:
        raise LibraryRuleError(f"name {name!r} is blank; give at least one visible character")
    if len(name_key(clean)) > MAX_KEY_CHARS:
        raise LibraryRuleError(f"name {clean!r} is too long once case-folded")
    return clean


def name_key(name: str) -> str:
    """The case-insensitive key of a normalised name (unique per scope and kind)."""
    return name.strip().casefold()


# --- heatmap -----------------------------------------------------------------------------


class SegmentInput(NamedTuple):
    """One practised segment: bars ``start_bar..end_bar`` (inclusive, from 1)."""

    start_bar: int
    end_bar: int
    click_count: int
    duration_s: float | None
    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class BarStat:
    """The totals of one bar."""

    bar: int
    clicks: int
    seconds: float
    sessions: int
    intensity: float


@dataclass(frozen=True, slots=True)
class HotSection:
    """A maximal run of hot bars ``start_bar..end_bar`` and its peak per-bar clicks."""

    start_bar: int
    end_bar: int
    clicks: int


@dataclass(frozen=True, slots=True)
class Heatmap:
    """The result of :func:`compute_heatmap`."""

    bars: list[BarStat]
    top_sections: list[HotSection]
    total_clicks: int
    total_seconds: float


def _check(segment: SegmentInput, max_bars: int) -> None:
    start, end = segment.start_bar, segment.end_bar
    if start < 1 or end < start:
        raise LibraryRuleError(f"segment bars {start}..{end} are not a range from bar 1 on")
    if end > max_bars:
        raise HeatmapTooLargeError(
            f"a segment reaches bar {end}; a heatmap covers at most {max_bars} bars"
        )
    if segment.click_count < 0:
        raise LibraryRuleError(f"click_count {segment.click_count} is negative")
    if segment.duration_s is not None and not 0 <= segment.duration_s < float("inf"):
        raise LibraryRuleError(f"duration_s {segment.duration_s} is not a finite time >= 0")


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def hot_sections(clicks: Sequence[int], *, top: int = TOP_SECTIONS,
                 threshold: float = HOT_INTENSITY) -> list[HotSection]:
    """The ``top`` hottest maximal runs of ``clicks`` (index 0 is bar 1); see module doc."""
    peak = max(clicks, default=0)
    if peak <= 0:
        return []
    runs: list[HotSection] = []
    start: int | None = None
    for index, value in enumerate([*clicks, 0]):
        hot = value > 0 and value / peak >= threshold
        if hot and start is None:
            start = index
        elif not hot and start is not None:
            runs.append(HotSection(start + 1, index, max(clicks[start:index])))
            start = None
    runs.sort(key=lambda s: (-s.clicks, -(s.end_bar - s.start_bar), s.start_bar))
    return runs[:top]


def compute_heatmap(segments: Iterable[SegmentInput], *, max_bars: int = MAX_BARS) -> Heatmap:
    """Per-bar clicks, seconds and sessions of a piece's segments (see the module docstring).

    Runs in O(segments + bars) with difference arrays. Raises :class:`HeatmapTooLargeError`
    when a segment reaches beyond ``max_bars`` (before allocating anything that large) and
    :class:`LibraryRuleError` for an impossible segment.
    """
    items = list(segments)
    for segment in items:
        _check(segment, max_bars)
    if not items:
        return Heatmap(bars=[], top_sections=[], total_clicks=0, total_seconds=0.0)
    last = max(s.end_bar for s in items)
    d_clicks = [0] * (last + 2)
    d_seconds = [0.0] * (last + 2)
    d_sessions = [0] * (last + 2)
    per_session: dict[uuid.UUID, list[tuple[int, int]]] = defaultdict(list)
    for s in items:
        d_clicks[s.start_bar] += s.click_count
        d_clicks[s.end_bar + 1] -= s.click_count
        if s.duration_s:
            rate = s.duration_s / (s.end_bar - s.start_bar + 1)
            d_seconds[s.start_bar] += rate
            d_seconds[s.end_bar + 1] -= rate
        per_session[s.session_id].append((s.start_bar, s.end_bar))
    for ranges in per_session.values():
        for start, end in _merged(ranges):
            d_sessions[start] += 1
            d_sessions[end + 1] -= 1
    clicks: list[int] = []
    seconds: list[float] = []
    sessions: list[int] = []
    c = n = 0
    sec = 0.0
    for bar in range(1, last + 1):
        c += d_clicks[bar]
        sec += d_seconds[bar]
        n += d_sessions[bar]
        clicks.append(c)
        seconds.append(abs(round(sec, 3)))  # the running sum drifts by ~1e-12 (no -0.0)
        sessions.append(n)
    peak = max(clicks)
    bars = [
        BarStat(bar=i + 1, clicks=clicks[i], seconds=seconds[i], sessions=sessions[i],
                intensity=round(clicks[i] / peak, 4) if peak else 0.0)
        for i in range(last)
    ]
    return Heatmap(
        bars=bars,
        top_sections=hot_sections(clicks),
        total_clicks=sum(s.click_count for s in items),
        total_seconds=round(sum(s.duration_s or 0.0 for s in items), 3),
    )
