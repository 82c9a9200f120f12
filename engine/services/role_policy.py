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
from engine.services.access import AccessPolicy, AllowAll
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
        """``a.b`` → a IN (ids of A whose b IN (the records of B the user is linked to))."""
        hops: list[tuple[Table, str]] = []
        current = table
        for index, part in enumerate(scope.path):
            hops.append((current, part))
            if index < len(scope.path) - 1:
                current = self.schema.table(_target_of(current, part))
        last_table, last_column = hops[-1]
        condition = last_table.c[last_column].in_(self._links(uid, scope.target or ""))
        for index in range(len(hops) - 2, -1, -1):
            hop_table, column = hops[index]
            following = hops[index + 1][0]
            condition = hop_table.c[column].in_(select(following.c.id).where(condition))
        return condition


def _target_of(table: Table, column: str) -> str:
    """The entity a reference column points at (read from its foreign key)."""
    for fk in table.c[column].foreign_keys:
        return fk.column.table.name
    raise KeyError(f"{table.name}.{column} is not a reference")  # pragma: no cover


def build_policy(registry_roles: Mapping[str, Role], schema: Schema) -> AccessPolicy:
    """The site's policy: :class:`AllowAll` until roles are declared, roles afterwards."""
    if not registry_roles:
        return AllowAll()
    return RolePolicy(registry_roles, schema)
