"""Server-side SVG charts for the dashboards: axes, ticks, value labels, legends, links.

Why our own SVG instead of a charting library (docs/web.md says more): the
page needs no JavaScript to show a figure, the strict CSP stays as it is (no
inline script or style — colours and sizes are SVG presentation attributes),
the charts print and show in screenshots as they are, and the tests can
measure them.  The layout is decided here, from estimated text widths:

- every text is :data:`FONT` user units; the SVG is :data:`WIDTH` wide and the
  stylesheet never shrinks it below the width of a phone's card, so text
  stays at least 11 px on screen;
- the value axis has "nice" ticks (1, 2, 2.5, 5 × 10ⁿ) with grid lines;
- category labels that do not fit under their column are turned 45° and,
  when even then they would touch, only every n-th is written (the data
  table holds them all); long labels are cut with "…" (the full text is in
  the bar's ``<title>``);
- each bar, dot and slice links to the list of the records behind it;
- a ``<title>`` and a ``<desc>`` (every value in words) make the chart an
  image with a text alternative, and a ``<details>`` data table follows it.

Every text goes through :func:`markupsafe.escape`, so labels from data can
never inject markup.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

from engine.web.presentation.formatting import CURRENCY_SYMBOLS

#: Colours with at least 4.5:1 against white (WCAG), told apart without red-green alone.
PALETTE = ("#2563eb", "#c2410c", "#047857", "#7c3aed", "#b45309", "#0e7490", "#be185d",
           "#4b5563")
TEXT = "#1f2933"
MUTED = "#52606d"
GRID = "#e4e7eb"
AXIS = "#7b8794"
#: Width of every chart in user units; the page draws it at 0.9× to 1.5× (docs/web.md).
WIDTH = 360
FONT = 13
_ids = itertools.count(1)
_WORDS = {
    "table": {"en": "Data table", "zh": "数据表"},
    "open": {"en": "Open the list", "zh": "打开列表"},
}

Number = Decimal | int | float


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its length, the text written after it and the list behind it."""

    label: str
    value: Number
    text: str = ""
    colour: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class Series:
    """One series of a grouped chart (e.g. won, lost), with a value per category."""

    name: str
    values: Sequence[Number]
    colour: str


# -- text ----------------------------------------------------------------------------------


def text_width(text: str, size: float = FONT) -> float:
    """An estimate of ``text``'s width: CJK characters are square, others about 0.6 em."""
    wide = sum(1 for c in text if ord(c) >= 0x2E80)
    return size * (wide + 0.6 * (len(text) - wide))


def clip(text: str, room: float, size: float = FONT) -> str:
    """``text`` cut with "…" to fit ``room``."""
    if text_width(text, size) <= room:
        return text
    while text and text_width(text + "…", size) > room:
        text = text[:-1]
    return text + "…"


def short_value(value: Number | None, unit: str, currency: str, language: str) -> str:
    """A value in few characters for a chart: ¥1.2M, 3.4万, 12 %, 5 d."""
    if value is None:
        return ""
    number = float(value)
    steps = ((1e8, "亿"), (1e4, "万")) if language == "zh" else (
        (1e9, "B"), (1e6, "M"), (1e3, "K"))
    text = None
    for size, suffix in steps:
        if abs(number) >= size:
            scaled = number / size
            digits = 0 if abs(scaled) >= 100 else 1
            text = f"{scaled:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{scaled:.0f}"
            text += suffix
            break
    if text is None:
        text = (f"{number:.1f}".rstrip("0").rstrip(".") if number != int(number)
                else str(int(number)))
    if unit == "money":
        symbol = CURRENCY_SYMBOLS.get(currency, "")
        return f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}"
    return text + {"percent": " %", "days": " d", "hours": " h"}.get(unit, "")


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, body: str, *, anchor: str = "start", fill: str = TEXT,
          css: str = "", rotate: float | None = None) -> str:
    turn = f' transform="rotate({_n(rotate)} {_n(x)} {_n(y)})"' if rotate else ""
    return (f'<text class="{css}" x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" '
            f'font-size="{FONT}" fill="{fill}"{turn}>{escape(body)}</text>')


