"""View metadata: which columns a list shows, which fields a form asks for, in what order.

Every entity gets sensible views generated from its fields, so a pack that
declares no views still has a usable UI.  The views are plain frozen data
built here and nowhere else: the ``views:`` YAML documents of a later
release will build the same objects (overriding these), and the templates
only ever read a :class:`EntityViews`.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.metadata.model import Entity, Field, Registry
from engine.metadata.workflow_model import workflow_for

#: Types that make poor list columns (long, structured or many-valued).
_NOT_A_COLUMN = frozenset({"text", "json", "lines", "many_to_many"})
#: Types a list can filter on, and the kind of filter widget each gets.
FILTER_KINDS = {
    "choice": "choice", "boolean": "boolean", "date": "range", "datetime": "range",
    "integer": "range", "decimal": "range",
}
#: Decimal fields whose key says they hold money (shown with the site's currency).
_MONEY_WORDS = ("amount", "price", "total", "cost", "revenue", "value", "budget", "fee")
MAX_COLUMNS = 6
MAX_FILTERS = 4


@dataclass(frozen=True)
class Section:
    """A group of fields shown together on a form or a detail page."""

    key: str
    fields: tuple[str, ...]
    lines: str | None = None  # a lines field shown as a table


@dataclass(frozen=True)
class EntityViews:
    """Everything the pages need to know about how to show one entity."""

    entity: str
    columns: tuple[str, ...]
    default_sort: str
    filters: tuple[str, ...]
    form: tuple[Section, ...]
    detail: tuple[Section, ...]
    stage_field: str | None
    money_fields: frozenset[str]


def is_money(field: Field) -> bool:
    return field.value_type == "decimal" and any(w in field.key for w in _MONEY_WORDS)


def _columns(entity: Entity, stage_field: str | None) -> tuple[str, ...]:
    columns: list[str] = []
    if entity.title_field:
        columns.append(entity.title_field)
    if stage_field and stage_field not in columns:
        columns.append(stage_field)
    for field in entity.fields.values():
        if len(columns) >= MAX_COLUMNS:
            break
        if field.key in columns or field.hidden or field.value_type in _NOT_A_COLUMN:
            continue
        if not field.has_column or (field.type == "choice" and field.multiple):
            continue
        columns.append(field.key)
    return tuple(columns)


def _filters(entity: Entity, stage_field: str | None) -> tuple[str, ...]:
    keys = [stage_field] if stage_field else []
    for field in entity.fields.values():
        if field.key in keys or field.hidden or not field.has_column:
            continue
        if field.value_type in FILTER_KINDS and not field.multiple:
            keys.append(field.key)
    return tuple(keys[:MAX_FILTERS])


def generate(registry: Registry, entity: Entity) -> EntityViews:
    """The default views of ``entity``: title first, scalar fields, lines as tables."""
    workflow = workflow_for(registry.workflows, entity.key)
    stage_field = workflow.field if workflow else None
    inputs = tuple(
        f.key for f in entity.fields.values()
        if f.is_input and not f.hidden and f.type != "lines" and f.key != stage_field
    )
    lines = tuple(f.key for f in entity.fields.values() if f.type == "lines" and not f.hidden)
    form = (Section("main", inputs), *(Section(k, (), lines=k) for k in lines))
    shown = tuple(
        f.key for f in entity.fields.values() if f.type != "lines" and not f.hidden
    )
    detail = (Section("main", shown), *(Section(k, (), lines=k) for k in lines))
    return EntityViews(
        entity=entity.key,
        columns=_columns(entity, stage_field),
        default_sort="-id",
        filters=_filters(entity, stage_field),
        form=form,
        detail=detail,
        stage_field=stage_field,
        money_fields=frozenset(f.key for f in entity.fields.values() if is_money(f)),
    )


class ViewRegistry:
    """The views of every entity of a site, generated once (later: merged with YAML)."""

    def __init__(self, registry: Registry) -> None:
        self._views = {key: generate(registry, e) for key, e in registry.entities.items()}

    def of(self, entity_key: str) -> EntityViews:
        return self._views[entity_key]
