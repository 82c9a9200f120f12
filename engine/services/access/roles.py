"""The role-based access policy: the roles YAML applied to every record operation.

A user with several roles has the rights of all of them together (as with
permission sets elsewhere): an action is allowed when one role allows it,
it reaches the rows any of those roles reaches, and a field is hidden only
when every role that reads the entity hides it.  Administrators (the user
flag, or a role with ``admin: true``) and the engine's system actor are
never narrowed.

Row scopes become SQL conditions evaluated by the database on every query,
so lists, counts, aggregates, reference checks and get-by-id all agree, and
team membership or user links changed a second ago already count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property

from sqlalchemy import ColumnElement, Table, false, or_, select

from engine.context import Actor
from engine.metadata.model import Entity
from engine.metadata.roles import Access, Role, Scope
from engine.services.access.policy import AccessPolicy, AllowAll
from engine.storage.tables import Schema


class RolePolicy:
    """Rights, row scopes, field rules and lookups from the registry's roles."""

    def __init__(self, roles: Mapping[str, Role], schema: Schema) -> None:
        self.roles = roles
        self.schema = schema
        self._cache: dict[tuple[frozenset[str], str], tuple[Access, ...]] = {}

    @cached_property
    def _admin_roles(self) -> frozenset[str]:
        return frozenset(k for k, r in self.roles.items() if r.admin)

    def is_admin(self, actor: Actor) -> bool:
        return actor.is_admin or bool(actor.roles & self._admin_roles)

    def _accesses(self, actor: Actor, entity: Entity) -> tuple[Access, ...]:
        key = (actor.roles, entity.key)
        found = self._cache.get(key)
        if found is None:
            found = tuple(
                self.roles[r].for_entity(entity.key) for r in sorted(actor.roles) if r in self.roles
            )
            self._cache[key] = found
        return found

    def _granting(self, actor: Actor, entity: Entity, actions: Iterable[str]) -> list[Access]:
        wanted = set(actions)
        return [a for a in self._accesses(actor, entity) if a.rights & wanted]

    # -- the protocol --------------------------------------------------------------

    def can(self, actor: Actor, entity: Entity, action: str) -> bool:
        return self.is_admin(actor) or bool(self._granting(actor, entity, [action]))

    def row_filter(
        self, actor: Actor, entity: Entity, table: Table, action: str = "read"
    ) -> ColumnElement[bool] | None:
        if self.is_admin(actor):
            return None
        scopes: list[Scope] = []
        for access in self._granting(actor, entity, [action]):
            scopes.extend(access.scope_for(action))
        if action == "create" and any(not s.lists_rows and s.kind != "none" for s in scopes):
            return None  # a clerk registering a member they may only look up later
        if any(s.kind == "all" for s in scopes):
            return None
        conditions = [c for s in scopes if (c := self._condition(actor, s, table)) is not None]
        return or_(*conditions) if conditions else false()

    def read_scopes(self, actor: Actor, entity: Entity) -> frozenset[str]:
        """The kinds of row scope ``actor`` reads ``entity`` with (``all``, ``team``, ``own``...)."""
        if self.is_admin(actor):
            return frozenset({"all"})
        return frozenset(s.kind for access in self._granting(actor, entity, ["read"])
                         for s in access.scope_for("read"))

    def hidden_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        if self.is_admin(actor):
            return frozenset()
        readers = self._granting(actor, entity, ["read"])
        if not readers:
            return frozenset()
        return frozenset.intersection(*(a.hidden for a in readers))

    def readonly_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        if self.is_admin(actor):
            return frozenset()
        writers = self._granting(actor, entity, ["create", "update"])
        if not writers:
            return frozenset()
        return frozenset.intersection(*(a.readonly | a.hidden for a in writers))

    def lookup_keys(self, actor: Actor, entity: Entity) -> tuple[tuple[str, ...], ...]:
        keys: list[tuple[str, ...]] = []
        for access in self._granting(actor, entity, ["read"]):
            keys.extend(s.keys for s in access.scope if s.kind == "lookup" and s.keys not in keys)
        return tuple(keys)

    def through_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        fields: set[str] = set()
        for access in self._granting(actor, entity, ["read"]):
            fields.update(s.path[0] for s in access.scope if s.kind == "through")
        return frozenset(fields)

    # -- scopes as SQL ---------------------------------------------------------------

    def _condition(self, actor: Actor, scope: Scope, table: Table) -> ColumnElement[bool] | None:
        uid = actor.user_id
        if scope.kind == "all":
            return None
        if uid is None or not scope.lists_rows:
            return None
        if scope.kind == "own":
            return table.c.owner == uid
        if scope.kind == "team":
            return or_(table.c.owner == uid, *self._team_owners(actor, table))
        if scope.kind == "linked":
            return table.c.id.in_(self._links(uid, scope.target or ""))
        if scope.kind == "via":
            return self._via(uid, table, scope)
        return None

    def _team_owners(self, actor: Actor, table: Table) -> list[ColumnElement[bool]]:
        if not actor.team_ids:
            return []
        members = self.schema.system("crm_team_member")
        teams = self.schema.system("crm_team")
        ids = sorted(actor.team_ids)
        return [
            table.c.owner.in_(select(members.c.user_id).where(members.c.team_id.in_(ids))),
            table.c.owner.in_(
                select(teams.c.manager_id).where(teams.c.id.in_(ids),
                                                 teams.c.manager_id.is_not(None))
            ),
        ]

    def _links(self, uid: int, entity: str):  # noqa: ANN202 - a SQLAlchemy Select
        links = self.schema.system("crm_user_link")
        return select(links.c.record_id).where(links.c.user_id == uid, links.c.entity == entity)

    def _via(self, uid: int, table: Table, scope: Scope) -> ColumnElement[bool]:
        """The rows whose path leads to a record the user is linked to, built from its end.

        A reference ``a`` becomes ``a IN (ids)``, a many-to-many ``m``
        ``id IN (sources of m's links whose target IN (ids))`` and lines
        ``team.member`` ``id IN (parents of team lines whose member IN (ids))``;
        ``ids`` are the linked records at the last step, else the ids of the
        next entity's rows that satisfy the rest of the path (a path ending in
        ``owner`` starts from the rows the user owns).
        """
        ids = self._links(uid, scope.target or "")
        condition: ColumnElement[bool] | None = None
        for index in range(len(scope.steps) - 1, -1, -1):
            step = scope.steps[index]
            if condition is not None:
                ids = select(self.schema.table(step.target).c.id).where(condition)
            current = table if index == 0 else self.schema.table(step.entity)
            if step.kind == "owner":  # ``project.owner``: the parent's owner is the user
                condition = current.c.owner == uid
            elif step.kind == "many_to_many":
                links = self.schema.child(step.entity, step.field)
                condition = current.c.id.in_(
                    select(links.c.source_id).where(links.c.target_id.in_(ids)))
            elif step.kind == "lines":
                lines = self.schema.child(step.entity, step.field)
                condition = current.c.id.in_(
                    select(lines.c.parent_id).where(lines.c[step.line_field or ""].in_(ids)))
            else:
                condition = current.c[step.field].in_(ids)
        if condition is None:  # pragma: no cover - a via scope always has a step
            return false()
        return condition


def build_policy(registry_roles: Mapping[str, Role], schema: Schema) -> AccessPolicy:
    """The site's policy: :class:`AllowAll` until roles are declared, roles afterwards."""
    if not registry_roles:
        return AllowAll()
    return RolePolicy(registry_roles, schema)