def _linked(link: str | None, label: str, body: str) -> str:
    if not link:
        return body
    return f'<a href="{escape(link)}" aria-label="{escape(label)}">{body}</a>'


# -- scales --------------------------------------------------------------------------------


def nice_ticks(top: float, count: int = 4, whole: bool = False) -> list[float]:
    """0 and ``count`` or so round steps reaching at least ``top`` (whole steps: counts)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if whole:
        step = max(1.0, math.ceil(step))
    steps = math.ceil(top / step - 1e-9)
    return [i * step for i in range(steps + 1)]


def _frame(title: str, summary: str, height: float) -> tuple[list[str], str]:
    ident = f"chart-{next(_ids)}"
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" role="img" '
            f'aria-labelledby="{ident}-t {ident}-d" viewBox="0 0 {WIDTH} {_n(height)}" '
            f'width="{WIDTH}" height="{_n(height)}">',
            f'<title id="{ident}-t">{escape(title)}</title>',
            f'<desc id="{ident}-d">{escape(summary)}</desc>'], ident


def _summary(categories: Sequence[str], series: Sequence[Series],
             show: Callable[[Number], str]) -> str:
    parts = []
    for i, category in enumerate(categories):
        values = ", ".join(f"{s.name} {show(s.values[i])}" if len(series) > 1
                           else show(s.values[i]) for s in series)
        parts.append(f"{category}: {values}")
    return "; ".join(parts)


def _legend(series: Sequence[Series], y: float) -> tuple[list[str], float]:
    """A swatch and name per series, wrapping onto more rows; returns the parts and height."""
    if len(series) < 2:
        return [], 0.0
    parts, x, row = [], 4.0, 0
    for each in series:
        need = 18 + text_width(each.name) + 14
        if x + need > WIDTH and x > 4:
            x, row = 4.0, row + 1
        top = y + row * 20
        parts.append(f'<g class="legend"><rect x="{_n(x)}" y="{_n(top + 2)}" width="12" '
                     f'height="12" rx="2" fill="{escape(each.colour)}"/>'
                     + _text(x + 17, top + 13, each.name) + "</g>")
        x += need
    return parts, (row + 1) * 20 + 4


@dataclass(frozen=True)
class _XLabels:
    """How category labels go under columns: turned or not, every n-th, cut to a length."""

    rotate: bool
    every: int
    room: float
    height: float


def _x_labels(categories: Sequence[str], slot: float) -> _XLabels:
    widest = max((text_width(c) for c in categories), default=0.0)
    if widest <= slot - 4:
        return _XLabels(False, 1, slot - 4, FONT + 10)
    room = min(widest, 96.0)
    # turned 45°, neighbours touch when their distance is under the text's height × √2
    every = max(1, math.ceil((FONT * 1.5) / slot))
    return _XLabels(True, every, room, room * 0.71 + FONT + 8)


# -- charts --------------------------------------------------------------------------------


def bar_chart(bars: Sequence[Bar], *, title: str, funnel: bool = False,
              show: Callable[[Number], str] = str, axis: Callable[[Number], str] = str,
              **_: object) -> Markup:
    """Horizontal bars with their value at the end; ``funnel`` centres them like a funnel."""
    bar_height, gap = 24, 10
    label_room = min(max((text_width(b.label) for b in bars), default=0.0) + 8, WIDTH * 0.36)
    value_room = max((text_width(b.text) for b in bars), default=0.0) + 10
    left = label_room + 4
    room = max(40.0, WIDTH - left - value_room - 6)
    top_value = max((float(b.value) for b in bars), default=0.0)
    whole = all(isinstance(b.value, int) for b in bars)
    ticks = nice_ticks(top_value, whole=whole) if not funnel else [0.0, top_value or 1.0]
    scale_top = ticks[-1] or 1.0
    plot_top = 6.0
    plot_height = max(1, len(bars)) * (bar_height + gap)
    height = plot_top + plot_height + (FONT + 14 if not funnel else 4)
    summary = "; ".join(f"{b.label}: {b.text}" for b in bars)  # short values; the table: full
    parts, _ = _frame(title, summary, height)
    axis_y = plot_top + plot_height
    if not funnel:
        for tick in ticks:
            x = left + room * tick / scale_top
            parts.append(f'<line class="grid" x1="{_n(x)}" y1="{_n(plot_top)}" x2="{_n(x)}" '
                         f'y2="{_n(axis_y)}" stroke="{GRID}"/>')
            parts.append(_text(x, axis_y + FONT + 6, axis(tick), anchor="middle", fill=MUTED,
                               css="tick"))
        parts.append(f'<line class="axis" x1="{_n(left)}" y1="{_n(axis_y)}" '
                     f'x2="{_n(left + room)}" y2="{_n(axis_y)}" stroke="{AXIS}"/>')
    parts.append(f'<line class="axis" x1="{_n(left)}" y1="{_n(plot_top)}" x2="{_n(left)}" '
                 f'y2="{_n(axis_y)}" stroke="{AXIS}"/>')
    for i, bar in enumerate(bars):
        y = plot_top + gap / 2 + i * (bar_height + gap)
        value = float(bar.value or 0)
        length = max(2.0, room * value / scale_top) if value else 0.0
        x = left + (room - length) / 2 if funnel else left
        colour = bar.colour or PALETTE[0 if not funnel else i % len(PALETTE)]
        mid = y + bar_height / 2 + FONT * 0.35
        parts.append(_text(left - 6, mid, clip(bar.label, label_room - 8), anchor="end",
                           css="category"))
        body = (f'<rect class="bar" x="{_n(x)}" y="{_n(y)}" width="{_n(length)}" '
                f'height="{bar_height}" rx="3" fill="{escape(colour)}">'
                f"<title>{escape(bar.label)}: {escape(bar.text)}</title></rect>"
                + _text(x + length + 5, mid, bar.text, css="value"))
        parts.append(_linked(bar.link, f"{bar.label}: {bar.text}", body))
    parts.append("</svg>")
    return Markup("".join(parts))


def _value_axis(parts: list[str], ticks: list[float], left: float, right: float,
                top: float, bottom: float, axis: Callable[[Number], str]) -> None:
    scale_top = ticks[-1] or 1.0
    for tick in ticks:
        y = bottom - (bottom - top) * tick / scale_top
        parts.append(f'<line class="grid" x1="{_n(left)}" y1="{_n(y)}" x2="{_n(right)}" '
                     f'y2="{_n(y)}" stroke="{GRID}"/>')
        parts.append(_text(left - 5, y + FONT * 0.35, axis(tick), anchor="end", fill=MUTED,
                           css="tick"))
    parts.append(f'<line class="axis" x1="{_n(left)}" y1="{_n(bottom)}" x2="{_n(right)}" '
                 f'y2="{_n(bottom)}" stroke="{AXIS}"/>')
    parts.append(f'<line class="axis" x1="{_n(left)}" y1="{_n(top)}" x2="{_n(left)}" '
                 f'y2="{_n(bottom)}" stroke="{AXIS}"/>')


def _category_labels(parts: list[str], categories: Sequence[str], centres: Sequence[float],
                     bottom: float, layout: _XLabels) -> None:
    for i, (name, x) in enumerate(zip(categories, centres, strict=True)):
        if i % layout.every:
            continue
        shown = clip(name, layout.room)
        if layout.rotate:
            parts.append(_text(x + 4, bottom + FONT + 2, shown, anchor="end",
                               css="category x-label", rotate=-45))
        else:
            parts.append(_text(x, bottom + FONT + 6, shown, anchor="middle",
                               css="category x-label"))


def _plot_box(categories: Sequence[str], series: Sequence[Series],
              axis: Callable[[Number], str]) -> tuple[list[float], float, float, _XLabels]:
    top = max((float(v) for s in series for v in s.values), default=0.0)
    ticks = nice_ticks(top, whole=all(isinstance(v, int) for s in series for v in s.values))
    left = max(text_width(axis(t)) for t in ticks) + 10
    right = WIDTH - 8
    layout = _x_labels(categories, (right - left) / max(1, len(categories)))
    if layout.rotate:
        # a turned label reaches left of its column by (length + height) × cos 45°: keep it in
        slot = (right - left) / max(1, len(categories))
        reach = (clip_width(categories[0], layout.room) + FONT) * 0.71 - slot / 2 + 2
        if reach > left:
            left = min(reach, WIDTH * 0.3)
            layout = _x_labels(categories, (right - left) / max(1, len(categories)))
    return ticks, left, right, layout


def clip_width(text: str, room: float) -> float:
    """The width of ``text`` once cut to ``room``."""
    return text_width(clip(text, room))


def grouped_columns(categories: Sequence[str], series: Sequence[Series], *, title: str,
                    show: Callable[[Number], str] = str, axis: Callable[[Number], str] = str,
                    links: Sequence[str | None] = (), **_: object) -> Markup:
    """Vertical columns per category, one per series side by side, with a legend."""
    legend, legend_height = _legend(series, 4)
    ticks, left, right, layout = _plot_box(categories, series, axis)
    slot = (right - left) / max(1, len(categories))
    bar = max(3.0, (slot * 0.8) / max(1, len(series)))
    texts = [[axis(v) for v in s.values] for s in series]
    widest = max((text_width(t) for row in texts for t in row), default=0.0)
    turned = widest > bar + 2  # value labels read upwards above narrow columns
    # columns narrower than a line of text: their values would touch; the table has them
    labelled = not turned or bar >= FONT + 2
    headroom = (widest + 6) if turned and bar >= FONT + 2 else FONT + 6
    top = legend_height + headroom
    plot = 150.0
    bottom = top + plot
    height = bottom + layout.height
    parts, _ = _frame(title, _summary(categories, series, show), height)
    parts += legend
    _value_axis(parts, ticks, left, right, top, bottom, axis)
    scale_top = ticks[-1] or 1.0
    centres = []
    for i, name in enumerate(categories):
        start = left + i * slot + slot * 0.1
        centres.append(left + i * slot + slot / 2)
        link = links[i] if i < len(links) else None
        group = []
        for j, each in enumerate(series):
            value = float(each.values[i] or 0)
            h = plot * value / scale_top
            x = start + j * bar
            group.append(f'<rect class="bar" x="{_n(x)}" y="{_n(bottom - h)}" '
                         f'width="{_n(bar - 1)}" height="{_n(h)}" fill="{escape(each.colour)}">'
                         f'<title>{escape(name)} · {escape(each.name)}: '
                         f'{escape(show(each.values[i]))}</title></rect>')
            mid = x + (bar - 1) / 2
            if not labelled:
                continue
            if turned:
                group.append(_text(mid + FONT * 0.35, bottom - h - 4, texts[j][i],
                                   css="value", rotate=-90))
            else:
                group.append(_text(mid, bottom - h - 4, texts[j][i], anchor="middle",
                                   css="value"))
        label = f"{name}: " + ", ".join(f"{s.name} {show(s.values[i])}" for s in series)
        parts.append(_linked(link, label, "".join(group)))
    _category_labels(parts, categories, centres, bottom, layout)
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(categories: Sequence[str], series: Sequence[Series], *, title: str,
               show: Callable[[Number], str] = str, axis: Callable[[Number], str] = str,
               links: Sequence[str | None] = (), **_: object) -> Markup:
    """A line per series over the categories, a dot per value, the last value written."""
    legend, legend_height = _legend(series, 4)
    ticks, left, right, layout = _plot_box(categories, series, axis)
    slot = (right - left) / max(1, len(categories))
    top = legend_height + FONT + 8
    plot = 150.0
    bottom = top + plot
    height = bottom + layout.height
    parts, _ = _frame(title, _summary(categories, series, show), height)
    parts += legend
    _value_axis(parts, ticks, left, right, top, bottom, axis)
    scale_top = ticks[-1] or 1.0
    centres = [left + i * slot + slot / 2 for i in range(len(categories))]
    taken: list[float] = []  # heights of the last values written, so none touches another
    for each in series:
        points = [(centres[i], bottom - plot * float(v or 0) / scale_top)
                  for i, v in enumerate(each.values)]
        parts.append(f'<polyline points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in points)}" '
                     f'fill="none" stroke="{escape(each.colour)}" stroke-width="2"/>')
        for i, (x, y) in enumerate(points):
            link = links[i] if i < len(links) else None
            dot = (f'<circle class="bar" cx="{_n(x)}" cy="{_n(y)}" r="4" '
                   f'fill="{escape(each.colour)}"><title>{escape(categories[i])} · '
                   f'{escape(each.name)}: {escape(show(each.values[i]))}</title></circle>')
            parts.append(_linked(link, f"{categories[i]}: {show(each.values[i])}", dot))
        if points and all(abs(points[-1][1] - y) > FONT * 1.4 for y in taken):
            x, y = points[-1]
            taken.append(y)
            parts.append(_text(x - 6, y - 6, axis(each.values[-1] or 0), anchor="end",
                               css="value"))
    _category_labels(parts, categories, centres, bottom, layout)
    parts.append("</svg>")
    return Markup("".join(parts))


def data_table(categories: Sequence[str], series: Sequence[Series],
               show: Callable[[Number], str], links: Sequence[str | None],
               language: str) -> Markup:
    """The chart's figures as a table behind a "Data table" switch (no script needed)."""
    head = "".join(f'<th scope="col">{escape(s.name)}</th>' for s in series)
    rows = []
    for i, category in enumerate(categories):
        link = links[i] if i < len(links) else None
        name = (Markup('<a href="{}">{}</a>').format(link, category) if link
                else escape(category))
        cells = "".join(f'<td class="num">{escape(show(s.values[i]))}</td>' for s in series)
        rows.append(f'<tr><th scope="row">{name}</th>{cells}</tr>')
    return Markup(f'<details class="chart-data"><summary>{_WORDS["table"][language]}</summary>'
                  f'<div class="table-wrap"><table class="data-table figure-table">'
                  f'<thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
                  f"</table></div></details>")


def chart(kind: str, title: str, categories: Sequence[str], series: Sequence[Series], *,
          show: Callable[[Number], str], axis: Callable[[Number], str],
          links: Sequence[str | None], language: str) -> Markup:
    """A figure of ``kind`` (bar, funnel, column, line) drawn, with its data table."""
    language = language if language in ("en", "zh") else "en"
    links = [link if link and link.startswith("/") and not link.startswith("//") else None
             for link in links]
    if kind in ("bar", "funnel"):
        first = series[0]
        bars = [Bar(category, first.values[i] or 0,
                    " · ".join(axis(s.values[i]) for s in series),
                    link=links[i] if i < len(links) else None)
                for i, category in enumerate(categories)]
        drawn = bar_chart(bars, title=title, funnel=kind == "funnel", show=show, axis=axis)
    elif kind == "line":
        drawn = line_chart(categories, series, title=title, show=show, axis=axis, links=links)
    else:
        drawn = grouped_columns(categories, series, title=title, show=show, axis=axis,
                                links=links)
    return drawn + data_table(categories, series, show, links, language)
