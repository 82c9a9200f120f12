"""Sequence numbers that stay unique when many people create records at once.

The counter row is incremented with ``UPDATE … RETURNING`` inside the
record's own transaction: PostgreSQL's row lock makes concurrent creators
wait their turn, SQLite's write lock does the same, and a rolled-back create
gives its number back — so numbers are unique and have no gaps.

An opaque counter (``{*****}``) is scrambled with a key drawn at random the
first time the field numbers a record, and kept in the same table under
``key:ENTITY.FIELD`` (so a backup carries it and every process agrees).
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.metadata.sequence_pattern import parse_sequence_pattern


def next_value(conn: Connection, sequences: Table, scope: str, count: int = 1) -> int:
    """The counter after taking ``count`` values (the last of them)."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        dialect_insert(sequences).values(scope=scope, value=0).on_conflict_do_nothing()
    )
    return conn.execute(
        update(sequences)
        .where(sequences.c.scope == scope)
        .values(value=sequences.c.value + count)
        .returning(sequences.c.value)
    ).scalar_one()


def _key(conn: Connection, sequences: Table, owner: str) -> int:
    """The scrambling key of ``owner``'s opaque counter, drawn once and kept."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    scope = f"key:{owner}"
    conn.execute(dialect_insert(sequences).values(scope=scope, value=secrets.randbits(62))
                 .on_conflict_do_nothing())
    return conn.execute(select(sequences.c.value).where(sequences.c.scope == scope)).scalar_one()


def next_number(
    conn: Connection, sequences: Table, owner: str, pattern_text: str, on: dt.date
) -> str:
    """The next formatted number for ``owner`` (``entity.field``) on a given day."""
    pattern = parse_sequence_pattern(pattern_text)
    scope = f"{owner}:{pattern.scope(on)}"
    key = _key(conn, sequences, owner) if pattern.opaque else 0
    return pattern.render(on, next_value(conn, sequences, scope), key)


def next_numbers(
    conn: Connection, sequences: Table, owner: str, pattern_text: str, on: dt.date, count: int
) -> list[str]:
    """``count`` consecutive numbers taken at once (a batch of new records), in order."""
    if count <= 0:
        return []
    pattern = parse_sequence_pattern(pattern_text)
    scope = f"{owner}:{pattern.scope(on)}"
    last = next_value(conn, sequences, scope, count)
    key = _key(conn, sequences, owner) if pattern.opaque else 0
    return pattern.render_many(on, range(last - count + 1, last + 1), key)
