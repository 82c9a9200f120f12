"""Comparing the live database with the definitions: what a migration would do.

Tables, columns and indexes are compared by Alembic's autogenerate
(``compare_metadata``), restricted to the tables this site owns — the
registry's tables, the tables of the definitions applied last, and the
``crm_*`` system tables — so a table someone else keeps in the same database
is never proposed for dropping.  Alembic sees a renamed column as one
dropped and one added; only a declared ``renamed_from`` turns that pair into
a rename (never a guess).  Type and choice changes are judged from the
snapshot applied last, and the rows they touch are counted here, so the
plan can say what would be lost before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Table,
    and_,
    column,
    func,
    inspect,
    select,
    table,
)
from sqlalchemy.types import TypeEngine

from engine.errors import DefinitionError
from engine.metadata.model import Entity, Field, Registry
from engine.storage.ids import SQLITE_AUTOINCREMENT, highest_id_used, lacks_autoincrement
from engine.storage.migration.convert import (
    convert,
    field_from_data,
    spec_of,
    sql_type,
    type_label,
    widens,
)
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
from engine.storage.migration.state import applied_state
from engine.storage.tables import RESERVED_TABLE_PREFIX, Schema, build_schema
from engine.storage.types import decimal_problems

#: How many duplicated values a refusal shows.
SHOWN_DUPLICATES = 5


class Catalog:
    """Where each table and column comes from, in the new and in the applied definitions."""

    def __init__(
        self, registry: Registry, previous: dict[str, Any], table_renames: dict[str, str] | None = None
    ) -> None:
        self.registry = registry
        self.previous = previous
        #: New table name → the name it has in the database until renamed.
        self.table_renames = dict(table_renames or {})

    @staticmethod
    def split(name: str) -> tuple[str, str | None]:
        entity, _, lines = name.partition("__")
        return entity, lines or None

    def owned_tables(self) -> set[str]:
        """The tables of the definitions applied last (removed ones included)."""
        names = set()
        for key, data in self.previous.items():
            names.add(key)
            for fkey, fdata in (data.get("fields") or {}).items():
                if fdata.get("type") in ("lines", "many_to_many"):
                    names.add(f"{key}__{fkey}")
        return names

    def _new_parent(self, name: str) -> Field | None:
        entity_key, lines = self.split(name)
        entity = self.registry.entities.get(entity_key)
        return entity.fields.get(lines) if entity and lines else None

    def _old_parent(self, name: str) -> dict[str, Any] | None:
        entity_key, lines = self.split(self.table_renames.get(name, name))
        data = self.previous.get(entity_key) or {}
        return (data.get("fields") or {}).get(lines) if lines else None

    def role(self, name: str) -> str:
        if name.startswith(RESERVED_TABLE_PREFIX):
            return "system"
        entity_key, lines = self.split(name)
        if lines is None:
            return "entity"
        parent = self._new_parent(name)
        kind = parent.type if parent else (self._old_parent(name) or {}).get("type")
        return "link" if kind == "many_to_many" else "lines"

    def label(self, entity_key: str, field_key: str | None) -> str:
        entity = self.registry.entities.get(entity_key)
        if entity is not None:
            if field_key is None:
                return entity.label.en
            if field_key in entity.fields:
                return entity.fields[field_key].label.en
        data = self.previous.get(entity_key) or {}
        if field_key is not None:
            data = (data.get("fields") or {}).get(field_key) or {}
        return ((data.get("label") or {}).get("en")) or (field_key or entity_key)

    def place(self, name: str) -> Place:
        if name.startswith(RESERVED_TABLE_PREFIX):
            return Place(table=name, entity=name, entity_label=name)
        entity_key, lines = self.split(name)
        return Place(
            table=name,
            entity=entity_key,
            entity_label=self.label(entity_key, None),
            lines=lines,
            lines_label=self.label(entity_key, lines) if lines else None,
        )

    def new_field(self, name: str, key: str) -> Field | None:
        """The field behind column ``key`` of table ``name`` in the new definitions."""
        entity_key, lines = self.split(name)
        entity = self.registry.entities.get(entity_key)
        if entity is None or name.startswith(RESERVED_TABLE_PREFIX):
            return None
        fields = entity.fields
        if lines is not None:
            parent = fields.get(lines)
            fields = parent.fields if parent is not None and parent.type == "lines" else {}
        found = fields.get(key)
        return found if found is not None and found.has_column else None

    def old_field(self, name: str, key: str) -> Field | None:
        """The same, from the snapshot applied last."""
        entity_key, lines = self.split(self.table_renames.get(name, name))
        fields = (self.previous.get(entity_key) or {}).get("fields") or {}
        if lines is not None:
            parent = fields.get(lines) or {}
            fields = parent.get("fields") or {} if parent.get("type") == "lines" else {}
        if key not in fields:
            return None
        found = field_from_data(key, fields[key])
        return found if found.has_column else None


def table_renames(registry: Registry, existing: set[str]) -> dict[str, str]:
    """Entity, lines and link tables to rename (new → old), from declared ``renamed_from`` only."""
    found = {}
    for entity in registry.entities.values():
        if entity.table_name not in existing:
            found.update(_entity_renames(entity, existing))
            continue
        for fld in entity.fields.values():
            if fld.type in ("lines", "many_to_many") and fld.renamed_from:
                old = entity.child_table_name(fld.renamed_from)
                new = entity.child_table_name(fld.key)
                if old in existing and new not in existing:
                    found[new] = old
    return found


def _entity_renames(entity: Entity, existing: set[str]) -> dict[str, str]:
    """An entity whose table is still under its old key: that table and its child tables."""
    old = entity.renamed_from
    if not old or old not in existing:
        return {}
    found = {entity.table_name: old}
    for fld in entity.fields.values():
        if fld.type in ("lines", "many_to_many"):
            before = f"{old}__{fld.renamed_from or fld.key}"
            if before in existing:
                found[entity.child_table_name(fld.key)] = before
    return found


def aliased(metadata: MetaData, renames: dict[str, str]) -> MetaData:
    """``metadata`` with the tables to rename under their old names, to compare their columns."""
    if not renames:
        return metadata
    copy = MetaData(naming_convention=metadata.naming_convention)
    for t in metadata.sorted_tables:
        t.to_metadata(copy, name=renames.get(t.name, t.name))
    for t in copy.tables.values():  # references to a renamed entity's table: its old name
        for fk in list(t.foreign_keys):
            table_name, _, column_name = fk.target_fullname.rpartition(".")
            if table_name not in renames:
                continue
            old = fk.constraint
            t.constraints.discard(old)
            t.foreign_keys.discard(fk)
            fk.parent.foreign_keys.discard(fk)
            t.append_constraint(ForeignKeyConstraint(
                [c.name for c in old.columns], [f"{renames[table_name]}.{column_name}"],
                name=old.name, ondelete=old.ondelete, onupdate=old.onupdate))
    return copy


def compare(conn: Connection, metadata: MetaData, owned: set[str]) -> list[tuple[Any, ...]]:
    """Alembic's differences between the database and ``metadata``, on our tables only."""

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return name in owned if type_ == "table" else True

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
        if type_ == "table":
            return name in owned
        # Foreign keys follow their columns; types are judged from the snapshot.
        return type_ != "foreign_key_constraint"

    context = MigrationContext.configure(
        conn,
        opts={
            "target_metadata": metadata,
            "compare_type": False,
            "compare_server_default": False,
            "include_name": include_name,
            "include_object": include_object,
        },
    )
    # Nullability, defaults and comments come as lists of "modify_*" entries: not ours to judge.
    return [d for d in compare_metadata(context, metadata) if isinstance(d, tuple)]


