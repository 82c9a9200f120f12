"""Tiny server-side SVG charts for the dashboards.

Why our own instead of a library: the CSP forbids inline styles and
scripts, and the charts we need are bars; a few lines of SVG with
presentation *attributes* (``fill``, ``font-size``) stay inside the policy,
need no JavaScript and render in every browser and in screenshots.  Every
text goes through :func:`markupsafe.escape`, so labels from data can never
inject markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

PALETTE = ("#2463eb", "#66bb6a", "#ef5350", "#ffb74d", "#7986cb", "#4fc3f7", "#90a4ae")


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its length and the text written after it."""

    label: str
    value: Decimal | int | float
    text: str = ""
    colour: str | None = None


@dataclass(frozen=True)
class Series:
    """One series of a grouped chart (e.g. won, lost), with a value per category."""

    name: str
    values: Sequence[Decimal | int | float]
    colour: str


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _start(title: str, width: int, height: int) -> list[str]:
    """The opening of every chart's SVG: its box and its title."""
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
            f"<title>{escape(title)}</title>"]


def _start_with_axis(title: str, width: int, height: int, left: int, bottom: int) -> list[str]:
    """The opening of a chart over categories: box, title and the baseline under them."""
    return [*_start(title, width, height),
            f'<line x1="{left}" y1="{bottom}" x2="{width - left}" y2="{bottom}" '
            f'stroke="#c9d2dc"/>']


def _legend(series: Sequence[Series], left: int) -> list[str]:
    """A colour swatch and name per series, along the top from ``left``."""
    return [f'<rect x="{x}" y="4" width="10" height="10" fill="{escape(each.colour)}"/>'
            f'<text x="{x + 14}" y="13" font-size="11" fill="#1f2933">'
            f"{escape(each.name)}</text>"
            for x, each in ((left + j * 90, each) for j, each in enumerate(series))]


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 460, bar_height: int = 22,
              label_width: int = 110, funnel: bool = False) -> Markup:
    """Horizontal bars, longest = full width; ``funnel`` centres them like a funnel."""
    gap = 8
    height = max(1, len(bars)) * (bar_height + gap) + gap
    room = width - label_width - 130
    top = max((float(b.value) for b in bars), default=0.0) or 1.0
    parts = _start(title, width, height)
    for i, bar in enumerate(bars):
        y = gap + i * (bar_height + gap)
        length = max(2.0, room * float(bar.value) / top) if bar.value else 0.0
        x = label_width + (room - length) / 2 if funnel else label_width
        colour = bar.colour or PALETTE[i % len(PALETTE)]
        mid = y + bar_height / 2 + 4
        parts.append(f'<text x="{label_width - 6}" y="{_number(mid)}" text-anchor="end" '
                     f'font-size="12" fill="#1f2933">{escape(bar.label)}</text>')
        parts.append(f'<rect class="bar" x="{_number(x)}" y="{y}" width="{_number(length)}" '
                     f'height="{bar_height}" rx="3" fill="{escape(colour)}">'
                     f"<title>{escape(bar.label)}: {escape(bar.text)}</title></rect>")
        parts.append(f'<text x="{_number(x + length + 6)}" y="{_number(mid)}" font-size="12" '
                     f'fill="#66788a">{escape(bar.text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def grouped_columns(categories: Sequence[str], series: Sequence[Series], *, title: str,
                    width: int = 420, height: int = 220) -> Markup:
    """Vertical columns per category, one per series side by side, with a legend."""
    bottom, top_margin, left = height - 40, 24, 10
    top = max((float(v) for s in series for v in s.values), default=0.0) or 1.0
    slot = (width - 2 * left) / max(1, len(categories))
    bar = max(4.0, (slot - 10) / max(1, len(series)))
    parts = _start_with_axis(title, width, height, left, bottom)
    for i, name in enumerate(categories):
        x0 = left + i * slot + 5
        for j, each in enumerate(series):
            value = float(each.values[i])
            h = (bottom - top_margin) * value / top
            parts.append(f'<rect class="bar" x="{_number(x0 + j * bar)}" y="{_number(bottom - h)}" '
                         f'width="{_number(bar - 2)}" height="{_number(h)}" '
                         f'fill="{escape(each.colour)}"><title>{escape(name)} · '
                         f'{escape(each.name)}: {_number(value)}</title></rect>')
        parts.append(f'<text x="{_number(x0 + slot / 2 - 5)}" y="{bottom + 16}" '
                     f'text-anchor="middle" font-size="11" fill="#1f2933">{escape(name)}</text>')
    parts.extend(_legend(series, left))
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(categories: Sequence[str], series: Sequence[Series], *, title: str,
               width: int = 420, height: int = 220) -> Markup:
    """A line per series over the categories, with a dot per value and a legend."""
    bottom, top_margin, left = height - 40, 24, 16
    top = max((float(v) for s in series for v in s.values), default=0.0) or 1.0
    step = (width - 2 * left) / max(1, len(categories) - 1)
    parts = _start_with_axis(title, width, height, left, bottom)
    for each in series:
        points = []
        for i, value in enumerate(each.values):
            x = left + i * step
            y = bottom - (bottom - top_margin) * float(value) / top
            points.append(f"{_number(x)},{_number(y)}")
            parts.append(f'<circle class="bar" cx="{_number(x)}" cy="{_number(y)}" r="3" '
                         f'fill="{escape(each.colour)}"><title>{escape(categories[i])} · '
                         f'{escape(each.name)}: {_number(float(value))}</title></circle>')
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" '
                     f'stroke="{escape(each.colour)}" stroke-width="2"/>')
    for i, name in enumerate(categories):
        parts.append(f'<text x="{_number(left + i * step)}" y="{bottom + 16}" '
                     f'text-anchor="middle" font-size="11" fill="#1f2933">{escape(name)}</text>')
    parts.extend(_legend(series, left))
    parts.append("</svg>")
    return Markup("".join(parts))
