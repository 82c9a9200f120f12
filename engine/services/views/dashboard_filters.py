"""Dashboard filters: the period, team and owner every widget of a dashboard is narrowed to.

A dashboard's filters arrive as a query string (``period``, ``from``, ``to``,
``team``, ``owner``) so a filtered dashboard is a link one can keep or send.
This module turns them into a :class:`DashboardFilter` for an actor, and is
where their rights are decided — never the template:

- the teams offered are every team to an actor who reads every row of the
  dashboard's entities, else — to an actor whose row scope is ``team`` — the
  teams the actor belongs to or manages (and their sub-teams); someone who
  reads only their own records picks no team and no owner but themselves;
- the owners offered are the active users of those teams (everyone for an
  actor who reads every row), and always the actor;
- a team or owner that was not offered is refused with a field message, so a
  salesperson cannot ask for another team's figures by editing the link.

The figures stay inside the actor's row scope in any case: a filter only
narrows.  How a filter narrows a workflow entity (:meth:`DashboardFilter.conditions`):
by owner (a team means the owners who are its members or managers, sub-teams
included) and by period on the record's date — the workflow's
``figures.close_date`` when it names one (open deals expected to close in
the period), else the creation time.  :meth:`DashboardFilter.list_args` gives
the same narrowing as list-page arguments, so the list behind a bar holds
exactly the records counted in it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Engine, Table, or_, select

from engine.context import Actor
from engine.errors import ValidationFailed
from engine.metadata.durations import zone
from engine.metadata.model import Entity
from engine.metadata.workflow_model import Workflow
from engine.services.access.policy import AccessPolicy
from engine.services.access.teams import descendants
from engine.storage.tables import Schema

#: The periods a dashboard offers; ``all`` does not narrow by date.
PERIODS = ("all", "month", "quarter", "year", "custom")
#: The query-string names of the filters.
ARGS = ("period", "from", "to", "team", "owner")


@dataclass(frozen=True)
class Choice:
    id: int
    label: str


@dataclass(frozen=True)
class Choices:
    """What an actor may pick: the teams and owners offered."""

    teams: tuple[Choice, ...]
    owners: tuple[Choice, ...]


@dataclass(frozen=True)
class DashboardFilter:
    """A period (``since``..``until``, both days included), a team and an owner; all optional."""

    period: str = "all"
    since: dt.date | None = None
    until: dt.date | None = None
    team: int | None = None
    owner: int | None = None
    #: The owners a team stands for (its members and managers, sub-teams included).
    team_owners: tuple[int, ...] = ()
    timezone: str = "UTC"

    @property
    def active(self) -> bool:
        return self.since is not None or self.team is not None or self.owner is not None

    def people_only(self) -> DashboardFilter:
        """The same team and owner over all time (a widget that spreads its own periods)."""
        return replace(self, period="all", since=None, until=None)

    def query(self) -> dict[str, str]:
        """The filter as the dashboard's own query string (what the form sends)."""
        args: dict[str, str] = {}
        if self.period != "all":
            args["period"] = self.period
        if self.period == "custom":
            args.update({"from": str(self.since or ""), "to": str(self.until or "")})
        if self.team is not None:
            args["team"] = str(self.team)
        if self.owner is not None:
            args["owner"] = str(self.owner)
        return args

    # -- narrowing ---------------------------------------------------------------------

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The period as moments ``[start, end)`` in the site's time zone."""
        tz = zone(self.timezone)
        start = (dt.datetime.combine(self.since, dt.time(), tz)
                 if self.since is not None else None)
        end = (dt.datetime.combine(self.until + dt.timedelta(days=1), dt.time(), tz)
               if self.until is not None else None)
        return start, end

    @staticmethod
    def date_field(workflow: Workflow | None) -> str:
        """The date a period narrows by: the workflow's close date, else the creation time."""
        if workflow is not None and workflow.figures.close_date:
            return workflow.figures.close_date
        return "created_at"

    def conditions(self, entity: Entity, workflow: Workflow | None,
                   table: Table) -> list[ColumnElement[bool]]:
        """The SQL conditions narrowing ``table``'s rows to this filter."""
        where: list[ColumnElement[bool]] = []
        if "owner" in table.c:
            if self.owner is not None:
                where.append(table.c.owner == self.owner)
            if self.team is not None:
                where.append(table.c.owner.in_(list(self.team_owners) or [-1]))
        name = self.date_field(workflow)
        if name in table.c and (self.since is not None or self.until is not None):
            column = table.c[name]
            field = entity.fields.get(name)
            if field is not None and field.value_type == "date":
                if self.since is not None:
                    where.append(column >= self.since)
                if self.until is not None:
                    where.append(column <= self.until)
            else:
                start, end = self.bounds()
                if start is not None:
                    where.append(column >= start)
                if end is not None:
                    where.append(column < end)
        return where

    def list_args(self, entity: Entity, workflow: Workflow | None) -> dict[str, str]:
        """The list-page arguments narrowing a list as :meth:`conditions` narrows a figure."""
        args: dict[str, str] = {}
        if self.owner is not None:
            args["owner"] = str(self.owner)
        if self.team is not None:
            args["team"] = str(self.team)
        name = self.date_field(workflow)
        field = entity.fields.get(name)
        if field is not None and field.value_type == "date":
            if self.since is not None:
                args[f"{name}__ge"] = self.since.isoformat()
            if self.until is not None:
                args[f"{name}__le"] = self.until.isoformat()
        else:
            start, end = self.bounds()
            if start is not None:
                args[f"{name}__ge"] = start.isoformat()
            if end is not None:
                args[f"{name}__lt"] = end.isoformat()
        return args


