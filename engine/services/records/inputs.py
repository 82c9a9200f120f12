"""Turning a caller's values into a valid record: coercion, conditions, validation.

Split from the record service so the write path reads as steps; every
message is gathered (all fields at once, in the actor's language) and
messages about fields hidden from the actor never name them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from engine.context import Actor
from engine.errors import ValidationFailed
from engine.i18n import message
from engine.metadata.model import SYSTEM_COLUMNS, Entity, Field
from engine.metadata.values import ValueProblem, check_limits, coerce
from engine.services.records.compute import apply_defaults
from engine.services.records.reads import KeyRef


def given_lines(field: Field, lines: Any) -> list[dict[str, Any]]:
    """Lines as the values a user gives (no id, position or computed value), to tell whether
    lines sent back are those that were shown."""
    inputs = [k for k, sub in field.fields.items() if sub.is_input and sub.has_column]
    return [{k: line.get(k) for k in inputs} for line in lines or []]


class FieldErrors:
    """Field messages gathered during one write, in the actor's language."""

    def __init__(self, language: str, hidden: frozenset[str] = frozenset()) -> None:
        self.language = language
        self.by_field: dict[str, list[str]] = defaultdict(list)
        self.hidden = hidden
        self.refused: dict[str, list[str]] = {}

    def add(self, key: str, msg_key: str, **params: Any) -> None:
        self.by_field[key].append(message(msg_key, self.language, **params))

    def problem(self, key: str, problem: ValueProblem) -> None:
        self.add(key, problem.key, **problem.params)

    def refuse(self, key: str, msg_key: str) -> None:
        """A message about a name the actor gave themselves: shown under that name."""
        self.refused[key] = [message(msg_key, self.language)]

    def raise_if_any(self) -> None:
        if self.by_field or self.refused:
            raise ValidationFailed(self.shown())

    def shown(self) -> dict[str, list[str]]:
        """The messages, those about fields hidden from the actor told without naming them."""
        shown: dict[str, list[str]] = dict(self.refused)
        for key, texts in self.by_field.items():
            if key.split("[", 1)[0].split(".", 1)[0] in self.hidden:
                shown.setdefault("record", [message("hidden_invalid", self.language)])
            else:
                shown.setdefault(key, []).extend(texts)
        return shown


