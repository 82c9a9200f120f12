"""The record service: the one path for every read and write of entity records.

Every caller — CLI, web UI, API, import, jobs — comes through here with an
:class:`~engine.context.Actor`.  Each write runs, in one transaction: the
access check, coercion of every given value, defaults, conditions,
computed fields, validation (all fields' messages at once), sequence
numbers, the optimistic-lock check, the write itself and its audit rows.
An update, archive or delete reads its record under a row lock (PostgreSQL;
SQLite's write transaction excludes other writers), so one sent without a
version applies to the record as it is, never fails as "changed by someone
else"; a hook that computes a change from another record reads it with
``locked``/``update_with`` (record_locks.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.context import Actor, Clock, default_clock
from engine.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from engine.i18n import message
from engine.metadata.model import Entity, Field, Registry
from engine.metadata.values import INT_MAX, ValueProblem, coerce, searchable_text
from engine.services.access.policy import AccessPolicy, AllowAll
from engine.services.records.audit import write_audit
from engine.services.records.batch import RecordBatchMixin
from engine.services.records.compute import ComputedOrder, apply_computed, apply_defaults
from engine.services.records.deleted import remove_belongings, since_last_deletion
from engine.services.records.hooks import RecordHooks
from engine.services.records.inputs import FieldErrors, RecordInputMixin
from engine.services.records.ledgers import LedgerService, refuse_change
from engine.services.records.locks import RecordLockMixin
from engine.services.records.reads import RecordAccessMixin, nothing
from engine.services.records.sequences import next_number
from engine.services.records.stage_rules import StageMove, StageRules
from engine.storage.database import write_transaction
from engine.storage.queries import OPERATORS, UNORDERED_TYPES, Filter, Sort, condition
from engine.storage.queries import search_condition as text_search
from engine.storage.tables import Schema

#: System columns a caller may filter and sort on, with the type their values have.
SYSTEM_FIELD_TYPES = {
    "id": "integer",
    "created_at": "datetime",
    "updated_at": "datetime",
    "created_by": "integer",
    "updated_by": "integer",
    "owner": "integer",
    "version": "integer",
    "archived": "boolean",
}
_SYSTEM_FIELDS = {k: Field(key=k, type=t, label=None) for k, t in SYSTEM_FIELD_TYPES.items()}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Page:
    """One page of a list; ``total`` is None when the caller did not ask to count."""

    rows: list[dict[str, Any]]
    limit: int
    offset: int
    total: int | None
    has_more: bool


class RecordService(RecordInputMixin, RecordAccessMixin, RecordBatchMixin, RecordLockMixin):
    """Create, read, update, archive, delete and list records of any entity.

    Every path asks the access policy (rights, row scope, field rules); the
    lookups, aggregates and exports live in :class:`RecordAccessMixin`.
    """

    def __init__(
        self,
        registry: Registry,
        schema: Schema,
        engine: Engine,
        *,
        clock: Clock | None = None,
        policy: AccessPolicy | None = None,
    ) -> None:
        self.registry = registry
        self.schema = schema
        self.engine = engine
        self.clock = clock or default_clock()
        self.policy = policy or AllowAll()
        self._order = ComputedOrder()
        self.stages = StageRules(registry)
        #: The entities' save and delete hooks (docs/hooks.md); every write path calls them.
        self.hooks = RecordHooks()
        self.ledgers = LedgerService(self)
        #: Told the keys of files kept in a folder once their records' deletion is committed.
        self.files_deleted: Callable[[list[str]], None] = lambda keys: None

    # -- plumbing ----------------------------------------------------------

    @contextmanager
    def _write(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
            return
        with write_transaction(self.engine) as new:
            yield new

    @contextmanager
    def _read(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
            return
        with self.engine.connect() as new:
            yield new

    def entity(self, key: str) -> Entity:
        try:
            return self.registry.entities[key]
        except KeyError:
            raise NotFound(f"There is no entity '{key}'.") from None

    def _allow(self, actor: Actor, entity: Entity, action: str) -> None:
        if not self.policy.can(actor, entity, action):
            raise PermissionDenied(f"You may not {action} {entity.plural.get(actor.language)}.")

    def _visible(self, actor: Actor, entity: Entity, table: Table, action: str = "read") -> list:
        scope = self.policy.row_filter(actor, entity, table, action)
        return [] if scope is None else [scope]

    def _errors(self, actor: Actor, entity: Entity) -> FieldErrors:
        return FieldErrors(actor.language, self.hidden(actor, entity))

    def _not_found(self, actor: Actor, entity: Entity, record_id: Any) -> NotFound:
        return NotFound(
            message("not_found", actor.language, entity=entity.label.get(actor.language), id=record_id)
        )

    # -- reading -----------------------------------------------------------

    def _finish(self, entity: Entity, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fill the fields computed on read (after lines are loaded, which they may sum)."""
        if any(f.type == "computed" and not f.stored for f in entity.fields.values()) or any(
            f.type == "lines" for f in entity.fields.values()
        ):
            now = self.clock.now()
            for record in records:
                apply_computed(entity.fields, record, now, self._order, stored=False)
        return records

    def _load_children(
        self, conn: Connection, entity: Entity, records: list[dict[str, Any]]
    ) -> None:
        ids = [r["id"] for r in records]
        if not ids:
            return
        by_id = {r["id"]: r for r in records}
        for field in entity.fields.values():
            if field.type == "lines":
                table = self.schema.child(entity.key, field.key)
                for r in records:
                    r[field.key] = []
                rows = conn.execute(
                    select(table).where(table.c.parent_id.in_(ids)).order_by(
                        table.c.parent_id, table.c.position, table.c.id
                    )
                ).mappings()
                for row in rows:
                    line = {k: v for k, v in row.items() if k != "parent_id"}
                    by_id[row["parent_id"]][field.key].append(line)
            elif field.type == "many_to_many":
                table = self.schema.child(entity.key, field.key)
                for r in records:
                    r[field.key] = []
                rows = conn.execute(
                    select(table.c.source_id, table.c.target_id)
                    .where(table.c.source_id.in_(ids))
                    .order_by(table.c.target_id)
                )
                for source_id, target_id in rows:
                    by_id[source_id][field.key].append(target_id)

    def _fetch(
        self, conn: Connection, actor: Actor, entity: Entity, record_id: Any, *, lock: bool = False,
        action: str | None = "read",
    ) -> dict[str, Any]:
        """The record (unredacted: writes need every value) within the scope of ``action``.

        Outside the read scope it is "not found"; readable but outside the
        narrower write scope, the actor is told they may not change it.
        ``action=None`` reads a record this same call has just written.
        """
        table = self.schema.table(entity.key)
        try:
            record_id = int(record_id)
        except (TypeError, ValueError):
            raise self._not_found(actor, entity, record_id) from None
        if not 0 < record_id <= INT_MAX:  # no id column holds it: the driver would overflow
            raise self._not_found(actor, entity, record_id)
        scope = [] if action is None else self._visible(actor, entity, table, action)
        query = select(table).where(table.c.id == record_id, *scope)
        if lock and conn.dialect.name == "postgresql":
            # FOR NO KEY UPDATE: what an UPDATE takes anyway; it lets rows that reference
            # this one be written meanwhile (their foreign keys take FOR KEY SHARE)
            query = query.with_for_update(of=table, key_share=True)
        row = conn.execute(query).mappings().first()
        if row is None:
            if action not in ("read", None) and conn.execute(select(table.c.id).where(
                table.c.id == record_id, *self._visible(actor, entity, table)
            )).first() is not None:
                raise PermissionDenied(message(
                    "may_not_change", actor.language, entity=entity.label.get(actor.language)))
            raise self._not_found(actor, entity, record_id)
        record = dict(row)
        self._load_children(conn, entity, [record])
        return self._finish(entity, [record])[0]

    def get(
        self, actor: Actor, entity_key: str, record_id: Any, *, conn: Connection | None = None
    ) -> dict[str, Any]:
        entity = self.entity(entity_key)
        self._allow(actor, entity, "read")
        with self._read(conn) as c:
            return self._redact(actor, entity, self._fetch(c, actor, entity, record_id))

    def may_read(self, actor: Actor, entity_key: str, record_id: Any, *,
                 conn: Connection | None = None) -> bool:
        """Whether :meth:`get` would give ``actor`` this record: the read right and the read
        row scope, checked by the database as for a get, without loading the record."""
        entity = self.entity(entity_key)
        if not self.policy.can(actor, entity, "read"):
            return False
        try:
            record_id = int(record_id)
        except (TypeError, ValueError):
            return False
        table = self.schema.table(entity.key)
        with self._read(conn) as c:
            return c.execute(select(table.c.id).where(
                table.c.id == record_id, *self._visible(actor, entity, table))).first() is not None

    def require_writable(self, actor: Actor, entity_key: str, record_id: Any, *,
                         conn: Connection | None = None) -> None:
        """Refuse unless ``actor`` may change this record (for what hangs off it, like files)."""
        entity = self.entity(entity_key)
        self._allow(actor, entity, "update")
        with self._read(conn) as c:
            self._fetch(c, actor, entity, record_id, action="update")

    def _typed_filter(self, actor: Actor, entity: Entity, flt: Filter) -> Any:
        field = entity.fields.get(flt.field) or _SYSTEM_FIELDS.get(flt.field)
        if flt.field in self.hidden(actor, entity):
            field = None  # filtering on a hidden field would reveal its values
        errors = FieldErrors(actor.language)
        if field is None:
            errors.add(flt.field, "invalid_filter", reason=f"there is no field '{flt.field}'")
        elif not (field.has_column if field.key in entity.fields else True):
            errors.add(flt.field, "invalid_filter", reason=f"a {field.type} field has no column")
        elif flt.op not in OPERATORS:
            errors.add(
                flt.field, "invalid_filter",
                reason=f"unknown operator '{flt.op}'; use one of {', '.join(OPERATORS)}",
            )
        elif flt.op in ("lt", "le", "gt", "ge", "between") and field.value_type in UNORDERED_TYPES:
            errors.add(flt.field, "invalid_filter", reason=f"a {field.value_type} has no order")
        errors.raise_if_any()
        assert field is not None
        lookup = Field(key=field.key, type="integer", label=None) if field.type == "reference" else field  # type: ignore[arg-type]
        if field.type == "choice" and field.multiple:
            lookup = Field(key=field.key, type="choice", label=None, choices=field.choices)  # type: ignore[arg-type]
        try:
            if flt.op == "isnull":
                value = coerce(Field(key="x", type="boolean", label=None), flt.value)  # type: ignore[arg-type]
            elif flt.op == "contains":
                value = searchable_text(str(flt.value))
            elif flt.op in ("in", "between"):
                items = flt.value.split(",") if isinstance(flt.value, str) else list(flt.value)
                value = [coerce(lookup, item) for item in items]
                if flt.op == "between" and len(value) != 2:
                    raise ValueProblem("invalid_filter", reason="between takes two values")
            else:
                value = coerce(lookup, flt.value)
        except ValueProblem as problem:
            errors.problem(flt.field, problem)
            errors.raise_if_any()
        return value

    def _list_query(
        self,
        actor: Actor,
        entity: Entity,
        filters: Sequence[Filter],
        search: str | None,
        include_archived: bool,
        search_fields: Sequence[str] | None = None,
    ) -> tuple[Table, list]:
        table = self.schema.table(entity.key)
        where = self._visible(actor, entity, table)
        if not include_archived:
            where.append(table.c.archived.is_(False))
        for flt in filters:
            value = self._typed_filter(actor, entity, flt)
            where.append(condition(table, flt.field, flt.op, value))
        if search and search.strip():
            try:
                search = searchable_text(search)
            except ValueProblem as problem:
                errors = FieldErrors(actor.language)
                errors.problem("q", problem)
                errors.raise_if_any()
            hidden = self.hidden(actor, entity)
            columns = [f.key for f in entity.fields.values() if f.searchable and f.has_column]
            if search_fields is not None:  # a view's own choice, still only real columns
                columns = [k for k in search_fields
                           if k in entity.fields and entity.fields[k].has_column]
            if not columns:
                columns = [entity.title_field] if entity.title_field else []
            columns = [c for c in columns if c not in hidden]
            if columns:
                where.append(text_search(table, columns, search))
            elif hidden:
                where.append(nothing())  # every searchable field is hidden: match nothing
        return table, where

    def list(
        self,
        actor: Actor,
        entity_key: str,
        *,
        filters: Sequence[Filter] = (),
        search: str | None = None,
        sort: Sequence[Sort] = (),
        limit: int = 50,
        offset: int = 0,
        include_archived: bool = False,
        with_total: bool = True,
        with_children: bool = False,
        search_fields: Sequence[str] | None = None,
        conn: Connection | None = None,
    ) -> Page:
        entity = self.entity(entity_key)
        self._allow(actor, entity, "read")
        limit = max(1, min(int(limit), 1000))
        offset = max(0, int(offset))
        table, where = self._list_query(actor, entity, filters, search, include_archived,
                                        search_fields)
        order = []
        errors = FieldErrors(actor.language)
        for item in sort:
            field = entity.fields.get(item.field) or _SYSTEM_FIELDS.get(item.field)
            if field is None or (item.field in entity.fields and not field.has_column) or (
                item.field in self.hidden(actor, entity)
            ):
                errors.add(item.field, "invalid_filter", reason="cannot sort on this field")
                continue
            col = table.c[item.field]
            order.append((col.desc() if item.descending else col.asc()).nulls_last())
        errors.raise_if_any()
        order.append(table.c.id.desc() if not sort else table.c.id.asc())
        query = select(table).where(*where).order_by(*order).limit(limit + 1).offset(offset)
        with self._read(conn) as c:
            rows = [dict(r) for r in c.execute(query).mappings()]
            has_more = len(rows) > limit
            rows = rows[:limit]
            if with_children:
                self._load_children(c, entity, rows)
            self._finish(entity, rows)
            total = None
            if with_total:
                total = c.execute(
                    select(func.count()).select_from(table).where(*where)
                ).scalar_one()
        rows = [self._redact(actor, entity, r) for r in rows]
        return Page(rows=rows, limit=limit, offset=offset, total=total, has_more=has_more)

    def count(
        self,
        actor: Actor,
        entity_key: str,
        *,
        filters: Sequence[Filter] = (),
        search: str | None = None,
        include_archived: bool = False,
        search_fields: Sequence[str] | None = None,
        conn: Connection | None = None,
    ) -> int:
        entity = self.entity(entity_key)
        self._allow(actor, entity, "read")
        table, where = self._list_query(actor, entity, filters, search, include_archived,
                                        search_fields)
        with self._read(conn) as c:
            return c.execute(select(func.count()).select_from(table).where(*where)).scalar_one()

    def _column_values(self, entity: Entity, record: Mapping[str, Any]) -> dict[str, Any]:
        return {f.key: record.get(f.key) for f in entity.column_fields()}

    def _write_children(
        self, conn: Connection, entity: Entity, record_id: int, record: Mapping[str, Any],
        keys: set[str] | None = None,
    ) -> None:
        for field in entity.fields.values():
            if keys is not None and field.key not in keys:
                continue
            if field.type == "lines":
                table = self.schema.child(entity.key, field.key)
                conn.execute(delete(table).where(table.c.parent_id == record_id))
                rows = [
                    {
                        "parent_id": record_id,
                        "position": index,
                        **{s.key: line.get(s.key) for s in field.fields.values() if s.has_column},
                    }
                    for index, line in enumerate(record.get(field.key) or [])
                ]
                if rows:
                    conn.execute(insert(table), rows)
            elif field.type == "many_to_many":
                table = self.schema.child(entity.key, field.key)
                conn.execute(delete(table).where(table.c.source_id == record_id))
                rows = [{"source_id": record_id, "target_id": t} for t in record.get(field.key) or []]
                if rows:
                    conn.execute(insert(table), rows)

    # -- writing: the operations --------------------------------------------

    def _new_record(
        self, actor: Actor, entity: Entity, values: Mapping[str, Any], errors: FieldErrors,
        now: dt.datetime, *, typed: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The typed values given and the new record they make (defaults, stage, computed).

        Shared by :meth:`create` and ``create_many``, so a record made in bulk is
        made exactly as one made alone; ``typed`` is ``values`` already coerced
        (a batch coerces plain values with coercers made once for all its rows).
        """
        if typed is None:
            typed = self._coerce_input(actor, entity, values, errors, now, existing=None)
        record: dict[str, Any] = {f.key: [] for f in self._order.picked(entity.fields, "lists")}
        record.update(typed)
        apply_defaults(entity.fields, record, now, self._order)
        self.stages.on_create(actor, entity, typed, record, errors)
        apply_computed(entity.fields, record, now, self._order, stored=True)
        return typed, record

    @staticmethod
    def _system_values(actor: Actor, record: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
        """The system columns of a new record."""
        return {
            "created_at": now,
            "updated_at": now,
            "created_by": actor.user_id,
            "updated_by": actor.user_id,
            "owner": record.get("owner", actor.user_id),
            "version": 1,
            "archived": False,
        }

    def create(
        self,
        actor: Actor,
        entity_key: str,
        values: Mapping[str, Any],
        *,
        conn: Connection | None = None,
    ) -> dict[str, Any]:
        entity = self.entity(entity_key)
        self._allow(actor, entity, "create")
        now = self.clock.now()
        errors = self._errors(actor, entity)
        typed, record = self._new_record(actor, entity, values, errors, now)
        with self.lookup_attempt(actor, self._key_ref_targets(entity, record), conn), \
                self._write(conn) as c:
            hooked = self.hooks.before_save(self, c, actor, entity, record, None, errors, now=now)
            self._validate(c, actor, entity, record, set(typed) | hooked, errors, None)
            errors.raise_if_any()
            for field in entity.fields.values():
                if field.type == "sequence" and not record.get(field.key):
                    record[field.key] = next_number(
                        c, self.schema.system("crm_sequence"), f"{entity.key}.{field.key}",
                        field.sequence_pattern or "", now.date(),
                    )
            system = self._system_values(actor, record, now)
            table = self.schema.table(entity.key)
            if entity.ledger is not None:
                self.ledgers.guard(c, actor, entity, [record])
            try:
                row = {**system, **self._column_values(entity, record)}
                result = c.execute(insert(table), row)
            except IntegrityError as exc:
                raise self._integrity(actor, entity, record, exc) from None
            record_id = result.inserted_primary_key[0]
            scope = self._visible(actor, entity, table, "create")
            if scope and c.execute(
                select(table.c.id).where(table.c.id == record_id, *scope)
            ).first() is None:
                where = "owner" if "owner" in typed else "record"
                raise ValidationFailed({where: [message("outside_scope", actor.language)]})
            self._write_children(c, entity, record_id, record)
            if entity.audit:
                write_audit(
                    c, self.schema.system("crm_audit"), actor=actor, at=now, entity=entity.key,
                    record_id=record_id, action="create",
                    changes={"*": (None, {k: v for k, v in record.items() if v not in (None, [])})},
                )
            if any(not f.has_column for f in entity.fields.values()):
                created = self._fetch(c, actor, entity, record_id, action=None)
            else:
                created = {"id": record_id, **row}
            self.hooks.after("after_save", self, c, actor, entity, created, None, now=now)
            return self._redact(actor, entity, created)

    def _integrity(
        self, actor: Actor, entity: Entity, record: Mapping[str, Any], exc: IntegrityError
    ) -> ValidationFailed:
        """A constraint the database caught after our own checks (a race): explain, no SQL."""
        errors = self._errors(actor, entity)
        text = str(exc.orig).lower()
        for field in entity.fields.values():
            if (field.unique or field.type == "sequence") and field.key in text:
                errors.add(field.key, "not_unique", value=record.get(field.key))
        if not errors.by_field:
            errors.add("record", "not_unique", value="")
        return ValidationFailed(errors.shown())

    def check_values(self, conn: Connection, actor: Actor, entity_key: str,
                     record: Mapping[str, Any], given: set[str]) -> None:
        """Refuse (ValidationFailed) a saved ``record`` that :meth:`update` would refuse.

        The checks that need no hook: conditions, required fields, limits,
        references and unique values, on a copy.  The workflow service runs
        them before a guard, so values that could never be saved get the same
        answer whatever the guard would have said.
        """
        entity = self.entity(entity_key)
        errors = self._errors(actor, entity)
        self._validate(conn, actor, entity, dict(record), given, errors, record.get("id"))
        errors.raise_if_any()

    def update(
        self,
        actor: Actor,
        entity_key: str,
        record_id: Any,
        changes: Mapping[str, Any],
        *,
        version: int | None = None,
        conn: Connection | None = None,
        move: StageMove | None = None,
        engine_set: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Apply ``changes``; with ``version``, refuse if the record moved on since it was read.

        A stage changes only with ``move`` (given by the workflow service alone), which
        may also name, in ``engine_set``, the values its actions set (allowed on fields
        declared read-only).
        """
        entity = self.entity(entity_key)
        self._allow(actor, entity, "transition" if move else "update")
        refuse_change(actor, entity)
        now = self.clock.now()
        with self.lookup_attempt(actor, self._key_ref_targets(entity, changes), conn), \
                self._write(conn) as c:
            current, typed, record = self._checked_update(
                c, actor, entity, record_id, changes, now, version=version, move=move,
                engine_set=engine_set, lock=True)
            diff: dict[str, tuple[Any, Any]] = {}
            for field in entity.fields.values():
                if field.type == "computed" and not field.stored:
                    continue
                old, new = current.get(field.key), record.get(field.key)
                if field.type == "lines":
                    old = [{k: v for k, v in line.items() if k not in ("id", "position")} for line in old or []]
                    new = [{k: line.get(k) for k in field.fields if field.fields[k].has_column} for line in new or []]
                    old = [{k: line.get(k) for k in field.fields if field.fields[k].has_column} for line in old]
                if old != new:
                    diff[field.key] = (old, new)
            if "owner" in typed and typed["owner"] != current["owner"]:
                diff["owner"] = (current["owner"], typed["owner"])
            if not diff:
                return self._redact(actor, entity, current)
            table = self.schema.table(entity.key)
            column_changes = {
                k: record.get(k) for k in diff
                if k == "owner" or entity.fields[k].has_column
            }
            try:
                result = c.execute(
                    update(table)
                    .where(table.c.id == current["id"], table.c.version == current["version"])
                    .values(
                        **column_changes,
                        version=current["version"] + 1,
                        updated_at=now,
                        updated_by=actor.user_id,
                    )
                )
            except IntegrityError as exc:
                raise self._integrity(actor, entity, record, exc) from None
            if result.rowcount != 1:
                latest = self._fetch(c, actor, entity, current["id"])
                raise self._conflict(entity, actor, current["version"], latest)
            self._write_children(c, entity, current["id"], record, set(diff))
            if entity.audit:
                tracked = {
                    k: v for k, v in diff.items() if k == "owner" or entity.fields[k].tracked
                }
                if tracked:
                    write_audit(
                        c, self.schema.system("crm_audit"), actor=actor, at=now,
                        entity=entity.key, record_id=current["id"],
                        action="transition" if move else "update",
                        changes=tracked,
                    )
            updated = self._fetch(c, actor, entity, current["id"], action=None)
            self.hooks.after("after_save", self, c, actor, entity, updated, current, now=now,
                             move=move)
            return self._redact(actor, entity, updated)

    def check_update(
        self, actor: Actor, entity_key: str, record_id: Any, changes: Mapping[str, Any], *,
        conn: Connection,
    ) -> None:
        """Refuse (as :meth:`update` would: NotFound, PermissionDenied, ValidationFailed)
        ``changes`` to a record, reading only: an import's dry run of an upsert."""
        entity = self.entity(entity_key)
        self._allow(actor, entity, "update")
        refuse_change(actor, entity)
        self._checked_update(conn, actor, entity, record_id, changes, self.clock.now())

    def _checked_update(
        self, c: Connection, actor: Actor, entity: Entity, record_id: Any,
        changes: Mapping[str, Any], now: dt.datetime, *, version: int | None = None,
        move: StageMove | None = None, engine_set: frozenset[str] = frozenset(),
        lock: bool = False,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The record as it is, the typed changes and the record they make, every rule of
        an update checked (raises what :meth:`update` answers)."""
        # a move reaches the records the 'transition' right reaches (a dealer's user
        # confirms receipt without the right to edit the shipment)
        current = self._fetch(c, actor, entity, record_id, lock=lock,
                              action="transition" if move else "update")
        if version is not None and int(version) != current["version"]:
            raise self._conflict(entity, actor, int(version), current)
        errors = self._errors(actor, entity)
        typed = self._coerce_input(
            actor, entity, changes, errors, now, existing=current,
            engine_set=engine_set if move else frozenset(),
        )
        self.stages.on_update(actor, entity, typed, current, errors, move)
        record = {**current, **typed}
        apply_computed(entity.fields, record, now, self._order, stored=True)
        hooked = self.hooks.before_save(self, c, actor, entity, record, current, errors,
                                        now=now, move=move)
        self._validate(c, actor, entity, record, set(typed) | hooked, errors, current["id"])
        errors.raise_if_any()
        return current, typed, record

    def _conflict(
        self, entity: Entity, actor: Actor, expected: int, current: Mapping[str, Any]
    ) -> Conflict:
        from engine.metadata.values import to_json

        return Conflict(
            message("conflict", actor.language, expected=expected, current=current["version"]),
            current=to_json(self._redact(actor, entity, dict(current))),
        )

    def _set_archived(
        self, actor: Actor, entity_key: str, record_id: Any, archived: bool,
        version: int | None, conn: Connection | None,
    ) -> dict[str, Any]:
        entity = self.entity(entity_key)
        self._allow(actor, entity, "update")
        refuse_change(actor, entity)
        if not entity.archivable:
            raise PermissionDenied(
                message("not_archivable", actor.language, entity=entity.label.get(actor.language))
            )
        now = self.clock.now()
        with self._write(conn) as c:
            current = self._fetch(c, actor, entity, record_id, lock=True, action="update")
            if version is not None and int(version) != current["version"]:
                raise self._conflict(entity, actor, int(version), current)
            if current["archived"] == archived:
                return self._redact(actor, entity, current)
            table = self.schema.table(entity.key)
            result = c.execute(
                update(table)
                .where(table.c.id == current["id"], table.c.version == current["version"])
                .values(archived=archived, version=current["version"] + 1, updated_at=now,
                        updated_by=actor.user_id)
            )
            if result.rowcount != 1:
                raise self._conflict(entity, actor, current["version"], self._fetch(c, actor, entity, current["id"]))
            write_audit(
                c, self.schema.system("crm_audit"), actor=actor, at=now, entity=entity.key,
                record_id=current["id"], action="archive" if archived else "restore",
                changes={"archived": (not archived, archived)},
            )
            return self._redact(actor, entity, self._fetch(c, actor, entity, current["id"]))

    def archive(
        self, actor: Actor, entity_key: str, record_id: Any, *, version: int | None = None,
        conn: Connection | None = None,
    ) -> dict[str, Any]:
        return self._set_archived(actor, entity_key, record_id, True, version, conn)

    def restore(
        self, actor: Actor, entity_key: str, record_id: Any, *, version: int | None = None,
        conn: Connection | None = None,
    ) -> dict[str, Any]:
        return self._set_archived(actor, entity_key, record_id, False, version, conn)

    def _referencing(self) -> Iterator[tuple[Entity, Field]]:
        for other in self.registry.entities.values():
            for field in other.fields.values():
                if field.type == "reference":
                    yield other, field

    def delete(
        self, actor: Actor, entity_key: str, record_id: Any, *, version: int | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Delete a record; references to it follow their on-delete rule, each audited."""
        entity = self.entity(entity_key)
        self._allow(actor, entity, "delete")
        refuse_change(actor, entity)
        now = self.clock.now()
        files: list[str] = []
        with self._write(conn) as c:
            current = self._fetch(c, actor, entity, record_id, lock=True, action="delete")
            if version is not None and int(version) != current["version"]:
                raise self._conflict(entity, actor, int(version), current)
            self._remove(c, actor, entity, current, now, files)
        if conn is None and files:
            self.files_deleted(files)  # committed: their bytes may go too

    def _remove(
        self, c: Connection, actor: Actor, entity: Entity, current: dict[str, Any],
        now: dt.datetime, files: list[str],
    ) -> None:
        """Delete a fetched record and apply the on-delete rule of every reference to it.

        Cascades reach dependent records whatever the actor's scope: they go
        because the record the actor may delete goes.  A restriction names
        no count when some referencing records are outside the actor's scope.
        """
        refuse_change(actor, entity)  # a cascade never removes movements either
        self.hooks.after("before_delete", self, c, actor, entity, current, current, now=now)
        rid = current["id"]
        for other, field in self._referencing():
            if field.to != entity.key:
                continue
            table = self.schema.table(other.key)
            ids = list(c.execute(select(table.c.id).where(table.c[field.key] == rid)).scalars())
            if not ids:
                continue
            if field.on_delete == "restrict":
                seen = c.execute(select(func.count()).select_from(table).where(
                    table.c.id.in_(ids), *self._visible(actor, other, table))).scalar_one()
                if seen < len(ids):
                    raise Conflict(message("still_referenced_elsewhere", actor.language))
                raise Conflict(
                    message("still_referenced", actor.language, count=len(ids),
                            entity=other.label.get(actor.language))
                )
            if field.on_delete == "cascade":
                for other_id in ids:
                    if other_id == rid and other.key == entity.key:
                        continue
                    dependent = self._fetch(c, actor, other, other_id, action=None)
                    self._remove(c, actor, other, dependent, now, files)
            else:
                c.execute(
                    update(table).where(table.c.id.in_(ids))
                    .values({field.key: None, "version": table.c.version + 1,
                             "updated_at": now, "updated_by": actor.user_id})
                )
                for other_id in ids:
                    write_audit(
                        c, self.schema.system("crm_audit"), actor=actor, at=now,
                        entity=other.key, record_id=other_id, action="update",
                        changes={field.key: (rid, None)},
                    )
        table = self.schema.table(entity.key)
        c.execute(delete(table).where(table.c.id == rid))
        files.extend(remove_belongings(c, self.schema, entity.key, rid))
        write_audit(
            c, self.schema.system("crm_audit"), actor=actor, at=now, entity=entity.key,
            record_id=rid, action="delete",
            changes={"*": ({k: v for k, v in current.items() if v not in (None, [])}, None)},
        )
        self.hooks.after("after_delete", self, c, actor, entity, current, current, now=now)

    def history(
        self, actor: Actor, entity_key: str, record_id: Any, *, conn: Connection | None = None
    ) -> list[dict[str, Any]]:
        """The audit rows of a record the actor can see, oldest first."""
        entity = self.entity(entity_key)
        self._allow(actor, entity, "read")
        audit = self.schema.system("crm_audit")
        with self._read(conn) as c:
            current = self._fetch(c, actor, entity, record_id)
            rows = c.execute(
                select(audit)
                .where(since_last_deletion(audit, entity.key, current["id"]))
                .order_by(audit.c.id)
            ).mappings()
            return self._redact_history(actor, entity, [dict(r) for r in rows])
