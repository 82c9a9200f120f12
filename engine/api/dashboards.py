"""Dashboard figures as JSON: the same :class:`Figure` objects the web page draws.

``GET /dashboards`` lists the declared dashboards the caller may open;
``GET /dashboards/<name>`` computes one (``home``: the caller's own) with
the caller's rights, through :class:`engine.services.views.dashboards.DashboardService`,
narrowed by the same ``period``/``from``/``to``/``team``/``owner`` arguments
as the web page (a team or owner the caller may not pick is a 422). Each
series carries its unit (and currency for money) and its values as text in
the caller's language.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request

from engine.api.auth import api_actor
from engine.api.records import answer
from engine.http.context import site, state
from engine.metadata.durations import zone
from engine.metadata.view_defs import DashboardDef


def _summary(dashboard: DashboardDef) -> dict[str, Any]:
    return {"name": dashboard.name, "label": dashboard.label.to_data(),
            "roles": list(dashboard.roles), "widgets": len(dashboard.widgets)}


def register(bp: Any) -> None:
    @bp.get("/dashboards")
    def list_dashboards() -> Response:
        service = state().dashboards
        return answer({"items": [_summary(d) for d in service.available(api_actor())]})

    @bp.get("/dashboards/<name>")
    def get_dashboard(name: str) -> Response:
        service = state().dashboards
        me = api_actor()
        dashboard = service.get(me, name)
        today = site().clock.now().astimezone(zone(site().config.timezone)).date()
        narrowed = service.filters.read(me, service.entities(dashboard), request.args, today)
        return answer({**_summary(dashboard), "filter": narrowed.query(),
                       "widgets": [w.as_json(me.language, site().config.currency)
                                   for w in service.figures(me, dashboard, narrowed)]})
