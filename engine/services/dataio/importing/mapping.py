"""Which column of a spreadsheet fills which field.

A column is matched, in this order, by the mapping given for the import
(a mapping file, or the form's choices), by the mapping saved for the
entity, by a field's key, and by a field's label in English or Chinese
(case, spaces and a trailing ``*`` aside).  A column that matches nothing
is an error, not a silent loss of data: map it to nothing (``null``) to
skip it.  System columns an export writes (``id``, ``version``,
``created_at``…) and computed fields are skipped, so an exported file
imports back as it is.

The fields of an entity's lines (``type: lines``) are columns headed
"<lines label> / <line field label>" (``Lines / Quantity``, ``报价明细 /
数量``) or ``lines/quantity`` by keys; they fill one line per row (see
:mod:`~engine.services.dataio.importing.lines`).

Mapping files are YAML (see ``import_mapping`` in docs/reference.md)::

    entity: customer
    columns:
      客户全称: name
      旧系统编号: null

The mapping saved for an entity lives in the ``crm_import_mapping`` table,
so every process serving the site sees the same one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from engine.context import Actor
from engine.errors import DefinitionError
from engine.metadata.model import Entity
from engine.metadata.schema_check import schema_problems
from engine.metadata.yaml_source import load_yaml
from engine.services.dataio.importing.messages import say
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

#: Columns an export writes that an import leaves alone.
SKIPPED_SYSTEM = ("id", "version", "created_at", "updated_at", "created_by", "updated_by",
                  "archived")
OWNER_LABELS = {"owner", "负责人", "所有者"}


def normalise(text: str) -> str:
    """A header as compared: no case, no spaces, no required-marker ``*``."""
    return re.sub(r"\s+", "", str(text)).rstrip("*").casefold()


@dataclass(frozen=True)
class Column:
    index: int
    header: str
    field: str  # a field key, or "owner"


@dataclass(frozen=True)
class LineColumn:
    """A column filling a field of one line: ``lines`` is the lines field, ``field`` the
    line's field."""

    index: int
    header: str
    lines: str
    field: str

    @property
    def key(self) -> str:
        """``lines/field``: how a report and a mapping name the column's target."""
        return f"{self.lines}/{self.field}"


@dataclass
class ColumnPlan:
    """Where each column goes: fields, line fields, skipped columns, and problems that stop
    the import."""

    columns: list[Column] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    line_columns: list[LineColumn] = field(default_factory=list)

    def header_of(self, field_key: str) -> str | None:
        return next((c.header for c in self.columns if c.field == field_key), None)

    def header_of_line(self, lines_key: str, field_key: str) -> str | None:
        return next((c.header for c in self.line_columns
                     if c.lines == lines_key and c.field == field_key), None)


def line_target(target: str) -> tuple[str, str] | None:
    """``("lines", "quantity")`` for a mapping's ``lines/quantity`` or ``lines.quantity``."""
    for mark in ("/", "."):
        if mark in target:
            lines, _, sub = target.partition(mark)
            return lines.strip(), sub.strip()
    return None


def _line_names(entity: Entity, hidden: frozenset[str]) -> dict[str, tuple[str, str]]:
    """Every way a header may name a line field: the lines field's key or label (either
    language), ``/``, the line field's key or label — compared as :func:`normalise` does."""
    names: dict[str, tuple[str, str]] = {}
    for key, found in entity.fields.items():
        if found.type != "lines" or key in hidden:
            continue
        for sub_key, sub in found.fields.items():
            for outer in (key, found.label.en, found.label.zh):
                for inner in (sub_key, sub.label.en, sub.label.zh):
                    if outer and inner:
                        names.setdefault(normalise(f"{outer}/{inner}"), (key, sub_key))
            names.setdefault(normalise(f"{key}.{sub_key}"), (key, sub_key))
    return names


