"""The lines of a record in a spreadsheet: one row per line, as ERPNext and Odoo write them.

A file giving the fields of an entity's lines (columns headed "<lines
label> / <line field label>", or ``lines/quantity`` by keys) holds a
record per group of rows: the record's own columns on its first row,
beside its first line, then one row per further line with the record's
columns left blank::

    Customer,  Date,       Lines / Product, Lines / Quantity
    Acme,      2026-03-01, Widget,          2
    ,          ,           Gadget,          1       <- a second line of Acme's record
    Globex,    2026-03-02, Widget,          5

This module only reads such rows: which row continues the record above,
and what each line's cells hold.  The record, with all its lines, then
goes through the record service in one create (or update), so the lines'
own rules, computed amounts and the record's totals hold as in the form.
A line is named ``lines[i]`` (its place in the record) by the service's
messages; :func:`where` turns that back into the line of the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.metadata.model import Entity, Field
from engine.services.dataio.importing.cells import CellReader
from engine.services.dataio.importing.mapping import ColumnPlan

#: ``lines[2].quantity`` → ("lines", 2, "quantity"); ``lines[2]`` → ("lines", 2, None).
LINE_KEY = re.compile(r"^([^\[\].]+)\[(\d+)\](?:\.(.+))?$")


@dataclass(frozen=True)
class LineGroup:
    """The columns of one lines field: (cell index, line field, converter) each; the
    converter is None for a reference, looked up by name with the others of the batch."""

    key: str
    field: Field
    columns: tuple[tuple[int, str, Any], ...]
    indexes: tuple[int, ...]


def line_groups(entity: Entity, plan: ColumnPlan, language: str,
                timezone: str) -> tuple[LineGroup, ...]:
    """The line columns of ``plan``, by lines field, each with its cell converters."""
    groups = []
    for key in dict.fromkeys(c.lines for c in plan.line_columns):
        outer = entity.fields[key]
        reader = CellReader(entity, language, timezone, fields=outer.fields)
        columns = tuple(
            (c.index, c.field, None if outer.fields[c.field].type == "reference"
             else reader.converter(outer.fields[c.field]))
            for c in plan.line_columns if c.lines == key)
        groups.append(LineGroup(key=key, field=outer, columns=columns,
                                indexes=tuple(i for i, _, _ in columns)))
    return tuple(groups)


def filled(cell: Any) -> bool:
    return cell is not None and not (isinstance(cell, str) and not cell.strip())


def continues(cells: Sequence[Any], record_indexes: Sequence[int],
              line_indexes: Sequence[int]) -> bool:
    """Whether a row is a further line of the record above: the record's columns all
    blank, some line column filled."""
    count = len(cells)
    return (not any(filled(cells[i]) for i in record_indexes if i < count)
            and any(filled(cells[i]) for i in line_indexes if i < count))


def where(key: str) -> tuple[str, int, str | None] | None:
    """The lines field, the line's place and the line field a message key names, if any."""
    match = LINE_KEY.match(key)
    if match is None:
        return None
    return match.group(1), int(match.group(2)), match.group(3)


__all__ = ["LineGroup", "continues", "filled", "line_groups", "where"]
