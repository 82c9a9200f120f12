"""Compiling the registry to SQLAlchemy tables.

Each entity becomes one table with the standard columns (id, who and when,
owner, version for optimistic locking, archived flag); ``lines`` fields
become owned child tables and ``many_to_many`` fields link tables.  The
engine's own bookkeeping lives in ``crm_*`` tables beside them.  Everything
is built from metadata — no SQL text — and every constraint is named, which
SQLite's batch migrations need to find them again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import MappingProxyType

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

from engine.metadata.model import Entity, Field, Registry
from engine.storage.access_tables import access_tables
from engine.storage.attachment_tables import attachment_tables
from engine.storage.ids import never_reuse_ids
from engine.storage.notification_tables import notification_tables
from engine.storage.types import ExactDecimal, IdType, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")

USER_TABLE = "crm_user"
RESERVED_TABLE_PREFIX = "crm_"


def short_name(name: str, limit: int = 63) -> str:
    """Keep an identifier within PostgreSQL's limit, stably."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}_{digest}"


def column_type(field: Field) -> TypeEngine:
    """The SQL type for a field's stored value."""
    kind = field.value_type
    if kind in ("string", "email", "phone", "url"):
        return String(field.max_length or 255)
    if kind == "text":
        return Text()
    if kind == "integer":
        return BigInteger()
    if kind == "decimal":
        return ExactDecimal(field.precision or 18, field.scale if field.scale is not None else 2)
    if kind == "boolean":
        return Boolean()
    if kind == "date":
        return Date()
    if kind == "datetime":
        return UTCDateTime()
    if kind == "choice":
        return JsonType if field.multiple else String(60)
    if kind == "sequence":
        return String(64)
    if kind == "json":
        return JsonType
    if kind == "reference":
        return IdType
    raise ValueError(f"no column type for {kind}")  # pragma: no cover - checked at load


def _field_column(table_name: str, field: Field, entities: set[str]) -> Column:
    if field.type == "reference":
        ondelete = {"restrict": "RESTRICT", "set_null": "SET NULL", "cascade": "CASCADE"}
        target = field.to if field.to in entities else None
        args = [ForeignKey(f"{target}.id", ondelete=ondelete[field.on_delete])] if target else []
        return Column(field.key, IdType, *args, nullable=True, index=True)
    return Column(field.key, column_type(field), nullable=True)


def _index_name(table: str, columns: list[str], unique: bool) -> str:
    prefix = "uq" if unique else "ix"
    return short_name(f"{prefix}_{table}_{'_'.join(columns)}")


def _user_fk(name: str) -> Column:
    return Column(name, IdType, ForeignKey(f"{USER_TABLE}.id"), nullable=True)


