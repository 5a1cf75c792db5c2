"""Small standalone SVG 1.1 charts (line, bar, timing heat map) with no plotting library.

Each function returns one ``<svg xmlns="http://www.w3.org/2000/svg" version="1.1">``
document as a string: a ``<title>``, axes with ticks and labels, and the marks. Marks carry
a class (``point``/``line``, ``bar``, ``cell``) and a ``<title>`` tooltip, so tests and
clients can find them. Every piece of text is XML-escaped, and characters XML 1.0 forbids
are dropped. None values are gaps: no point, no bar, and a line breaks around them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal
from xml.sax.saxutils import escape

from api.errors import UnprocessableError
from api.progress.rules import Cell

__all__ = [
    "PALETTE",
    "HeatmapValue",
    "Series",
    "bar_chart_svg",
    "heatmap_svg",
    "line_chart_svg",
    "nice_ticks",
]

HeatmapValue = Literal["mean_abs_dev_ms", "mean_dev_ms", "off_pct"]

PALETTE: Final = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
_SVG_NS: Final = "http://www.w3.org/2000/svg"
_FONT: Final = 'font-family="sans-serif"'
_AXIS: Final = "#444444"
_GRID: Final = "#e5e5e5"
_INVALID_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 48, 56


@dataclass(frozen=True, slots=True)
class Series:
    """One named line of a line chart.

    Attributes
    ----------
    name : str
        Legend text.
    points : sequence of (str, float or None)
        ``(x_label, y)``; None is a gap.
    """

    name: str
    points: Sequence[tuple[str, float | None]]


def _esc(text: str) -> str:
    return escape(_INVALID_XML.sub("", str(text)), {'"': "&quot;", "'": "&apos;"})


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _fmt_tick(v: float) -> str:
    text = f"{round(v, 9):.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _check_size(width: int, height: int) -> None:
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or not 160 <= v <= 4096:
            raise UnprocessableError(f"{name} must be an integer in 160..4096 px; got {v!r}")


def _check_y(where: str, y: float | None) -> None:
    if y is not None and (isinstance(y, bool) or not math.isfinite(y)):
        raise UnprocessableError(f"{where} must be a finite number or None; got {y!r}")


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering lo..hi."""
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo <= 1e-12 * max(1.0, abs(lo), abs(hi)):  # one value (or a subnormal span)
        lo, hi = (lo - 1.0, lo + 1.0) if lo != 0 else (0.0, 1.0)
    raw = (hi - lo) / max(1, max_ticks - 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= raw * (1 - 1e-9))
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    count = round((end - start) / step)
    return [start + i * step for i in range(count + 1)]


