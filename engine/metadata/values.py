"""Turning what callers send into typed values, and typed values into JSON.

Callers are forms (strings), the API (JSON), imports (cells) and the CLI
(``key=value`` text); all of them go through :func:`coerce`, so a value is
accepted or refused the same way whichever door it came through.

It lives with the definitions, below storage and the services, because what a
field accepts is part of its definition: workflow actions are checked against
it when definitions load, and schema migrations convert stored columns with it,
so metadata and storage need it without importing the service layer.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from engine.metadata.model import Field

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^\+?[0-9 ()\-.]{3,40}$")
URL_RE = re.compile(r"^https?://[^\s/$.?#].[^\s]*$", re.IGNORECASE)
TRUE_WORDS = {"true", "1", "yes", "y", "on", "是", "真"}
FALSE_WORDS = {"false", "0", "no", "n", "off", "否", "假"}
#: Whole numbers (integers, ids, versions) are signed 64-bit on every database.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: Characters a single-line field refuses: line breaks and the other control characters.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
#: Characters a multi-line field refuses: controls other than tab and line breaks.
TEXT_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Enough digits to quantize any decimal column exactly (their precision is checked first).
_EXACT = Context(prec=100, traps=[InvalidOperation])


class ValueProblem(Exception):
    """A value that does not fit its field: a message key and its parameters."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _text(field: Field, value: Any) -> str:
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueProblem("expected_text")
    if field.value_type == "text":
        return _long_text(value)
    return _single_line(value.strip())


def searchable_text(text: str) -> str:
    """Text to search for: anything a text field may hold (no NUL, which PostgreSQL refuses)."""
    return _long_text(text)


def _long_text(text: str) -> str:
    """``text`` with its line breaks and tabs; NUL and the other controls are refused."""
    if TEXT_CONTROL_RE.search(text):
        raise ValueProblem("control_character")
    return text


def _single_line(text: str) -> str:
    """``text``, refused when it holds a line break or another control character.

    A one-line value ends up in e-mail subjects and headers, CSV cells and
    page titles, where a line break splits or forges what follows it.
    """
    if CONTROL_RE.search(text):
        raise ValueProblem("single_line")
    return text


#: A number whose commas group thousands: 1,234 or 1,234,567.89 (digits of any script).
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")


def _ungrouped(text: str, problem: str) -> str:
    """``text`` without the commas grouping its thousands.

    A comma used any other way is refused, never guessed: ``3,5`` is three
    and a half where a comma marks decimals and thirty-five where it groups
    digits, so reading it either way would silently store a wrong amount.
    """
    if "," not in text:
        return text
    if _GROUPED.fullmatch(text):
        return text.replace(",", "")
    raise ValueProblem(problem)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueProblem("expected_integer")
    if isinstance(value, int):
        return _in_range(value)
    if isinstance(value, (float, Decimal)):
        if not (value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)):
            raise ValueProblem("expected_integer")  # NaN (even a signalling one), infinities
        if not INT_MIN <= value <= INT_MAX:  # before int(): 1e999999 would be a huge int
            raise _out_of_range()
        if value == int(value):
            return int(value)
        raise ValueProblem("expected_integer")
    if isinstance(value, str):
        text = _ungrouped(value.strip(), "expected_integer")
        if re.fullmatch(r"[+-]?\d+", text):
            sign, digits = ("-" if text[0] == "-" else ""), text.lstrip("+-").lstrip("0")
            if len(digits) > 19:  # before int(): it refuses over 4,300 digits anyway
                raise _out_of_range()
            return _in_range(int(sign + (digits or "0")))
    raise ValueProblem("expected_integer")


def whole_number(text: str | None) -> int | None:
    """``text`` as a non-negative whole number a 64-bit column holds, else None.

    For ids and versions in links and forms: ``str.isdigit`` alone lets
    through digits of other scripts (``"²"``), which ``int`` refuses, and
    numbers no column holds.
    """
    if not text or not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    number = int(text)
    return number if number <= INT_MAX else None


def _out_of_range() -> ValueProblem:
    return ValueProblem("integer_out_of_range", min=INT_MIN, max=INT_MAX)


def _in_range(number: int) -> int:
    """``number`` if a signed 64-bit column holds it (every database's BIGINT)."""
    if not INT_MIN <= number <= INT_MAX:
        raise _out_of_range()
    return number


