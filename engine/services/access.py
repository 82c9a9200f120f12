"""The access policy seam every record operation passes through.

The record service asks the policy before each read or write and lets it
narrow every query, so rights and row scopes are enforced in one place for
the UI, the API, imports, exports and the CLI alike.  :class:`AllowAll` is
the policy of a site without roles configured (and of the engine's own
system actor); role-based policies implement the same protocol.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import ColumnElement, Table

from engine.context import Actor
from engine.metadata.model import Entity

ACTIONS = ("read", "create", "update", "delete", "import", "export")


class AccessPolicy(Protocol):
    def can(self, actor: Actor, entity: Entity, action: str) -> bool:
        """Whether the actor may perform ``action`` on the entity at all."""

    def row_filter(self, actor: Actor, entity: Entity, table: Table) -> ColumnElement[bool] | None:
        """A condition limiting which rows the actor sees, or None for all rows."""


class AllowAll:
    """Every actor may do everything: the policy before roles are configured."""

    def can(self, actor: Actor, entity: Entity, action: str) -> bool:
        return True

    def row_filter(self, actor: Actor, entity: Entity, table: Table) -> ColumnElement[bool] | None:
        return None
