"""View metadata: which columns a list shows, which fields a form asks for, in what order.

Every entity gets sensible views generated from its fields, so a pack that
declares no views still has a usable UI; the ``view:`` documents of packs
and sites (``engine.metadata.view_defs``, checked by the loader) override
them key by key.  The views are plain frozen data built here and nowhere
else, and the templates only ever read an :class:`EntityViews`.

They are computed from the definitions alone (no request, no database), so
they live with the metadata, where the web pages and the request context that
the API shares (engine.http.context) can both import them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.metadata.model import Entity, Field, Label, Registry
from engine.metadata.view_defs import LayoutDef, QuickDef, RelatedDef, ViewDef
from engine.metadata.workflow_model import workflow_for

#: Types that make poor list columns (long, structured or many-valued).
_NOT_A_COLUMN = frozenset({"text", "json", "lines", "many_to_many"})
#: Types a list can filter on, and the kind of filter widget each gets.
FILTER_KINDS = {
    "choice": "choice", "boolean": "boolean", "date": "range", "datetime": "range",
    "integer": "range", "decimal": "range", "reference": "reference",
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
    label: Label | None = None


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
    #: Fields the search box looks in (None: the entity's searchable fields).
    search: tuple[str, ...] | None = None
    page_size: int = 25
    form_tabs: bool = False
    detail_tabs: bool = False
    #: Fields a kanban card shows under its title.
    card: tuple[str, ...] = ()
    #: Declared related lists (None: every reference to the entity).
    related: tuple[RelatedDef, ...] | None = None
    #: Quick-create forms offered in the page header.
    quick: tuple[QuickDef, ...] = ()


#: System columns a view may show, as fields the templates can read ("user": a user id).
SYSTEM_FIELDS = {
    "id": Field("id", "integer", Label("ID", "编号")),
    "owner": Field("owner", "user", Label("Owner", "负责人")),
    "created_at": Field("created_at", "datetime", Label("Created", "创建时间")),
    "updated_at": Field("updated_at", "datetime", Label("Updated", "更新时间")),
}


def column_field(entity: Entity, key: str) -> Field:
    """The field behind a list column or card line: the entity's own, or a system one."""
    return entity.fields.get(key) or SYSTEM_FIELDS[key]


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
        if field.value_type in FILTER_KINDS and field.type != "reference" and not field.multiple:
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


def _sections(entity: Entity, layout: LayoutDef, allowed: set[str]) -> list[Section]:
    """Declared sections as the templates read them: a lines field becomes a table of its own."""
    out: list[Section] = []
    for declared in layout.sections:
        plain = tuple(k for k in declared.fields if k in allowed and entity.fields[k].type != "lines")
        tables = [k for k in declared.fields if k in allowed and entity.fields[k].type == "lines"]
        if plain or not tables:
            out.append(Section(declared.key, plain, label=declared.label))
        out.extend(Section(declared.key if not plain and i == 0 else f"{declared.key}-{k}", (),
                           lines=k, label=declared.label if not plain and i == 0 else None)
                   for i, k in enumerate(tables))
    return out


def _missing(entity: Entity, sections: list[Section], wanted: tuple[Section, ...]
             ) -> list[Section]:
    """``sections`` with what the generated ``wanted`` layout has and they lack, added."""
    placed = {k for s in sections for k in (*s.fields, *([s.lines] if s.lines else []))}
    rest = tuple(k for s in wanted for k in s.fields if k not in placed)
    tables = [s for s in wanted if s.lines and s.lines not in placed]
    if rest and sections and not sections[-1].lines and sections[-1].key == "more":
        sections[-1] = replace(sections[-1], fields=sections[-1].fields + rest)
    elif rest:
        sections.append(Section("more", rest, label=Label("More", "更多")))
    return sections + tables


def apply(entity: Entity, views: EntityViews, declared: ViewDef) -> EntityViews:
    """The generated ``views`` with what a ``view:`` document declares."""
    changes: dict = {}
    changes["quick"] = declared.quick
    for key in ("columns", "filters", "search", "card", "related"):
        value = getattr(declared, key)
        if value is not None:
            changes[key] = value
    if declared.sort:
        changes["default_sort"] = declared.sort
    if declared.page_size:
        changes["page_size"] = declared.page_size
    inputs = {k for s in views.form for k in (*s.fields, *([s.lines] if s.lines else []))}
    if declared.form is not None:
        form = _missing(entity, _sections(entity, declared.form, inputs), views.form)
        changes["form"] = tuple(form)
        changes["form_tabs"] = declared.form.tabs
    shown = {k for s in views.detail for k in (*s.fields, *([s.lines] if s.lines else []))}
    layout = declared.detail or declared.form
    if layout is not None:
        detail = _sections(entity, layout, shown)
        placed = {k for s in detail for k in (*s.fields, *([s.lines] if s.lines else []))}
        extra = tuple(k for k in views.detail[0].fields if k not in placed) if views.detail else ()
        if extra and detail and not detail[0].lines:
            detail[0] = replace(detail[0], fields=extra + detail[0].fields
                                if declared.detail is None else detail[0].fields + extra)
        changes["detail"] = tuple(_missing(entity, detail, views.detail))
        changes["detail_tabs"] = layout.tabs
    return replace(views, **changes)


class ViewRegistry:
    """The views of every entity of a site: generated, then what ``view:`` documents declare."""

    def __init__(self, registry: Registry) -> None:
        self._views = {key: generate(registry, e) for key, e in registry.entities.items()}
        for key, declared in registry.views.items():
            if key in self._views:
                self._views[key] = apply(registry.entities[key], self._views[key], declared)

    def of(self, entity_key: str) -> EntityViews:
        return self._views[entity_key]

    def quick_forms(self) -> list[tuple[str, QuickDef]]:
        """Every declared quick-create form, as (entity key, form)."""
        return [(key, quick) for key, views in self._views.items() for quick in views.quick]
