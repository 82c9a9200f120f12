"""The home dashboard: pipeline charts for every workflow the actor may read.

Every figure comes from :class:`engine.services.pipeline.PipelineService`
with the actor, so the charts show the same numbers as the API and only
the rows the actor's scope allows.  A figure the actor may not see (built
on a hidden field) is simply left off the dashboard instead of failing it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from markupsafe import Markup

from engine.context import Actor
from engine.errors import CrmError
from engine.metadata.durations import zone
from engine.metadata.model import Entity
from engine.metadata.workflow_model import Workflow
from engine.site import Site
from engine.web.charts import Bar, Series, bar_chart, grouped_columns
from engine.web.display import Presenter
from engine.web.i18n import translate

T = TypeVar("T")
MONTHS = 6


@dataclass
class Overdue:
    entity: Entity
    record_id: int
    title: str
    stage: str
    due: str


@dataclass
class Board:
    """The charts of one entity with a workflow."""

    entity: Entity
    charts: list[tuple[str, Markup]] = field(default_factory=list)


@dataclass
class Dashboard:
    boards: list[Board] = field(default_factory=list)
    overdue: list[Overdue] = field(default_factory=list)


def _figure(query: Callable[[], T]) -> T | None:
    """A figure, or None when the actor may not see it (hidden field, no right)."""
    try:
        return query()
    except CrmError:
        return None


def _month_starts(now: dt.datetime, timezone: str) -> list[dt.datetime]:
    """The starts of the last ``MONTHS`` months and of the next one, in the site's zone."""
    local = now.astimezone(zone(timezone))
    year, month = local.year, local.month
    starts = []
    for back in range(MONTHS - 1, -2, -1):
        y, m = year, month - back
        while m < 1:
            y, m = y - 1, m + 12
        while m > 12:
            y, m = y + 1, m - 12
        starts.append(dt.datetime(y, m, 1, tzinfo=zone(timezone)))
    return starts


def build(site: Site, actor: Actor, shown: Presenter) -> Dashboard:
    """The actor's dashboard (see the module docstring)."""
    dashboard = Dashboard()
    policy = site.records.policy
    for workflow in site.registry.workflows.values():
        entity = site.registry.entities.get(workflow.entity)
        if entity is not None and policy.can(actor, entity, "read"):
            _add_board(site, actor, shown, workflow, entity, dashboard)
    return dashboard


def _add_board(site: Site, actor: Actor, shown: Presenter, workflow: Workflow, entity: Entity,
               dashboard: Dashboard) -> None:
    lang = shown.language
    figures = site.pipeline
    key = entity.key
    one = Board(entity)
    value_field = entity.fields.get(workflow.figures.value or "")

    def money(amount: Any) -> str:
        return shown.value(value_field, amount) if value_field else str(amount)

    stages = _figure(lambda: figures.weighted_pipeline(actor, key))
    if stages:
        one.charts.append((translate("funnel", lang), bar_chart(
            [Bar(g.label, g.count, f"{g.count} · {money(g.value)}") for g in stages],
            title=translate("funnel", lang), funnel=True)))
    owners = _figure(lambda: figures.weighted_pipeline(actor, key, by="owner"))
    if owners:
        one.charts.append((translate("weighted_by_owner", lang), bar_chart(
            [Bar(g.label, g.weighted, money(g.weighted)) for g in owners],
            title=translate("weighted_by_owner", lang))))
    starts = _month_starts(site.clock.now(), site.config.timezone)
    rates = [_figure(lambda s=s, u=u: figures.win_rate(actor, key, since=s, until=u))
             for s, u in zip(starts, starts[1:], strict=False)]
    if any(r is not None and (r.won or r.lost) for r in rates):
        one.charts.append((translate("won_lost_by_period", lang), grouped_columns(
            [f"{s.year}-{s.month:02d}" for s in starts[:-1]],
            [Series(translate("won", lang), [r.won if r else 0 for r in rates], "#66bb6a"),
             Series(translate("lost", lang), [r.lost if r else 0 for r in rates], "#ef5350")],
            title=translate("won_lost_by_period", lang))))
    for late in _figure(lambda: figures.overdue(actor, key)) or []:
        stage = workflow.pipeline(None).stage(late.stage)
        title = late.title if late.title is not None else late.record_id
        dashboard.overdue.append(Overdue(entity, late.record_id, str(title),
                                         stage.label.get(lang) if stage else late.stage,
                                         shown.when(late.due_at)))
    if one.charts:
        dashboard.boards.append(one)
