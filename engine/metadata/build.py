"""Turning merged raw definitions into the registry, checking their meaning.

The JSON Schemas have already checked the *shape* of every file; this module
checks what a schema cannot: that a reference names an entity that exists,
that an option applies to the field's type, that expressions parse and name
real fields, that nothing collides with the engine's own names.  Every
problem is collected, so one `crm check` shows them all.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from engine.errors import Problem
from engine.expressions import Expression, ExpressionError, compile_expression
from engine.metadata.field_types import (
    COMPUTED_RESULT_TYPES,
    DEFAULT_MAX_LENGTH,
    DEFAULT_PRECISION,
    DEFAULT_SCALE,
    FIELD_TYPES,
)
from engine.metadata.merge import Located, RawEntity, RawField
from engine.metadata.model import (
    LINE_SYSTEM_COLUMNS,
    SYSTEM_COLUMNS,
    Entity,
    Field,
    IndexDef,
    Label,
    LedgerDef,
    Origin,
)
from engine.metadata.sequence_pattern import PatternError, parse_sequence_pattern

#: Entity keys the engine keeps for itself (URL segments, system concepts).
RESERVED_ENTITY_KEYS = frozenset(
    {"meta", "user", "users", "team", "teams", "role", "roles", "audit", "api", "auth",
     "static", "me", "login", "logout", "openapi", "admin", "settings", "search",
     "dashboards", "attachments", "calendar", "files", "till", "imports"}
)
#: Field types a ledger's balances may be kept per (one exact value each).
LEDGER_DIMENSION_TYPES = ("reference", "choice", "string", "integer", "boolean", "date")
#: PostgreSQL truncates identifiers beyond 63 bytes; we refuse rather than collide.
MAX_IDENTIFIER = 63


def _origin(where: Located, pack: str) -> Origin:
    line, column = where.document.locate(where.path)
    return Origin(file=where.document.file, line=line, column=column, pack=pack)


def _suggest(name: str, candidates: list[str]) -> str:
    near = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


class _Checker:
    def __init__(self, entities: dict[str, RawEntity]) -> None:
        self.raw = entities
        self.problems: list[Problem] = []

    def report(self, where: Located, message: str, *, key: bool = False) -> None:
        self.problems.append(where.problem(message, key=key))

    # -- expressions -------------------------------------------------------

    def expression(
        self, raw: RawField, option: str, known: list[str], what: str
    ) -> Expression | None:
        text = raw.data.get(option)
        if text is None:
            return None
        where = raw.where(option)
        try:
            expr = compile_expression(str(text))
        except ExpressionError as exc:
            column = f" at column {exc.column}" if exc.column else ""
            self.report(where, f"the {what} does not parse{column}: {exc.message}")
            return None
        for message in expr.check_names(known):
            self.report(where, f"the {what} {message}")
        return expr

    def reveals(self, raw: RawField, known: Any) -> tuple[str, ...]:
        """The fields ``reveals:`` names (unknown ones are reported and left out)."""
        names = []
        for index, name in enumerate(raw.data.get("reveals") or ()):
            if name in known:
                names.append(name)
                continue
            self.report(Located(raw.where("reveals").document,
                                (*raw.where("reveals").path, index)),
                        f"'reveals' names an unknown field '{name}'"
                        f"{_suggest(name, list(known))}")
        return tuple(names)

    # -- values ------------------------------------------------------------

    def literal_fits(self, raw: RawField, value: Any, type_: str) -> str | None:
        """Why a default value does not fit the field's type (None when it fits)."""
        if value is None:
            return None
        if type_ in ("string", "text", "email", "phone", "url"):
            return None if isinstance(value, str) else "expected text"
        if type_ == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
            return None if ok else "expected a whole number"
        if type_ == "decimal":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if isinstance(value, str):
                try:
                    Decimal(value)
                    ok = True
                except InvalidOperation:
                    ok = False
            return None if ok else "expected a number"
        if type_ == "boolean":
            return None if isinstance(value, bool) else "expected true or false"
        if type_ in ("date", "datetime"):
            parse = dt.date.fromisoformat if type_ == "date" else dt.datetime.fromisoformat
            try:
                parse(str(value))
                return None
            except ValueError:
                return f"expected an ISO {type_} such as 2024-03-01"
        if type_ == "choice":
            choices = list(raw.data.get("choices") or {})
            values = value if isinstance(value, list) and raw.data.get("multiple") else [value]
            for v in values:
                if v not in choices:
                    return f"'{v}' is not one of the choices ({', '.join(choices)})"
            return None
        return None

    # -- fields ------------------------------------------------------------

    def field(
        self, entity: RawEntity, raw: RawField, known: list[str], *, in_lines: bool
    ) -> Field | None:
        data = raw.data
        type_name = data.get("type")
        ftype = FIELD_TYPES.get(type_name)
        if ftype is None:
            return None  # the schema check has reported it
        reserved = LINE_SYSTEM_COLUMNS if in_lines else SYSTEM_COLUMNS
        if raw.key in reserved:
            self.report(
                raw.declared,
                f"'{raw.key}' is a column the engine adds to every "
                f"{'line' if in_lines else 'record'}; choose another field name "
                f"(reserved: {', '.join(reserved)})",
                key=True,
            )
            return None
        if "__" in raw.key:
            self.report(raw.declared, f"'{raw.key}': field names may not contain '__'", key=True)
            return None
        if in_lines and not ftype.allowed_in_lines:
            self.report(
                raw.where("type"),
                f"a '{type_name}' field cannot be part of lines; lines hold plain fields, "
                "references and computed fields",
            )
            return None
        ok = True
        for option in data:
            if option not in ftype.options:
                takes = ", ".join(sorted(ftype.options - {"type"}))
                self.report(
                    raw.where(option),
                    f"'{option}' does not apply to a {type_name} field; a {type_name} field "
                    f"takes: {takes}",
                    key=True,
                )
                ok = False
        kwargs: dict[str, Any] = {}
        if type_name == "choice":
            choices = data.get("choices") or {}
            if not choices:
                self.report(raw.declared, f"choice field '{raw.key}' needs 'choices'", key=True)
                ok = False
            kwargs["choices"] = MappingProxyType(
                {str(k): Label.from_yaml(v, str(k)) for k, v in choices.items()}
            )
        if type_name in ("reference", "many_to_many"):
            target = data.get("to")
            if not target:
                self.report(
                    raw.declared, f"{type_name} field '{raw.key}' needs 'to' (an entity)", key=True
                )
                ok = False
            elif target not in self.raw:
                self.report(
                    raw.where("to"),
                    f"'to' names an unknown entity '{target}'{_suggest(target, list(self.raw))}",
                )
                ok = False
            if data.get("on_delete") == "set_null" and data.get("required"):
                self.report(
                    raw.where("on_delete"),
                    "on_delete 'set_null' cannot be used on a required field: the link could "
                    "not be emptied; use 'restrict' or 'cascade'",
                )
                ok = False
        if type_name == "lines":
            if not raw.fields:
                self.report(raw.declared, f"lines field '{raw.key}' needs 'fields'", key=True)
                ok = False
            line_known = [*raw.fields, *LINE_SYSTEM_COLUMNS]
            line_fields = {}
            for sub in raw.fields.values():
                built = self.field(entity, sub, line_known, in_lines=True)
                if built is not None:
                    line_fields[sub.key] = built
            kwargs["fields"] = MappingProxyType(line_fields)
            table = f"{entity.key}__{raw.key}"
            if len(table) > MAX_IDENTIFIER:
                self.report(raw.declared, f"the table name '{table}' is too long", key=True)
        if type_name == "computed":
            if not data.get("expression"):
                self.report(raw.declared, f"computed field '{raw.key}' needs an 'expression'",
                            key=True)
                ok = False
            returns = data.get("returns")
            if returns is None:
                self.report(
                    raw.declared,
                    f"computed field '{raw.key}' needs 'returns' (one of: "
                    f"{', '.join(COMPUTED_RESULT_TYPES)})",
                    key=True,
                )
                ok = False
            elif returns != "decimal" and ("precision" in data or "scale" in data):
                self.report(raw.where("precision" if "precision" in data else "scale"),
                            "precision and scale apply only when 'returns' is decimal")
            kwargs["expression"] = self.expression(
                raw, "expression", [k for k in known if k != raw.key], "expression"
            )
        if type_name == "sequence":
            text = data.get("sequence_pattern")
            if not text:
                self.report(
                    raw.declared,
                    f"sequence field '{raw.key}' needs a 'sequence_pattern' such as "
                    "'SO-{YYYY}-{#####}'",
                    key=True,
                )
                ok = False
            else:
                try:
                    parse_sequence_pattern(text)
                except PatternError as exc:
                    self.report(raw.where("sequence_pattern"), str(exc))
                    ok = False
        if "pattern" in data:
            try:
                re.compile(data["pattern"])
            except re.error as exc:
                self.report(raw.where("pattern"), f"the pattern is not a valid regular expression: {exc}")
                ok = False
        for low, high in (("min", "max"), ("min_length", "max_length")):
            if data.get(low) is not None and data.get(high) is not None and data[low] > data[high]:
                self.report(raw.where(low), f"'{low}' ({data[low]}) is larger than '{high}' ({data[high]})")
                ok = False
        if "scale" in data and "precision" in data and data["scale"] > data["precision"]:
            self.report(raw.where("scale"), "'scale' cannot be larger than 'precision'")
            ok = False
        if data.get("renamed_from") and data["renamed_from"] in known:
            self.report(
                raw.where("renamed_from"),
                f"'{data['renamed_from']}' is still a field here; a field can only be renamed "
                "from a name that is no longer used",
            )
            ok = False
        value_type = data.get("returns") if type_name == "computed" else type_name
        if "default" in data and ok:
            why = self.literal_fits(raw, data["default"], value_type)
            if why:
                self.report(raw.where("default"), f"the default does not fit the field: {why}")
                ok = False
        expr_known = [k for k in known]
        required_if = self.expression(raw, "required_if", expr_known, "condition 'required_if'")
        visible_if = self.expression(raw, "visible_if", expr_known, "condition 'visible_if'")
        default_expression = self.expression(
            raw, "default_expression", expr_known, "default expression"
        )
        if not ok:
            return None
        if value_type in DEFAULT_MAX_LENGTH and type_name != "choice":
            kwargs["max_length"] = data.get("max_length", DEFAULT_MAX_LENGTH[value_type])
        else:
            kwargs["max_length"] = data.get("max_length")
        if value_type == "decimal":
            kwargs["precision"] = data.get("precision", DEFAULT_PRECISION)
            kwargs["scale"] = data.get("scale", DEFAULT_SCALE)
        return Field(
            key=raw.key,
            type=type_name,
            label=Label.from_yaml(data.get("label"), Label.from_key(raw.key).en),
            help=Label.from_yaml(data["help"]) if data.get("help") else None,
            required=bool(data.get("required", False)),
            required_if=required_if,
            visible_if=visible_if,
            readonly=bool(data.get("readonly", False)),
            default=data.get("default"),
            default_expression=default_expression,
            unique=bool(data.get("unique", False)),
            index=bool(data.get("index", False)),
            searchable=bool(data.get("searchable", False)),
            tracked=bool(data.get("tracked", True)),
            hidden=bool(data.get("hidden", False)),
            renamed_from=data.get("renamed_from"),
            min_length=data.get("min_length"),
            pattern=data.get("pattern"),
            min=Decimal(str(data["min"])) if data.get("min") is not None else None,
            max=Decimal(str(data["max"])) if data.get("max") is not None else None,
            multiple=bool(data.get("multiple", False)),
            to=data.get("to"),
            on_delete=data.get("on_delete", "restrict"),
            returns=data.get("returns"),
            stored=bool(data.get("stored", True)),
            sequence_pattern=data.get("sequence_pattern"),
            reveals=self.reveals(raw, known),
            origin=_origin(raw.declared, entity.pack),
            **kwargs,
        )

    # -- entities ----------------------------------------------------------

    def entity(self, raw: RawEntity) -> Entity | None:
        key = raw.key
        if key in RESERVED_ENTITY_KEYS or key.startswith("crm_") or "__" in key:
            self.report(
                raw.declared,
                f"'{key}' is a name the engine keeps for itself; choose another entity name",
            )
            return None
        if not raw.fields:
            self.report(raw.declared, f"entity '{key}' has no fields")
            return None
        known = [*raw.fields, *SYSTEM_COLUMNS]
        fields: dict[str, Field] = {}
        for raw_field in raw.fields.values():
            built = self.field(raw, raw_field, known, in_lines=False)
            if built is not None:
                fields[raw_field.key] = built
        title = raw.data.get("title_field")
        if title is not None and title not in raw.fields:
            self.report(
                raw.where("title_field"),
                f"title_field names an unknown field '{title}'{_suggest(title, list(raw.fields))}",
            )
        elif title is None:
            title = next(
                (f.key for f in fields.values() if f.value_type in ("string", "sequence")), None
            )
        indexes = []
        for spec, where in raw.indexes:
            names = tuple(spec.get("fields") or ())
            bad = False
            for i, name in enumerate(names):
                target = fields.get(name)
                if name in SYSTEM_COLUMNS:
                    continue
                if name not in raw.fields:
                    self.report(
                        where.child("fields", i),
                        f"the index names an unknown field '{name}'"
                        f"{_suggest(name, list(raw.fields))}",
                    )
                    bad = True
                elif target is not None and not target.has_column:
                    self.report(
                        where.child("fields", i),
                        f"'{name}' is a {target.type} field and has no column to index",
                    )
                    bad = True
            if not bad:
                indexes.append(
                    IndexDef(fields=names, unique=bool(spec.get("unique")), name=spec.get("name"))
                )
        ledger = self.ledger(raw, fields, indexes)
        label = Label.from_yaml(raw.data.get("label"), Label.from_key(key).en)
        return Entity(
            key=key,
            label=label,
            plural=Label.from_yaml(raw.data.get("plural"), label.en) if raw.data.get("plural")
            else label,
            fields=MappingProxyType(fields),
            pack=raw.pack,
            description=Label.from_yaml(raw.data["description"])
            if raw.data.get("description") else None,
            title_field=title,
            icon=raw.data.get("icon"),
            archivable=bool(raw.data.get("archivable", True)) and ledger is None,
            audit=bool(raw.data.get("audit", True)),
            indexes=tuple(indexes),
            extended_by=tuple(raw.extended_by),
            ledger=ledger,
            renamed_from=raw.data.get("renamed_from"),
            origin=_origin(raw.declared, raw.pack),
        )

    def ledger(
        self, raw: RawEntity, fields: dict[str, Field], indexes: list[IndexDef]
    ) -> LedgerDef | None:
        """The entity's ledger, checked: its fields exist, hold numbers or keys, and are required.

        The dimensions are indexed together (appended to ``indexes``) so a
        balance is read from the index, not from a scan of every movement.
        """
        spec = raw.data.get("ledger")
        if not isinstance(spec, dict) or "quantity" not in spec or "dimensions" not in spec:
            return None  # no ledger, or the schema check has reported the missing keys
        ok = True

        def where(option: str, index: int | None = None) -> Located:
            at = raw.options.get(f"ledger.{option}") or raw.where("ledger")
            return at if index is None else at.child(index)

        def numeric(name: str, at: Located, what: str) -> bool:
            target = fields.get(name)
            if name not in raw.fields:
                self.report(at, f"the ledger's {what} names an unknown field '{name}'"
                            f"{_suggest(name, list(raw.fields))}")
                return False
            if target is None:
                return False  # the field itself is wrong and has been reported
            if target.value_type not in ("integer", "decimal") or not target.has_column:
                self.report(at, f"the ledger's {what} '{name}' must be a stored integer or "
                            f"decimal field, not a {target.type} field")
                return False
            return True

        quantity = spec["quantity"]
        ok = numeric(quantity, where("quantity"), "quantity") and ok
        if ok and not (fields[quantity].required or fields[quantity].type == "computed"):
            self.report(where("quantity"), f"the ledger's quantity '{quantity}' must be "
                        "required (a movement without a quantity moves nothing)")
            ok = False
        for i, name in enumerate(spec.get("amounts") or ()):
            ok = numeric(name, where("amounts", i), "amount") and ok
        dimensions = tuple(spec["dimensions"])
        for i, name in enumerate(dimensions):
            target = fields.get(name)
            at = where("dimensions", i)
            if name not in raw.fields:
                self.report(at, f"the ledger's dimension names an unknown field '{name}'"
                            f"{_suggest(name, list(raw.fields))}")
                ok = False
            elif target is None:
                ok = False
            elif target.value_type not in LEDGER_DIMENSION_TYPES or target.multiple:
                self.report(at, f"the ledger's dimension '{name}' is a {target.type} field; "
                            f"a dimension is one of: {', '.join(LEDGER_DIMENSION_TYPES)}")
                ok = False
            elif not target.required:
                self.report(at, f"the ledger's dimension '{name}' must be required: a movement "
                            "belongs to exactly one balance")
                ok = False
        if raw.data.get("archivable") is True:
            self.report(raw.where("archivable"), "a ledger's movements cannot be archived "
                        "(they are never changed); remove 'archivable: true'")
            ok = False
        if not ok:
            return None
        if not any(index.fields[: len(dimensions)] == dimensions for index in indexes):
            indexes.append(IndexDef(fields=dimensions))
        return LedgerDef(
            quantity=quantity,
            dimensions=dimensions,
            allow_negative=bool(spec.get("allow_negative", False)),
            amounts=tuple(spec.get("amounts") or ()),
        )


def build_entities(raw: dict[str, RawEntity]) -> tuple[dict[str, Entity], list[Problem]]:
    checker = _Checker(raw)
    entities: dict[str, Entity] = {}
    for key in sorted(raw):
        built = checker.entity(raw[key])
        if built is not None:
            entities[key] = built
        old = raw[key].data.get("renamed_from")
        if old is not None and old in raw:
            checker.report(raw[key].where("renamed_from"),
                           f"'{old}' is still an entity here; an entity can only be renamed from "
                           "one that is gone (its table is renamed on 'crm migrate')")
    return entities, checker.problems
