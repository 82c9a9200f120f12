"""Drawing a :class:`engine.services.views.figures.Figure` for a web page, by its kind.

``bar``, ``funnel`` and ``column`` become the SVG charts of
:mod:`engine.web.dashboards.charts`; ``line`` a polyline chart; ``table`` an HTML
table; ``number`` one big figure.  Each value is written by its series' unit
in the reader's language (:mod:`engine.services.views.figure_text`): a count of
deals beside their value in money, days, hours, percents.  Everything from the
figure goes through :func:`markupsafe.escape`: a pack's report cannot
inject markup.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from engine.services.views import figure_text
from engine.services.views.figures import Figure
from engine.web.dashboards.charts import PALETTE, Series, chart, short_value


def format_value(value: Any, unit: str, currency: str, language: str = "en") -> str:
    """A figure's value as text, by its unit (see :mod:`engine.services.views.figure_text`)."""
    return figure_text.format_value(value, unit, currency, language)


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
            f'<td class="num unit-{figure.unit_of(s)}">'
            f'{escape(figure.text(s, s.values[i], currency, language))}</td>'
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
    if figure.kind == "table":
        return _table(figure, language, currency)
    if figure.kind == "number":
        if not (figure.series and figure.series[0].values):
            return Markup('<p class="big-number"></p>')
        first = figure.series[0]
        return Markup('<p class="big-number">{}</p>').format(
            figure.text(first, first.values[0], currency, language))
    if not figure.series:
        return Markup('<p class="help empty-figure">—</p>')
    series = [Series(_label(s.name, language), [v or 0 for v in s.values],
                     PALETTE[j % len(PALETTE)]) for j, s in enumerate(figure.series)]
    # One value axis: the chart is drawn in the first measure's unit; the data
    # table and the API give every measure in its own.
    first = figure.series[0]
    unit, money = figure.unit_of(first), first.currency or currency
    return chart(figure.kind, title, figure.categories, series,
                 show=lambda v: format_value(v, unit, money, language),
                 axis=lambda v: short_value(v, unit, money, language),
                 links=figure.links, language=language)
