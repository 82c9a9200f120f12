"""Drawing a :class:`engine.services.figures.Figure` for a web page, by its kind.

``bar``, ``funnel`` and ``column`` become the SVG charts of
:mod:`engine.web.charts`; ``line`` a polyline chart; ``table`` an HTML
table; ``number`` one big figure.  Values are formatted by the figure's
unit (money in the site's currency, hours, percents).  Everything from the
figure goes through :func:`markupsafe.escape`: a pack's report cannot
inject markup.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

from engine.services.figures import Figure
from engine.web import formatting
from engine.web.charts import PALETTE, Series, chart, short_value


def format_value(value: Any, unit: str, currency: str) -> str:
    """A figure's value as text, by its unit."""
    if value is None:
        return ""
    if unit == "money":
        return formatting.money(value, currency)
    if unit == "percent":
        return f"{formatting.number(Decimal(value), 1)} %"
    if unit in ("days", "hours"):
        return f"{formatting.number(Decimal(value), 1)} {'d' if unit == 'days' else 'h'}"
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return formatting.number(int(value))
    return formatting.number(value)


def _label(mapping: Any, language: str) -> str:
    if not mapping:
        return ""
    return str(mapping.get(language) or mapping.get("en") or next(iter(mapping.values()), ""))


def _safe_link(link: str | None) -> str | None:
    """Only links inside the site (a path), never a script or another host."""
    if link and link.startswith("/") and not link.startswith("//"):
        return link
    return None


def _table(figure: Figure, language: str, currency: str) -> Markup:
    head = "".join(f"<th>{escape(_label(s.name, language))}</th>" for s in figure.series)
    rows = []
    for i, category in enumerate(figure.categories):
        link = _safe_link(figure.links[i] if i < len(figure.links) else None)
        name = (Markup('<a href="{}">{}</a>').format(link, category) if link
                else escape(category))
        cells = "".join(
            f'<td class="num">{escape(format_value(s.values[i], figure.unit, currency))}</td>'
            for s in figure.series)
        rows.append(f"<tr><td>{name}</td>{cells}</tr>")
    if not rows:
        return Markup('<p class="help empty-figure">—</p>')
    return Markup(f'<div class="table-wrap"><table class="data-table figure-table">'
                  f'<thead><tr><th></th>{head}</tr></thead>'
                  f'<tbody>{"".join(rows)}</tbody></table></div>')


def draw(figure: Figure, language: str, currency: str) -> Markup:
    """The figure as SVG or HTML, by its kind."""
    title = _label(figure.title, language)
    unit = figure.unit
    if figure.kind == "table":
        return _table(figure, language, currency)
    if figure.kind == "number":
        value = figure.series[0].values[0] if figure.series and figure.series[0].values else None
        return Markup('<p class="big-number">{}</p>').format(format_value(value, unit, currency))
    if not figure.series:
        return Markup('<p class="help empty-figure">—</p>')
    series = [Series(_label(s.name, language), [v or 0 for v in s.values],
                     PALETTE[j % len(PALETTE)]) for j, s in enumerate(figure.series)]
    return chart(figure.kind, title, figure.categories, series,
                 show=lambda v: format_value(v, unit, currency),
                 axis=lambda v: short_value(v, unit, currency, language),
                 links=figure.links, language=language)
