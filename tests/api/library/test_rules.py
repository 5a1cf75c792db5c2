"""The pure rules: name normalisation and the heatmap, as tables of known answers, and the
difference-array heatmap against a slow per-bar reference."""

from __future__ import annotations

import random
import uuid

import pytest

from api.library.rules import (
    MAX_BARS,
    HeatmapTooLargeError,
    HotSection,
    LibraryRuleError,
    SegmentInput,
    compute_heatmap,
    hot_sections,
    name_key,
    normalize_name,
    normalize_optional_text,
)

S1, S2, S3 = (uuid.UUID(int=n) for n in (1, 2, 3))


@pytest.mark.parametrize(("raw", "clean"), [
    ("Scales", "Scales"),
    ("  Scales  ", "Scales"),
    ("Major   scales", "Major scales"),
    ("Major\u00a0\u2003scales", "Major scales"),  # non-breaking and em spaces collapse
    ("E\u0301tude", "\u00c9tude"),  # decomposed accent composed (NFC)
    ("🎹 Warm-up", "🎹 Warm-up"),
    ("x" * 100, "x" * 100),
])
def test_names_are_normalised(raw: str, clean: str) -> None:
    assert normalize_name(raw) == clean


@pytest.mark.parametrize(("raw", "message"), [
    ("", "blank"),
    ("   ", "blank"),
    ("Scales\n", "control character"),
    ("Sca\tles", "control character"),
    ("Sca\x00les", "control character"),
    ("Sca\x85les", "control character"),
    ("Sca\ud800les", "control character"),
    ("x" * 101, "at most 100"),
])
def test_bad_names_are_refused(raw: str, message: str) -> None:
    with pytest.raises(LibraryRuleError, match=message):
        normalize_name(raw)


def test_name_keys_ignore_case_including_unicode_folding() -> None:
    assert name_key("Scales") == name_key("SCALES") == "scales"
    assert name_key("Straße") == name_key("STRASSE")


def test_optional_text_blank_is_none() -> None:
    assert normalize_optional_text("  ", field="composer", max_chars=200) is None
    assert normalize_optional_text(" J.S.  Bach ", field="composer", max_chars=200) == "J.S. Bach"


def _seg(a: int, b: int, clicks: int, dur: float | None, session: uuid.UUID = S1) -> SegmentInput:
    return SegmentInput(a, b, clicks, dur, session)


# (segments, expected [(bar, clicks, seconds, sessions)], total_clicks, total_seconds)
HEATMAP_CASES = [
    pytest.param([], [], 0, 0.0, id="no segments"),
    pytest.param([_seg(3, 3, 4, 10.0)],
                 [(1, 0, 0.0, 0), (2, 0, 0.0, 0), (3, 4, 10.0, 1)], 4, 10.0, id="single bar"),
    pytest.param([_seg(1, 4, 2, 8.0)],
                 [(1, 2, 2.0, 1), (2, 2, 2.0, 1), (3, 2, 2.0, 1), (4, 2, 2.0, 1)], 2, 8.0,
                 id="spread evenly"),
    pytest.param([_seg(1, 2, 1, 2.0, S1), _seg(2, 3, 5, 6.0, S2)],
                 [(1, 1, 1.0, 1), (2, 6, 4.0, 2), (3, 5, 3.0, 1)], 6, 8.0,
                 id="overlap across sessions"),
    pytest.param([_seg(1, 3, 1, 3.0, S1), _seg(2, 2, 3, None, S1)],
                 [(1, 1, 1.0, 1), (2, 4, 1.0, 1), (3, 1, 1.0, 1)], 4, 3.0,
                 id="overlap in one session counts it once; no duration adds no time"),
    pytest.param([_seg(1, 1, 0, 5.0, S1), _seg(2, 2, 0, 0.0, S2)],
                 [(1, 0, 5.0, 1), (2, 0, 0.0, 1)], 0, 5.0, id="no clicks at all"),
    pytest.param([_seg(1, 3, 1, 1.0)],
                 [(1, 1, 0.333, 1), (2, 1, 0.333, 1), (3, 1, 0.333, 1)], 1, 1.0,
                 id="seconds rounded to ms"),
]