def system_tables(metadata: MetaData) -> None:
    """The engine's own tables, the same for every site."""
    Table(
        USER_TABLE,
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("login", String(150), nullable=False, unique=True),
        Column("display_name", String(200), nullable=False),
        Column("email", String(254)),
        Column("language", String(8), nullable=False, default="en"),
        Column("active", Boolean, nullable=False, default=True),
        Column("is_admin", Boolean, nullable=False, default=False),
        Column("password_hash", String(255)),
        Column("created_at", UTCDateTime, nullable=False),
        # Every session cookie carries the value it was issued under; raising it (logout,
        # a new password, deactivation) ends all of the user's sessions in every process.
        Column("session_epoch", Integer, nullable=False, default=0, server_default="0"),
    )
    Table(
        "crm_user_role",
        metadata,
        Column("user_id", IdType, ForeignKey(f"{USER_TABLE}.id", ondelete="CASCADE"),
               primary_key=True),
        Column("role", String(60), primary_key=True),
    )
    access_tables(metadata)
    Table(
        "crm_definitions",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("applied_at", UTCDateTime, nullable=False),
        Column("definitions_hash", String(64), nullable=False, index=True),
        Column("packs", JSON, nullable=False),
        Column("snapshot", JSON, nullable=False),
        Column("summary", Text),
    )
    Table(
        "crm_audit",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("at", UTCDateTime, nullable=False),
        Column("actor_id", IdType, nullable=True),
        Column("entity", String(80), nullable=False),
        Column("record_id", BigInteger, nullable=False),
        Column("action", String(20), nullable=False),
        Column("field", String(80)),
        Column("old_value", JSON),
        Column("new_value", JSON),
        Column("change_id", String(32), nullable=False),
        Index("ix_crm_audit_record", "entity", "record_id"),
    )
    Table(
        "crm_sequence",
        metadata,
        Column("scope", String(120), primary_key=True),
        Column("value", BigInteger, nullable=False),
    )
    Table(
        "crm_archive",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("archived_at", UTCDateTime, nullable=False),
        Column("definitions_hash", String(64), nullable=False),
        Column("entity", String(80), nullable=False),
        Column("field", String(80)),
        Column("record_id", BigInteger),
        Column("value", JSON),
        Column("reason", Text, nullable=False),
        Index("ix_crm_archive_entity", "entity", "field"),
    )
    # One row per stage change, written by the workflow service with the change itself.
    Table(
        "crm_stage_history",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("entity", String(80), nullable=False),
        Column("record_id", BigInteger, nullable=False),
        Column("workflow", String(80), nullable=False),
        Column("pipeline", String(80), nullable=False),
        Column("transition", String(80), nullable=False),
        Column("from_stage", String(60)),
        Column("to_stage", String(60), nullable=False),
        Column("actor_id", IdType, nullable=True),
        Column("at", UTCDateTime, nullable=False),
        Column("seconds_in_previous", BigInteger),
        Column("comment", Text),
        Index("ix_crm_stage_history_record", "entity", "record_id"),
        Index("ix_crm_stage_history_stage", "entity", "to_stage", "at"),
    )
    # Messages waiting for delivery (reminders, workflow 'notify' actions), the inbox
    # and background job runs: see engine/storage/notification_tables.py.
    notification_tables(metadata, USER_TABLE)
    # Files attached to records: see engine/storage/attachment_tables.py.
    attachment_tables(metadata, USER_TABLE)
    # The column mapping a site saved for importing an entity's spreadsheets (one per
    # entity): kept in the database so every worker of a stateless engine sees it.
    Table(
        "crm_import_mapping",
        metadata,
        Column("entity", String(80), primary_key=True),
        Column("columns", JSON, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("updated_by", IdType, nullable=True),
    )
    # Imports run by `crm worker` rather than in a web request (engine/services/dataio/importing/
    # queue.py): the file, the options, the progress and the report, in the database so any
    # web process can queue one and any worker on any machine can run it.
    Table(
        "crm_import_run",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("entity", String(80), nullable=False),
        Column("user_id", IdType, ForeignKey(f"{USER_TABLE}.id", ondelete="CASCADE"),
               nullable=False),
        Column("language", String(8), nullable=False),
        Column("options", JSON, nullable=False),
        Column("file_name", String(255), nullable=False),
        Column("file_size", BigInteger, nullable=False),
        Column("content", LargeBinary, nullable=True),  # dropped once no longer needed
        Column("status", String(12), nullable=False),  # queued, running, done, failed
        Column("rows_done", BigInteger, nullable=False, default=0),
        Column("rows_total", BigInteger, nullable=False, default=0),
        Column("report", JSON, nullable=True),
        Column("rejected", Text, nullable=True),  # the refused rows as CSV text
        Column("error", Text, nullable=True),  # what the user is told when it failed
        Column("attempts", Integer, nullable=False, default=0),
        Column("claimed_by", String(120), nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("started_at", UTCDateTime, nullable=True),
        Column("heartbeat_at", UTCDateTime, nullable=True),
        Column("finished_at", UTCDateTime, nullable=True),
        Index("ix_crm_import_run_status", "status", "id"),
        Index("ix_crm_import_run_user", "user_id", "created_at"),
    )
    # A user's saved list filters (the query string of a list page, named): in the
    # database so every worker of a stateless engine sees them.
    Table(
        "crm_saved_filter",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("user_id", IdType, ForeignKey(f"{USER_TABLE}.id", ondelete="CASCADE"),
               nullable=False),
        Column("entity", String(80), nullable=False),
        Column("name", String(100), nullable=False),
        Column("query", String(2000), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Index("ux_crm_saved_filter_name", "user_id", "entity", "name", unique=True),
    )


def entity_table(metadata: MetaData, entity: Entity, entities: set[str]) -> Table:
    name = entity.table_name
    columns: list = [
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("created_at", UTCDateTime, nullable=False),
        _user_fk("created_by"),
        Column("updated_at", UTCDateTime, nullable=False),
        _user_fk("updated_by"),
        _user_fk("owner"),
        Column("version", Integer, nullable=False, default=1),
        Column("archived", Boolean, nullable=False, default=False),
    ]
    extras: list = [Index(_index_name(name, ["owner"], False), "owner")]
    for field in entity.column_fields():
        columns.append(_field_column(name, field, entities))
        if field.unique or field.type == "sequence":
            extras.append(Index(_index_name(name, [field.key], True), field.key, unique=True))
        elif field.index and field.type != "reference":
            extras.append(Index(_index_name(name, [field.key], False), field.key))
    for spec in entity.indexes:
        extras.append(
            Index(
                spec.name or _index_name(name, list(spec.fields), spec.unique),
                *spec.fields,
                unique=spec.unique,
            )
        )
    return Table(name, metadata, *columns, *extras)


def lines_table(metadata: MetaData, entity: Entity, field: Field, entities: set[str]) -> Table:
    name = entity.child_table_name(field.key)
    columns: list = [
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column(
            "parent_id",
            IdType,
            ForeignKey(f"{entity.table_name}.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("position", Integer, nullable=False, default=0),
    ]
    columns.extend(_field_column(name, f, entities) for f in field.fields.values() if f.has_column)
    return Table(name, metadata, *columns)


def link_table(metadata: MetaData, entity: Entity, field: Field) -> Table:
    name = entity.child_table_name(field.key)
    return Table(
        name,
        metadata,
        Column("source_id", IdType, ForeignKey(f"{entity.table_name}.id", ondelete="CASCADE"),
               nullable=False),
        Column("target_id", IdType, ForeignKey(f"{field.to}.id", ondelete="CASCADE"),
               nullable=False, index=True),
        UniqueConstraint("source_id", "target_id"),
    )


@dataclass(frozen=True)
class EntityTables:
    """The table of an entity and the child/link tables of its fields."""

    main: Table
    children: MappingProxyType  # field key → Table


@dataclass(frozen=True)
class Schema:
    """The compiled tables of one registry: built once, shared read-only."""

    metadata: MetaData
    entities: MappingProxyType  # entity key → EntityTables

    def table(self, entity_key: str) -> Table:
        return self.entities[entity_key].main

    def child(self, entity_key: str, field_key: str) -> Table:
        return self.entities[entity_key].children[field_key]

    def system(self, name: str) -> Table:
        return self.metadata.tables[name]


def build_schema(registry: Registry) -> Schema:
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    system_tables(metadata)
    keys = set(registry.entities)
    compiled: dict[str, EntityTables] = {}
    for entity in registry.entities.values():
        main = entity_table(metadata, entity, keys)
        children = {}
        for field in entity.fields.values():
            if field.type == "lines":
                children[field.key] = lines_table(metadata, entity, field, keys)
            elif field.type == "many_to_many":
                children[field.key] = link_table(metadata, entity, field)
        compiled[entity.key] = EntityTables(main=main, children=MappingProxyType(children))
    never_reuse_ids(metadata)  # a deleted record's id is never given to another (ids.py)
    return Schema(metadata=metadata, entities=MappingProxyType(compiled))
