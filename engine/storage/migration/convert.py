"""How a field is stored, whether a new definition widens it, and value conversion.

Type changes are judged from definitions (the snapshot applied last vs the
new registry), never from reflected column types: our TypeDecorators
reflect fuzzily (a decimal is a scaled BIGINT on SQLite) and two fields can
share a column type while meaning different things.  So a field's storage
is reduced to a :class:`ColumnSpec`, and two specs are compared by rules a
consultant can predict.  Values are converted in Python — the same code on
both databases — reporting whether each conversion was exact.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, String, Text
from sqlalchemy.types import TypeEngine

from engine.metadata.field_types import DEFAULT_MAX_LENGTH
from engine.metadata.model import Field, Label
from engine.metadata.values import FALSE_WORDS, TRUE_WORDS, to_json
from engine.storage.tables import JsonType
from engine.storage.types import ExactDecimal, IdType, UTCDateTime

#: Digits a BIGINT holds: an integer widens only to a decimal with as many.
INTEGER_DIGITS = 19
_BIGINT_LIMIT = 2**63

_STRINGS = ("string", "email", "phone", "url")


@dataclass(frozen=True)
class ColumnSpec:
    """What a field's column stores; equal specs need no change to the column.

    ``kind`` is one of string, text, integer, decimal, boolean, date,
    datetime, json, list (a multiple choice) and reference.  ``choice``
    marks a single choice stored as a string; it matters for converting
    values, not for the column, so it is left out of comparisons.
    """

    kind: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    target: str | None = None
    choice: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        if self.kind == "string":
            return f"string({self.length})"
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.kind == "reference":
            return f"reference to {self.target}"
        return self.kind


def spec_of(fld: Field) -> ColumnSpec:
    """The storage of a field with a column (mirrors ``tables.column_type``)."""
    kind = fld.value_type
    if kind in _STRINGS:
        return ColumnSpec("string", length=fld.max_length or 255)
    if kind == "choice":
        return ColumnSpec("list") if fld.multiple else ColumnSpec("string", length=60, choice=True)
    if kind == "sequence":
        return ColumnSpec("string", length=64)
    if kind == "decimal":
        scale = fld.scale if fld.scale is not None else 2
        return ColumnSpec("decimal", precision=fld.precision or 18, scale=scale)
    if kind == "reference":
        return ColumnSpec("reference", target=fld.to)
    return ColumnSpec(kind)


def sql_type(spec: ColumnSpec) -> TypeEngine:
    """The column type for a spec, so old values are read as they were written."""
    if spec.kind == "string":
        return String(spec.length or 255)
    if spec.kind == "decimal":
        return ExactDecimal(spec.precision or 18, spec.scale if spec.scale is not None else 2)
    simple: dict[str, TypeEngine] = {
        "text": Text(),
        "integer": BigInteger(),
        "boolean": Boolean(),
        "date": Date(),
        "datetime": UTCDateTime(),
        "json": JsonType,
        "list": JsonType,
        "reference": IdType,
    }
    return simple[spec.kind]


def widens(old: ColumnSpec, new: ColumnSpec) -> bool:
    """Whether every value ``old`` can hold fits ``new`` unchanged."""
    if old == new:
        return True
    if old.kind == "string" and new.kind == "string":
        return (new.length or 0) >= (old.length or 0)
    if old.kind == "string" and new.kind == "text":
        return True
    if old.kind == "integer" and new.kind == "decimal":
        return (new.precision or 0) - (new.scale or 0) >= INTEGER_DIGITS
    if old.kind == "decimal" and new.kind == "decimal":
        old_int = (old.precision or 0) - (old.scale or 0)
        new_int = (new.precision or 0) - (new.scale or 0)
        return (new.scale or 0) >= (old.scale or 0) and new_int >= old_int
    return False


def type_label(fld: Field) -> str:
    """The field's type in a consultant's words: ``string(100)``, ``decimal(12,2)``."""
    kind = fld.value_type
    prefix = "computed " if fld.type == "computed" else ""
    if kind in _STRINGS and fld.max_length and fld.max_length != DEFAULT_MAX_LENGTH.get(kind):
        return f"{prefix}{kind}({fld.max_length})"
    if kind == "decimal":
        return f"{prefix}decimal({fld.precision or 18},{fld.scale if fld.scale is not None else 2})"
    if kind == "choice" and fld.multiple:
        return "choice (several)"
    if kind == "reference":
        return f"reference to {fld.to}"
    return f"{prefix}{kind}"


def field_from_data(key: str, data: Mapping[str, Any]) -> Field:
    """Rebuild the storage-relevant part of a field from its snapshot form."""
    return Field(
        key=key,
        type=data["type"],
        label=Label.from_yaml(data.get("label"), key),
        unique=bool(data.get("unique", False)),
        index=bool(data.get("index", False)),
        max_length=data.get("max_length"),
        precision=data.get("precision"),
        scale=data.get("scale"),
        multiple=bool(data.get("multiple", False)),
        to=data.get("to"),
        returns=data.get("returns"),
        stored=bool(data.get("stored", True)),
        choices=MappingProxyType(
            {k: Label.from_yaml(v, k) for k, v in (data.get("choices") or {}).items()}
        ),
        fields=MappingProxyType(
            {k: field_from_data(k, v) for k, v in (data.get("fields") or {}).items()}
        ),
    )


# -- values -----------------------------------------------------------------


def convert(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[Any, bool]:
    """``value`` (typed as ``old``) coerced to ``new``, and whether nothing was lost.

    Strings are cut to the new length, numbers rounded to the new scale;
    what cannot be converted becomes ``None``.  Either way the flag is
    False, so callers can count the values a change would alter.
    """
    if value is None:
        return None, True
    try:
        return _CONVERTERS[new.kind](value, old, new)
    except (ValueError, ArithmeticError, TypeError, InvalidOperation):
        return None, False


def _text_of(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[str, bool]:
    if isinstance(value, str):
        return value, True
    if isinstance(value, bool):
        return ("true" if value else "false"), True
    if isinstance(value, (int, Decimal)):
        return str(value), True
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat(), True
    if isinstance(value, list) and old.kind == "list":
        if new.choice:  # several choices into one: keep the first
            return str(value[0]), len(value) == 1
        return ", ".join(str(v) for v in value), True
    return json.dumps(to_json(value), ensure_ascii=False, sort_keys=True), True


def _to_string(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[Any, bool]:
    if isinstance(value, list) and not value:
        return None, True  # an empty selection is no value
    text, exact = _text_of(value, old, new)
    if new.kind == "string" and new.length is not None and len(text) > new.length:
        return text[: new.length], False
    return text, exact


def _number(value: Any) -> Decimal:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, str):
        return Decimal(value.strip().replace(",", ""))
    raise TypeError(type(value).__name__)


def _to_integer(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[Any, bool]:
    number = _number(value)
    if not number.is_finite():
        return None, False
    whole = int(number.to_integral_value(rounding=ROUND_HALF_UP))
    if abs(whole) >= _BIGINT_LIMIT:
        return None, False
    return whole, whole == number


def _to_decimal(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[Any, bool]:
    number = _number(value)
    if not number.is_finite():
        return None, False
    scale = new.scale if new.scale is not None else 2
    rounded = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if rounded != 0 and rounded.adjusted() >= (new.precision or 18) - scale:
        return None, False
    return rounded, rounded == number


def _to_boolean(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[Any, bool]:
    if isinstance(value, bool):
        return value, True
    if isinstance(value, (int, Decimal)) and value in (0, 1):
        return bool(value), True
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True, True
        if word in FALSE_WORDS:
            return False, True
    return None, False


def _to_date(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[Any, bool]:
    if isinstance(value, dt.datetime):
        return value.date(), value.time() == dt.time(0)
    if isinstance(value, dt.date):
        return value, True
    if isinstance(value, str):
        return dt.date.fromisoformat(value.strip()), True
    return None, False


def _to_datetime(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[Any, bool]:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        return None, False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC), True


def _to_json(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[Any, bool]:
    return to_json(value), True


def _to_list(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[Any, bool]:
    if isinstance(value, list):
        return [str(v) for v in value], all(isinstance(v, str) for v in value)
    return [_text_of(value, old, new)[0]], True


def _to_reference(value: Any, old: ColumnSpec, new: ColumnSpec) -> tuple[Any, bool]:
    # An id of one entity means nothing for another, and a number is not a link.
    return None, False


_CONVERTERS = {
    "string": _to_string,
    "text": _to_string,
    "integer": _to_integer,
    "decimal": _to_decimal,
    "boolean": _to_boolean,
    "date": _to_date,
    "datetime": _to_datetime,
    "json": _to_json,
    "list": _to_list,
    "reference": _to_reference,
}