@pytest.mark.parametrize(("segments", "bars", "total_clicks", "total_seconds"), HEATMAP_CASES)
def test_heatmap_known_answers(segments: list[SegmentInput], bars: list[tuple[int, ...]],
                               total_clicks: int, total_seconds: float) -> None:
    heatmap = compute_heatmap(segments)
    assert [(b.bar, b.clicks, b.seconds, b.sessions) for b in heatmap.bars] == bars
    assert heatmap.total_clicks == total_clicks
    assert heatmap.total_seconds == total_seconds


def test_intensity_is_relative_to_the_busiest_bar() -> None:
    heatmap = compute_heatmap([_seg(1, 2, 2, None), _seg(2, 3, 6, None)])
    assert [b.intensity for b in heatmap.bars] == [0.25, 1.0, 0.75]
    assert [b.intensity for b in compute_heatmap([_seg(1, 1, 0, 1.0)]).bars] == [0.0]


# (per-bar clicks from bar 1, expected top sections)
HOT_CASES = [
    pytest.param([], [], id="nothing"),
    pytest.param([0, 0], [], id="no clicks"),
    pytest.param([10], [HotSection(1, 1, 10)], id="single bar"),
    pytest.param([1, 5, 10, 5, 1], [HotSection(2, 4, 10)], id="one run around the peak"),
    pytest.param([10, 0, 8, 8, 0, 6], [HotSection(1, 1, 10), HotSection(3, 4, 8),
                                       HotSection(6, 6, 6)], id="ranked by peak"),
    pytest.param([6, 0, 6, 6, 4, 0, 10], [HotSection(7, 7, 10), HotSection(3, 4, 6),
                                          HotSection(1, 1, 6)], id="tie: longer run first"),
    pytest.param([9, 0, 9, 0, 9, 0, 9, 0, 9, 0, 9, 0, 9],
                 [HotSection(b, b, 9) for b in (1, 3, 5, 7, 9)], id="only the top five"),
    pytest.param([4, 2, 1], [HotSection(1, 2, 4)], id="threshold: at least half the peak"),
]


@pytest.mark.parametrize(("clicks", "expected"), HOT_CASES)
def test_hot_sections(clicks: list[int], expected: list[HotSection]) -> None:
    assert hot_sections(clicks) == expected


def test_bars_beyond_the_cap_are_refused_before_allocating() -> None:
    assert len(compute_heatmap([_seg(1, MAX_BARS, 1, None)]).bars) == MAX_BARS
    with pytest.raises(HeatmapTooLargeError, match="bar 2001"):
        compute_heatmap([_seg(1, 2, 1, None), _seg(5, MAX_BARS + 1, 1, None)])
    with pytest.raises(HeatmapTooLargeError, match="bar 1000000000"):
        compute_heatmap([_seg(10**9, 10**9, 1, None)])


@pytest.mark.parametrize("segment", [_seg(0, 2, 1, None), _seg(3, 2, 1, None),
                                     _seg(1, 2, -1, None), _seg(1, 2, 1, -1.0),
                                     _seg(1, 2, 1, float("nan"))])
def test_impossible_segments_are_refused(segment: SegmentInput) -> None:
    with pytest.raises(LibraryRuleError):
        compute_heatmap([segment])


def _reference(segments: list[SegmentInput]) -> list[tuple[int, int, float, int]]:
    last = max((s.end_bar for s in segments), default=0)
    out = []
    for bar in range(1, last + 1):
        covering = [s for s in segments if s.start_bar <= bar <= s.end_bar]
        clicks = sum(s.click_count for s in covering)
        seconds = sum((s.duration_s or 0.0) / (s.end_bar - s.start_bar + 1) for s in covering)
        out.append((bar, clicks, round(seconds, 3), len({s.session_id for s in covering})))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_heatmap_equals_the_slow_reference(seed: int) -> None:
    rng = random.Random(seed)
    sessions = [uuid.UUID(int=n) for n in range(1, 6)]
    segments = []
    for _ in range(60):
        a = rng.randint(1, 80)
        b = rng.randint(a, min(a + 15, 90))
        dur = None if rng.random() < 0.2 else round(rng.uniform(0, 120), 2)
        segments.append(_seg(a, b, rng.randint(0, 9), dur, rng.choice(sessions)))
    got = [(b.bar, b.clicks, b.seconds, b.sessions) for b in compute_heatmap(segments).bars]
    want = _reference(segments)
    assert [g[:2] + g[3:] for g in got] == [w[:2] + w[3:] for w in want]
    assert all(abs(g[2] - w[2]) <= 0.0011 for g, w in zip(got, want, strict=True))
