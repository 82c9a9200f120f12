"""Applying a plan: Alembic operations, archiving first, all in one transaction.

Every change goes through Alembic's ``Operations`` inside
``batch_alter_table``: on PostgreSQL a batch issues plain ``ALTER``s, on
SQLite it recreates the table (copy and move) when SQLite cannot alter in
place.  Data that a change would lose is copied to ``crm_archive`` before
the change, and values are converted in Python so both databases give the
same result.  The plan is made and applied inside one transaction, the
applied definitions are recorded in it, and any error rolls everything back.

SQLite needs care: ``PRAGMA foreign_keys`` is a no-op inside a transaction,
and a batch recreate drops the old table — with foreign keys on, that DROP
would cascade-delete child rows.  So foreign keys are switched off on the
raw connection *before* our BEGIN (``database.py`` issues BEGIN itself),
checked with ``PRAGMA foreign_key_check`` before commit, and switched back
on afterwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    ForeignKey,
    MetaData,
    Table,
    UniqueConstraint,
    bindparam,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from engine.context import Clock, default_clock
from engine.errors import CrmError, MigrationFailed, MigrationRefused
from engine.metadata.model import Registry
from engine.metadata.values import to_json
from engine.storage.database import WRITE_OPTION, lock_definitions
from engine.storage.ids import continue_after, highest_id_used, sqlite_sequence, table_options
from engine.storage.migration.convert import convert, sql_type
from engine.storage.migration.operations import (
    AddChoices,
    AddColumn,
    AddIndex,
    ChangeType,
    CreateTable,
    DropColumn,
    DropIndex,
    DropTable,
    KeepIdsUnique,
    MigrationPlan,
    Operation,
    Place,
    RemoveChoices,
    RenameColumn,
    RenameTable,
)
from engine.storage.migration.pack_steps import PackStep, pending_steps, run_steps
from engine.storage.migration.planner import plan_on, typed
from engine.storage.migration.state import applied_state, record_applied
from engine.storage.tables import RESERVED_TABLE_PREFIX, Schema, build_schema, short_name

Progress = Callable[[str], None]


class DataChanged(MigrationFailed):
    """Data appeared, between planning and applying, that a change would now lose."""


def _bare(col: Column, *, references: bool = True) -> Column:
    """A copy of ``col`` without index flags (indexes are created by name, separately)."""
    keys = [ForeignKey(fk.target_fullname, ondelete=fk.ondelete) for fk in col.foreign_keys]
    return Column(
        col.name,
        col.type,
        *(keys if references else []),
        primary_key=col.primary_key,
        nullable=col.nullable,
        autoincrement=col.autoincrement,
        # a NOT NULL column added to a table holding rows needs its server default
        server_default=getattr(col.server_default, "arg", None),
    )


class Executor:
    """Carries out operations on one connection; one method per operation ``kind``."""

    def __init__(
        self, conn: Connection, schema: Schema, *, new_hash: str, now: dt.datetime,
        allow_destructive: bool,
    ) -> None:
        self.conn = conn
        self.schema = schema
        self.new_hash = new_hash
        self.now = now
        self.allow_destructive = allow_destructive
        context = MigrationContext.configure(conn, opts={"target_metadata": schema.metadata})
        self.ops = Operations(context)
        self.archive_table = schema.system("crm_archive")

    # -- helpers -----------------------------------------------------------

    @contextmanager
    def batch(self, name: str, recreate: str = "auto") -> Iterator[Any]:
        """Alter table ``name``; a SQLite rebuild keeps ``AUTOINCREMENT`` and its counter.

        Reflection does not see ``AUTOINCREMENT``, so the copy is told; and the
        copy's counter starts from the ids it holds, so the old one is carried
        over — else a deleted highest id would be given again.
        """
        options = table_options(self.schema.metadata.tables.get(name))
        sqlite = self.conn.dialect.name == "sqlite"
        remembered = sqlite_sequence(self.conn, name) if sqlite else None
        with self.ops.batch_alter_table(name, recreate=recreate, table_kwargs=options) as batch:
            yield batch
        if remembered is not None:
            continue_after(self.conn, self.target(name), remembered)

    def target(self, name: str) -> Table:
        return self.schema.metadata.tables[name]

    def create_index(self, name: str, index_name: str) -> None:
        index = next(i for i in self.target(name).indexes if i.name == index_name)
        with self.batch(name) as batch:
            batch.create_index(index.name, [c.name for c in index.columns], unique=bool(index.unique))

    def add_foreign_keys(self, name: str, key: str) -> None:
        col = self.target(name).c[key]
        if not col.foreign_keys:
            return
        with self.batch(name) as batch:
            for fk in col.foreign_keys:
                batch.create_foreign_key(
                    fk.constraint.name, fk.column.table.name, [key], [fk.column.name],
                    ondelete=fk.ondelete,
                )

    def archive(
        self, place: Place, field: str | None, reason: str, rows: list[tuple[Any, Any]],
        *, planned: bool,
    ) -> None:
        """Copy ``(record_id, value)`` pairs to ``crm_archive`` before they are changed."""
        if not rows:
            return
        if not planned and not self.allow_destructive:
            raise DataChanged(
                f"{place} gained data that this change would lose since the migration was "
                "planned; nothing was changed — plan the migration again."
            )
        self.conn.execute(
            self.archive_table.insert(),
            [
                {
                    "archived_at": self.now,
                    "definitions_hash": self.new_hash,
                    "entity": place.entity,
                    "field": field,
                    "record_id": record_id,
                    "value": to_json(value),
                    "reason": reason,
                }
                for record_id, value in rows
            ],
        )

    def read(self, name: str, key: str, kind: TypeEngine | None) -> list[tuple[Any, Any]]:
        t = typed(name, [("id", None), (key, kind)])
        query = select(t.c.id, t.c[key]).where(t.c[key].is_not(None)).order_by(t.c.id)
        # A JSON null is not SQL NULL; neither is a value.
        return [(row[0], row[1]) for row in self.conn.execute(query) if row[1] is not None]

    def write(self, name: str, key: str, kind: TypeEngine, values: list[tuple[Any, Any]]) -> None:
        if not values:
            return
        t = typed(name, [("id", None), (key, kind)])
        statement = (
            update(t).where(t.c.id == bindparam("_id")).values({key: bindparam("_v", type_=kind)})
        )
        self.conn.execute(statement, [{"_id": i, "_v": v} for i, v in values])

    # -- operations --------------------------------------------------------

    def run(self, operation: Operation) -> None:
        getattr(self, operation.kind)(operation)

    def create_table(self, op: CreateTable) -> None:
        target = self.target(op.place.table)
        uniques = [
            UniqueConstraint(*[c.name for c in uc.columns], name=uc.name)
            for uc in target.constraints
            if isinstance(uc, UniqueConstraint)
        ]
        self.ops.create_table(target.name, *[_bare(c) for c in target.columns], *uniques,
                              **table_options(target))
        for index_name in op.indexes:
            self.create_index(target.name, index_name)

    def drop_table(self, op: DropTable) -> None:
        reflected = Table(op.place.table, MetaData(), autoload_with=self.conn)
        specs = dict(op.specs)
        t = typed(
            op.place.table,
            [(c.name, sql_type(specs[c.name]) if c.name in specs else c.type)
             for c in reflected.columns],
        )
        rows = [dict(r) for r in self.conn.execute(select(t)).mappings()]
        ident = "source_id" if op.role == "link" else "id"
        field = None if op.role == "entity" else op.key
        reason = f"{op.role} removed" if op.role == "entity" else f"{op.role} field removed"
        self.archive(op.place, field, reason, [(r.get(ident), r) for r in rows],
                     planned=op.destructive)
        self.ops.drop_table(op.place.table)

    def rename_table(self, op: RenameTable) -> None:
        self.ops.rename_table(op.old_table, op.place.table)
        for old, new in op.indexes:
            with self.batch(op.place.table) as batch:
                batch.drop_index(old)
            self.create_index(op.place.table, new)
        if op.role == "entity":
            self.rekey_entity(op.old, op.new)

    def rekey_entity(self, old: str, new: str) -> None:
        """What the system tables keep under an entity's key follows it to its new key.

        Every ``entity`` column (history, stage history, files, archive, the
        outbox, shares...) and the number counters (``entity.field:…``
        scopes, and their ``key:entity.field`` scrambling keys).
        """
        for table in self.schema.metadata.sorted_tables:
            if table.name.startswith(RESERVED_TABLE_PREFIX) and "entity" in table.c:
                self.conn.execute(update(table).where(table.c.entity == old).values(entity=new))
        sequences = self.schema.system("crm_sequence")
        for prefix in (f"{old}.", f"key:{old}."):
            moved = prefix.replace(old, new, 1)
            rows = self.conn.execute(select(sequences.c.scope).where(
                sequences.c.scope.startswith(prefix, autoescape=True))).scalars().all()
            for scope in rows:
                self.conn.execute(update(sequences).where(sequences.c.scope == scope)
                                  .values(scope=moved + scope[len(prefix):]))

    def keep_ids_unique(self, op: KeepIdsUnique) -> None:
        """Rebuild a SQLite table as ``AUTOINCREMENT`` (copy, drop, rename: rows kept)."""
        name = op.place.table
        with self.batch(name, recreate="always"):
            pass
        highest = max(op.next_id - 1,
                      highest_id_used(self.conn, self.schema.metadata, name, op.entity))
        continue_after(self.conn, self.target(name), highest)

    def add_column(self, op: AddColumn) -> None:
        col = self.target(op.place.table).c[op.key]
        with self.batch(op.place.table) as batch:
            batch.add_column(_bare(col, references=False))
        self.add_foreign_keys(op.place.table, op.key)

    def rename_column(self, op: RenameColumn) -> None:
        with self.batch(op.place.table) as batch:
            batch.alter_column(op.old, new_column_name=op.new)

    def change_type(self, op: ChangeType) -> None:
        name, key = op.place.table, op.key
        old_type, new_type = sql_type(op.old_spec), sql_type(op.new_spec)
        found = self.read(name, key, old_type)
        converted = [(i, v, *convert(v, op.old_spec, op.new_spec)) for i, v in found]
        changed = any(not exact for _i, _v, _new, exact in converted)
        if op.destructive or changed:
            reason = f"type changed from {op.old_type} to {op.new_type}"
            self.archive(op.place, op.place.archive_field(key), reason,
                         [(i, v) for i, v, _n, _e in converted], planned=op.destructive)
        temp = short_name(f"_crm_new_{key}")
        with self.batch(name) as batch:
            batch.add_column(Column(temp, new_type, nullable=True))
        self.write(name, temp, new_type, [(i, n) for i, _v, n, _e in converted if n is not None])
        dropped = [
            i["name"] for i in inspect(self.conn).get_indexes(name) if key in i["column_names"]
        ]
        with self.batch(name) as batch:
            for index_name in dropped:
                batch.drop_index(index_name)
            batch.drop_column(key)
            batch.alter_column(temp, new_column_name=key)
        self.add_foreign_keys(name, key)
        wanted = {i.name for i in self.target(name).indexes}
        for index_name in dropped:
            if index_name in wanted:
                self.create_index(name, index_name)

    def add_choices(self, op: AddChoices) -> None:
        """New choices live in the definitions only."""

    def remove_choices(self, op: RemoveChoices) -> None:
        name = op.place.table
        kind = self.target(name).c[op.key].type
        gone = set(op.choices)
        hit = [
            (i, v) for i, v in self.read(name, op.key, kind)
            if (gone & set(v) if op.multiple else v in gone)
        ]
        reason = f"choice {', '.join(repr(c) for c in op.choices)} removed"
        self.archive(op.place, op.place.archive_field(op.key), reason, hit, planned=op.destructive)
        kept = [(i, [k for k in v if k not in gone] or None) if op.multiple else (i, None)
                for i, v in hit]
        self.write(name, op.key, kind, kept)

    def add_index(self, op: AddIndex) -> None:
        self.create_index(op.place.table, op.name)

    def drop_index(self, op: DropIndex) -> None:
        with self.batch(op.place.table) as batch:
            batch.drop_index(op.name)

    def drop_column(self, op: DropColumn) -> None:
        name = op.place.table
        kind = sql_type(op.spec) if op.spec is not None else None
        if kind is None:
            kind = Table(name, MetaData(), autoload_with=self.conn).c[op.key].type
        self.archive(op.place, op.place.archive_field(op.key), "field removed",
                     self.read(name, op.key, kind), planned=op.destructive)
        with self.batch(name) as batch:
            batch.drop_column(op.key)


# -- the transaction ----------------------------------------------------------


def _sqlite_foreign_keys(conn: Connection, on: bool) -> None:
    """Switch SQLite's foreign keys on the raw connection (outside any transaction)."""
    raw = conn.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
        cursor.execute("PRAGMA foreign_keys")
        state = cursor.fetchone()[0]
    finally:
        cursor.close()
    if bool(state) != on:
        raise MigrationFailed(
            f"Could not switch SQLite's foreign keys {'on' if on else 'off'} (a transaction "
            "was still open); nothing was changed."
        )


