"""The access policy seam every record operation passes through.

The record service asks the policy before each read or write and lets it
narrow every query, so rights and row scopes are enforced in one place for
the UI, the API, imports, exports and the CLI alike.  :class:`AllowAll` is
the policy of a site without roles configured (and of the engine's own
system actor); role-based policies implement the same protocol
(:class:`engine.services.access.roles.RolePolicy`).

Besides rights and rows a policy answers field rules (fields an actor may
not see, or not set) and lookups: an actor whose scope on an entity is a
lookup reaches its records only by an exact match of every key field, and
the records of a ``through`` scope only through such a lookup.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import ColumnElement, Table

from engine.context import Actor
from engine.metadata.model import Entity

ACTIONS = ("read", "create", "update", "delete", "transition", "import", "export")


class AccessPolicy(Protocol):
    def can(self, actor: Actor, entity: Entity, action: str) -> bool:
        """Whether the actor may perform ``action`` on the entity at all."""

    def row_filter(
        self, actor: Actor, entity: Entity, table: Table, action: str = "read"
    ) -> ColumnElement[bool] | None:
        """A condition limiting which rows ``action`` reaches, or None for all rows.

        ``read`` gives the rows the actor sees; ``update``, ``delete`` and
        ``transition`` the (possibly fewer) rows they may change; ``create``
        the rows a new record must fall in.
        """

    def hidden_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        """Fields never shown to the actor, nor accepted from them."""

    def readonly_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        """Fields the actor sees but may not set (``owner`` included when it is one)."""

    def lookup_keys(self, actor: Actor, entity: Entity) -> tuple[tuple[str, ...], ...]:
        """The key sets the actor looks records up by (empty: no lookup scope)."""

    def through_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        """Reference fields whose looked-up parent opens these records to the actor."""


class AllowAll:
    """Every actor may do everything: the policy before roles are configured."""

    def can(self, actor: Actor, entity: Entity, action: str) -> bool:
        return True

    def row_filter(
        self, actor: Actor, entity: Entity, table: Table, action: str = "read"
    ) -> ColumnElement[bool] | None:
        return None

    def hidden_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        return frozenset()

    def readonly_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        return frozenset()

    def lookup_keys(self, actor: Actor, entity: Entity) -> tuple[tuple[str, ...], ...]:
        return ()

    def through_fields(self, actor: Actor, entity: Entity) -> frozenset[str]:
        return frozenset()
