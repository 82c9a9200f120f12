"""Whose events the calendar shows: a colour per owner, a legend, a filter by person or team.

Colours are CSS classes (``owner-c0`` … ``owner-c11`` in app.css), never inline
styles, which the Content Security Policy blocks.  A person keeps their
colour on every page and every week (it follows their user id).  The filter
only narrows what :class:`~engine.services.views.calendar.CalendarService` already
lets the actor read: it offers the people and teams whose records the actor
sees — everyone for an owner or administrator, the teams they manage (and
the teams below) for a manager — and nothing to a salesperson, who works
with their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.context import Actor
from engine.site import Site
from engine.storage.queries import Filter

#: Distinct colours in app.css; a person's is their user id modulo this (beyond that many
#: people colours repeat: the legend and the filter tell them apart).
COLOURS = 12


def colour_class(owner: int | None) -> str:
    """The CSS class of an owner's events (``owner-none`` for events with no owner)."""
    return "owner-none" if owner is None else f"owner-c{int(owner) % COLOURS}"


@dataclass
class People:
    """The people and teams the actor may filter the calendar by, and what is chosen."""

    users: list[dict[str, Any]] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)
    owner: int | None = None
    team: int | None = None

    @property
    def offered(self) -> bool:
        return len(self.users) > 1

    def owners(self) -> list[int] | None:
        """The owners chosen (None: no narrowing)."""
        if self.owner is not None:
            return [self.owner]
        if self.team is not None:
            chosen = next((t for t in self.teams if t["id"] == self.team), None)
            return sorted(chosen["user_ids"]) if chosen else None
        return None

    def filters(self) -> list[Filter]:
        owners = self.owners()
        return [] if owners is None else [Filter("owner", "in", owners)]


def _sees_everyone(crm: Site, me: Actor, sources: list) -> bool:
    policy = crm.records.policy
    return any(policy.row_filter(me, entity, crm.schema.table(entity.key)) is None
               for entity, _ in sources)


def people(crm: Site, me: Actor, sources: list, owner: str | None,
           team: str | None) -> People:
    """Who the actor may pick, and the person or team picked (ignored when not offered)."""
    teams = crm.users.teams.list()
    everyone = _sees_everyone(crm, me, sources)
    mine: set[int] = set()  # the teams the actor manages, with the teams below them
    for row in teams:
        if row["manager"] == me.login:
            mine |= descendants_of(teams, row["id"])
    logins = {u["login"]: u for u in crm.users.list(include_inactive=False)}
    offered_teams = []
    for row in teams:
        if not everyone and row["id"] not in mine:
            continue
        below = descendants_of(teams, row["id"])
        ids = {logins[login]["id"] for t in teams if t["id"] in below
               for login in [*t["members"], t["manager"]] if login in logins}
        offered_teams.append({"id": row["id"], "label": row.get("label") or row["name"],
                              "user_ids": ids})
    if everyone:
        users = list(logins.values())
    else:
        ids = set().union(*(t["user_ids"] for t in offered_teams)) | {me.user_id}
        users = [u for u in logins.values() if u["id"] in ids]
    users.sort(key=lambda u: (u.get("display_name") or u["login"]).lower())
    found = People(users=[{"id": u["id"], "name": u.get("display_name") or u["login"]}
                          for u in users], teams=offered_teams)
    if found.offered:
        found.owner = _pick(owner, {u["id"] for u in found.users})
        found.team = _pick(team, {t["id"] for t in found.teams}) if found.owner is None else None
    return found


def descendants_of(teams: list[dict[str, Any]], root: int) -> set[int]:
    """``root`` and the teams below it, from the list the team service gives."""
    found = {root}
    while True:
        more = {t["id"] for t in teams if t.get("parent_id") in found} - found
        if not more:
            return found
        found |= more


def _pick(text: str | None, allowed: set[int]) -> int | None:
    try:
        value = int(text or "")
    except ValueError:
        return None
    return value if value in allowed else None