class RecordInputMixin:
    """Coercion and validation steps of :class:`~engine.services.records.service.RecordService`."""

    # Provided by RecordService (and its access mixin).
    policy: Any
    schema: Any
    registry: Any
    clock: Any

    if TYPE_CHECKING:  # the host's methods these steps call
        def hidden(self, actor: Actor, entity: Entity) -> frozenset[str]: ...
        def _visible(self, actor: Actor, entity: Entity, table: Any,
                     action: str = "read") -> list: ...
        def _resolve_key_refs(self, *args: Any, **kwargs: Any) -> Any: ...

    def _coerce_lines(
        self, field: Field, value: Any, errors: FieldErrors, now: dt.datetime
    ) -> list[dict[str, Any]] | None:
        if value is None:
            return []
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
            errors.add(field.key, "expected_lines")
            return None
        lines = []
        for index, raw in enumerate(value):
            line: dict[str, Any] = {}
            for key, item in raw.items():
                sub = field.fields.get(key)
                where = f"{field.key}[{index}].{key}"
                if key == "id":
                    continue
                if sub is None:
                    errors.add(where, "unknown_field")
                elif not sub.is_input:
                    errors.add(where, "not_settable")
                else:
                    try:
                        line[key] = coerce(sub, item)
                    except ValueProblem as problem:
                        errors.problem(where, problem)
            apply_defaults(field.fields, line, now)
            lines.append(line)
        return lines

    def _coerce_input(
        self, actor: Actor, entity: Entity, values: Mapping[str, Any], errors: FieldErrors,
        now: dt.datetime, *, existing: Mapping[str, Any] | None,
        engine_set: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Typed values, or messages in ``errors``.

        ``engine_set`` names values the engine itself sets (a stage action): a field
        declared ``readonly`` is closed to users, not to the workflow that owns it.
        """
        typed: dict[str, Any] = {}
        hidden = self.hidden(actor, entity)
        readonly = self.policy.readonly_fields(actor, entity)
        for key, value in values.items():
            field = entity.fields.get(key)
            if key in hidden:
                errors.refuse(key, "unknown_field")  # as if it did not exist
                continue
            if field is None:
                if key == "owner":
                    try:
                        typed["owner"] = coerce(
                            Field(key="owner", type="reference", label=None, to="user"), value  # type: ignore[arg-type]
                        )
                    except ValueProblem as problem:
                        errors.problem(key, problem)
                        continue
                    unchanged = existing["owner"] if existing is not None else actor.user_id
                    if "owner" in readonly and typed["owner"] != unchanged:
                        errors.add(key, "readonly")
                elif key in SYSTEM_COLUMNS:
                    # A record sent back as it was read carries its id and version: fine.
                    echoed = key == "version" or (existing is not None and existing.get(key) == value)
                    if not echoed:
                        errors.add(key, "not_settable")
                else:
                    errors.add(key, "unknown_field")
                continue
            if not field.is_input:
                errors.add(key, "not_settable")
                continue
            if field.type == "lines":
                lines = self._coerce_lines(field, value, errors, now)
                if lines is None:
                    continue
                typed[key] = lines
                closed = key in readonly or (field.readonly and key not in engine_set
                                             and existing is not None)
                before = existing.get(key) if existing is not None else []
                if closed and given_lines(field, lines) != given_lines(field, before):
                    errors.add(key, "readonly")  # a form may send back what it showed
                continue
            if field.type == "reference" and isinstance(value, Mapping):
                typed[key] = KeyRef(dict(value))  # resolved by its keys in _check_references
                continue
            try:
                typed[key] = coerce(field, value)
            except ValueProblem as problem:
                errors.problem(key, problem)
                continue
            if (
                field.readonly
                and key not in engine_set
                and existing is not None
                and typed[key] != existing.get(key)
            ):
                errors.add(key, "readonly")
            elif key in readonly:
                # Read-only for this role: a form may send back what it showed, nothing else.
                if existing is not None:
                    changed = typed[key] != existing.get(key)
                else:
                    changed = typed[key] not in (None, "", [], field.default)
                if changed:
                    errors.add(key, "readonly")
        return typed

    def _validate(
        self,
        conn: Connection,
        actor: Actor,
        entity: Entity,
        record: dict[str, Any],
        given: set[str],
        errors: FieldErrors,
        record_id: int | None,
    ) -> None:
        self._check_fields(entity, record, given, errors)
        self._check_references(conn, actor, entity, record, given, errors)
        self._check_unique(conn, entity, record, errors, record_id)

    def _check_fields(
        self, entity: Entity, record: dict[str, Any], given: set[str], errors: FieldErrors,
        fields: Iterable[Field] | None = None,
    ) -> None:
        """Conditions, required fields, lengths and ranges: the checks needing no query.

        ``fields`` narrows the walk to the fields with something to check (a
        batch picks them once for all its rows); by default every field.
        """
        for field in entity.fields.values() if fields is None else fields:
            key = field.key
            if field.visible_if is not None and not field.visible_if.evaluate(record, now=self.clock.now()):
                blank = record.get(key) in (None, "", [])
                if key in given and not blank:
                    errors.add(key, "not_applicable", condition=field.visible_if.source)
                if not blank:
                    record[key] = [] if field.type in ("lines", "many_to_many") else None
                continue
            value = record.get(key)
            required = field.required or (
                field.required_if is not None
                and bool(field.required_if.evaluate(record, now=self.clock.now()))
            )
            if required and field.is_input and (value is None or value == "" or value == []):
                errors.add(key, "required")
                continue
            if value is None:
                continue  # no limits to check (and no lines)
            problem = check_limits(field, value)
            if problem is not None:
                errors.problem(key, problem)
            if field.type == "lines" and isinstance(value, list):
                for index, line in enumerate(value):
                    for sub in field.fields.values():
                        where = f"{key}[{index}].{sub.key}"
                        if sub.required and line.get(sub.key) in (None, "", []):
                            errors.add(where, "required")
                        elif (p := check_limits(sub, line.get(sub.key))) is not None:
                            errors.problem(where, p)

    def _check_references(
        self, conn: Connection, actor: Actor, entity: Entity, record: dict[str, Any],
        given: set[str], errors: FieldErrors,
    ) -> None:
        self._check_references_many(conn, actor, entity, [(record, given, errors)])

    def _check_references_many(
        self, conn: Connection, actor: Actor, entity: Entity,
        items: list[tuple[dict[str, Any], set[str], FieldErrors]],
    ) -> None:
        """Every referenced id must exist within the actor's read scope: one query per target."""
        wanted: dict[str, set[int]] = defaultdict(set)
        places: list[tuple[FieldErrors, str, str, Any]] = []
        linking = [f for f in entity.fields.values()
                   if f.type in ("reference", "many_to_many", "lines")]
        for record, given, errors in items:
            found_by_keys: set[str] = set()
            if any(isinstance(record.get(f.key), KeyRef) for f in linking):
                found_by_keys = self._resolve_key_refs(conn, actor, entity, record, given, errors)
            for field in linking:
                if field.key not in given or errors.by_field.get(field.key) or (
                    field.key in found_by_keys
                ):
                    continue
                value = record.get(field.key)
                if field.type == "reference" and value is not None:
                    wanted[field.to].add(value)
                    places.append((errors, field.key, field.to, [value]))
                elif field.type == "many_to_many" and value:
                    wanted[field.to].update(value)
                    places.append((errors, field.key, field.to, value))
                elif field.type == "lines" and value:
                    for sub in field.fields.values():
                        if sub.type == "reference":
                            for index, line in enumerate(value):
                                if line.get(sub.key) is not None:
                                    wanted[sub.to].add(line[sub.key])
                                    places.append((errors, f"{field.key}[{index}].{sub.key}",
                                                   sub.to, [line[sub.key]]))
            if "owner" in given and record.get("owner") is not None:
                wanted["__user__"].add(record["owner"])
                places.append((errors, "owner", "__user__", [record["owner"]]))
        found: dict[str, set[int]] = {}
        for target, ids in wanted.items():
            if target == "__user__":
                table = self.schema.system("crm_user")
                scope = []
            else:
                table = self.schema.table(target)
                scope = self._visible(actor, self.registry.entities[target], table)
            found[target] = set()
            for chunk in _chunks(sorted(ids)):
                found[target].update(conn.execute(
                    select(table.c.id).where(table.c.id.in_(chunk), *scope)).scalars())
        for errors, key, target, ids in places:
            for value in ids:
                if value not in found[target]:
                    label = "user" if target == "__user__" else (
                        self.registry.entities[target].label.get(actor.language)
                    )
                    errors.add(key, "reference_missing", entity=label, value=value)

    def _check_unique(
        self, conn: Connection, entity: Entity, record: dict[str, Any], errors: FieldErrors,
        record_id: int | None,
    ) -> None:
        self._check_unique_many(conn, entity, [(record, errors)], record_id)

    def _check_unique_many(
        self, conn: Connection, entity: Entity, items: list[tuple[dict[str, Any], FieldErrors]],
        record_id: int | None = None,
    ) -> None:
        """Unique fields: one query per field for all records, and no two records alike."""
        table = self.schema.table(entity.key)
        for field in entity.fields.values():
            if not field.unique:
                continue
            seen: set[Any] = set()
            checked: list[tuple[Any, FieldErrors]] = []
            for record, errors in items:
                value = record.get(field.key)
                if value is None or errors.by_field.get(field.key):
                    continue
                if value in seen:  # the same value twice among the records written together
                    errors.add(field.key, "not_unique", value=value)
                    continue
                seen.add(value)
                checked.append((value, errors))
            if not checked:
                continue
            taken: set[Any] = set()
            for chunk in _chunks(sorted(seen, key=str)):
                query = select(table.c[field.key]).where(table.c[field.key].in_(chunk))
                if record_id is not None:
                    query = query.where(table.c.id != record_id)
                taken.update(conn.execute(query).scalars())
            for value, errors in checked:
                if value in taken:
                    errors.add(field.key, "not_unique", value=value)


def _chunks(values: list[Any], size: int = 900) -> list[list[Any]]:
    """Pieces small enough for any database's limit on bound parameters."""
    return [values[i:i + size] for i in range(0, len(values), size)]
