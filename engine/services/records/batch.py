"""Creating many records in one go: the same rules as one create, far fewer queries.

An import of a hundred thousand rows cannot afford a dozen queries per row,
yet it must be exactly as strict as the form.  :meth:`RecordBatchMixin.create_many`
therefore runs the *same* steps as :meth:`RecordService.create` on every
row — coercion with the actor's field rules, defaults, the initial stage,
computed fields, ``before_save`` hooks, the field checks — and only batches
what touches the database: one query per referenced entity and per unique
field for the whole batch, one block of sequence numbers, one ``INSERT``
with many rows, one insert of audit rows.  What depends only on the field
or the actor (coercers, hidden and read-only fields, the fields with
something to check) is decided once per batch (:class:`_Plan`), so a row
pays only for its own values.  Whenever the batch cannot be
written as a whole (a race on a unique value, a ledger or scope refusal),
the batch is undone to its savepoint and written again record by record
through :meth:`create`, so each refusal lands on its own row.

:meth:`RecordBatchMixin.check_many` runs the same steps and writes nothing:
the row scope a new record must fall in is asked of the database over the
rows' values (a ``SELECT`` of literals, never an ``INSERT``), so a check of
a file (an import's dry run) takes no write lock.  What only a written
record can tell — ``after_save`` hooks — is left to the real write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, cast, func, insert, literal, select, type_coerce, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.visitors import iterate, replacement_traverse

from engine.context import Actor
from engine.errors import CrmError, ValidationFailed
from engine.i18n import message
from engine.metadata.model import Entity, Field
from engine.metadata.values import ValueProblem, coercer
from engine.services.records.audit import creation_rows
from engine.services.records.inputs import FieldErrors
from engine.services.records.sequences import next_numbers
from engine.storage.bulk import insert_rows


@dataclass
class BatchOutcome:
    """What became of each row given to ``create_many``, in the order given.

    ``ids[i]`` is the new record's id, or None when row ``i`` was not written;
    ``errors[i]`` its messages by field (as a form shows them), or None.
    """

    ids: list[int | None]
    errors: list[dict[str, list[str]] | None]

    @property
    def ok(self) -> bool:
        return not any(self.errors)


@dataclass
class _Prepared:
    index: int
    values: Mapping[str, Any]
    typed: dict[str, Any]
    record: dict[str, Any]
    given: set[str]
    errors: FieldErrors


#: New records whose create scope is asked in one query (SQLite joins at most 500 SELECTs).
_SCOPE_CHUNK = 400


class _Retry(Exception):
    """The batch cannot be written whole: undo it and write its rows one by one."""


class _ByKeys(Exception):
    """A reference given by its keys (a mapping): ``_coerce_input`` resolves it, not a coercer."""


class _Plan:
    """What a batch decides once for all its rows: the actor's field rules, a coercer per
    field, and the fields with something to check.

    A row whose values all go the plain way (a field the actor may set, not
    lines, not a reference given by its keys) is coerced here exactly as
    ``_coerce_input`` coerces it — same :func:`~engine.metadata.values.coerce`
    (via :func:`~engine.metadata.values.coercer`), same messages in the same
    order; any other row takes ``_coerce_input`` itself.
    """

    def __init__(self, service: Any, actor: Actor, entity: Entity) -> None:
        self.language = actor.language
        self.hidden: frozenset[str] = service.hidden(actor, entity)
        readonly = service.policy.readonly_fields(actor, entity)
        self.coercers: dict[str, Callable[[Any], Any]] = {
            key: _by_value(coercer(field)) if field.type == "reference" else coercer(field)
            for key, field in entity.fields.items()
            if key not in self.hidden and key not in readonly and field.is_input
            and field.type != "lines"
        }
        self._steps: dict[tuple[str, ...], list[tuple[str, Callable[[Any], Any]]] | None] = {}
        # Without before_save hooks the call would change nothing: skipped per row.
        self.hooked = bool(service.hooks.declared(entity, "before_save"))
        # Fields where _check_fields can find something: the others it walks past.
        self.checked: tuple[Field, ...] = tuple(
            f for f in entity.fields.values()
            if f.visible_if is not None or f.required_if is not None
            or (f.required and f.is_input) or f.type == "lines"
            or f.max_length is not None or f.min_length is not None or f.pattern
            or f.min is not None or f.max is not None
        )

    def errors(self) -> FieldErrors:
        """A row's messages, as ``_errors`` makes them (the hidden fields asked once)."""
        return FieldErrors(self.language, self.hidden)

    def typed(self, values: Mapping[str, Any], errors: FieldErrors) -> dict[str, Any] | None:
        """The row's typed values, or None when a value needs ``_coerce_input``'s other steps."""
        keys = tuple(values)
        if keys in self._steps:  # the rows of one file share their keys
            steps = self._steps[keys]
        else:
            steps = self._steps[keys] = (
                None if any(k not in self.coercers for k in keys)
                else [(k, self.coercers[k]) for k in keys])
        if steps is None:
            return None
        try:
            try:
                return {key: convert(value)
                        for (key, convert), value in zip(steps, values.values(), strict=True)}
            except ValueProblem:  # again value by value, for every message in order
                typed: dict[str, Any] = {}
                for (key, convert), value in zip(steps, values.values(), strict=True):
                    try:
                        typed[key] = convert(value)
                    except ValueProblem as problem:
                        errors.problem(key, problem)
                return typed
        except _ByKeys:
            return None


