"""Writing many rows of one table in one driver call.

``conn.execute(insert(table), rows)`` builds each row's parameters through
the compiled statement's general machinery — a lookup per bind name, a
check for SQL expressions, then the type's processor — which costs more than
the database's own insert when an import writes a hundred thousand records
and their audit rows.  The rows of a batch all have the same columns and
plain values, so :func:`insert_rows` compiles the ``INSERT`` once for the
batch (from the table's metadata, for the connection's dialect), asks each
column's type for its bind processor once, and hands the driver the
processed rows in the parameter style it expects.  The values written are
exactly those ``execute`` would write: the same statement, the same
processors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` into ``table``, as ``conn.execute(insert(table), rows)`` would."""
    if not rows:
        return
    first = rows[0].keys()
    dialect = conn.dialect
    compiled = insert(table).compile(dialect=dialect, column_keys=list(first))
    binds = compiled.binds
    names = list(compiled.positiontup) if dialect.positional else list(binds)
    if {binds[name].key for name in names} != first or any(row.keys() != first for row in rows):
        # A column the rows leave to its default, a key that is no column, or rows that
        # differ: execute() fills in, refuses or groups them as it always does.
        conn.execute(insert(table), list(rows))
        return
    steps: list[tuple[str, str, Callable[[Any], Any] | None]] = []
    for name in names:
        key = binds[name].key
        steps.append((name, key,
                      table.c[key].type.dialect_impl(dialect).bind_processor(dialect)))
    params: list[Any]
    if dialect.positional:
        params = [tuple([convert(row[key]) if convert else row[key]
                         for _, key, convert in steps]) for row in rows]
    else:
        params = [{name: convert(row[key]) if convert else row[key]
                   for name, key, convert in steps} for row in rows]
    conn.exec_driver_sql(compiled.string, params)
