"""Saved list filters: a user's named list queries (``crm_saved_filter``).

A saved filter is the query string of a list page (filters, search, sort)
under a name the user chose.  It lives in the database, not the session,
so every worker of a stateless engine sees it and it follows the user to
another browser.  Only its owner reads or deletes it; replaying it runs the
list through the record service again, so a filter never widens what the
user may see.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Engine, delete, insert, select

from engine.context import Actor
from engine.errors import NotFound, ValidationFailed
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

MAX_NAME = 100
MAX_QUERY = 2000
#: Query arguments a saved filter keeps (paging and one-off flags are left out).
_SKIPPED = frozenset({"offset", "count", "csrf_token", "saved"})


@dataclass(frozen=True)
class SavedFilter:
    id: int
    entity: str
    name: str
    query: str


def clean_query(pairs: list[tuple[str, str]]) -> str:
    """The part of a list's query string worth keeping, in a stable form."""
    return urlencode([(k, v) for k, v in pairs if k not in _SKIPPED and v != ""])


class SavedFilterService:
    """A user's saved list filters; every call names the actor whose filters they are."""

    def __init__(self, schema: Schema, engine: Engine) -> None:
        self.table = schema.system("crm_saved_filter")
        self.engine = engine

    def list(self, actor: Actor, entity_key: str) -> list[SavedFilter]:
        if actor.user_id is None:
            return []
        t = self.table
        query = select(t).where(t.c.user_id == actor.user_id, t.c.entity == entity_key
                                ).order_by(t.c.name)
        with self.engine.connect() as conn:
            return [SavedFilter(r.id, r.entity, r.name, r.query) for r in conn.execute(query)]

    def save(self, actor: Actor, entity_key: str, name: str, query: str,
             now: dt.datetime) -> SavedFilter:
        """Save (or replace) the filter ``name`` of the actor for ``entity_key``."""
        name = name.strip()
        errors: dict[str, list[str]] = {}
        if not name:
            errors["name"] = ["Give the filter a name."]
        elif len(name) > MAX_NAME:
            errors["name"] = [f"At most {MAX_NAME} characters."]
        query = clean_query(parse_qsl(query, keep_blank_values=False))
        if len(query) > MAX_QUERY:
            errors["query"] = [f"The filter is too long (at most {MAX_QUERY} characters)."]
        if actor.user_id is None:
            errors["name"] = ["Only a user can save filters."]
        if errors:
            raise ValidationFailed(errors)
        t = self.table
        with write_transaction(self.engine) as conn:
            conn.execute(delete(t).where(t.c.user_id == actor.user_id, t.c.entity == entity_key,
                                         t.c.name == name))
            new_id = conn.execute(insert(t).values(
                user_id=actor.user_id, entity=entity_key, name=name, query=query,
                created_at=now)).inserted_primary_key[0]
        return SavedFilter(int(new_id), entity_key, name, query)

    def delete(self, actor: Actor, filter_id: int) -> None:
        """Delete one of the actor's filters; another user's is not found."""
        t = self.table
        with write_transaction(self.engine) as conn:
            done = conn.execute(delete(t).where(t.c.id == filter_id,
                                                t.c.user_id == actor.user_id)).rowcount
        if not done:
            raise NotFound("There is no such saved filter.")