def period_bounds(period: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day of this month, quarter or year."""
    if period == "month":
        first = today.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
    elif period == "quarter":
        first = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
        following = (first + dt.timedelta(days=95)).replace(day=1)
    else:
        first = today.replace(month=1, day=1)
        following = first.replace(year=first.year + 1)
    return first, following - dt.timedelta(days=1)


def team_owners(engine: Engine, schema: Schema, team: int) -> tuple[int, ...]:
    """The users a team's figures belong to: members and managers of it and its sub-teams."""
    teams = schema.system("crm_team")
    members = schema.system("crm_team_member")
    with engine.connect() as conn:
        ids = sorted(descendants(conn, teams, [team]))
        found = set(conn.execute(select(members.c.user_id)
                                 .where(members.c.team_id.in_(ids))).scalars())
        found |= set(conn.execute(select(teams.c.manager_id).where(
            teams.c.id.in_(ids), teams.c.manager_id.is_not(None))).scalars())
    return tuple(sorted(found))


class DashboardFilters:
    """Offers and reads dashboard filters for an actor (see the module docstring)."""

    def __init__(self, schema: Schema, engine: Engine, policy: AccessPolicy,
                 timezone: str) -> None:
        self.schema = schema
        self.engine = engine
        self.policy = policy
        self.timezone = timezone

    def reads_everything(self, actor: Actor, entities: Iterable[Entity]) -> bool:
        """Whether the actor reads every row of each of ``entities`` (no row scope)."""
        if actor.is_admin:
            return True
        found = list(entities)
        return bool(found) and all(
            self.policy.row_filter(actor, e, self.schema.table(e.key)) is None for e in found)

    def reads_teams(self, actor: Actor, entities: list[Entity]) -> bool:
        """Whether the actor reads its teams' rows of every one of ``entities``."""
        scopes = getattr(self.policy, "read_scopes", None)
        if scopes is None:
            return bool(actor.team_ids)
        return bool(entities) and all("team" in scopes(actor, e) or "all" in scopes(actor, e)
                                      for e in entities)

    def choices(self, actor: Actor, entities: Iterable[Entity]) -> Choices:
        """The teams and owners ``actor`` may narrow a dashboard over ``entities`` to."""
        teams = self.schema.system("crm_team")
        members = self.schema.system("crm_team_member")
        users = self.schema.system("crm_user")
        entities = list(entities)
        everything = self.reads_everything(actor, entities)
        by_team = everything or self.reads_teams(actor, entities)
        with self.engine.connect() as conn:
            team_query = select(teams.c.id, teams.c.label, teams.c.name).order_by(teams.c.label)
            if not everything:
                shown = sorted(actor.team_ids) if by_team else []
                team_query = team_query.where(teams.c.id.in_(shown or [-1]))
            offered = [Choice(i, label or name) for i, label, name in conn.execute(team_query)]
            user_query = (select(users.c.id, users.c.display_name, users.c.login)
                          .where(users.c.active.is_(True)).order_by(users.c.display_name))
            if not everything:
                ids = [t.id for t in offered] or [-1]
                people = or_(
                    users.c.id.in_(select(members.c.user_id).where(members.c.team_id.in_(ids))),
                    users.c.id.in_(select(teams.c.manager_id).where(teams.c.id.in_(ids))),
                    users.c.id == (actor.user_id if actor.user_id is not None else -1))
                user_query = user_query.where(people)
            owners = [Choice(i, name or login) for i, name, login in conn.execute(user_query)]
        return Choices(tuple(offered), tuple(owners))

    def read(self, actor: Actor, entities: Iterable[Entity], args: Mapping[str, Any],
             today: dt.date) -> DashboardFilter:
        """The filter the query string ``args`` asks for; a bad or forbidden one is refused."""
        entities = list(entities)
        errors: dict[str, list[str]] = {}
        period = str(args.get("period") or "all").strip()
        if period == "all" and (str(args.get("from") or "").strip()
                                or str(args.get("to") or "").strip()):
            period = "custom"  # days typed without choosing "custom range" still count
        since = until = None
        if period not in PERIODS:
            errors["period"] = [f"Choose one of: {', '.join(PERIODS)}."]
            period = "all"
        elif period == "custom":
            since = _day(args.get("from"), "from", errors)
            until = _day(args.get("to"), "to", errors)
            if since is None and until is None and not errors:
                errors["from"] = ["Give a first day, a last day or both."]
            if since and until and since > until:
                errors["to"] = ["The last day comes before the first."]
        elif period != "all":
            since, until = period_bounds(period, today)
        choices = None
        team = _id(args.get("team"), "team", errors)
        owner = _id(args.get("owner"), "owner", errors)
        if team is not None or owner is not None:
            choices = self.choices(actor, entities)
        if team is not None and choices and team not in {t.id for t in choices.teams}:
            errors["team"] = ["You may not see this team's figures."]
        if owner is not None and choices and owner not in {o.id for o in choices.owners}:
            errors["owner"] = ["You may not see this person's figures."]
        if errors:
            raise ValidationFailed(errors)
        members = team_owners(self.engine, self.schema, team) if team is not None else ()
        return DashboardFilter(period, since, until, team, owner, members, self.timezone)


def _day(raw: Any, name: str, errors: dict[str, list[str]]) -> dt.date | None:
    text = str(raw or "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        errors[name] = [f"'{text[:40]}' is not a date (YYYY-MM-DD)."]
        return None


def _id(raw: Any, name: str, errors: dict[str, list[str]]) -> int | None:
    text = str(raw or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        errors[name] = [f"'{text[:40]}' is not one of the choices."]
        return None
    return int(text)
