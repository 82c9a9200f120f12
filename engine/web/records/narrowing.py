"""The narrowing a dashboard link adds to a list: owner, team, stages and a date range.

A bar of a dashboard links to the list of exactly the records it counts
(``DashboardFilter.list_args`` and the widget's own group).  Some of those
arguments are not filter widgets of the list's view — the owner, a team, a
set of open stages, the creation time, the month a deal was won or lost in
(``closed__ge``/``closed__lt``, answered by ``PipelineService.closed_ids``)
— so this module reads them, turns
them into record-service filters (which check the field and the actor's
right to filter on it, like any filter) and shows each as a chip the user
can remove.  The record service keeps the row scope: a link never widens
what the actor sees.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select

from engine.errors import ValidationFailed
from engine.http.context import actor, site
from engine.metadata.model import Entity
from engine.services.views.dashboard_filters import team_owners
from engine.storage.queries import Filter
from engine.web.i18n import translate
from engine.web.presentation.display import Presenter

#: Ranges a link may carry besides the view's own ``__ge``/``__le`` widgets.
_RANGES = ("ge", "le", "lt")


@dataclass(frozen=True)
class Chip:
    """One narrowing shown above the list: its argument, value and words."""

    name: str
    value: str
    text: str


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 15


def narrowing(entity: Entity, widgets: frozenset[str], hidden: frozenset[str],
              args: Mapping[str, str], shown: Presenter, language: str
              ) -> tuple[list[Filter], list[Chip]]:
    """Filters and chips for the link arguments that no widget of the list reads."""
    filters: list[Filter] = []
    chips: list[Chip] = []
    owner = args.get("owner", "").strip()
    if owner and "owner" not in widgets:
        filters.append(Filter("owner", "eq", owner))
        name = shown.user_name(int(owner)) if _digits(owner) else owner
        chips.append(Chip("owner", owner, f"{translate('dash_owner', language)}: {name}"))
    team = args.get("team", "").strip()
    if team:
        members = (team_owners(site().engine, site().schema, int(team))
                   if _digits(team) else ())
        filters.append(Filter("owner", "in", ",".join(map(str, members)) or "0"))
        chips.append(Chip("team", team, f"{translate('dash_team', language)}: "
                                        f"{_team_label(team)}"))
    for field in entity.fields.values():
        if field.key in hidden:
            continue
        raw = args.get(f"{field.key}__in", "").strip()
        if raw and field.choices:
            filters.append(Filter(field.key, "in", raw))
            names = [field.choices[k].get(language) if k in field.choices else k
                     for k in raw.split(",")]
            chips.append(Chip(f"{field.key}__in", raw,
                              f"{field.label.get(language)}: {', '.join(names)}"))
    closed = [args.get(f"closed__{op}", "").strip() for op in ("ge", "lt")]
    if any(closed):
        filters.append(Filter("id", "in", ",".join(map(str, _closed_ids(entity, *closed)))
                              or "0"))
        chips.append(Chip("closed__ge", closed[0], f"{translate('dash_closed', language)} ≥ "
                                                   f"{closed[0][:10]}"))
        chips.append(Chip("closed__lt", closed[1], f"{translate('dash_closed', language)} < "
                                                   f"{closed[1][:10]}"))
    for key, label in _dated(entity, hidden, language):
        for op in _RANGES:
            name = f"{key}__{op}"
            if name in widgets:
                continue
            raw = args.get(name, "").strip()
            if raw:
                filters.append(Filter(key, op, raw))
                sign = {"ge": "≥", "le": "≤", "lt": "<"}[op]
                chips.append(Chip(name, raw, f"{label} {sign} {raw}"))
    return filters, chips


def _moment(raw: str, name: str) -> dt.datetime | None:
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed({name: [f"'{raw[:40]}' is not a date and time."]}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _closed_ids(entity: Entity, since: str, until: str) -> list[int]:
    """The records won or lost in [since, until): those a won/lost column counts."""
    return site().pipeline.closed_ids(actor(), entity.key, _moment(since, "closed__ge"),
                                      _moment(until, "closed__lt"))


def _dated(entity: Entity, hidden: frozenset[str], language: str) -> list[tuple[str, str]]:
    found = [(f.key, f.label.get(language)) for f in entity.fields.values()
             if f.value_type in ("date", "datetime") and f.has_column and f.key not in hidden]
    return [*found, ("created_at", translate("created_at", language))]


def _team_label(team: str) -> str:
    if not _digits(team):
        return team
    teams = site().schema.system("crm_team")
    with site().engine.connect() as conn:
        found = conn.execute(select(teams.c.label).where(teams.c.id == int(team))).scalar()
    return str(found) if found else team

