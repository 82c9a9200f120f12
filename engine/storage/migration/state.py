"""Which definitions the database was last migrated to (``crm_definitions``).

Each applied migration adds one row: the definitions hash, the pack
versions, the full snapshot and a one-line summary.  The snapshot is what
type changes are judged from next time — reflected column types cannot tell
a decimal from a scaled integer, nor a choice from a string.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, inspect, select

from engine.metadata.model import Registry
from engine.storage.ids import SQLITE_AUTOINCREMENT, lacks_autoincrement
from engine.storage.tables import Schema, build_schema, system_tables

DEFINITIONS_TABLE = "crm_definitions"

#: The system tables on their own, to read ``crm_definitions`` without a registry.
_SYSTEM = MetaData()
system_tables(_SYSTEM)


@dataclass(frozen=True)
class AppliedState:
    """The last row of ``crm_definitions``."""

    definitions_hash: str
    packs: dict[str, str]
    snapshot: dict[str, Any]
    applied_at: dt.datetime
    summary: str | None = None

    @property
    def hash(self) -> str:
        return self.definitions_hash

    @property
    def entities(self) -> dict[str, Any]:
        """Entity key → its snapshot form (fields, labels, …)."""
        return dict(self.snapshot.get("entities") or {})


def _read(conn: Connection) -> AppliedState | None:
    if not inspect(conn).has_table(DEFINITIONS_TABLE):
        return None
    table = _SYSTEM.tables[DEFINITIONS_TABLE]
    row = conn.execute(select(table).order_by(table.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    return AppliedState(
        definitions_hash=row["definitions_hash"],
        packs=dict(row["packs"] or {}),
        snapshot=dict(row["snapshot"] or {}),
        applied_at=row["applied_at"],
        summary=row["summary"],
    )


def applied_state(engine_or_conn: Engine | Connection) -> AppliedState | None:
    """The definitions last applied, or None for a database never migrated."""
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return _read(conn)
    return _read(engine_or_conn)


def is_up_to_date(engine: Engine, registry: Registry) -> bool:
    """Whether the database was last migrated to exactly these definitions.

    The engine's own ``crm_*`` tables count too: a newer VisionCRM may add a
    system table or column while the site's definitions stay the same, and
    such a site must be migrated before it is used, not fail mid-request.
    """
    with engine.connect() as conn:
        state = _read(conn)
        if state is None or state.definitions_hash != registry.definitions_hash:
            return False
        return not missing_system_columns(conn) and not ids_reusable(conn, registry)


def ids_reusable(conn: Connection, registry: Registry) -> list[str]:
    """SQLite tables that could give a deleted row's id again (built before AUTOINCREMENT)."""
    if conn.dialect.name != "sqlite":
        return []
    names = [t.name for t in build_schema(registry).metadata.sorted_tables
             if t.dialect_kwargs.get(SQLITE_AUTOINCREMENT)]
    return [name for name in names if lacks_autoincrement(conn, name)]


def missing_system_columns(conn: Connection) -> list[str]:
    """``table`` or ``table.column`` of the engine's tables the database lacks."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    missing = []
    for table in _SYSTEM.sorted_tables:
        if table.name not in present:
            missing.append(table.name)
            continue
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        missing.extend(f"{table.name}.{c.name}" for c in table.columns if c.name not in columns)
    return missing


def record_applied(
    conn: Connection, registry: Registry, schema: Schema, *, summary: str, now: dt.datetime
) -> None:
    """Add the ``crm_definitions`` row for definitions just applied (same transaction)."""
    snapshot = json.loads(json.dumps(registry.snapshot(), ensure_ascii=False, default=str))
    conn.execute(
        schema.system(DEFINITIONS_TABLE).insert().values(
            applied_at=now,
            definitions_hash=registry.definitions_hash,
            packs=snapshot["packs"],
            snapshot=snapshot,
            summary=summary,
        )
    )
