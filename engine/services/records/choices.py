"""Finding a record to point at: the search behind every reference picker, web and API.

A picker must reach every record the actor may read, not a first page of
them, so it searches by text: in the record's title, its number and code
fields (sequences, unique strings) and the entity's searchable fields.  It
reads through :meth:`RecordService.list`, so row visibility and field rules
are exactly those of a list: a hidden field is neither searched nor shown,
and a record outside the actor's scope is never found.  ``#42`` finds the
record whose id is 42 (when the actor may read it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.context import Actor
from engine.errors import ValidationFailed
from engine.metadata.model import Entity
from engine.storage.queries import Filter, Sort

if TYPE_CHECKING:
    from engine.services.records.service import RecordService

#: How many choices one search returns at most, and by default.
MAX_CHOICES = 50
DEFAULT_CHOICES = 20
MAX_QUERY = 200
#: Field types whose text identifies a record beside its title (shown under it).
_DETAIL_TYPES = frozenset({"string", "sequence", "phone", "email"})
_BY_ID = re.compile(r"^#\s*(\d{1,18})$")


@dataclass(frozen=True)
class Choice:
    """One record a picker offers: its id, its title and what tells it apart."""

    id: int
    title: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "detail": self.detail}


@dataclass(frozen=True)
class Choices:
    items: tuple[Choice, ...]
    has_more: bool

    def as_json(self) -> dict[str, Any]:
        return {"items": [c.as_json() for c in self.items], "has_more": self.has_more}


def identifying_fields(entity: Entity) -> list[str]:
    """Number and code fields: sequences and unique one-line texts (a product code)."""
    return [f.key for f in entity.fields.values() if f.has_column and f.key != entity.title_field
            and (f.type == "sequence" or (f.unique and f.value_type == "string"))]


def search_fields(entity: Entity) -> list[str]:
    """Where a picker looks: title, numbers and codes, then the searchable fields."""
    keys = [entity.title_field] if entity.title_field else []
    keys += identifying_fields(entity)
    keys += [f.key for f in entity.fields.values() if f.searchable and f.has_column]
    return list(dict.fromkeys(k for k in keys if entity.fields[k].has_column))


def detail_fields(entity: Entity) -> list[str]:
    """What a choice shows under its title: numbers and codes, then up to two more texts."""
    extra = [f.key for f in entity.fields.values()
             if f.searchable and f.has_column and f.value_type in _DETAIL_TYPES
             and f.key != entity.title_field]
    codes = identifying_fields(entity)
    return codes + [k for k in extra if k not in codes][:2]


def title_of(entity: Entity, record: Mapping[str, Any], language: str) -> str:
    """A record's title: its title field, or "Product #12" when it has none (or hides it)."""
    if entity.title_field and record.get(entity.title_field) not in (None, ""):
        return str(record[entity.title_field])
    return f"{entity.label.get(language)} #{record.get('id')}"


def choose(records: RecordService, actor: Actor, entity_key: str, query: str | None, *,
           limit: int = DEFAULT_CHOICES) -> Choices:
    """The records matching ``query`` that ``actor`` may read, by title, at most ``limit``."""
    entity = records.entity(entity_key)
    text = (query or "").strip()
    if len(text) > MAX_QUERY:
        raise ValidationFailed({"q": [f"Search with at most {MAX_QUERY} characters."]})
    if not 1 <= limit <= MAX_CHOICES:
        raise ValidationFailed({"limit": [f"Give a number from 1 to {MAX_CHOICES}."]})
    hidden = records.hidden(actor, entity)
    sort = ([Sort(entity.title_field)] if entity.title_field and entity.title_field not in hidden
            and entity.fields[entity.title_field].has_column else [Sort("id", descending=True)])
    by_id = _BY_ID.match(text)
    filters = [Filter("id", "eq", by_id[1])] if by_id else []
    page = records.list(actor, entity.key, filters=filters,
                        search=None if by_id or not text else text,
                        search_fields=search_fields(entity), sort=sort, limit=limit,
                        with_total=False)
    shown = [k for k in detail_fields(entity) if k not in hidden]
    items = tuple(
        Choice(int(row["id"]), title_of(entity, row, actor.language),
               " · ".join(str(row[k]) for k in shown if row.get(k) not in (None, "")))
        for row in page.rows)
    return Choices(items, page.has_more)
