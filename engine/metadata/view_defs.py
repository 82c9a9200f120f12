"""View and dashboard definitions (``view:`` and ``dashboard:`` documents).

How the web UI shows an entity — list columns, sort, filters, search
fields, form and detail sections or tabs, kanban cards, related lists — and
which widgets a role's dashboard holds are decisions of a pack (and of a
site), not code.  They change no table, so they stay out of the registry's
snapshot: editing a view never needs a migration.

A later document for the same entity (or dashboard name) replaces the keys
it writes — ``list`` and ``kanban`` key by key, the others whole — so a
site overlay can change just the columns of a pack's list.  Every field,
entity, role and report function named is checked here and a problem is
reported at its line, like the other kinds of document.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.errors import Problem
from engine.metadata.merge import Located
from engine.metadata.model import Entity, Label, Origin, PackInfo
from engine.metadata.pack_python import missing_function
from engine.metadata.workflow_model import workflow_for
from engine.metadata.yaml_source import SourceDocument

#: Document kinds this module builds from.
VIEW_KINDS: tuple[str, ...] = ("view", "dashboard")
#: The file in a pack folder that holds report functions for dashboard widgets.
REPORTS_FILE = "reports.py"
#: The pack part of a report widget naming a function of the site's custom/reports.py.
SITE_REPORTS = "site"
#: Built-in widget kinds: each names an entity with a workflow.
BUILTIN_WIDGETS: tuple[str, ...] = ("funnel", "weighted_pipeline", "won_lost", "sla_overdue")
WIDGET_KINDS: tuple[str, ...] = (*BUILTIN_WIDGETS, "report")
#: What a figure's measure may be (engine/services/views/figure_text.py writes each).
FIGURE_UNITS: tuple[str, ...] = ("count", "money", "percent", "days", "hours", "number")
#: The series keys of the built-in widgets, which a widget's ``units:`` may name.
BUILTIN_SERIES: dict[str, tuple[str, ...]] = {
    "funnel": ("count",), "weighted_pipeline": ("weighted_value",),
    "won_lost": ("won", "lost"), "sla_overdue": ("hours_late",)}
#: Field types a list may filter on.
FILTERABLE = frozenset({"choice", "boolean", "date", "datetime", "integer", "decimal",
                        "reference"})
#: Field types the search box may look in.
SEARCHABLE = frozenset({"string", "text", "email", "phone", "url", "sequence"})
#: System columns shown like fields (in lists, sorts and cards).
SHOWN_SYSTEM = ("id", "owner", "created_at", "updated_at")


@dataclass(frozen=True)
class SectionDef:
    key: str
    fields: tuple[str, ...]
    label: Label | None = None


@dataclass(frozen=True)
class LayoutDef:
    sections: tuple[SectionDef, ...]
    tabs: bool = False


@dataclass(frozen=True)
class RelatedDef:
    entity: str
    field: str
    label: Label | None = None
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuickDef:
    """A quick-create form: a few fields asked, some values set without asking."""

    key: str
    label: Label
    fields: tuple[str, ...]
    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class CalendarDef:
    """Where a record sits on the calendar: its start (and end) field, its colour."""

    start: str
    end: str | None = None
    color_by: str | None = None
    feed: bool = True


@dataclass(frozen=True)
class ViewDef:
    """What a pack or site declared for one entity; None keeps the generated default."""

    entity: str
    columns: tuple[str, ...] | None = None
    sort: str | None = None
    filters: tuple[str, ...] | None = None
    search: tuple[str, ...] | None = None
    page_size: int | None = None
    form: LayoutDef | None = None
    detail: LayoutDef | None = None
    card: tuple[str, ...] | None = None
    related: tuple[RelatedDef, ...] | None = None
    quick: tuple[QuickDef, ...] = ()
    calendar: CalendarDef | None = None
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class WidgetDef:
    """One dashboard widget: a built-in figure of an entity, or a pack's report."""

    kind: str
    target: str  # entity key, or "<pack>.<function>" for a report
    title: Label | None = None
    roles: frozenset[str] = frozenset()
    months: int = 6
    pipeline: str | None = None
    draw: str | None = None
    #: weighted_pipeline only: group by ``owner`` (the default) or ``stage``.
    by: str = "owner"
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: The unit of each series by its key ("*": every series), over the figure's own.
    units: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def pack(self) -> str:
        return self.target.split(".", 1)[0]

    @property
    def function(self) -> str:
        return self.target.split(".", 1)[1]

    def shown_to(self, roles: frozenset[str]) -> bool:
        return not self.roles or bool(self.roles & roles)