def _decimal(field: Field, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueProblem("expected_number")
    try:
        if isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, (int, Decimal)):
            number = Decimal(value)
        elif isinstance(value, str):
            number = Decimal(_ungrouped(value.strip(), "decimal_comma"))
        else:
            raise ValueProblem("expected_number")
    except InvalidOperation:
        raise ValueProblem("expected_number") from None
    scale = field.scale if field.scale is not None else 2
    return _fit(number, scale, Decimal(1).scaleb(-scale), (field.precision or 18) - scale)


def _fit(number: Decimal, scale: int, quantum: Decimal, digits: int) -> Decimal:
    """``number`` at the field's scale, refused when it has more decimals or digits."""
    if not number.is_finite():
        raise ValueProblem("expected_number")
    if number.is_zero():
        number = Decimal(0)  # 0E+99999 is zero, not a number of 99999 digits
    elif number.adjusted() >= digits:  # before quantizing: 1e400 has no exact 2-decimal form
        raise ValueProblem("too_large_number", digits=digits)
    try:
        rounded = number.quantize(quantum, context=_EXACT)
    except InvalidOperation:  # an exponent beyond any context (1e-999999999999)
        raise ValueProblem("too_many_decimals", scale=scale) from None
    if rounded != number:
        raise ValueProblem("too_many_decimals", scale=scale)
    return rounded


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueProblem("expected_boolean")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueProblem("expected_date")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueProblem("expected_date")


#: The moments a datetime field holds: a day inside year 1..9999 on every clock of the world.
FIRST_MOMENT = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
LAST_MOMENT = dt.datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=dt.UTC)


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        result = value
    elif isinstance(value, str):
        try:
            result = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueProblem("expected_datetime") from None
    else:
        raise ValueProblem("expected_datetime")
    if result.tzinfo is None:
        result = result.replace(tzinfo=dt.UTC)
    try:
        result = result.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueProblem("datetime_out_of_range") from None
    if not FIRST_MOMENT <= result <= LAST_MOMENT:
        raise ValueProblem("datetime_out_of_range")
    return result


def _choice_key(field: Field, value: Any) -> str:
    key = str(value).strip() if isinstance(value, (str, int)) else None
    if key is None or key not in field.choices:
        raise ValueProblem("invalid_choice", value=value, choices=", ".join(field.choices))
    return key


def _choice(field: Field, value: Any) -> Any:
    if not field.multiple:
        return _choice_key(field, value)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueProblem("expected_list")
    keys: list[str] = []
    for item in items:
        key = _choice_key(field, item)
        if key not in keys:
            keys.append(key)
    return keys


def _reference_id(field: Field, value: Any) -> int:
    if isinstance(value, Mapping) and "id" in value:
        value = value["id"]
    try:
        number = _integer(value)
    except ValueProblem:
        raise ValueProblem("expected_reference", entity=field.to) from None
    if number <= 0:
        raise ValueProblem("expected_reference", entity=field.to)
    return number


def _email(field: Field, value: Any) -> str:
    text = _text(field, value).lower()
    if not EMAIL_RE.match(text):
        raise ValueProblem("invalid_email")
    return text


def _phone(field: Field, value: Any) -> str:
    text = _text(field, value)
    if not PHONE_RE.match(text):
        raise ValueProblem("invalid_phone")
    return text


def _url(field: Field, value: Any) -> str:
    text = _text(field, value)
    if not URL_RE.match(text):
        raise ValueProblem("invalid_url")
    return text


def _many(field: Field, value: Any) -> list[int]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return sorted({_reference_id(field, item) for item in items if not _is_blank(item)})


#: How each value type is read (a table, so a big import does not walk a chain of ifs).
_BY_KIND: dict[str, Any] = {
    "string": _text,
    "text": _text,
    "email": _email,
    "phone": _phone,
    "url": _url,
    "integer": lambda field, value: _integer(value),
    "decimal": _decimal,
    "boolean": lambda field, value: _boolean(value),
    "date": lambda field, value: _date(value),
    "datetime": lambda field, value: _datetime(value),
    "choice": _choice,
    "reference": _reference_id,
    "many_to_many": _many,
    "json": lambda field, value: value,
    "sequence": _text,
}


def coerce(field: Field, value: Any) -> Any:
    """The typed value for ``field``, or :class:`ValueProblem`; blank means None.

    Lines and many-to-many values are coerced by the record service, which
    knows their sub-fields and targets.
    """
    kind = field.value_type
    if kind != "json" and (value is None or (isinstance(value, str) and not value.strip())):
        return [] if field.type == "choice" and field.multiple else None
    if kind in ("string", "text") and isinstance(value, str):
        return _long_text(value) if kind == "text" else _single_line(value.strip())
    convert = _BY_KIND.get(kind)
    if convert is not None:
        return convert(field, value)
    raise ValueProblem("expected_text")  # pragma: no cover - every type is handled above


