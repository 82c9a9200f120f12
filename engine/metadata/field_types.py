"""The field types a definition may use, and which options each one takes.

This table is plain data on purpose: the semantic checker, the reference
documentation and the tests all read it, so a type's options are declared
once.  How a type is stored (SQL column type) lives in ``engine.storage``;
how its values are coerced and validated lives in ``engine.metadata.values``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Options every field may carry, whatever its type.
COMMON_OPTIONS: frozenset[str] = frozenset(
    {
        "type",
        "label",
        "help",
        "required",
        "required_if",
        "visible_if",
        "readonly",
        "default",
        "default_expression",
        "index",
        "searchable",
        "tracked",
        "hidden",
        "renamed_from",
        "reveals",
    }
)


@dataclass(frozen=True)
class FieldType:
    """What a field type is and how the engine treats it.

    ``storage`` says where its values live: ``column`` (one column in the
    entity's table), ``lines`` (an owned child table), ``link`` (a link
    table) or ``virtual`` (computed on read, nothing stored).
    """

    name: str
    summary: str
    options: frozenset[str]
    storage: str = "column"
    allowed_in_lines: bool = True
    can_be_unique: bool = True
    orderable: bool = True


def _type(
    name: str,
    summary: str,
    *options: str,
    storage: str = "column",
    allowed_in_lines: bool = True,
    can_be_unique: bool = True,
    orderable: bool = True,
) -> FieldType:
    return FieldType(
        name=name,
        summary=summary,
        options=COMMON_OPTIONS | frozenset(options) | (frozenset({"unique"}) if can_be_unique else frozenset()),
        storage=storage,
        allowed_in_lines=allowed_in_lines,
        can_be_unique=can_be_unique,
        orderable=orderable,
    )


FIELD_TYPES: dict[str, FieldType] = {
    t.name: t
    for t in (
        _type("string", "A single line of text (line breaks and other control characters are refused).", "max_length", "min_length", "pattern"),
        _type("text", "Several lines of text (line breaks and tabs kept; NUL and other control characters refused).", "max_length", can_be_unique=False),
        _type("integer", "A whole number, within signed 64 bits.", "min", "max"),
        _type(
            "decimal",
            "An exact decimal number, used for money: `precision` digits in all, `scale` after the point.",
            "precision",
            "scale",
            "min",
            "max",
        ),
        _type("boolean", "Yes or no.", can_be_unique=False),
        _type("date", "A calendar date.", "min", "max"),
        _type("datetime", "A moment in time, stored in UTC, within the years 1 to 9999 on every clock.", "min", "max"),
        _type(
            "choice",
            "One value (or several, with `multiple`) from a list of stable keys with labels.",
            "choices",
            "multiple",
        ),
        _type("email", "An e-mail address, checked for shape and stored in lower case.", "max_length"),
        _type("phone", "A telephone number: digits, spaces and + - ( ).", "max_length"),
        _type("url", "A web address starting with http:// or https://.", "max_length"),
        _type(
            "reference",
            "A link to one record of another entity (many-to-one), with an on-delete rule.",
            "to",
            "on_delete",
            can_be_unique=True,
        ),
        _type(
            "lines",
            "Owned child rows with their own fields, such as order lines.",
            "fields",
            storage="lines",
            allowed_in_lines=False,
            can_be_unique=False,
            orderable=False,
        ),
        _type(
            "many_to_many",
            "Links to any number of records of another entity.",
            "to",
            storage="link",
            allowed_in_lines=False,
            can_be_unique=False,
            orderable=False,
        ),
        _type(
            "computed",
            "A value computed from an expression: stored on write, or computed on read.",
            "expression",
            "returns",
            "stored",
            "precision",
            "scale",
            can_be_unique=False,
        ),
        _type(
            "sequence",
            "A number given by the engine from a pattern such as `SO-{YYYY}-{#####}`; unique.",
            "sequence_pattern",
            can_be_unique=False,
        ),
        _type("json", "Free-form structured data.", can_be_unique=False, orderable=False),
    )
}

#: Types a computed field may return.
COMPUTED_RESULT_TYPES = ("string", "text", "integer", "decimal", "boolean", "date", "datetime")

#: Default maximum lengths, so a string column is never unbounded by accident.
DEFAULT_MAX_LENGTH = {"string": 255, "email": 254, "phone": 40, "url": 2048, "choice": 60}

DEFAULT_PRECISION = 18
DEFAULT_SCALE = 2

ON_DELETE_RULES = ("restrict", "set_null", "cascade")