class _Frame:
    """Plot area geometry and the shared parts (title, axes, ticks, labels)."""

    def __init__(self, width: int, height: int, labels: Sequence[str], ticks: list[float]):
        self.width, self.height = width, height
        self.left, self.top = _LEFT, _TOP
        self.right, self.bottom = width - _RIGHT, height - _BOTTOM
        self.labels = list(labels)
        self.ticks = ticks
        self.y_lo, self.y_hi = ticks[0], ticks[-1]
        self.band = (self.right - self.left) / max(1, len(self.labels))

    def x(self, i: int) -> float:
        return self.left + (i + 0.5) * self.band

    def y(self, v: float) -> float:
        return self.bottom - (v - self.y_lo) / (self.y_hi - self.y_lo) * (self.bottom - self.top)

    def open(self, title: str, desc: str) -> list[str]:
        return [
            f'<svg xmlns="{_SVG_NS}" version="1.1" width="{self.width}" '
            f'height="{self.height}" viewBox="0 0 {self.width} {self.height}">',
            f"<title>{_esc(title)}</title>",
            f"<desc>{_esc(desc)}</desc>",
            f'<rect x="0" y="0" width="{self.width}" height="{self.height}" fill="#ffffff"/>',
            f'<text class="title" x="{self.width / 2:.1f}" y="20" text-anchor="middle" '
            f'font-size="15" font-weight="bold" {_FONT}>{_esc(title)}</text>',
        ]

    def axes(self, y_label: str, x_label: str | None = None) -> list[str]:
        return [*self.y_axis(y_label), *self.x_axis(x_label)]

    def y_axis(self, y_label: str) -> list[str]:
        parts = ['<g class="y-axis">']
        for t in self.ticks:
            y = self.y(t)
            parts.append(
                f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.right}" y2="{y:.1f}" '
                f'stroke="{_GRID}"/>'
                f'<line class="tick" x1="{self.left - 4}" y1="{y:.1f}" x2="{self.left}" '
                f'y2="{y:.1f}" stroke="{_AXIS}"/>'
                f'<text x="{self.left - 7}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                f"{_FONT}>{_esc(_fmt_tick(t))}</text>"
            )
        cy = (self.top + self.bottom) / 2
        parts.append(
            f'<text class="y-label" x="14" y="{cy:.1f}" text-anchor="middle" font-size="12" '
            f'transform="rotate(-90 14 {cy:.1f})" {_FONT}>{_esc(y_label)}</text>'
        )
        parts.append("</g>")
        return parts

    def x_axis(self, x_label: str | None = None) -> list[str]:
        parts = ['<g class="x-axis">']
        every = max(1, math.ceil(len(self.labels) * 48 / max(1.0, self.right - self.left)))
        for i, label in enumerate(self.labels):
            x = self.x(i)
            parts.append(
                f'<line class="tick" x1="{x:.1f}" y1="{self.bottom}" x2="{x:.1f}" '
                f'y2="{self.bottom + 4}" stroke="{_AXIS}"/>'
            )
            if i % every == 0:
                parts.append(
                    f'<text x="{x:.1f}" y="{self.bottom + 17}" text-anchor="middle" '
                    f'font-size="11" {_FONT}>{_esc(label)}</text>'
                )
        if x_label:
            parts.append(
                f'<text class="x-label" x="{(self.left + self.right) / 2:.1f}" '
                f'y="{self.height - 10}" text-anchor="middle" font-size="12" {_FONT}>'
                f"{_esc(x_label)}</text>"
            )
        parts.append(
            f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}" '
            f'stroke="{_AXIS}"/>'
            f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{self.bottom}" '
            f'stroke="{_AXIS}"/>'
        )
        parts.append("</g>")
        return parts

    def no_data(self) -> str:
        return (
            f'<text class="no-data" x="{(self.left + self.right) / 2:.1f}" '
            f'y="{(self.top + self.bottom) / 2:.1f}" text-anchor="middle" font-size="13" '
            f'fill="#888888" {_FONT}>No data</text>'
        )