def _by_value(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A reference's coercer that leaves references given by their keys to ``_coerce_input``."""
    def reference(value: Any) -> Any:
        if isinstance(value, Mapping):
            raise _ByKeys
        return convert(value)
    return reference


class RecordBatchMixin:
    """``create_many`` for :class:`~engine.services.records.service.RecordService`."""

    if TYPE_CHECKING:  # the host's attributes and steps the batch reuses
        schema: Any
        hooks: Any
        ledgers: Any
        clock: Any

        def entity(self, key: str) -> Entity: ...
        def _allow(self, actor: Actor, entity: Entity, action: str) -> None: ...
        def _errors(self, actor: Actor, entity: Entity) -> FieldErrors: ...
        def _write(self, conn: Connection | None) -> Any: ...
        def _visible(self, actor: Actor, entity: Entity, table: Any,
                     action: str = "read") -> list: ...
        def _new_record(self, actor: Actor, entity: Entity, values: Mapping[str, Any],
                        errors: FieldErrors, now: dt.datetime) -> tuple[dict, dict]: ...
        def _check_fields(self, entity: Entity, record: dict, given: set[str],
                          errors: FieldErrors) -> None: ...
        def _check_references_many(self, conn: Connection, actor: Actor, entity: Entity,
                                   items: list) -> None: ...
        def _check_unique_many(self, conn: Connection, entity: Entity, items: list,
                               record_id: int | None = None) -> None: ...
        def _system_values(self, actor: Actor, record: Mapping[str, Any],
                           now: dt.datetime) -> dict[str, Any]: ...
        def _column_values(self, entity: Entity, record: Mapping[str, Any]) -> dict: ...
        def _write_children(self, conn: Connection, entity: Entity, record_id: int,
                            record: Mapping[str, Any], keys: set[str] | None = None) -> None: ...
        def _fetch(self, conn: Connection, actor: Actor, entity: Entity, record_id: Any, *,
                   lock: bool = False, action: str | None = "read") -> dict: ...
        def create(self, actor: Actor, entity_key: str, values: Mapping[str, Any], *,
                   conn: Connection | None = None) -> dict: ...

    def create_many(
        self,
        actor: Actor,
        entity_key: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        conn: Connection | None = None,
        refused: Collection[int] = (),
    ) -> BatchOutcome:
        """Create a record from each of ``rows``; every row is checked as :meth:`create` checks it.

        Within the caller's transaction (``conn``) the rows that pass are
        written and the others reported, and the caller decides whether the
        batch stands.  Without ``conn`` the batch is all or nothing: any
        refused row raises :class:`ValidationFailed` (fields named
        ``row.field``, rows counted from 1) and nothing is written.
        ``refused`` names rows (by index) the caller has already refused:
        they are checked, for a complete report, but never written.
        """
        entity = self.entity(entity_key)
        self._allow(actor, entity, "create")
        now = self.clock.now()
        with self._write(conn) as c:
            outcome = self._create_batch(c, actor, entity, rows, now, frozenset(refused))
            if conn is None and not outcome.ok:
                raise ValidationFailed({
                    f"{index + 1}.{key}": texts
                    for index, found in enumerate(outcome.errors) if found
                    for key, texts in found.items()
                })
        return outcome

    def check_many(
        self,
        actor: Actor,
        entity_key: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        conn: Connection,
        refused: Collection[int] = (),
        written: list[Mapping[str, Any]] | None = None,
    ) -> BatchOutcome:
        """What :meth:`create_many` would answer for ``rows``, reading only.

        The same coercion, defaults, stage, computed fields, ``before_save``
        hooks, field checks, references and unique values, then the row scope
        of ``create`` and a ledger's balances, each asked with a ``SELECT``;
        ``ids`` stay None.  ``conn`` may be a read-only transaction.  For a
        ledger, ``written`` holds the records earlier checks passed (as if
        stored) and gets this batch's: the balances count them as an import
        would, having written them.
        """
        entity = self.entity(entity_key)
        self._allow(actor, entity, "create")
        now = self.clock.now()
        outcome, good = self._checked(conn, actor, entity, rows, now, frozenset(refused))
        outside = self._outside_scope(conn, actor, entity, [item.record for item in good], now)
        if getattr(entity, "ledger", None) is None:
            guard = None
        else:
            before = written if written is not None else []

            def guard(records: list[Mapping[str, Any]]) -> None:
                self.ledgers.guard(conn, actor, entity, records, pending=before)
        try:  # the batch as a whole, as create_many first tries to write it
            if outside:
                raise _Retry
            if guard is not None:
                guard([item.record for item in good])
                before.extend(item.record for item in good)
            return outcome
        except (_Retry, CrmError):
            pass
        for place, item in enumerate(good):  # one by one, as create_many then writes them
            try:
                if guard is not None:
                    guard([item.record])
            except CrmError as exc:
                outcome.errors[item.index] = (getattr(exc, "errors", None)
                                              or {"record": [exc.message]})
                continue
            if place in outside:
                where = "owner" if "owner" in item.typed else "record"
                outcome.errors[item.index] = {where: [message("outside_scope", actor.language)]}
            elif guard is not None:
                before.append(item.record)
        return outcome

    # -- the steps -------------------------------------------------------------------

    def _checked(
        self, conn: Connection, actor: Actor, entity: Entity,
        rows: Sequence[Mapping[str, Any]], now: dt.datetime, refused: frozenset[int],
    ) -> tuple[BatchOutcome, list[_Prepared]]:
        """Every row prepared and checked: the outcome with the refused rows' messages, and
        the rows that may be written."""
        plan = _Plan(self, actor, entity)
        prepared = [self._prepare_one(conn, actor, entity, index, values, now, plan)
                    for index, values in enumerate(rows)]
        self._check_references_many(conn, actor, entity,
                                    [(p.record, p.given, p.errors) for p in prepared])
        self._check_unique_many(conn, entity, [(p.record, p.errors) for p in prepared])
        outcome = BatchOutcome(ids=[None] * len(rows), errors=[None] * len(rows))
        good: list[_Prepared] = []
        for item in prepared:
            if item.errors.by_field or item.errors.refused:
                outcome.errors[item.index] = item.errors.shown()
            elif item.index not in refused:
                good.append(item)
        return outcome, good

    def _outside_scope(
        self, conn: Connection, actor: Actor, entity: Entity, records: Sequence[Mapping[str, Any]],
        now: dt.datetime,
    ) -> set[int]:
        """The places in ``records`` of the new records the actor's ``create`` scope leaves
        out, asked of the database over their values as :meth:`create` asks over the
        inserted row (the new record has no id yet, as it has no lines or links then)."""
        table = self.schema.table(entity.key)
        scope = self._visible(actor, entity, table, "create")
        if not scope or not records:
            return set()
        condition = scope[0]
        used = sorted({c.key for c in iterate(condition)
                       if isinstance(c, ColumnClause) and getattr(c, "table", None) is table})
        typed = conn.dialect.name == "postgresql"  # NULL literals need their type there
        outside: set[int] = set()
        for start in range(0, len(records), _SCOPE_CHUNK):
            selects = []
            for place, record in enumerate(records[start:start + _SCOPE_CHUNK], start):
                row = {"id": None, **self._system_values(actor, record, now),
                       **self._column_values(entity, record)}
                selects.append(select(literal(place).label("crm_place"), *[
                    (cast if typed else type_coerce)(literal(row.get(key), table.c[key].type),
                                                     table.c[key].type).label(key)
                    for key in used]))
            values = (union_all(*selects) if len(selects) > 1 else selects[0]).subquery()

            def swap(element: Any, values: Any = values) -> Any:
                if isinstance(element, ColumnClause) and getattr(element, "table", None) is table:
                    return values.c[element.key]
                return None

            inside = set(conn.execute(select(values.c.crm_place).where(
                replacement_traverse(condition, {}, swap))).scalars())
            outside.update(p for p in range(start, start + len(selects)) if p not in inside)
        return outside

    def _create_batch(
        self, conn: Connection, actor: Actor, entity: Entity,
        rows: Sequence[Mapping[str, Any]], now: dt.datetime, refused: frozenset[int],
    ) -> BatchOutcome:
        outcome, good = self._checked(conn, actor, entity, rows, now, refused)
        if not good:
            return outcome
        try:
            with _savepoint(conn):
                ids = self._insert_batch(conn, actor, entity, good, now)
        except (_Retry, CrmError):
            self._create_one_by_one(conn, actor, entity, good, outcome)
            return outcome
        for item, record_id in zip(good, ids, strict=True):
            outcome.ids[item.index] = record_id
        return outcome

    def _prepare_one(
        self, conn: Connection, actor: Actor, entity: Entity, index: int,
        values: Mapping[str, Any], now: dt.datetime, plan: _Plan,
    ) -> _Prepared:
        errors = plan.errors()
        typed = plan.typed(values, errors)
        if typed is None:
            errors = plan.errors()
        typed, record = self._new_record(actor, entity, values, errors, now, typed=typed)
        given = set(typed)
        if plan.hooked:
            try:
                given |= self.hooks.before_save(self, conn, actor, entity, record, None, errors,
                                                now=now)
            except CrmError as exc:
                for key, texts in (getattr(exc, "errors", None)
                                   or {"record": [exc.message]}).items():
                    errors.by_field[key].extend(texts)
        self._check_fields(entity, record, given, errors, plan.checked)
        return _Prepared(index, values, typed, record, given, errors)

    def _insert_batch(
        self, conn: Connection, actor: Actor, entity: Entity, items: list[_Prepared],
        now: dt.datetime,
    ) -> list[int]:
        """Numbers, rows, scope check, children, audit and after-save hooks of a clean batch."""
        for field in entity.fields.values():
            if field.type != "sequence":
                continue
            missing = [item.record for item in items if not item.record.get(field.key)]
            numbers = next_numbers(
                conn, self.schema.system("crm_sequence"), f"{entity.key}.{field.key}",
                field.sequence_pattern or "", now.date(), len(missing))
            for record, number in zip(missing, numbers, strict=True):
                record[field.key] = number
        if getattr(entity, "ledger", None) is not None:
            self.ledgers.guard(conn, actor, entity, [item.record for item in items])
        table = self.schema.table(entity.key)
        columns = [f.key for f in entity.column_fields()]  # as _column_values, once per batch
        rows = []
        for item in items:
            row = self._system_values(actor, item.record, now)
            row.update(zip(columns, map(item.record.get, columns), strict=True))
            rows.append(row)
        try:
            if conn.dialect.name == "sqlite":
                # SQLite gives a new row max(rowid) + 1 and lets one writer in at a time, so
                # naming the same ids ourselves keeps the insert a plain executemany.
                first = (conn.execute(select(func.max(table.c.id))).scalar() or 0) + 1
                ids = list(range(first, first + len(rows)))
                for row, record_id in zip(rows, ids, strict=True):
                    row["id"] = record_id
                insert_rows(conn, table, rows)
            elif (ids := self._reserve_ids(conn, table, len(rows))) is not None:
                for row, record_id in zip(rows, ids, strict=True):
                    row["id"] = record_id
                insert_rows(conn, table, rows)
            else:
                ids = list(conn.execute(
                    insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
                ).scalars())
        except IntegrityError:
            raise _Retry from None
        scope = self._visible(actor, entity, table, "create")
        if scope:
            inside = set()
            for start in range(0, len(ids), 900):
                inside.update(conn.execute(select(table.c.id).where(
                    table.c.id.in_(ids[start:start + 900]), *scope)).scalars())
            if len(inside) < len(ids):
                raise _Retry
        children = any(not f.has_column and f.type in ("lines", "many_to_many")
                       for f in entity.fields.values())
        if children:
            for item, record_id in zip(items, ids, strict=True):
                self._write_children(conn, entity, record_id, item.record)
        if entity.audit:
            insert_rows(conn, self.schema.system("crm_audit"), creation_rows(
                actor=actor, at=now, entity=entity.key,
                records=list(zip(ids, (item.record for item in items), strict=True))))
        if self.hooks.declared(entity, "after_save"):
            computed_on_read = any(not f.has_column for f in entity.fields.values())
            for row, record_id in zip(rows, ids, strict=True):
                created = (self._fetch(conn, actor, entity, record_id, action=None)
                           if computed_on_read else {"id": record_id, **row})
                self.hooks.after("after_save", self, conn, actor, entity, created, None, now=now)
        return ids

    @staticmethod
    def _reserve_ids(conn: Connection, table: Any, count: int) -> list[int] | None:
        """On PostgreSQL, ``count`` ids taken from the table's own sequence (None elsewhere).

        Naming the ids lets the rows go in one plain ``executemany``: a multi-row
        ``INSERT … RETURNING`` of thousands of values costs the driver more to
        prepare than the insert itself.
        """
        if conn.dialect.name != "postgresql":
            return None
        sequence = conn.execute(select(func.pg_get_serial_sequence(table.name, "id"))).scalar()
        if not sequence:
            return None
        return list(conn.execute(
            select(func.nextval(sequence)).select_from(func.generate_series(1, count))
        ).scalars())

    def _create_one_by_one(
        self, conn: Connection, actor: Actor, entity: Entity, items: list[_Prepared],
        outcome: BatchOutcome,
    ) -> None:
        """The slow path of a batch that could not be written whole: each row on its own."""
        for item in items:
            try:
                with _savepoint(conn):
                    created = self.create(actor, entity.key, item.values, conn=conn)
                outcome.ids[item.index] = created["id"]
            except CrmError as exc:
                outcome.errors[item.index] = (getattr(exc, "errors", None)
                                              or {"record": [exc.message]})


@contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """A nested transaction: an exception inside undoes only what was done inside."""
    with conn.begin_nested():
        yield
