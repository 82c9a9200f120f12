"""Dashboards: which one is an actor's home, and the figures of its widgets.

The dashboards come from ``dashboard:`` documents (``engine.metadata.view_defs``);
a user whose roles none names gets a generated one with every built-in
widget of every workflow.  Each widget becomes a :class:`Figure` computed
by the pipeline service (built-in widgets) or a pack's report function,
always with the actor — so the web page, which draws the figures, and the
API, which serves them as JSON, show the same numbers within the same
rights.  A widget the actor may not see (a hidden field, no read right) is
left off; a report that fails shows its error on its own widget only.

Both read through ``site.report_records`` (the pipeline service is built on
it): the read-only replica when crm.yaml names one, so dashboards may trail
the primary by the replication lag but never load it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from engine.context import Actor
from engine.errors import CrmError, NotFound
from engine.metadata.durations import zone
from engine.metadata.model import Entity, Label
from engine.metadata.view_defs import BUILTIN_WIDGETS, DashboardDef, WidgetDef
from engine.services.figures import Figure, ReportRequest, Series
from engine.services.reports import ReportLoader

if TYPE_CHECKING:
    from engine.services.site_services import SiteServices

log = logging.getLogger(__name__)
#: The name of the generated dashboard (and, in URLs, of "my home dashboard").
HOME = "home"
#: Shown on a built-in widget whose database does not answer (the details go to the log).
UNREADABLE = "These figures cannot be read right now; please try again later."
_WORDS = {
    "funnel": {"en": "Pipeline funnel", "zh": "销售漏斗"},
    "weighted_pipeline": {"en": "Weighted pipeline by owner", "zh": "按负责人的加权管道"},
    "won_lost": {"en": "Won and lost by month", "zh": "按月赢单与丢单"},
    "sla_overdue": {"en": "SLA overdue", "zh": "超出时限"},
    "count": {"en": "Count", "zh": "数量"},
    "weighted": {"en": "Weighted value", "zh": "加权金额"},
    "won": {"en": "Won", "zh": "赢单"},
    "lost": {"en": "Lost", "zh": "丢单"},
    "hours_late": {"en": "Hours late", "zh": "超时小时数"},
    "home": {"en": "My dashboard", "zh": "我的仪表盘"},
}


@dataclass(frozen=True)
class WidgetFigure:
    """One widget as shown: its figure, or the message of a report that failed."""

    key: str
    widget: WidgetDef
    figure: Figure | None
    error: str | None = None

    def as_json(self) -> dict:
        return {"key": self.key, "kind": self.widget.kind, "target": self.widget.target,
                "figure": self.figure.as_json() if self.figure else None,
                "error": self.error}


def _title(entity: Entity, kind: str) -> dict[str, str]:
    return {lang: f"{_WORDS[kind][lang]} · {entity.plural.get(lang)}" for lang in ("en", "zh")}


def month_starts(now: dt.datetime, timezone: str, months: int) -> list[dt.datetime]:
    """The starts of the last ``months`` months and of the next one, in the site's zone."""
    local = now.astimezone(zone(timezone))
    starts = []
    for back in range(months - 1, -2, -1):
        index = local.year * 12 + local.month - 1 - back
        starts.append(dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=zone(timezone)))
    return starts


