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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from sqlalchemy.exc import SQLAlchemyError

from engine.context import Actor
from engine.errors import CrmError, NotFound
from engine.metadata.durations import zone
from engine.metadata.model import Entity, Label
from engine.metadata.view_defs import BUILTIN_WIDGETS, DashboardDef, WidgetDef
from engine.metadata.workflow_model import workflow_for
from engine.services.views.dashboard_filters import DashboardFilter, DashboardFilters
from engine.services.views.figures import Figure, ReportRequest, Series
from engine.services.views.pipeline import PipelineService
from engine.services.views.reports import ReportLoader

if TYPE_CHECKING:
    from engine.services.views.site_services import SiteServices

log = logging.getLogger(__name__)
#: The name of the generated dashboard (and, in URLs, of "my home dashboard").
HOME = "home"
#: Shown on a built-in widget whose database does not answer (the details go to the log).
UNREADABLE = "These figures cannot be read right now; please try again later."
_WORDS = {
    "funnel": {"en": "Pipeline funnel", "zh": "销售漏斗"},
    "weighted_pipeline": {"en": "Weighted pipeline by owner", "zh": "按负责人的加权管道"},
    "weighted_stage": {"en": "Weighted pipeline by stage", "zh": "按阶段的加权管道"},
    "open_value": {"en": "Open value", "zh": "在途金额"},
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
    #: A report the dashboard's team or owner filter does not narrow (it reads its own way).
    unfiltered: bool = False

    def as_json(self, language: str | None = None, currency: str | None = None) -> dict:
        return {"key": self.key, "kind": self.widget.kind, "target": self.widget.target,
                "figure": self.figure.as_json(language, currency) if self.figure else None,
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
        # teams and users are read from the primary: a few rows, and a replica that does
        # not answer then fails only the widgets, never the page's filters
        self.filters = DashboardFilters(site.records.schema, site.records.engine,
                                        site.records.policy, site.config.timezone)

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

    def entities(self, dashboard: DashboardDef) -> list[Entity]:
        """The entities the built-in widgets of ``dashboard`` count (what its filters narrow)."""
        keys = dict.fromkeys(w.target for w in dashboard.widgets if w.kind != "report")
        return [self.site.registry.entities[k] for k in keys]

    def figures(self, actor: Actor, dashboard: DashboardDef,
                narrowed: DashboardFilter | None = None) -> list[WidgetFigure]:
        """The figures of the widgets the actor sees, in order, narrowed by a filter.

        Built-in widgets count only the records the filter keeps, and their
        links open the list of exactly those records; a report receives the
        period as its ``since``/``until`` params (a report reading them narrows
        by them) and is marked :attr:`WidgetFigure.unfiltered` otherwise.
        """
        narrowed = narrowed or DashboardFilter(timezone=self.site.config.timezone)
        shown = []
        for index, widget in enumerate(dashboard.widgets):
            if not widget.shown_to(actor.roles) and not actor.is_admin:
                continue
            key = f"{index}-{widget.kind}-{widget.target}"
            if widget.kind == "report":
                shown.append(self._report(actor, widget, key, narrowed))
                continue
            entity = self.site.registry.entities[widget.target]
            if not self.site.report_records.policy.can(actor, entity, "read"):
                continue
            try:
                figure = self._builtin(actor, widget, entity, narrowed)
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
        figure = figure.with_units(widget.units)
        if not changes:
            return figure
        return dataclasses.replace(figure, **changes)

    def _report(self, actor: Actor, widget: WidgetDef, key: str,
                narrowed: DashboardFilter) -> WidgetFigure:
        params = dict(widget.params)
        if narrowed.since is not None:
            params["since"] = narrowed.since.isoformat()
        if narrowed.until is not None:
            params["until"] = (narrowed.until + dt.timedelta(days=1)).isoformat()
        request = ReportRequest(site=self.site, actor=actor, now=self.site.clock.now(),
                                params=params)
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
        return WidgetFigure(key, widget, self._titled(figure, widget),
                            unfiltered=narrowed.team is not None or narrowed.owner is not None)

    def _builtin(self, actor: Actor, widget: WidgetDef, entity: Entity,
                 narrowed: DashboardFilter) -> Figure | None:
        build: dict[str, Callable[[Actor, WidgetDef, Entity, DashboardFilter], Figure | None]] = {
            "funnel": self._funnel, "weighted_pipeline": self._weighted,
            "won_lost": self._won_lost, "sla_overdue": self._overdue}
        return build[widget.kind](actor, widget, entity, narrowed)

    def _pipeline(self, narrowed: DashboardFilter) -> PipelineService:
        """The pipeline service narrowed to the filter (as is when it narrows nothing)."""
        if not narrowed.active:
            return self.site.pipeline
        return self.site.pipeline.within(narrowed.conditions)

    def _list(self, entity: Entity, narrowed: DashboardFilter, args: Mapping[str, str]) -> str:
        """The list page of ``entity`` narrowed by the filter and ``args``, counted."""
        workflow = workflow_for(self.site.registry.workflows, entity.key)
        query = {**narrowed.list_args(entity, workflow), **args, "count": "1"}
        return f"/r/{entity.key}?{urlencode(query)}"

    def _open_stages(self, entity: Entity, pipeline: str | None) -> str:
        workflow = workflow_for(self.site.registry.workflows, entity.key)
        assert workflow is not None  # a built-in widget's entity has one (view_defs checks)
        pipelines = ([workflow.pipelines[pipeline]] if pipeline is not None
                     else list(workflow.pipelines.values()))
        keys = dict.fromkeys(k for p in pipelines for k, s in p.stages.items() if not s.is_closed)
        return ",".join(keys)

    def _stage_field(self, entity: Entity) -> str:
        workflow = workflow_for(self.site.registry.workflows, entity.key)
        assert workflow is not None
        return workflow.field

    def _funnel(self, actor: Actor, widget: WidgetDef, entity: Entity,
                narrowed: DashboardFilter) -> Figure | None:
        groups = self._pipeline(narrowed).weighted_pipeline(actor, entity.key,
                                                            pipeline=widget.pipeline)
        if not groups:
            return None
        field = self._stage_field(entity)
        return Figure(
            title=_title(entity, "funnel"), kind="funnel", unit="count",
            categories=tuple(g.label for g in groups),
            series=(Series(_WORDS["count"], tuple(g.count for g in groups)),),
            links=tuple(self._list(entity, narrowed, {field: str(g.key)}) for g in groups))

    def _weighted(self, actor: Actor, widget: WidgetDef, entity: Entity,
                  narrowed: DashboardFilter) -> Figure | None:
        by_stage = widget.by == "stage"
        groups = self._pipeline(narrowed).weighted_pipeline(
            actor, entity.key, by="stage" if by_stage else "owner", pipeline=widget.pipeline)
        if not groups:
            return None
        field = self._stage_field(entity)
        if by_stage:
            return Figure(
                title=_title(entity, "weighted_stage"), kind="column", unit="money",
                categories=tuple(g.label for g in groups),
                series=(Series(_WORDS["weighted"], tuple(g.weighted for g in groups)),
                        Series(_WORDS["open_value"], tuple(g.value for g in groups))),
                links=tuple(self._list(entity, narrowed, {field: str(g.key)}) for g in groups))
        open_stages = self._open_stages(entity, widget.pipeline)
        return Figure(
            title=_title(entity, "weighted_pipeline"), kind="bar", unit="money",
            categories=tuple(g.label for g in groups),
            series=(Series(_WORDS["weighted"], tuple(g.weighted for g in groups)),),
            links=tuple(self._list(entity, narrowed, {"owner": str(g.key),
                                                      f"{field}__in": open_stages})
                        if g.key is not None else None for g in groups))

    def _won_lost(self, actor: Actor, widget: WidgetDef, entity: Entity,
                  narrowed: DashboardFilter) -> Figure | None:
        starts = month_starts(self.site.clock.now(), self.site.config.timezone, widget.months)
        if narrowed.since is not None or narrowed.until is not None:
            starts = self._months_of(narrowed, starts)
        rates = self._pipeline(narrowed.people_only()).win_rates(
            actor, entity.key, list(zip(starts, starts[1:], strict=False)))
        if not any(r.won or r.lost for r in rates):
            return None
        people = narrowed.people_only()
        return Figure(
            title=_title(entity, "won_lost"), kind="column", unit="count",
            categories=tuple(f"{s.year}-{s.month:02d}" for s in starts[:-1]),
            series=(Series(_WORDS["won"], tuple(r.won for r in rates)),
                    Series(_WORDS["lost"], tuple(r.lost for r in rates))),
            links=tuple(self._list(entity, people, {"closed__ge": start.isoformat(),
                                                    "closed__lt": end.isoformat()})
                        if rate.won or rate.lost else None
                        for start, end, rate in zip(starts, starts[1:], rates, strict=False)))

    def _months_of(self, narrowed: DashboardFilter, default: list[dt.datetime]
                   ) -> list[dt.datetime]:
        """The month starts spanning the filter's period (at most 36 months), and the end."""
        tz = zone(self.site.config.timezone)
        first = narrowed.since or default[0].date()
        last = narrowed.until or (default[-1] - dt.timedelta(days=1)).date()
        index, end = first.year * 12 + first.month - 1, last.year * 12 + last.month
        index = max(index, end - 36)
        return [dt.datetime(i // 12, i % 12 + 1, 1, tzinfo=tz) for i in range(index, end + 1)]

    def _overdue(self, actor: Actor, widget: WidgetDef, entity: Entity,
                 narrowed: DashboardFilter) -> Figure:
        late = self._pipeline(narrowed).overdue(actor, entity.key)
        return Figure(
            title=_title(entity, "sla_overdue"), kind="table", unit="hours",
            categories=tuple(str(s.title if s.title is not None else f"#{s.record_id}")
                             for s in late),
            series=(Series(_WORDS["hours_late"],
                           tuple(Decimal(s.overdue_seconds // 360) / 10 for s in late)),),
            links=tuple(f"/r/{entity.key}/{s.record_id}" for s in late))
