"""Dashboard figures as JSON: the same :class:`Figure` objects the web page draws.

``GET /dashboards`` lists the declared dashboards the caller may open;
``GET /dashboards/<name>`` computes one (``home``: the caller's own) with
the caller's rights, through :class:`engine.services.dashboards.DashboardService`.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from engine.api.auth import api_actor
from engine.api.records import answer
from engine.http.context import state
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
        return answer({**_summary(dashboard),
                       "widgets": [w.as_json() for w in service.figures(me, dashboard)]})
