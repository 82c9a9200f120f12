"""The access-aware reads of the record service: field rules, lookups, aggregates, exports.

A mixin of :class:`engine.services.records.service.RecordService`, kept in its own
module so the service's write paths stay readable.  Three promises hold for
every method here, whatever the policy:

* a hidden field never leaves the service — not in a record, a history row,
  a conflict's "current" payload, an aggregate or an error message;
* a row outside the actor's scope is never returned *or counted*; an
  aggregate is computed over the rows the actor sees, nothing else;
* a lookup-scoped actor reaches records only by an exact match of every
  key field (:meth:`lookup`), and their related records only through such
  a lookup made in the same call (:meth:`lookup_related`).  Nothing is
  remembered between calls: a found member is opened by looking it up
  again, and a purchase is recorded by giving its ``member`` reference as
  the same keys (``{"name": ..., "member_number": ...}``) instead of an id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, Table, and_, false, func, or_, select

from engine.context import Actor
from engine.errors import NotFound, ValidationFailed
from engine.i18n import message
from engine.metadata.model import Entity, Field
from engine.metadata.values import ValueProblem, coerce
from engine.services.access.login_guard import LoginGuard, ThrottleSettings
from engine.storage.queries import Filter, Sort, condition

if TYPE_CHECKING:
    from engine.services.records.service import Page

#: Aggregate functions :meth:`RecordAccessMixin.aggregate` understands.
AGGREGATES = ("count", "sum", "avg", "min", "max")
_NUMERIC = frozenset({"integer", "decimal"})


@dataclass(frozen=True)
class KeyRef:
    """A reference given by the target's key fields instead of its id (a till's member)."""

    keys: Mapping[str, Any]


#: Lookups by a declared key set (a till clerk's) that do not end in a record: at most 30
#: per user in 15 minutes — room for mistyped numbers, none for guessing them.
LOOKUP_THROTTLE = ThrottleSettings(max_failures=30, window=dt.timedelta(minutes=15),
                                   lockout=dt.timedelta(minutes=15))


class RecordAccessMixin:
    """Field rules and scoped reads; expects the attributes of RecordService."""

    # Provided by RecordService.
    policy: Any
    schema: Any
    registry: Any

    if TYPE_CHECKING:  # the host's methods this mixin calls
        def entity(self, key: str) -> Entity: ...
        def _allow(self, actor: Actor, entity: Entity, action: str) -> None: ...
        def _visible(self, actor: Actor, entity: Entity, table: Table,
                     action: str = "read") -> list: ...
        def _read(self, conn: Connection | None) -> Any: ...
        def _load_children(self, conn: Connection, entity: Entity, records: list) -> None: ...
        def _finish(self, entity: Entity, records: list) -> list: ...
        def _typed_filter(self, actor: Actor, entity: Entity, flt: Filter) -> Any: ...
        def _list_query(self, actor: Actor, entity: Entity, filters: Sequence[Filter],
                        search: str | None, include_archived: bool) -> tuple[Table, list]: ...

    # -- field rules -------------------------------------------------------------

    def hidden(self, actor: Actor, entity: Entity) -> frozenset[str]:
        """Fields of ``entity`` the actor never sees."""
        return self.policy.hidden_fields(actor, entity)

    def _redact(self, actor: Actor, entity: Entity, record: dict[str, Any]) -> dict[str, Any]:
        hidden = self.hidden(actor, entity)
        if not hidden:
            return record
        return {k: v for k, v in record.items() if k not in hidden}

    def _redact_history(
        self, actor: Actor, entity: Entity, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        hidden = self.hidden(actor, entity)
        if not hidden:
            return rows
        shown = []
        for row in rows:
            if row.get("field") in hidden:
                continue
            row = dict(row)
            for side in ("old_value", "new_value"):
                if isinstance(row.get(side), dict) and row.get("field") == "*":
                    row[side] = {k: v for k, v in row[side].items() if k not in hidden}
            shown.append(row)
        return shown

    def _column_field(self, actor: Actor, entity: Entity, key: str) -> Field | None:
        """A field the actor may name in a query (visible, with a column), else None."""
        found = entity.fields.get(key)
        if found is None or key in self.hidden(actor, entity) or not found.has_column:
            return None
        return found

    # -- lookups ---------------------------------------------------------------------

    def _key_conditions(
        self, actor: Actor, entity: Entity, table: Table, keys: Mapping[str, Any]
    ) -> tuple[list[ColumnElement[bool]], bool]:
        """Exact-match conditions for ``keys``, and whether they are a declared lookup.

        A declared lookup needs every key of one declared key set and nothing
        else; without a lookup scope any visible fields may be matched, inside
        the actor's ordinary scope.
        """
        declared = self.policy.lookup_keys(actor, entity)
        given = set(keys)
        errors: dict[str, list[str]] = {}
        for key in given:
            if self._column_field(actor, entity, key) is None:
                errors[key] = [message("unknown_field", actor.language)]
        exact = next((set(k) for k in declared if set(k) == given), None)
        if exact is None and declared:
            wanted = min(declared, key=lambda k: len(set(k) ^ given))
            for key in wanted:
                if key not in given:
                    errors.setdefault(key, []).append(message("required", actor.language))
            for key in given - set(wanted):
                errors.setdefault(key, [message("lookup_key_only", actor.language)])
        if not given:
            errors["record"] = [message("lookup_needs_keys", actor.language)]
        conditions = []
        for key, raw in keys.items():
            if key in errors:
                continue
            found = entity.fields[key]
            try:
                value = coerce(found, raw)
            except ValueProblem as problem:
                errors[key] = [message(problem.key, actor.language, **problem.params)]
                continue
            if value is None or value == "":
                errors[key] = [message("required", actor.language)]
                continue
            conditions.append(table.c[key] == value)
        if errors:
            raise ValidationFailed(errors)
        return conditions, exact is not None

    def _lookup_row(
        self, conn: Connection, actor: Actor, entity: Entity, keys: Mapping[str, Any]
    ) -> dict[str, Any]:
        table = self.schema.table(entity.key)
        conditions, declared = self._key_conditions(actor, entity, table, keys)
        scope = [] if declared else self._visible(actor, entity, table)
        rows = conn.execute(
            select(table).where(*conditions, *scope, table.c.archived.is_(False))
            .order_by(table.c.id).limit(2)
        ).mappings().all()
        label = entity.label.get(actor.language)
        if not rows:
            raise NotFound(message("lookup_not_found", actor.language, entity=label))
        if len(rows) > 1:
            raise ValidationFailed({"record": [message("lookup_ambiguous", actor.language,
                                                       entity=label)]})
        return dict(rows[0])

    @cached_property
    def lookup_guard(self) -> LoginGuard:
        """Failed lookups per user, counted in the database like failed logins."""
        return LoginGuard(self.schema, self.engine, LOOKUP_THROTTLE)

    @contextmanager
    def lookup_attempt(self, actor: Actor, targets: Iterable[Entity],
                       conn: Connection | None) -> Iterator[None]:
        """Count a call that looks up one of ``targets`` by a declared key set.

        A lookup scope is as strong as its keys are hard to guess, so an actor
        who looks records up by keys gets a limited number of calls that do
        not end well (``LOOKUP_THROTTLE``), then waits (``Throttled``, 429).
        The attempt is counted before the lookup, in its own transaction, and
        taken back when the call succeeds — so parallel guesses cannot pass
        the limit, and a counter survives the failed call's rollback.  Inside
        a caller's transaction (``conn``) nothing is counted: a counter written
        there would roll back with the failure.  The till page, the API and
        forms call without one; a batch (``create_many``, the
        importer) is not counted.
        """
        guarded = conn is None and any(self.policy.lookup_keys(actor, t) for t in targets)
        if not guarded:
            yield
            return
        keys, now = [f"lookup:{actor.user_id}"], self.clock.now()
        self.lookup_guard.begin_attempt(keys, now, refused=message(
            "lookup_throttled", actor.language))
        yield
        self.lookup_guard.forgive(keys, now)

    def lookup(
        self, actor: Actor, entity_key: str, keys: Mapping[str, Any], *,
        conn: Connection | None = None,
    ) -> dict[str, Any]:
        """The one record matching every key exactly (NotFound when there is none)."""
        entity = self.entity(entity_key)
        self._allow(actor, entity, "read")
        with self.lookup_attempt(actor, [entity], conn), self._read(conn) as c:
            record = self._lookup_row(c, actor, entity, keys)
            self._load_children(c, entity, [record])
        return self._redact(actor, entity, self._finish(entity, [record])[0])

    def lookup_related(
        self, actor: Actor, entity_key: str, keys: Mapping[str, Any], related: str, field: str,
        *, filters: Sequence[Filter] = (), sort: Sequence[Sort] = (), limit: int = 50,
        offset: int = 0, include_archived: bool = False, with_children: bool = False,
        conn: Connection | None = None,
    ) -> Page:
        """Records of ``related`` whose ``field`` points at the record ``keys`` find.

        The lookup is made again in this call, so nothing is remembered
        between calls; the related records are those the actor reads anyway,
        plus all of them when a ``through: field`` scope opens them.
        """
        from engine.services.records.service import Page

        entity = self.entity(entity_key)
        target = self.entity(related)
        link = target.fields.get(field)
        if link is None or link.type != "reference" or link.to != entity.key:
            raise NotFound(message("no_relation", actor.language, entity=target.key, field=field,
                                   parent=entity.key))
        self._allow(actor, entity, "read")
        self._allow(actor, target, "read")
        limit = max(1, min(int(limit), 1000))
        offset = max(0, int(offset))
        table = self.schema.table(target.key)
        with self.lookup_attempt(actor, [entity], conn), self._read(conn) as c:
            parent = self._lookup_row(c, actor, entity, keys)
            where: list[Any] = [table.c[field] == parent["id"]]
            if field not in self.policy.through_fields(actor, target):
                where.extend(self._visible(actor, target, table))
            if not include_archived:
                where.append(table.c.archived.is_(False))
            for flt in filters:
                where.append(condition(table, flt.field, flt.op,
                                       self._typed_filter(actor, target, flt)))
            order = [self._order_column(actor, target, table, s) for s in sort]
            order.append(table.c.id.desc() if not sort else table.c.id.asc())
            rows = [dict(r) for r in c.execute(
                select(table).where(*where).order_by(*order).limit(limit + 1).offset(offset)
            ).mappings()]
            has_more = len(rows) > limit
            rows = rows[:limit]
            if with_children:
                self._load_children(c, target, rows)
            total = c.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        rows = [self._redact(actor, target, r) for r in self._finish(target, rows)]
        return Page(rows=rows, limit=limit, offset=offset, total=total, has_more=has_more)

    def _order_column(self, actor: Actor, entity: Entity, table: Table, item: Sort) -> Any:
        if item.field not in ("id", "created_at", "updated_at", "owner") and (
            self._column_field(actor, entity, item.field) is None
        ):
            raise ValidationFailed({item.field: [message(
                "invalid_filter", actor.language, reason="cannot sort on this field")]})
        column = table.c[item.field]
        return (column.desc() if item.descending else column.asc()).nulls_last()

    def _key_ref_targets(self, entity: Entity, record: Mapping[str, Any]) -> list[Entity]:
        """The entities a record's references given as keys (typed or not yet) point at."""
        return [self.registry.entities[f.to] for f in entity.fields.values()
                if f.type == "reference" and f.to in self.registry.entities
                and isinstance(record.get(f.key), KeyRef | Mapping)]

    def _resolve_key_refs(
        self, conn: Connection, actor: Actor, entity: Entity, record: dict[str, Any],
        given: set[str], errors: Any,
    ) -> set[str]:
        """Replace references given as keys by the id they find; the fields resolved."""
        resolved: set[str] = set()
        for field in entity.fields.values():
            value = record.get(field.key)
            if field.key not in given or not isinstance(value, KeyRef):
                continue
            target = self.registry.entities[field.to]
            record[field.key] = None
            if not self.policy.can(actor, target, "read"):
                errors.add(field.key, "reference_not_found", entity=target.label.get(
                    actor.language))
                continue
            try:
                record[field.key] = self._lookup_row(conn, actor, target, value.keys)["id"]
                resolved.add(field.key)
            except (NotFound, ValidationFailed):
                errors.add(field.key, "reference_not_found",
                           entity=target.label.get(actor.language))
        return resolved

    # -- aggregates and exports ---------------------------------------------------------

    def aggregate(
        self, actor: Actor, entity_key: str, measures: Mapping[str, str], *,
        group_by: Sequence[str] = (), filters: Sequence[Filter] = (), search: str | None = None,
        include_archived: bool = False, conn: Connection | None = None,
    ) -> list[dict[str, Any]]:
        """Figures over the rows the actor sees: ``{"total": "sum:amount", "n": "count"}``.

        Every dashboard figure and pipeline total goes through here (or
        through :meth:`scope_conditions`), so a salesperson's pipeline total
        counts only their own opportunities.
        """
        entity = self.entity(entity_key)
        self._allow(actor, entity, "read")
        table, where = self._list_query(actor, entity, filters, search, include_archived)
        errors: dict[str, list[str]] = {}
        columns: list[Any] = []
        groups: list[Any] = []
        for key in group_by:
            if key != "owner" and self._column_field(actor, entity, key) is None:
                errors[key] = [message("invalid_filter", actor.language,
                                       reason="cannot group by this field")]
                continue
            groups.append(table.c[key])
        for name, spec in measures.items():
            function, _, key = spec.partition(":")
            if function not in AGGREGATES or (function != "count" and not key):
                errors[name] = [message("invalid_aggregate", actor.language, spec=spec,
                                        functions=", ".join(AGGREGATES))]
                continue
            if function == "count" and not key:
                columns.append(func.count().label(name))
                continue
            found = self._column_field(actor, entity, key)
            if found is None or (function in ("sum", "avg") and found.value_type not in _NUMERIC):
                errors[name] = [message("invalid_aggregate", actor.language, spec=spec,
                                        functions=", ".join(AGGREGATES))]
                continue
            columns.append(getattr(func, function)(table.c[key]).label(name))
        if errors:
            raise ValidationFailed(errors)
        query = select(*groups, *columns).select_from(table).where(*where)
        if groups:
            query = query.group_by(*groups).order_by(*groups)
        with self._read(conn) as c:
            return [dict(r) for r in c.execute(query).mappings()]

    def scope_conditions(
        self, actor: Actor, entity_key: str, *, action: str = "read"
    ) -> tuple[Table, list[ColumnElement[bool]]]:
        """The entity's table and the conditions limiting it to what the actor may ``action``.

        For services that write their own queries over records (pipeline
        figures, reports): add these conditions and the figures stay inside
        the actor's scope.  Raises PermissionDenied when the action is not
        allowed at all.
        """
        entity = self.entity(entity_key)
        self._allow(actor, entity, action)
        table = self.schema.table(entity.key)
        conditions = self._visible(actor, entity, table, action)
        return table, conditions or []

    def visible_values(
        self, actor: Actor, entity_key: str, fields: Sequence[str], *, batch: int = 5000,
    ) -> Iterator[dict[str, Any]]:
        """``id`` and the stored ``fields`` of every record the actor reads (archived left
        out), for comparisons over a whole table such as the duplicate check.

        Only those columns are read, a page of ``batch`` at a time after the
        last id (keyset), with no computed values or children: a pass over tens
        of thousands of records costs what reading those columns costs.  A
        field the actor may not see comes back as None.
        """
        entity = self.entity(entity_key)
        self._allow(actor, entity, "read")
        table, where = self._list_query(actor, entity, (), None, False)
        shown = [k for k in dict.fromkeys(fields)
                 if self._column_field(actor, entity, k) is not None]
        columns = [table.c.id, *(table.c[k] for k in shown if k != "id")]
        last = None
        while True:
            after = [] if last is None else [table.c.id > last]
            with self._read(None) as c:
                rows = [dict(r) for r in c.execute(
                    select(*columns).where(*where, *after).order_by(table.c.id).limit(batch)
                ).mappings()]
            for row in rows:
                yield {**dict.fromkeys(fields), **row}
            if len(rows) < batch:
                return
            last = rows[-1]["id"]

    def export(
        self, actor: Actor, entity_key: str, *, filters: Sequence[Filter] = (),
        search: str | None = None, include_archived: bool = False, batch: int = 500,
        sort: Sequence[Sort] = (),
    ) -> Iterator[dict[str, Any]]:
        """Every visible record, without hidden fields; needs the export right.

        Records come in ``sort`` order (then id; id order without a sort), a
        page of ``batch`` at a time: each page starts after the last record of
        the one before (keyset paging), so memory stays flat and no page is
        skipped or repeated however far the export goes.
        """
        entity = self.entity(entity_key)
        self._allow(actor, entity, "read")
        self._allow(actor, entity, "export")
        table, where = self._list_query(actor, entity, filters, search, include_archived)
        order = [self._order_column(actor, entity, table, s) for s in sort]  # checks each
        keys = [(table.c[s.field], s.descending) for s in sort]
        last: dict[str, Any] | None = None
        while True:
            after = [] if last is None else [_after(keys, table.c.id, last)]
            with self._read(None) as c:
                rows = [dict(r) for r in c.execute(
                    select(table).where(*where, *after).order_by(*order, table.c.id)
                    .limit(batch)
                ).mappings()]
                self._load_children(c, entity, rows)
            if not rows:
                return
            last = rows[-1]
            for row in self._finish(entity, rows):
                yield self._redact(actor, entity, row)
            if len(rows) < batch:
                return


def _after(keys: list[tuple[Any, bool]], id_column: Any, last: Mapping[str, Any]) -> Any:
    """Rows that come after ``last`` in the order ``keys`` (nulls last), then id."""
    branches = []
    equal: list[Any] = []
    for column, descending in keys:
        value = last[column.key]
        if value is not None:
            beyond = column < value if descending else column > value
            branches.append(and_(*equal, or_(beyond, column.is_(None))))
            equal.append(column == value)
        else:
            equal.append(column.is_(None))
    branches.append(and_(*equal, id_column > last["id"]))
    return or_(*branches)


def nothing() -> ColumnElement[bool]:
    """A condition no row meets (a search over no visible column)."""
    return false()
