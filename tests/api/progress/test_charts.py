"""SVG charts: well-formed SVG 1.1, the right number of marks, gaps, escaping, ticks."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import UnprocessableError
from api.progress.charts import Series, bar_chart_svg, heatmap_svg, line_chart_svg, nice_ticks
from api.progress.rules import Cell

NS = "{http://www.w3.org/2000/svg}"
NASTY = "Tempo <&> \"quoted\" 'single' \x00\x1b end"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert root.get("version") == "1.1"
    return root


def marks(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}") if e.get("class") == cls]


def texts(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{NS}text")]


def test_line_chart_points_gaps_and_legend() -> None:
    acc = Series(
        "accuracy",
        [
            ("W1", 60.0),
            ("W2", 65.0),
            ("W3", None),
            ("W4", 80.0),
            ("W5", 82.0),
            ("W6", 85.0),
            ("W7", None),
            ("W8", 90.0),
        ],
    )
    other = Series("steadiness", [("W0", 10.0), ("W2", 12.0)])  # fmt: skip
    root = parse(line_chart_svg([acc, other], title="Weekly", y_label="%"))
    assert len(marks(root, "circle", "point")) == 6 + 2
    lines = marks(root, "polyline", "line")
    # accuracy: runs W1-W2 and W4-W6 (W8 alone is only a point); steadiness: W0 and W2 are
    # not adjacent on the shared axis (W1 lies between), so no line
    assert [len(p.get("points", "").split()) for p in lines] == [2, 3]
    labels = texts(root)
    # the axis holds every label once, in order of first appearance
    assert [t for t in labels if t.startswith("W") and len(t) == 2] == [
        f"W{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 0)
    ]
    assert "accuracy" in labels and "steadiness" in labels
    assert "Weekly" in labels and "%" in labels


def test_points_are_placed_by_value() -> None:
    root = parse(line_chart_svg([Series("s", [("a", 0.0), ("b", 50.0), ("c", 100.0)])],
                                title="t", y_label="y"))  # fmt: skip
    ys = [float(c.get("cy", "nan")) for c in marks(root, "circle", "point")]
    xs = [float(c.get("cx", "nan")) for c in marks(root, "circle", "point")]
    assert ys[0] > ys[1] > ys[2]  # SVG y grows downwards
    assert ys[0] - ys[1] == pytest.approx(ys[1] - ys[2], abs=0.11)
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.11)
    ticks = [e for e in root.iter(f"{NS}line") if e.get("class") == "tick"]
    assert len(ticks) >= 3 + 3  # x ticks per label, y ticks 0..100


@pytest.mark.parametrize("chart", ["line", "bar", "heat"])
def test_text_is_escaped(chart: str) -> None:
    if chart == "line":
        svg = line_chart_svg([Series(NASTY, [(NASTY, 1.0)])], title=NASTY, y_label=NASTY)
    elif chart == "bar":
        svg = bar_chart_svg([(NASTY, 1.0)], title=NASTY, y_label=NASTY)
    else:
        svg = heatmap_svg([Cell(1, 1, 1, 1.0, 1.0, 0.0)], title=NASTY)
    root = parse(svg)
    clean = "Tempo <&> \"quoted\" 'single'  end"
    assert root.find(f"{NS}title") is not None
    assert root.findtext(f"{NS}title") == clean
    assert clean in texts(root)
    assert "<&>" not in svg


def test_bar_chart_bars_gaps_and_negatives() -> None:
    bars = [("Mon", 30.0), ("Tue", None), ("Wed", 0.0), ("Thu", 45.5), ("Fri", -10.0)]
    root = parse(bar_chart_svg(bars, title="Minutes", y_label="min"))
    rects = marks(root, "rect", "bar")
    assert len(rects) == 4
    heights = [float(r.get("height", "nan")) for r in rects]
    assert heights[1] == 0.0
    assert heights[2] / heights[0] == pytest.approx(45.5 / 30.0, rel=0.01)
    # the negative bar hangs below the zero line, where the positive ones stand
    ys = [float(r.get("y", "nan")) for r in rects]
    assert ys[3] == pytest.approx(ys[0] + heights[0], abs=0.11)
    assert [r.findtext(f"{NS}title") for r in rects] == ["Mon: 30", "Wed: 0", "Thu: 45.5",
                                                         "Fri: -10"]  # fmt: skip


def test_empty_charts_are_valid() -> None:
    for svg in (
        line_chart_svg([], title="t", y_label="y"),
        line_chart_svg([Series("s", [("a", None)])], title="t", y_label="y"),
        bar_chart_svg([], title="t", y_label="y"),
        heatmap_svg([], title="t"),
    ):
        root = parse(svg)
        assert "No data" in texts(root)


@pytest.mark.parametrize("value", ["mean_abs_dev_ms", "mean_dev_ms", "off_pct"])
def test_heatmap_cells(value: str) -> None:
    cells = [
        Cell(1, 1, 2, 10.0, 10.0, 0.0),
        Cell(1, 3, 1, 30.0, -30.0, 100.0),
        Cell(4, 2, 5, 0.0, 0.0, 0.0),
    ]
    root = parse(heatmap_svg(cells, title="Timing", value=value))  # type: ignore[arg-type]
    rects = marks(root, "rect", "cell")
    assert len(rects) == 3
    # bars 1..4 on the x axis, beats 1..3 on the y axis
    labels = texts(root)
    assert all(str(b) in labels for b in (1, 2, 3, 4))
    fills = [r.get("fill") for r in rects]
    assert fills[2] == "#ffffff"  # zero is white in every scale
    if value == "mean_dev_ms":  # late red, early blue
        assert fills[0] is not None and fills[1] is not None
        assert int(fills[0][1:3], 16) > int(fills[0][5:7], 16)
        assert int(fills[1][5:7], 16) > int(fills[1][1:3], 16)
    x = [float(r.get("x", "nan")) for r in rects]
    y = [float(r.get("y", "nan")) for r in rects]
    assert x[0] == x[1] < x[2]
    assert y[0] < y[2] < y[1]


@pytest.mark.parametrize(
    "call",
    [
        lambda: line_chart_svg([Series("s", [("a", math.nan)])], title="t", y_label="y"),
        lambda: bar_chart_svg([("a", math.inf)], title="t", y_label="y"),
        lambda: bar_chart_svg([("a", 1.0)], title="t", y_label="y", width=10),
        lambda: bar_chart_svg([("a", 1.0)], title="t", y_label="y", color="red;"),
        lambda: heatmap_svg([], title="t", value="n"),  # type: ignore[arg-type]
    ],
)
def test_charts_reject_bad_input(call: object) -> None:
    with pytest.raises(UnprocessableError):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.0, 100.0, [0, 20, 40, 60, 80, 100]),
        (0.0, 97.3, [0, 20, 40, 60, 80, 100]),
        (5.0, 5.0, [4, 4.5, 5, 5.5, 6]),
        (0.0, 0.0, [0, 0.2, 0.4, 0.6, 0.8, 1]),
        (-12.0, 7.0, [-15, -10, -5, 0, 5, 10]),
    ],
)
def test_nice_ticks(lo: float, hi: float, expected: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(expected)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(-1e6, 1e6, allow_nan=False),
)
def test_nice_ticks_cover_the_range(a: float, b: float) -> None:
    ticks = nice_ticks(a, b)
    lo, hi = min(a, b), max(a, b)
    step = ticks[1] - ticks[0]
    # covered up to 1e-9 of a step (the slack that keeps 0.30000000000000004 on 0.3)
    assert ticks[0] <= lo + 1e-9 * step
    assert ticks[-1] >= hi - 1e-9 * step
    assert 2 <= len(ticks) <= 12
    assert all(y - x == pytest.approx(step) for x, y in itertools.pairwise(ticks))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(max_size=8), st.none() | st.floats(-1e4, 1e4, allow_nan=False)),
        max_size=30,
    )
)
def test_any_bars_give_a_valid_svg(bars: list[tuple[str, float | None]]) -> None:
    root = parse(bar_chart_svg(bars, title="t", y_label="y"))
    assert len(marks(root, "rect", "bar")) == sum(1 for _, y in bars if y is not None)