@dataclass(frozen=True)
class DashboardDef:
    name: str
    label: Label
    widgets: tuple[WidgetDef, ...]
    roles: tuple[str, ...] = ()
    order: int = 100
    pack: str = ""
    origin: Origin | None = field(default=None, compare=False)


def _near(word: Any, candidates: Sequence[str]) -> str:
    if not isinstance(word, str):
        return ""
    found = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean '{found[0]}'?)" if found else ""


def report_functions(path: Path) -> tuple[dict[str, int], str | None]:
    """The top-level functions of a reports file (name → line), read without running it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        return {}, f"{REPORTS_FILE} does not parse at line {exc.lineno}: {exc.msg}"
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"{REPORTS_FILE} cannot be read: {exc}"
    return {n.name: n.lineno for n in tree.body if isinstance(n, ast.FunctionDef)}, None


def _merge(documents: list[tuple[str, SourceDocument, str]], kind: str,
           nested: tuple[str, ...]) -> dict[str, tuple[dict[str, Any], dict[str, Located], str]]:
    """Name → (merged keys, where each key was last written, pack of the first document)."""
    merged: dict[str, tuple[dict[str, Any], dict[str, Located], str]] = {}
    for pack, doc, doc_kind in documents:
        if doc_kind != kind:
            continue
        name = doc.data[kind]
        data, places, first = merged.get(name, ({}, {}, pack))
        places.setdefault(kind, Located(doc, (kind,)))
        for key, value in doc.data.items():
            if key == kind:
                continue
            if key in nested and isinstance(value, dict):
                inner = dict(data.get(key) or {})
                for sub, sub_value in value.items():
                    inner[sub] = sub_value
                    places[f"{key}.{sub}"] = Located(doc, (key, sub))
                data[key] = inner
            else:
                data[key] = value
            places[key] = Located(doc, (key,))
        merged[name] = (data, places, first)
    return merged


class _ViewChecker:
    def __init__(self, entities: Mapping[str, Entity], workflows: Mapping[str, Any],
                 problems: list[Problem]) -> None:
        self.entities = entities
        self.workflows = workflows
        self.problems = problems

    def fields(self, entity: Entity, keys: list[Any], at: Located, what: str, *,
               types: frozenset[str] | None = None, system: bool = False,
               column: bool = True) -> tuple[str, ...]:
        good = []
        names = [*entity.fields, *(SHOWN_SYSTEM if system else ())]
        for i, key in enumerate(keys):
            where = at.child(i)
            found = entity.fields.get(key)
            if found is None and not (system and key in SHOWN_SYSTEM):
                self.problems.append(where.problem(
                    f"{entity.key} has no field '{key}'{_near(key, names)}"))
                continue
            if found is not None and types is not None and found.value_type not in types \
                    and found.type not in types:
                self.problems.append(where.problem(
                    f"'{key}' is a {found.type} field; {what} takes "
                    f"{', '.join(sorted(types))} fields"))
                continue
            if found is not None and column and not found.has_column:
                self.problems.append(where.problem(
                    f"'{key}' is a {found.type} field with no column; it cannot be {what}"))
                continue
            good.append(key)
        return tuple(good)

    def layout(self, entity: Entity, raw: dict[str, Any], at: Located) -> LayoutDef:
        sections = []
        seen_sections: set[str] = set()
        seen_fields: dict[str, str] = {}
        for i, item in enumerate(raw.get("sections") or []):
            where = at.child("sections", i)
            key = item["section"]
            if key in seen_sections:
                self.problems.append(where.child("section").problem(
                    f"the section '{key}' is declared twice; give each section its own key"))
            seen_sections.add(key)
            keys = list(self.fields(entity, list(item.get("fields") or []),
                                    where.child("fields"), "a form or detail field",
                                    column=False))
            for j, name in enumerate(list(keys)):
                if name in seen_fields:
                    self.problems.append(where.child("fields", j).problem(
                        f"'{name}' is already in section '{seen_fields[name]}'; a field is "
                        "shown once"))
                    keys.remove(name)
                seen_fields.setdefault(name, key)
            label = Label.from_yaml(item["label"]) if item.get("label") else None
            sections.append(SectionDef(key, tuple(keys), label))
        return LayoutDef(tuple(sections), bool(raw.get("tabs", False)))

    def related(self, entity: Entity, items: list[dict[str, Any]], at: Located
                ) -> tuple[RelatedDef, ...]:
        found = []
        for i, item in enumerate(items):
            where = at.child(i)
            other = self.entities.get(item["entity"])
            if other is None:
                self.problems.append(where.child("entity").problem(
                    f"there is no entity '{item['entity']}'{_near(item['entity'], list(self.entities))}"))
                continue
            refs = [f.key for f in other.fields.values()
                    if f.type == "reference" and f.to == entity.key]
            name = item.get("field")
            if name is None:
                if len(refs) != 1:
                    why = "none" if not refs else f"several ({', '.join(refs)}); name one in 'field'"
                    self.problems.append(where.child("entity").problem(
                        f"{other.key} has {why} reference field(s) to {entity.key}"))
                    continue
                name = refs[0]
            elif name not in refs:
                self.problems.append(where.child("field").problem(
                    f"'{name}' is not a reference field of {other.key} to {entity.key}"
                    f"{_near(name, refs)}"))
                continue
            columns = self.fields(other, list(item.get("columns") or []),
                                  where.child("columns"), "a related list column", system=True)
            label = Label.from_yaml(item["label"]) if item.get("label") else None
            found.append(RelatedDef(other.key, name, label, columns))
        return tuple(found)

    def quick(self, entity: Entity, items: list[dict[str, Any]], at: Located
              ) -> tuple[QuickDef, ...]:
        found = []
        for i, item in enumerate(items):
            where = at.child(i)
            keys = self.fields(entity, list(item["fields"]), where.child("fields"),
                               "asked in a quick form", column=False)
            for key in keys:
                if not entity.fields[key].is_input:
                    self.problems.append(where.child("fields").problem(
                        f"'{key}' is a {entity.fields[key].type} field; nobody types it in"))
            values = dict(item.get("values") or {})
            for key in values:
                if key not in entity.fields:
                    self.problems.append(where.child("values", key).problem(
                        f"{entity.key} has no field '{key}'{_near(key, list(entity.fields))}",
                        key=True))
            found.append(QuickDef(item["key"], Label.from_yaml(item["label"]), keys,
                                  MappingProxyType(values)))
        return tuple(found)

    def calendar(self, entity: Entity, data: dict[str, Any], where: Located) -> CalendarDef | None:
        def kind(key: str) -> str | None:
            found = entity.fields.get(key)
            return None if found is None else found.value_type

        start, end, color = data["start"], data.get("end"), data.get("color_by")
        ok = True
        if kind(start) not in ("date", "datetime"):
            self.problems.append(where.child("start").problem(
                f"{entity.key} has no date or datetime field '{start}'"
                f"{_near(start, [k for k in entity.fields if kind(k) in ('date', 'datetime')])}"))
            ok = False
        if end is not None and kind(end) != kind(start):
            self.problems.append(where.child("end").problem(
                f"'{end}' must be a field of the same type as '{start}' ({kind(start)})"))
            ok = False
        if color is not None and color != "owner" and kind(color) not in ("choice", "reference"):
            self.problems.append(where.child("color_by").problem(
                f"'{color}' must be a choice or reference field of {entity.key}, or owner"))
            ok = False
        return CalendarDef(start, end, color, bool(data.get("feed", True))) if ok else None

    def view(self, name: str, data: dict[str, Any], places: dict[str, Located]) -> ViewDef | None:
        entity = self.entities.get(name)
        if entity is None:
            self.problems.append(places["view"].problem(
                f"there is no entity '{name}'{_near(name, list(self.entities))}"))
            return None
        listing = data.get("list") or {}

        def at(key: str) -> Located:
            return places.get(key) or places["view"]

        def listed(key: str, what: str, **kw: Any) -> tuple[str, ...] | None:
            if key not in listing:
                return None
            return self.fields(entity, list(listing[key]), at(f"list.{key}"), what, **kw)

        sort = listing.get("sort")
        if sort is not None:
            bare = sort.lstrip("-")
            if self.fields(entity, [bare], at("list.sort"), "sorted on", system=True) == ():
                sort = None
        card = None
        if "kanban" in data:
            if workflow_for(self.workflows, entity.key) is None:
                self.problems.append(at("kanban").problem(
                    f"{entity.key} has no workflow, so it has no kanban board", key=True))
            card = self.fields(entity, list((data["kanban"] or {}).get("card") or []),
                               at("kanban.card"), "on a card", system=True)
        calendar = self.calendar(entity, data["calendar"], at("calendar")) \
            if "calendar" in data else None
        line, column = places["view"].document.locate_key(places["view"].path)
        return ViewDef(
            entity=entity.key,
            columns=listed("columns", "a list column", system=True),
            sort=sort,
            filters=listed("filters", "a list filter", types=FILTERABLE),
            search=listed("search", "searched", types=SEARCHABLE),
            page_size=listing.get("page_size"),
            form=self.layout(entity, data["form"], at("form")) if "form" in data else None,
            detail=self.layout(entity, data["detail"], at("detail")) if "detail" in data
            else None,
            card=card,
            related=self.related(entity, list(data["related"] or []), at("related"))
            if "related" in data else None,
            quick=self.quick(entity, list(data.get("quick") or []), at("quick")),
            calendar=calendar,
            origin=Origin(places["view"].document.file, line, column),
        )


class _DashboardChecker:
    def __init__(self, entities: Mapping[str, Entity], workflows: Mapping[str, Any],
                 roles: Mapping[str, Any], packs: Mapping[str, PackInfo],
                 overlay_dir: Path | None, problems: list[Problem]) -> None:
        self.entities = entities
        self.workflows = workflows
        self.roles = roles
        self.packs = packs
        self.overlay_dir = overlay_dir
        self.problems = problems
        self.reports: dict[Path, tuple[dict[str, int], str | None]] = {}

    def role_keys(self, keys: list[str], at: Located) -> tuple[str, ...]:
        good = []
        for i, key in enumerate(keys):
            if self.roles and key not in self.roles:
                self.problems.append(at.child(i).problem(
                    f"there is no role '{key}'{_near(key, list(self.roles))}"))
            else:
                good.append(key)
        return tuple(good)

    def report(self, target: str, at: Located) -> bool:
        pack, function = target.split(".", 1)
        if pack == SITE_REPORTS:
            folder = self.overlay_dir
        else:
            info = self.packs.get(pack)
            if info is None:
                self.problems.append(at.problem(
                    f"there is no pack '{pack}' in this site{_near(pack, list(self.packs))}"))
                return False
            folder = Path(info.path)
        file = folder / REPORTS_FILE if folder is not None else None
        shown = f"custom/{REPORTS_FILE}" if pack == SITE_REPORTS else f"packs/{pack}/{REPORTS_FILE}"
        if file is None or not file.is_file():
            self.problems.append(at.problem(
                f"there is no {shown}: write 'def {function}(request): ...' returning a "
                "Figure in it"))
            return False
        if file not in self.reports:
            self.reports[file] = report_functions(file)
        functions, trouble = self.reports[file]
        if trouble is not None:
            self.problems.append(at.problem(f"{shown}: {trouble}"))
            return False
        if function not in functions:
            self.problems.append(at.problem(missing_function(shown, function, list(functions))))
            return False
        return True

    def widget(self, item: dict[str, Any], at: Located) -> WidgetDef | None:
        kind = next(k for k in WIDGET_KINDS if k in item)
        target = item[kind]
        where = at.child(kind)
        if kind == "report":
            if not self.report(target, where):
                return None
        else:
            if target not in self.entities:
                self.problems.append(where.problem(
                    f"there is no entity '{target}'{_near(target, list(self.entities))}"))
                return None
            workflow = workflow_for(self.workflows, target)
            if workflow is None:
                with_flow = sorted({w.entity for w in self.workflows.values()})
                self.problems.append(where.problem(
                    f"{target} has no workflow; a {kind} widget needs one (entities with a "
                    f"workflow: {', '.join(with_flow) or 'none'})"))
                return None
            pipeline = item.get("pipeline")
            if pipeline is not None and pipeline not in workflow.pipelines:
                self.problems.append(at.child("pipeline").problem(
                    f"the workflow of {target} has no pipeline '{pipeline}'"
                    f"{_near(pipeline, list(workflow.pipelines))}"))
                return None
        for option, only in (("params", "report"), ("months", "won_lost"), ("pipeline", "funnel"),
                             ("by", "weighted_pipeline")):
            if option in item and kind != only:
                self.problems.append(at.child(option).problem(
                    f"'{option}' applies only to a {only} widget", key=True))
        roles = self.role_keys(list(item.get("roles") or []), at.child("roles"))
        units = self.units(kind, item.get("units") or {}, at.child("units"))
        return WidgetDef(
            kind=kind, target=target,
            title=Label.from_yaml(item["title"]) if item.get("title") else None,
            roles=frozenset(roles), months=int(item.get("months", 6)),
            pipeline=item.get("pipeline"), draw=item.get("kind"),
            by=str(item.get("by", "owner")),
            params=MappingProxyType(dict(item.get("params") or {})),
            units=MappingProxyType(units),
        )

    def units(self, kind: str, units: dict[str, Any], at: Located) -> dict[str, str]:
        """A widget's units per series: known units, and for a built-in widget its series."""
        kept = {}
        for key, unit in units.items():
            if unit not in FIGURE_UNITS:
                self.problems.append(at.child(key).problem(
                    f"'{unit}' is not a unit; use one of {', '.join(FIGURE_UNITS)}"
                    f"{_near(unit, FIGURE_UNITS)}"))
                continue
            known = BUILTIN_SERIES.get(kind)
            if known is not None and key != "*" and key not in known:
                self.problems.append(at.child(key).problem(
                    f"a {kind} widget has no series '{key}'; its series: {', '.join(known)}"
                    f"{_near(key, known)}", key=True))
                continue
            kept[str(key)] = str(unit)
        return kept

    def dashboard(self, name: str, data: dict[str, Any], places: dict[str, Located],
                  pack: str) -> DashboardDef:
        widgets = []
        for i, item in enumerate(data.get("widgets") or []):
            built = self.widget(item, places["widgets"].child(i))
            if built is not None:
                widgets.append(built)
        roles = self.role_keys(list(data.get("roles") or []),
                               places.get("roles") or places["dashboard"])
        line, column = places["dashboard"].document.locate_key(places["dashboard"].path)
        return DashboardDef(
            name=name,
            label=Label.from_yaml(data.get("label"), Label.from_key(name).en),
            widgets=tuple(widgets), roles=roles, order=int(data.get("order", 100)), pack=pack,
            origin=Origin(places["dashboard"].document.file, line, column),
        )


def build_views(
    documents: list[tuple[str, SourceDocument, str]],
    entities: Mapping[str, Entity],
    workflows: Mapping[str, Any],
    roles: Mapping[str, Any],
    packs: Mapping[str, PackInfo],
    overlay_dir: Path | None = None,
) -> tuple[dict[str, ViewDef], dict[str, DashboardDef], list[Problem]]:
    """The declared views (by entity) and dashboards (by name), checked."""
    problems: list[Problem] = []
    views_checker = _ViewChecker(entities, workflows, problems)
    views = {}
    for name, (data, places, _pack) in _merge(documents, "view", ("list", "kanban")).items():
        built = views_checker.view(name, data, places)
        if built is not None:
            views[name] = built
    boards_checker = _DashboardChecker(entities, workflows, roles, packs, overlay_dir, problems)
    dashboards = {}
    for name, (data, places, pack) in _merge(documents, "dashboard", ()).items():
        if "widgets" not in places:
            continue  # the schema requires widgets; nothing more to say
        dashboards[name] = boards_checker.dashboard(name, data, places, pack)
    return views, dashboards, problems
