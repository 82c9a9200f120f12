"""Record ids are never handed out twice, on either database.

Audit rows, attachments, stage history and user links name a record by
its entity and id.  If a new record could get the id of a deleted one it
would inherit all of them, so ids must only ever grow:

- PostgreSQL's sequences never go back by themselves;
- SQLite gives a plain ``INTEGER PRIMARY KEY`` the highest id in use plus
  one — a deleted highest id comes back — unless the table is declared
  ``AUTOINCREMENT``, which keeps the highest id ever used in
  ``sqlite_sequence``.  Every table with a generated id is declared so
  (:func:`never_reuse_ids`); older SQLite sites are rebuilt by ``crm
  migrate`` (the planner finds them with :func:`lacks_autoincrement`).

Where ids are copied into a table (a migration rebuilding it, a restore),
the counter is set from :func:`highest_id_used`: the highest id in the table
*and* in the rows of the tables below that still name one of its records,
so an id whose record was deleted before the copy is not given again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    MetaData,
    Table,
    column,
    func,
    insert,
    inspect,
    select,
    table,
    update,
)
from sqlalchemy.types import Integer

#: The dialect option that makes SQLite remember the highest id ever used.
SQLITE_AUTOINCREMENT = "sqlite_autoincrement"

#: Tables whose rows name a record by ``entity`` and ``record_id``.
RECORD_KEYED_TABLES = (
    "crm_audit",
    "crm_attachment",
    "crm_stage_history",
    "crm_archive",
    "crm_outbox",
    "crm_notification",
    "crm_user_link",
)

_MASTER = table("sqlite_master", column("type"), column("name"), column("sql"))
_SEQUENCE = table("sqlite_sequence", column("name"), column("seq"))


def generates_ids(t: Table) -> bool:
    """Whether ``t`` has a single integer primary key the database generates."""
    keys = list(t.primary_key.columns)
    return (
        len(keys) == 1
        and keys[0].autoincrement in (True, "auto")
        and not keys[0].foreign_keys
        and issubclass(keys[0].type._type_affinity or type(None), Integer)
    )


def never_reuse_ids(metadata: MetaData) -> None:
    """Declare every table that generates ids ``AUTOINCREMENT`` on SQLite."""
    for t in metadata.tables.values():
        if generates_ids(t):
            t.dialect_kwargs[SQLITE_AUTOINCREMENT] = True


def table_options(t: Table | None) -> dict[str, Any]:
    """The options a rebuilt copy of ``t`` must keep (reflection does not see them)."""
    if t is None or not t.dialect_kwargs.get(SQLITE_AUTOINCREMENT):
        return {}
    return {SQLITE_AUTOINCREMENT: True}


def lacks_autoincrement(conn: Connection, name: str) -> bool:
    """Whether SQLite table ``name`` was created without ``AUTOINCREMENT``."""
    sql = conn.execute(
        select(_MASTER.c.sql).where(_MASTER.c.type == "table", _MASTER.c.name == name)
    ).scalar()
    return sql is not None and "PRIMARY KEY AUTOINCREMENT" not in " ".join(sql.upper().split())


def highest_id_used(
    conn: Connection, metadata: MetaData, name: str, entity: str | None, key: str = "id"
) -> int:
    """The highest id table ``name`` holds or the rows naming ``entity``'s records mention."""
    ids = table(name, column(key))
    found = [conn.execute(select(func.max(ids.c[key]))).scalar()]
    if entity is not None:
        inspector = inspect(conn)
        for keyed_name in RECORD_KEYED_TABLES:
            keyed = metadata.tables.get(keyed_name)
            if keyed is None or keyed_name == name or not inspector.has_table(keyed_name):
                continue
            if not {"entity", "record_id"} <= {c["name"] for c in inspector.get_columns(keyed_name)}:
                continue
            found.append(conn.execute(
                select(func.max(keyed.c.record_id)).where(keyed.c.entity == entity)).scalar())
    return max((int(v) for v in found if v is not None), default=0)


def _has_sequence_table(conn: Connection) -> bool:
    """SQLite creates ``sqlite_sequence`` with its first ``AUTOINCREMENT`` table."""
    return conn.execute(select(func.count()).select_from(_MASTER).where(
        _MASTER.c.name == "sqlite_sequence")).scalar_one() > 0


def sqlite_sequence(conn: Connection, name: str) -> int | None:
    """The highest id SQLite remembers for ``name`` (None when it remembers none)."""
    if not _has_sequence_table(conn):
        return None
    value = conn.execute(select(_SEQUENCE.c.seq).where(_SEQUENCE.c.name == name)).scalar()
    return None if value is None else int(value)


def continue_after(conn: Connection, t: Table, highest: int) -> None:
    """Make the next generated id of ``t`` larger than ``highest`` (never lower it)."""
    if highest <= 0:
        return
    if conn.dialect.name == "sqlite":
        if not _has_sequence_table(conn):
            return  # no table declared AUTOINCREMENT yet: nothing to continue
        current = sqlite_sequence(conn, t.name)
        if current is None:
            conn.execute(insert(_SEQUENCE).values(name=t.name, seq=highest))
        elif current < highest:
            conn.execute(update(_SEQUENCE).where(_SEQUENCE.c.name == t.name).values(seq=highest))
    elif conn.dialect.name == "postgresql":
        key = t.primary_key.columns[0]
        sequence = func.pg_get_serial_sequence(conn.dialect.identifier_preparer.format_table(t),
                                               key.name)
        conn.execute(select(func.setval(sequence, func.greatest(
            highest, select(func.max(key)).scalar_subquery()))))