class DashboardService:
    """Dashboards of a site for an actor; owns the report loader (one per app)."""

    def __init__(self, site: SiteServices, reports: ReportLoader | None = None) -> None:
        self.site = site
        self.reports = reports or ReportLoader(site.registry, site.config.overlay_dir)

    # -- which dashboards --------------------------------------------------------------

    def generated(self) -> DashboardDef:
        """Every built-in widget of every workflow: the home of a role with no dashboard."""
        widgets = tuple(WidgetDef(kind=kind, target=w.entity)
                        for w in self.site.registry.workflows.values()
                        for kind in BUILTIN_WIDGETS)
        return DashboardDef(name=HOME, label=Label.from_yaml(_WORDS["home"]), widgets=widgets)

    def declared(self) -> list[DashboardDef]:
        return sorted(self.site.registry.dashboards.values(), key=lambda d: (d.order, d.name))

    def may_open(self, actor: Actor, dashboard: DashboardDef) -> bool:
        return actor.is_admin or not dashboard.roles or bool(set(dashboard.roles) & actor.roles)

    def available(self, actor: Actor) -> list[DashboardDef]:
        return [d for d in self.declared() if self.may_open(actor, d)]

    def home(self, actor: Actor) -> DashboardDef:
        """The first declared dashboard naming one of the actor's roles, else the generated one."""
        for dashboard in self.declared():
            if set(dashboard.roles) & actor.roles:
                return dashboard
        return self.generated()

    def get(self, actor: Actor, name: str) -> DashboardDef:
        """``home`` is the actor's own; a declared one they may open; else 404."""
        if name == HOME:
            return self.home(actor)
        found = self.site.registry.dashboards.get(name)
        if found is None or not self.may_open(actor, found):
            raise NotFound(f"There is no dashboard '{name}'.")
        return found

    # -- figures -----------------------------------------------------------------------

    def figures(self, actor: Actor, dashboard: DashboardDef) -> list[WidgetFigure]:
        """The figures of the widgets the actor sees, in order."""
        shown = []
        for index, widget in enumerate(dashboard.widgets):
            if not widget.shown_to(actor.roles) and not actor.is_admin:
                continue
            key = f"{index}-{widget.kind}-{widget.target}"
            if widget.kind == "report":
                shown.append(self._report(actor, widget, key))
                continue
            entity = self.site.registry.entities[widget.target]
            if not self.site.report_records.policy.can(actor, entity, "read"):
                continue
            try:
                figure = self._builtin(actor, widget, entity)
            except CrmError:
                continue  # built on something the actor may not see
            except SQLAlchemyError:
                # the replica (or the database) not answering: the widget says so, the page stays
                log.exception("dashboard widget %s could not be read", key)
                shown.append(WidgetFigure(key, widget, None, UNREADABLE))
                continue
            if figure is not None:
                shown.append(WidgetFigure(key, widget, self._titled(figure, widget)))
        return shown

    @staticmethod
    def _titled(figure: Figure, widget: WidgetDef) -> Figure:
        changes: dict = {}
        if widget.title is not None:
            changes["title"] = {"en": widget.title.en, "zh": widget.title.get("zh")}
        if widget.draw is not None:
            changes["kind"] = widget.draw
        if not changes:
            return figure
        return dataclasses.replace(figure, **changes)

    def _report(self, actor: Actor, widget: WidgetDef, key: str) -> WidgetFigure:
        request = ReportRequest(site=self.site, actor=actor, now=self.site.clock.now(),
                                params=widget.params)
        try:
            figure = self.reports.function(widget.target)(request)
        except CrmError as exc:
            if exc.status in (403, 404):
                return WidgetFigure(key, widget, None, None)
            return WidgetFigure(key, widget, None, exc.message)
        except Exception as exc:  # a pack's code: its failure stays on its widget
            log.exception("report %s failed", widget.target)
            return WidgetFigure(key, widget, None,
                                f"{widget.target} failed: {exc.__class__.__name__}: {exc}")
        if not isinstance(figure, Figure):
            return WidgetFigure(key, widget, None, f"{widget.target} returned "
                                f"{type(figure).__name__}, not a Figure")
        return WidgetFigure(key, widget, self._titled(figure, widget))

    def _builtin(self, actor: Actor, widget: WidgetDef, entity: Entity) -> Figure | None:
        build: dict[str, Callable[[Actor, WidgetDef, Entity], Figure | None]] = {
            "funnel": self._funnel, "weighted_pipeline": self._weighted,
            "won_lost": self._won_lost, "sla_overdue": self._overdue}
        return build[widget.kind](actor, widget, entity)

    def _funnel(self, actor: Actor, widget: WidgetDef, entity: Entity) -> Figure | None:
        groups = self.site.pipeline.weighted_pipeline(actor, entity.key, pipeline=widget.pipeline)
        if not groups:
            return None
        return Figure(
            title=_title(entity, "funnel"), kind="funnel", unit="count",
            categories=tuple(g.label for g in groups),
            series=(Series(_WORDS["count"], tuple(g.count for g in groups)),),
            links=tuple(f"/r/{entity.key}?stage={g.key}" for g in groups))

    def _weighted(self, actor: Actor, widget: WidgetDef, entity: Entity) -> Figure | None:
        groups = self.site.pipeline.weighted_pipeline(actor, entity.key, by="owner")
        if not groups:
            return None
        return Figure(
            title=_title(entity, "weighted_pipeline"), kind="bar", unit="money",
            categories=tuple(g.label for g in groups),
            series=(Series(_WORDS["weighted"], tuple(g.weighted for g in groups)),))

    def _won_lost(self, actor: Actor, widget: WidgetDef, entity: Entity) -> Figure | None:
        starts = month_starts(self.site.clock.now(), self.site.config.timezone, widget.months)
        rates = self.site.pipeline.win_rates(
            actor, entity.key, list(zip(starts, starts[1:], strict=False)))
        if not any(r.won or r.lost for r in rates):
            return None
        return Figure(
            title=_title(entity, "won_lost"), kind="column", unit="count",
            categories=tuple(f"{s.year}-{s.month:02d}" for s in starts[:-1]),
            series=(Series(_WORDS["won"], tuple(r.won for r in rates)),
                    Series(_WORDS["lost"], tuple(r.lost for r in rates))))

    def _overdue(self, actor: Actor, widget: WidgetDef, entity: Entity) -> Figure:
        late = self.site.pipeline.overdue(actor, entity.key)
        return Figure(
            title=_title(entity, "sla_overdue"), kind="table", unit="hours",
            categories=tuple(str(s.title if s.title is not None else f"#{s.record_id}")
                             for s in late),
            series=(Series(_WORDS["hours_late"],
                           tuple(Decimal(s.overdue_seconds // 360) / 10 for s in late)),),
            links=tuple(f"/r/{entity.key}/{s.record_id}" for s in late))