def line_chart_svg(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    width: int = 640,
    height: int = 320,
) -> str:
    """A line chart over categorical x labels.

    The x axis holds every label of every series, in order of first appearance. Each series
    draws a ``<circle class="point">`` per known value and a ``<polyline class="line">`` per
    run of two or more consecutive known values, so a None (or a label the series lacks)
    breaks the line.

    Parameters
    ----------
    series : sequence of Series
        The lines (colours from :data:`PALETTE`, in order).
    title, y_label : str
        Chart title and y-axis label.
    width, height : int
        Size in px, 160-4096.

    Returns
    -------
    str
        The SVG document.
    """
    _check_size(width, height)
    labels: list[str] = []
    seen: set[str] = set()
    values: list[dict[str, float]] = []
    for s in series:
        known: dict[str, float] = {}
        for label, y in s.points:
            _check_y(f"y of {s.name!r} at {label!r}", y)
            if label not in seen:
                seen.add(label)
                labels.append(label)
            if y is not None:
                known[label] = float(y)
        values.append(known)
    ys = [y for known in values for y in known.values()]
    frame = _Frame(width, height, labels, nice_ticks(min(ys, default=0.0), max(ys, default=1.0)))
    parts = frame.open(title, f"Line chart of {', '.join(s.name for s in series)}")
    parts += frame.axes(y_label)
    if not ys:
        parts.append(frame.no_data())
    index = {label: i for i, label in enumerate(labels)}
    for n, (s, known) in enumerate(zip(series, values, strict=True)):
        color = PALETTE[n % len(PALETTE)]
        parts.append(f'<g class="series" stroke="{color}" fill="{color}">')
        run: list[tuple[float, float]] = []
        runs: list[list[tuple[float, float]]] = []
        for i, label in enumerate(labels):
            if label in known:
                run.append((frame.x(i), frame.y(known[label])))
            else:
                runs.append(run)
                run = []
        runs.append(run)
        for r in runs:
            if len(r) >= 2:
                pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in r)
                parts.append(
                    f'<polyline class="line" fill="none" stroke-width="2" points="{pts}"/>'
                )
        for label, y in known.items():
            cx, cy = frame.x(index[label]), frame.y(y)
            parts.append(
                f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="3">'
                f"<title>{_esc(f'{s.name}: {label} = {_num(y)}')}</title></circle>"
            )
        parts.append("</g>")
    # legend, in the band under the title
    x = float(frame.left)
    for n, s in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        parts.append(
            f'<g class="legend"><rect x="{x:.1f}" y="29" width="10" height="10" '
            f'fill="{color}"/><text x="{x + 14:.1f}" y="38" font-size="11" {_FONT}>'
            f"{_esc(s.name)}</text></g>"
        )
        x += 24 + 7 * len(s.name)
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart_svg(
    bars: Sequence[tuple[str, float | None]],
    *,
    title: str,
    y_label: str,
    width: int = 640,
    height: int = 320,
    color: str = PALETTE[0],
) -> str:
    """A bar chart: one ``<rect class="bar">`` per known value, from zero to the value.

    Parameters
    ----------
    bars : sequence of (str, float or None)
        ``(x_label, y)``; None leaves the slot empty.
    title, y_label : str
        Chart title and y-axis label.
    width, height : int
        Size in px, 160-4096.
    color : str
        Fill colour, ``#rrggbb``.

    Returns
    -------
    str
        The SVG document.
    """
    _check_size(width, height)
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", color):
        raise UnprocessableError(f"color must be #rrggbb; got {color!r}")
    for label, y in bars:
        _check_y(f"y at {label!r}", y)
    ys = [float(y) for _, y in bars if y is not None]
    lo, hi = min([0.0, *ys]), max([0.0, *ys])
    frame = _Frame(width, height, [label for label, _ in bars], nice_ticks(lo, hi))
    parts = frame.open(title, "Bar chart")
    parts += frame.axes(y_label)
    if not ys:
        parts.append(frame.no_data())
    zero = frame.y(0.0)
    bar_w = frame.band * 0.7
    parts.append(f'<g class="bars" fill="{color}">')
    for i, (label, y) in enumerate(bars):
        if y is None:
            continue
        top = frame.y(float(y))
        parts.append(
            f'<rect class="bar" x="{frame.x(i) - bar_w / 2:.1f}" y="{min(top, zero):.1f}" '
            f'width="{bar_w:.1f}" height="{abs(zero - top):.1f}">'
            f"<title>{_esc(f'{label}: {_num(float(y))}')}</title></rect>"
        )
    parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _mix(c0: tuple[int, int, int], c1: tuple[int, int, int], t: float) -> str:
    t = min(1.0, max(0.0, t))
    r, g, b = (round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


_WHITE: Final = (255, 255, 255)
_RED: Final = (200, 30, 30)
_BLUE: Final = (30, 90, 200)
_UNITS: Final = {"mean_abs_dev_ms": "ms", "mean_dev_ms": "ms", "off_pct": "%"}


def heatmap_svg(
    cells: Sequence[Cell],
    *,
    title: str,
    value: HeatmapValue = "mean_abs_dev_ms",
    width: int = 640,
    height: int = 320,
) -> str:
    """A bar x beat heat map of timing: one ``<rect class="cell">`` per cell.

    Columns are bars (left to right), rows beats of the bar (beat 1 on top). ``mean_abs_dev_ms``
    and ``off_pct`` shade from white (0) to red (the largest value; 100 % for ``off_pct``);
    ``mean_dev_ms`` is diverging: blue early, white on time, red late.

    Parameters
    ----------
    cells : sequence of Cell
        From :func:`api.progress.rules.bar_beat_heatmap` or ``merge_heatmaps``.
    title : str
        Chart title.
    value : {"mean_abs_dev_ms", "mean_dev_ms", "off_pct"}
        What the colour shows.
    width, height : int
        Size in px, 160-4096.

    Returns
    -------
    str
        The SVG document.
    """
    _check_size(width, height)
    if value not in _UNITS:
        raise UnprocessableError(f"value must be one of {tuple(_UNITS)}; got {value!r}")
    vals = [float(getattr(c, value)) for c in cells]
    for c, v in zip(cells, vals, strict=True):
        _check_y(f"{value} of bar {c.bar} beat {c.beat}", v)
    unit = _UNITS[value]
    if cells:
        bar_lo, bar_hi = min(c.bar for c in cells), max(c.bar for c in cells)
        beats = max(c.beat for c in cells)
    else:
        bar_lo, bar_hi, beats = 1, 1, 1
    labels = [str(b) for b in range(bar_lo, bar_hi + 1)]
    frame = _Frame(width, height, labels, [0.0, 1.0])
    parts = frame.open(title, f"Timing heat map of {value} ({unit}) per bar and beat")
    row_h = (frame.bottom - frame.top) / beats
    parts.append('<g class="y-axis">')
    for beat in range(1, beats + 1):
        y = frame.top + (beat - 0.5) * row_h
        parts.append(
            f'<text x="{frame.left - 7}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f"{_FONT}>{beat}</text>"
        )
    cy = (frame.top + frame.bottom) / 2
    parts.append(
        f'<text class="y-label" x="14" y="{cy:.1f}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {cy:.1f})" {_FONT}>beat</text></g>'
    )
    parts += frame.x_axis("bar")
    if not cells:
        parts.append(frame.no_data())
    largest = max((abs(v) for v in vals), default=0.0) or 1.0
    scale = 100.0 if value == "off_pct" else largest
    parts.append('<g class="cells" stroke="#ffffff">')
    for c, v in zip(cells, vals, strict=True):
        if value == "mean_dev_ms":
            fill = _mix(_WHITE, _RED if v > 0 else _BLUE, abs(v) / scale)
        else:
            fill = _mix(_WHITE, _RED, v / scale)
        x = frame.left + (c.bar - bar_lo) * frame.band
        y = frame.top + (c.beat - 1) * row_h
        tip = (
            f"bar {c.bar}, beat {c.beat}: {_num(v)} {unit}; n={c.n}, "
            f"mean |dev| {_num(c.mean_abs_dev_ms)} ms, mean dev {_num(c.mean_dev_ms)} ms, "
            f"off {_num(c.off_pct)} %"
        )
        parts.append(
            f'<rect class="cell" x="{x:.1f}" y="{y:.1f}" width="{frame.band:.1f}" '
            f'height="{row_h:.1f}" fill="{fill}"><title>{_esc(tip)}</title></rect>'
        )
    parts.append("</g>")
    parts.append(
        f'<text class="scale" x="{frame.right}" y="38" text-anchor="end" font-size="11" '
        f"{_FONT}>{_esc(f'{value}: 0 to {_num(scale)} {unit}')}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)
