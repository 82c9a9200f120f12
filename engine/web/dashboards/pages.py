"""Dashboard pages: the actor's home dashboard and any declared one they may open.

The figures come from :class:`engine.services.views.dashboards.DashboardService`
with the actor — the same objects the API serves as JSON — and are drawn
here by their kind (:mod:`engine.web.dashboards.figures`).  A widget the actor may not
see is left off; a failing report shows its message on its own card.

The filters (period, team, owner) are read from the query string by the
service (:mod:`engine.services.views.dashboard_filters`), which decides what the
actor may pick; this page only offers those choices in a GET form, so a
filtered dashboard is a link.  A refused filter shows its messages and the
dashboard unfiltered, with a 422.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template, request
from markupsafe import Markup

from engine.errors import ValidationFailed
from engine.http.context import actor, language, login_required, site, state
from engine.metadata.durations import zone
from engine.services.views.dashboard_filters import PERIODS, DashboardFilter
from engine.services.views.dashboards import HOME
from engine.web.dashboards.figures import draw
from engine.web.records.pages import bp


@dataclass(frozen=True)
class Widget:
    key: str
    kind: str
    target: str
    title: str
    body: Markup | None
    error: str | None
    unfiltered: bool = False


def read_filter(dashboard: object) -> tuple[DashboardFilter, dict[str, list[str]]]:
    """The filter of the query string, or none and the messages when it is refused."""
    service = state().dashboards
    today = site().clock.now().astimezone(zone(site().config.timezone)).date()
    try:
        return service.filters.read(actor(), service.entities(dashboard), request.args,
                                    today), {}
    except ValidationFailed as exc:
        return DashboardFilter(timezone=site().config.timezone), exc.errors


def widgets(name: str, narrowed: DashboardFilter | None = None
            ) -> tuple[object, list[Widget]]:
    """The dashboard ``name`` (``home``: the actor's own) and its drawn widgets."""
    service = state().dashboards
    me = actor()
    lang = language()
    dashboard = service.get(me, name)
    drawn = []
    for shown in service.figures(me, dashboard, narrowed):
        figure = shown.figure
        if figure is None and shown.error is None:
            continue
        title = (figure.title.get(lang) or figure.title.get("en", "")) if figure else (
            shown.widget.title.get(lang) if shown.widget.title else shown.widget.target)
        body = draw(figure, lang, site().config.currency) if figure else None
        drawn.append(Widget(shown.key, shown.widget.kind, shown.widget.target, title, body,
                            shown.error, shown.unfiltered))
    return dashboard, drawn


def render(name: str) -> tuple[str, int]:
    service = state().dashboards
    dashboard = service.get(actor(), name)
    narrowed, errors = read_filter(dashboard)
    _, drawn = widgets(name, narrowed)
    choices = service.filters.choices(actor(), service.entities(dashboard))
    html = render_template("home.html", dashboard=dashboard, widgets=drawn,
                           others=service.available(actor()), home=name == HOME,
                           narrowed=narrowed, choices=choices, periods=PERIODS,
                           filter_errors=errors, args=request.args)
    return html, 422 if errors else 200


@bp.route("/dashboards/<name>")
@login_required
def dashboard_page(name: str) -> tuple[str, int]:
    return render(name)