def plan_columns(
    entity: Entity, header: list[str], mapping: Mapping[str, str | None], *,
    hidden: frozenset[str], language: str, keep: frozenset[str] = frozenset(),
) -> ColumnPlan:
    """Match ``header`` to the fields of ``entity`` the actor may see.

    ``keep`` names fields that may be mapped though they cannot be set
    (the upsert key, when it is a numbering field).
    """
    plan = ColumnPlan()
    by_line = _line_names(entity, hidden)
    by_name: dict[str, str] = {}
    for key, found in entity.fields.items():
        if key in hidden:
            continue
        for name in (key, found.label.en, found.label.zh):
            if name:
                by_name.setdefault(normalise(name), key)
    given = {normalise(k): v for k, v in mapping.items()}
    entity_label = entity.label.get(language)
    seen: dict[str, str] = {}
    for index, raw in enumerate(header):
        name = raw.strip()
        norm = normalise(name)
        if not name:
            continue  # a blank header: its cells are checked row by row
        if norm in given:
            target = given[norm]
            if target in (None, ""):
                plan.skipped.append(name)
                continue
            if target not in entity.fields and (pair := line_target(str(target))) is not None:
                _plan_line(plan, entity, index, name, pair, hidden, language, seen)
                continue
            if target != "owner" and (target not in entity.fields or target in hidden):
                plan.problems.append(say("mapping_field_unknown", language, column=name,
                                         field=target, entity=entity_label))
                continue
        elif norm in by_name:
            target = by_name[norm]
        elif norm in by_line:
            _plan_line(plan, entity, index, name, by_line[norm], hidden, language, seen)
            continue
        elif norm in OWNER_LABELS:
            target = "owner"
        elif norm in SKIPPED_SYSTEM:
            plan.skipped.append(name)
            continue
        else:
            plan.problems.append(say("unknown_column", language, column=name,
                                     entity=entity_label))
            continue
        assert target is not None
        found = entity.fields.get(target)
        if found is not None and found.type == "computed" and target not in keep:
            plan.skipped.append(name)  # computed again from the values imported
            continue
        if found is not None and target not in keep:
            reason = None
            if found.type == "lines":
                first = next(iter(found.fields.values()), None)
                reason = say("reason_lines", language, example=f"{found.label.get(language)} / "
                             f"{first.label.get(language) if first else '…'}")
            elif not found.is_input:
                reason = say("reason_system", language)
            if reason:
                plan.problems.append(say("not_importable", language, column=name,
                                         field=found.label.get(language), reason=reason))
                continue
        if target in seen:
            plan.problems.append(say("column_twice", language, first=seen[target], second=name,
                                     field=target))
            continue
        seen[target] = name
        plan.columns.append(Column(index=index, header=name, field=target))
    return plan


def _plan_line(
    plan: ColumnPlan, entity: Entity, index: int, name: str, pair: tuple[str, str],
    hidden: frozenset[str], language: str, seen: dict[str, str],
) -> None:
    """Plan a column naming a field of a line (``pair``: the lines field, the line field)."""
    lines_key, sub_key = pair
    outer = entity.fields.get(lines_key)
    sub = outer.fields.get(sub_key) if outer is not None and outer.type == "lines" else None
    if sub is None or lines_key in hidden:
        plan.problems.append(say("mapping_field_unknown", language, column=name,
                                 field=f"{lines_key}/{sub_key}",
                                 entity=entity.label.get(language)))
        return
    if sub.type == "computed":
        plan.skipped.append(name)  # computed again from the line's values
        return
    if not sub.is_input:
        plan.problems.append(say("not_importable", language, column=name,
                                 field=f"{outer.label.get(language)} / "  # type: ignore[union-attr]
                                       f"{sub.label.get(language)}",
                                 reason=say("reason_system", language)))
        return
    target = f"{lines_key}/{sub_key}"
    if target in seen:
        plan.problems.append(say("column_twice", language, first=seen[target], second=name,
                                 field=target))
        return
    seen[target] = name
    plan.line_columns.append(LineColumn(index=index, header=name, lines=lines_key,
                                        field=sub_key))


def load_mapping_file(path: str | Path, entity_key: str, language: str = "en") -> dict[str, Any]:
    """The ``columns`` of a mapping file, checked against its schema."""
    doc = load_yaml(Path(path), str(path))
    problems = schema_problems(doc, "import_mapping")
    if problems:
        raise DefinitionError(problems)
    mapped = doc.data.get("entity")
    if mapped and mapped != entity_key:
        from engine.errors import ValidationFailed

        raise ValidationFailed({"mapping": [say("mapping_entity", language, mapped=mapped,
                                                entity=entity_key)]})
    return dict(doc.data.get("columns") or {})


class MappingStore:
    """The column mapping saved for each entity of a site (``crm_import_mapping``)."""

    def __init__(self, schema: Schema, engine: Engine) -> None:
        self.table = schema.system("crm_import_mapping")
        self.engine = engine

    def get(self, entity_key: str, *, conn: Connection | None = None) -> dict[str, str | None]:
        query = select(self.table.c.columns).where(self.table.c.entity == entity_key)
        if conn is not None:
            found = conn.execute(query).scalar()
        else:
            with self.engine.connect() as c:
                found = c.execute(query).scalar()
        return dict(found or {})

    def save(self, actor: Actor, entity_key: str, columns: Mapping[str, str | None],
             now: dt.datetime) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(delete(self.table).where(self.table.c.entity == entity_key))
            conn.execute(insert(self.table).values(
                entity=entity_key, columns=dict(columns), updated_at=now,
                updated_by=actor.user_id))