def typed(name: str, columns: Iterable[tuple[str, TypeEngine | None]]) -> Any:
    """A lightweight table to read columns with the types they were written with."""
    return table(name, *(column(key, kind) for key, kind in columns))


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return f'"{value}"' if isinstance(value, str) else str(value)


class Planner:
    """Turns Alembic's differences and the two definitions into operations."""

    def __init__(
        self, conn: Connection, schema: Schema, catalog: Catalog, target: MetaData | None = None
    ) -> None:
        self.conn = conn
        self.schema = schema
        self.target = target if target is not None else schema.metadata  # as compared
        self.catalog = catalog
        self.added_tables: dict[str, Table] = {}
        self.removed_tables: dict[str, Table] = {}
        self.added_columns: dict[tuple[str, str], Column] = {}
        self.removed_columns: dict[tuple[str, str], Column] = {}
        self.added_indexes: list[tuple[str, Index]] = []
        self.removed_indexes: list[tuple[str, Index]] = []
        self.renames: dict[tuple[str, str], str] = {}  # (table, new) → old
        self.new_names = {old: new for new, old in catalog.table_renames.items()}

    def live(self, name: str) -> str:
        """The name table ``name`` has in the database while planning."""
        return self.catalog.table_renames.get(name, name)

    def real_index(self, compared: str, index: Index) -> Index:
        """The definitions' index for one compared on a table under its old name."""
        name = self.new_names.get(compared)
        if name is None:
            return index
        keys = [c.name for c in index.columns]
        return next(
            i for i in self.schema.metadata.tables[name].indexes
            if [c.name for c in i.columns] == keys and bool(i.unique) == bool(index.unique)
        )

    def sort(self, diffs: list[tuple[Any, ...]]) -> None:
        """File Alembic's differences by kind, under the tables' new names."""
        new = self.new_names
        for diff in diffs:
            kind = diff[0]
            if kind == "add_table":
                self.added_tables[diff[1].name] = diff[1]
            elif kind == "remove_table":
                self.removed_tables[diff[1].name] = diff[1]
            elif kind == "add_column":
                self.added_columns[(new.get(diff[2], diff[2]), diff[3].name)] = diff[3]
            elif kind == "remove_column":
                self.removed_columns[(new.get(diff[2], diff[2]), diff[3].name)] = diff[3]
            elif kind == "add_index":
                name = diff[1].table.name
                self.added_indexes.append((new.get(name, name), self.real_index(name, diff[1])))
            elif kind == "remove_index":
                self.removed_indexes.append((new.get(diff[1].table.name, diff[1].table.name), diff[1]))
        for key in list(self.added_columns):
            fld = self.catalog.new_field(*key)
            old_key = (key[0], fld.renamed_from) if fld and fld.renamed_from else None
            if old_key in self.removed_columns:
                self.renames[key] = old_key[1]
                del self.added_columns[key]
                del self.removed_columns[old_key]

    # -- counting ----------------------------------------------------------

    def live_type(self, name: str, key: str) -> TypeEngine | None:
        """The type column ``key`` was written with (known from the snapshot)."""
        old = self.catalog.old_field(name, key)
        return sql_type(spec_of(old)) if old is not None else None

    def non_null(self, name: str, key: str, kind: TypeEngine | None) -> int:
        if isinstance(kind, JSON):  # a JSON null is not SQL NULL: count in Python
            return len(self.values(name, key, kind))
        t = typed(self.live(name), [(key, None)])
        query = select(func.count()).select_from(t).where(t.c[key].is_not(None))
        return self.conn.execute(query).scalar_one()

    def values(self, name: str, key: str, kind: TypeEngine | None) -> list[Any]:
        t = typed(self.live(name), [(key, kind)])
        found = self.conn.execute(select(t.c[key]).where(t.c[key].is_not(None))).scalars()
        return [v for v in found if v is not None]

    def rows(self, name: str) -> int:
        return self.conn.execute(select(func.count()).select_from(table(self.live(name)))).scalar_one()

    def duplicates(self, name: str, keys: list[str]) -> tuple[list[tuple[str, int]], int]:
        t = typed(self.live(name), [(k, self.live_type(name, k)) for k in keys])
        cols = [t.c[k] for k in keys]
        n = func.count().label("n")
        query = (
            select(*cols, n)
            .where(and_(*(c.is_not(None) for c in cols)))
            .group_by(*cols)
            .having(func.count() > 1)
            .order_by(n.desc(), *cols)
        )
        found = self.conn.execute(query).all()
        shown = [
            (_show(row[0] if len(keys) == 1 else tuple(row[:-1])), row[-1])
            for row in found[:SHOWN_DUPLICATES]
        ]
        return shown, len(found)

    # -- operations --------------------------------------------------------

    def create_tables(self) -> list[Operation]:
        ops: list[Operation] = []
        for target in self.schema.metadata.sorted_tables:
            if target.name not in self.added_tables:
                continue
            place = self.catalog.place(target.name)
            role = self.catalog.role(target.name)
            key = place.lines or place.entity
            indexes = tuple(i.name for t, i in self.added_indexes if t == target.name)
            label = self.catalog.label(place.entity, place.lines)
            ops.append(CreateTable(place, role, key, label, indexes))
        return ops

    def children_first(self) -> list[Table]:
        """Removed tables ordered so none is dropped while another still refers to it."""
        inspector = inspect(self.conn)
        left = dict(sorted(self.removed_tables.items()))
        refers = {
            name: {fk["referred_table"] for fk in inspector.get_foreign_keys(name)} - {name}
            for name in left
        }
        ordered: list[Table] = []
        while left:
            free = [n for n in left if not any(n in refers[o] for o in left if o != n)]
            for name in free or list(left):  # a cycle cannot be ordered: keep names' order
                ordered.append(left.pop(name))
        return ordered

    def drop_tables(self) -> list[Operation]:
        ops: list[Operation] = []
        for reflected in self.children_first():
            place = self.catalog.place(reflected.name)
            role = self.catalog.role(reflected.name)
            key = place.lines or place.entity
            specs = []
            for col in reflected.columns:
                old = self.catalog.old_field(reflected.name, col.name)
                if old is not None:
                    specs.append((col.name, spec_of(old)))
            ops.append(DropTable(place, role, key, self.rows(reflected.name), tuple(specs)))
        return ops

    def column_changes(self) -> list[Operation]:
        adds: list[Operation] = []
        changes: list[Operation] = []
        for target in self.schema.metadata.sorted_tables:
            if target.name in self.added_tables:
                continue
            place = self.catalog.place(target.name)
            for col in target.columns:
                key = (target.name, col.name)
                new = self.catalog.new_field(*key)
                if key in self.added_columns:
                    label = new.label.en if new else col.name
                    kind = type_label(new) if new else type(col.type).__name__.lower()
                    adds.append(AddColumn(place, col.name, label, kind))
                    continue
                old_key = self.renames.get(key, col.name)
                old = self.catalog.old_field(target.name, old_key)
                if new is None or old is None:
                    continue
                changes.extend(self.field_changes(place, old_key, col.name, old, new))
        renames = [
            RenameColumn(self.catalog.place(t), old, new) for (t, new), old in self.renames.items()
        ]
        return [*renames, *adds, *changes]

    def renamed_entity(self, key: str | None) -> str | None:
        """The key entity ``key`` had while its table is renamed by this migration."""
        return self.catalog.table_renames.get(key) if key else None

    def field_changes(
        self, place: Place, live: str, key: str, old: Field, new: Field
    ) -> list[Operation]:
        """Type and choice changes of one column (``live`` is its name before renames)."""
        old_spec, new_spec = spec_of(old), spec_of(new)
        if old_spec.kind == new_spec.kind == "reference" and self.renamed_entity(
                new_spec.target) == old_spec.target:
            return []  # the same records, their entity renamed: the reference follows it
        if old_spec != new_spec:
            widening = widens(old_spec, new_spec)
            if widening:
                values, changed = self.non_null(place.table, live, sql_type(old_spec)), 0
            else:
                found = self.values(place.table, live, sql_type(old_spec))
                values = len(found)
                changed = sum(1 for v in found if not convert(v, old_spec, new_spec)[1])
            return [
                ChangeType(place, key, type_label(old), type_label(new), old_spec, new_spec,
                           widening, values, changed)
            ]
        if old.type != "choice" or new.type != "choice":
            return []
        ops: list[Operation] = []
        removed = tuple(k for k in old.choices if k not in new.choices)
        if removed:
            found = self.values(place.table, live, sql_type(old_spec))
            uses = []
            for choice in removed:
                n = sum(1 for v in found if (choice in v if new.multiple else v == choice))
                if n:
                    uses.append((choice, n))
            records = sum(
                1 for v in found if (set(v) & set(removed) if new.multiple else v in removed)
            )
            ops.append(RemoveChoices(place, key, removed, new.multiple, tuple(uses), records))
        added = tuple(k for k in new.choices if k not in old.choices)
        if added:
            ops.append(AddChoices(place, key, added))
        return ops

    def index_changes(self) -> tuple[list[Operation], list[Operation]]:
        drops: list[Operation] = [
            DropIndex(self.catalog.place(name), i.name, tuple(c.name for c in i.columns),
                      bool(i.unique))
            for name, i in self.removed_indexes
            if name not in self.removed_tables  # they go with their table
        ]
        adds: list[Operation] = []
        for name, index in self.added_indexes:
            if name in self.added_tables:
                continue
            keys = [c.name for c in index.columns]
            shown: list[tuple[str, int]] = []
            total = 0
            new_column = any((name, k) in self.added_columns for k in keys)
            if index.unique and not new_column:
                live = [self.renames.get((name, k), k) for k in keys]
                shown, total = self.duplicates(name, live)
            adds.append(AddIndex(self.catalog.place(name), index.name, tuple(keys),
                                 bool(index.unique), tuple(shown), total))
        return drops, adds

    def drop_columns(self) -> list[Operation]:
        ops: list[Operation] = []
        for name, key in self.removed_columns:
            old = self.catalog.old_field(name, key)
            spec = spec_of(old) if old is not None else None
            kind = sql_type(spec) if spec is not None else self.removed_columns[(name, key)].type
            values = self.non_null(name, key, kind)
            ops.append(DropColumn(self.catalog.place(name), key, values, spec))
        return ops

    def rename_tables(self) -> list[Operation]:
        ops: list[Operation] = []
        for new, old in self.catalog.table_renames.items():
            place = self.catalog.place(new)
            old_key = self.catalog.split(old)[1] or old
            ops.append(RenameTable(place, self.catalog.role(new), old, old_key,
                                   place.lines or place.entity, self.renamed_indexes(new)))
        return ops

    def renamed_indexes(self, name: str) -> tuple[tuple[str, str], ...]:
        """Indexes named after a renamed table: renamed with it (not listed as changes).

        The comparison ran with the table under its old name, so their names
        matched; the definitions name them after the new table.
        """
        def shape(index: Index) -> tuple[Any, ...]:
            return (tuple(c.name for c in index.columns), bool(index.unique))

        live = {i["name"] for i in inspect(self.conn).get_indexes(self.live(name))}
        old_names = {
            shape(i): i.name for i in self.target.tables[self.live(name)].indexes if i.name in live
        }
        pairs = []
        for index in sorted(self.schema.metadata.tables[name].indexes, key=lambda i: i.name):
            old = old_names.get(shape(index))
            if old is not None and old != index.name:
                pairs.append((str(old), str(index.name)))
        return tuple(pairs)

    def unique_ids(self) -> list[Operation]:
        """SQLite tables created before ids were kept unique (see engine/storage/ids.py)."""
        if self.conn.dialect.name != "sqlite":
            return []
        ops: list[Operation] = []
        for target in self.schema.metadata.sorted_tables:
            live = self.live(target.name)
            if (target.name in self.added_tables
                    or not target.dialect_kwargs.get(SQLITE_AUTOINCREMENT)
                    or not lacks_autoincrement(self.conn, live)):
                continue
            # The history of a renamed entity's records is still under its old key.
            entity = live if self.catalog.role(target.name) == "entity" else None
            # Read under the live name: a renamed table is renamed before it is rebuilt.
            highest = highest_id_used(self.conn, self.schema.metadata, live, entity)
            ops.append(KeepIdsUnique(self.catalog.place(target.name), entity,
                                     self.rows(target.name), highest + 1))
        return ops

    def operations(self) -> tuple[Operation, ...]:
        creates = [*self.create_tables(), *self.rename_tables(), *self.unique_ids()]
        drop_indexes, add_indexes = self.index_changes()
        columns = self.column_changes()
        return (
            *creates,
            *drop_indexes,
            *columns,
            *add_indexes,
            *self.drop_columns(),
            *self.drop_tables(),
        )


def plan_on(conn: Connection, registry: Registry, schema: Schema) -> MigrationPlan:
    """The plan for ``registry`` against the database behind ``conn`` (read only)."""
    problems = decimal_problems(registry, conn.dialect.name)
    if problems:  # crm check refuses them first; never reach the tables with them
        raise DefinitionError(problems)
    state = applied_state(conn)
    renames = table_renames(registry, set(inspect(conn).get_table_names()))
    catalog = Catalog(registry, state.entities if state else {}, renames)
    target = aliased(schema.metadata, renames)
    owned = catalog.owned_tables() | set(target.tables)
    planner = Planner(conn, schema, catalog, target)
    planner.sort(compare(conn, target, owned))
    return MigrationPlan(
        operations=planner.operations(),
        previous_hash=state.definitions_hash if state else None,
        new_hash=registry.definitions_hash,
    )


def plan_migration(engine: Engine, registry: Registry, schema: Schema | None = None) -> MigrationPlan:
    """What :func:`apply_migration` would do now; changes nothing."""
    schema = schema or build_schema(registry)
    with engine.connect() as conn:
        return plan_on(conn, registry, schema)