def coercer(field: Field) -> Callable[[Any], Any]:
    """:func:`coerce` for one field, decided once: ``coercer(f)(v) == coerce(f, v)``.

    A bulk write reads thousands of values per field.  Looking at the field's
    type, scale and choices once, and taking the values a file is made of
    (plain text, plain digits, a key) the short way, leaves per value only
    what the value itself needs.  Whatever is not on a short way goes through
    :func:`coerce`, so the two never disagree (tests/test_import_batch.py
    compares them value by value).
    """
    kind = field.value_type

    def general(value: Any) -> Any:
        return coerce(field, value)

    if kind in ("string", "sequence"):
        def text(value: Any) -> Any:
            if type(value) is str and value.isprintable():
                return value.strip() or None
            return coerce(field, value)
        return text
    if kind in ("email", "phone", "url"):
        pattern, lower = {"email": (EMAIL_RE, True), "phone": (PHONE_RE, False),
                          "url": (URL_RE, False)}[kind]

        def checked(value: Any) -> Any:
            if type(value) is str and value.isprintable():
                text = value.strip()
                if lower:
                    text = text.lower()
                if text and pattern.match(text):
                    return text
            return coerce(field, value)  # a blank, or the field's own message
        return checked
    if kind == "text":
        def long_text(value: Any) -> Any:
            if type(value) is str and not TEXT_CONTROL_RE.search(value):
                return value if value.strip() else None
            return coerce(field, value)
        return long_text
    if kind == "integer":
        def integer(value: Any) -> Any:
            if type(value) is int and INT_MIN <= value <= INT_MAX:
                return value
            if type(value) is str:
                digits = value.strip()
                if len(digits) < 19 and digits.isascii() and digits.isdigit():
                    return int(digits)
            return coerce(field, value)
        return integer
    if kind == "decimal":
        scale = field.scale if field.scale is not None else 2
        quantum = Decimal(1).scaleb(-scale)
        digits = (field.precision or 18) - scale

        def decimal(value: Any) -> Any:
            if type(value) is str and value.isascii() and "," not in value:
                try:
                    number = Decimal(value.strip())
                except InvalidOperation:
                    return coerce(field, value)  # its own message (or None for a blank)
                return _fit(number, scale, quantum, digits)
            return coerce(field, value)
        return decimal
    if kind == "boolean":
        def boolean(value: Any) -> Any:
            if type(value) is bool:
                return value
            if type(value) is str:
                word = value.strip().lower()
                if word in TRUE_WORDS:
                    return True
                if word in FALSE_WORDS:
                    return False
            return coerce(field, value)
        return boolean
    if kind == "date":
        def date(value: Any) -> Any:
            return value if type(value) is dt.date else coerce(field, value)
        return date
    if kind == "datetime":
        def moment(value: Any) -> Any:
            if type(value) is dt.datetime and value.tzinfo is dt.UTC:
                return value if FIRST_MOMENT <= value <= LAST_MOMENT else coerce(field, value)
            return coerce(field, value)
        return moment
    if kind == "choice" and not field.multiple:
        keys = frozenset(k for k in field.choices if isinstance(k, str) and k and k == k.strip())

        def choice(value: Any) -> Any:
            if type(value) is str and value in keys:
                return value
            return coerce(field, value)
        return choice
    if kind == "reference":
        def reference(value: Any) -> Any:
            if type(value) is int and 0 < value <= INT_MAX:
                return value
            return coerce(field, value)
        return reference
    return general


def check_limits(field: Field, value: Any) -> ValueProblem | None:
    """Length, pattern and range rules for an already typed value."""
    if value is None:
        return None
    if isinstance(value, str):
        if field.max_length is not None and len(value) > field.max_length:
            return ValueProblem("too_long", max=field.max_length, length=len(value))
        if field.min_length is not None and len(value) < field.min_length:
            return ValueProblem("too_short", min=field.min_length)
        if field.pattern and not re.fullmatch(field.pattern, value):
            return ValueProblem("pattern")
        return None
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        if field.min is not None and value < field.min:
            return ValueProblem("below_min", min=field.min)
        if field.max is not None and value > field.max:
            return ValueProblem("above_max", max=field.max)
    return None


#: Types :func:`to_json` returns as they are.
JSON_READY = frozenset({str, int, bool, float, type(None)})


def to_json(value: Any) -> Any:
    """A JSON-ready form: decimals as strings (exact), dates as ISO text."""
    if type(value) in JSON_READY:  # the common case first: audit rows of big imports
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value