def _check_foreign_keys(conn: Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise MigrationFailed(
            f"{len(broken)} row(s) in {', '.join(tables)} would point to records that do not "
            "exist; the database was rolled back and nothing was changed."
        )


def _plain(exc: BaseException) -> str:
    """What went wrong, in one line and without the SQL statement."""
    if isinstance(exc, CrmError):
        return exc.message
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _refuse(plan: MigrationPlan, allow_destructive: bool) -> None:
    if plan.blocked:
        reasons = [op.reason or op.describe() for op in plan.blocked]
        raise MigrationRefused(
            "The migration cannot be applied, even with destructive changes allowed; "
            "nothing was changed:", reasons,
        )
    if plan.destructive and not allow_destructive:
        raise MigrationRefused(
            "The migration would lose data, so nothing was changed. Allow destructive changes "
            "(crm migrate --allow-destructive) to copy the old values to the archive and go ahead:",
            [op.reason or op.describe() for op in plan.destructive],
        )


def _summary(plan: MigrationPlan, registry: Registry, applied_by: str | None) -> str:
    if plan.previous_hash is None:
        keys = sorted(registry.entities)
        text = f"First migration: {len(keys)} entities ({', '.join(keys)})"
    else:
        text = "; ".join(plan.describe())
    return f"{text} (by {applied_by})" if applied_by else text


@contextmanager
def _connection(engine: Engine) -> Iterator[Connection]:
    """A connection ready for a migration: SQLite foreign keys off until it is done."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            _sqlite_foreign_keys(conn, False)
        try:
            yield conn.execution_options(**{WRITE_OPTION: True})
        finally:
            if sqlite:
                if conn.in_transaction():
                    conn.rollback()
                _sqlite_foreign_keys(conn, True)


def _run_data_steps(conn: Connection, steps: list[PackStep], now: dt.datetime,
                    progress: Progress | None) -> None:
    """The packs' declared data migrations (pack_steps.py): after adding, before dropping."""
    if progress is not None:
        for data_step in steps:
            progress(data_step.describe())
    run_steps(conn, steps, now)


def apply_migration(
    engine: Engine,
    registry: Registry,
    schema: Schema | None = None,
    *,
    allow_destructive: bool = False,
    progress: Progress | None = None,
    applied_by: str | None = None,
    clock: Clock | None = None,
) -> MigrationPlan:
    """Bring the database to ``registry``, all or nothing; return the plan applied.

    ``clock`` (the site's; else :func:`~engine.context.default_clock`) dates
    the archived values, the packs' data steps and the applied definitions.

    Raises :class:`MigrationRefused` (nothing executed) when the plan would
    lose data and ``allow_destructive`` is False, or cannot be done at all;
    :class:`MigrationFailed` (rolled back) when a step fails.
    """
    schema = schema or build_schema(registry)
    with _connection(engine) as conn:
        transaction = conn.begin()
        step = "planning the migration"
        try:
            lock_definitions(conn)
            plan = plan_on(conn, registry, schema)
            if plan.is_empty:
                transaction.rollback()
                return plan
            previous = applied_state(conn)
            data_steps = pending_steps(registry, previous.packs if previous else None)
            _refuse(plan, allow_destructive)
            now = (clock or default_clock()).now()
            executor = Executor(conn, schema, new_hash=registry.definitions_hash, now=now,
                                allow_destructive=allow_destructive)
            total = len(plan.operations)
            for number, operation in enumerate(plan.operations, 1):
                if data_steps and isinstance(operation, DropColumn | DropTable):
                    step = "running the packs' data migrations"
                    _run_data_steps(conn, data_steps, now, progress)
                    data_steps = []
                step = f"step {number} of {total} ({operation.describe()})"
                if progress is not None:
                    progress(operation.describe())
                executor.run(operation)
            if data_steps:
                step = "running the packs' data migrations"
                _run_data_steps(conn, data_steps, now, progress)
            step = "recording the applied definitions"
            record_applied(conn, registry, schema, summary=_summary(plan, registry, applied_by),
                           now=now)
            if conn.dialect.name == "sqlite":
                step = "checking references between records"
                _check_foreign_keys(conn)
            step = "committing the migration"
            transaction.commit()
        except MigrationRefused:
            transaction.rollback()
            raise
        except Exception as exc:
            if transaction.is_active:
                transaction.rollback()
            if isinstance(exc, MigrationFailed):
                raise
            raise MigrationFailed(
                f"The migration failed at {step}: {_plain(exc)}. The database was rolled back; "
                "nothing was changed."
            ) from exc
    return plan
