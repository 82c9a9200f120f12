"""Dashboard pages: the actor's home dashboard and any declared one they may open.

The figures come from :class:`engine.services.dashboards.DashboardService`
with the actor — the same objects the API serves as JSON — and are drawn
here by their kind (:mod:`engine.web.figures`).  A widget the actor may not
see is left off; a failing report shows its message on its own card.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template
from markupsafe import Markup

from engine.http.context import actor, language, login_required, site, state
from engine.services.dashboards import HOME
from engine.web.figures import draw
from engine.web.records import bp


@dataclass(frozen=True)
class Widget:
    key: str
    kind: str
    target: str
    title: str
    body: Markup | None
    error: str | None


def widgets(name: str) -> tuple[object, list[Widget]]:
    """The dashboard ``name`` (``home``: the actor's own) and its drawn widgets."""
    service = state().dashboards
    me = actor()
    lang = language()
    dashboard = service.get(me, name)
    drawn = []
    for shown in service.figures(me, dashboard):
        figure = shown.figure
        if figure is None and shown.error is None:
            continue
        title = (figure.title.get(lang) or figure.title.get("en", "")) if figure else (
            shown.widget.title.get(lang) if shown.widget.title else shown.widget.target)
        body = draw(figure, lang, site().config.currency) if figure else None
        drawn.append(Widget(shown.key, shown.widget.kind, shown.widget.target, title, body,
                            shown.error))
    return dashboard, drawn


def render(name: str) -> str:
    dashboard, drawn = widgets(name)
    return render_template("home.html", dashboard=dashboard, widgets=drawn,
                           others=state().dashboards.available(actor()), home=name == HOME)


@bp.route("/dashboards/<name>")
@login_required
def dashboard_page(name: str) -> str:
    return render(name)
