"""The function library of the expression language.

:data:`FUNCTIONS` is a plain dict on purpose: the compiler refuses any call
whose name is not a key, ``crm check`` lists the keys in its messages, and a
test checks that every key is documented in ``docs/expressions.md``. Arity
is read from each Python signature, so adding a function is one ``def`` and
one dict entry.

Every function receives already-evaluated arguments and, like the
operators in :mod:`.values`, answers ``None`` rather than raising when the
data does not fit. Collection functions treat a missing list (``None``) as
an empty one, so ``sum(lines.amount)`` is 0 for a deal without lines
whether storage gave us ``[]`` or nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from engine.context import default_clock

from . import values as v

_LISTS = (list, tuple)


def _items(value: Any) -> list[Any] | tuple[Any, ...] | None:
    """The elements of a list argument; ``None`` counts as empty, a scalar as no answer."""
    if value is None:
        return ()
    if isinstance(value, _LISTS):
        return value
    return None


def _plain(value: Any) -> Any:
    """Floats leave the library as Decimals, like every other number."""
    return v.to_number(value) if type(value) is float else value


# -- aggregates ---------------------------------------------------------------------


def fn_sum(items: Any) -> int | Decimal | None:
    """Total of a list, skipping ``None``; an empty or missing list sums to 0."""
    elements = _items(items)
    if elements is None:
        return None
    total: Any = 0
    for element in elements:
        if element is None:
            continue
        number = v.to_number(element)
        if number is None:
            return None
        total = v.add(total, number)
        if total is None:
            return None
    return total


def fn_count(items: Any) -> int | None:
    """How many elements of a list are not ``None``."""
    elements = _items(items)
    if elements is None:
        return None
    return sum(1 for element in elements if element is not None)


def fn_len(value: Any) -> int | None:
    """Length of text, a list or a mapping; a missing value has length 0."""
    if value is None:
        return 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    return None


def fn_avg(items: Any) -> Decimal | None:
    """Mean of a list as a Decimal, skipping ``None``; no numbers gives ``None``."""
    elements = _items(items)
    if elements is None:
        return None
    present = [element for element in elements if element is not None]
    if not present:
        return None
    total = fn_sum(present)
    if total is None:
        return None
    return v.truediv(total, len(present))


def _extreme(args: tuple[Any, ...], better: Callable[[Any, Any], bool | None]) -> Any:
    """Shared body of min() and max(): one list argument, or several values."""
    candidates: Any = args
    if len(args) == 1:
        candidates = _items(args[0])
        if candidates is None:  # min(x) of a single value is that value
            return _plain(args[0])
    best = None
    for candidate in candidates:
        if candidate is None:
            continue
        if best is None:
            best = candidate
            continue
        verdict = better(candidate, best)
        if verdict is None:  # e.g. text against a number
            return None
        if verdict:
            best = candidate
    return _plain(best)


def fn_min(first: Any, *rest: Any) -> Any:
    """Smallest of one list or of several values, ignoring ``None``."""
    return _extreme((first, *rest), v.lt)


def fn_max(first: Any, *rest: Any) -> Any:
    """Largest of one list or of several values, ignoring ``None``."""
    return _extreme((first, *rest), v.gt)


# -- numbers ------------------------------------------------------------------------


def fn_round(value: Any, ndigits: Any = 0) -> int | Decimal | None:
    """Round half away from zero (the way people round money), to ``ndigits`` places.

    Python's own ``round`` rounds half to even (``round(2.5) == 2``), which
    surprises everyone who is not a statistician.
    """
    number = v.to_number(value)
    places = v.to_number(ndigits)
    if number is None or places is None or places != int(places) or abs(places) > 1000:
        return None
    places = int(places)
    if type(number) is int and places >= 0:
        return number
    exponent = Decimal(1).scaleb(-places)
    try:
        result = Decimal(number).quantize(exponent, rounding=ROUND_HALF_UP, context=v.CONTEXT)
    except InvalidOperation:
        return None
    return int(result) if type(number) is int else result


def fn_abs(value: Any) -> int | Decimal | timedelta | None:
    """Absolute value of a number (or a duration)."""
    if type(value) is timedelta:
        return abs(value)
    number = v.to_number(value)
    if number is None:
        return None
    return abs(number) if type(number) is int else v.CONTEXT.abs(number)


def fn_number(value: Any) -> Decimal | None:
    """Text or a number as a Decimal; anything that is not a finite number gives ``None``."""
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except (InvalidOperation, ValueError):
            return None
    else:
        number = v.to_decimal(value)
    if number is None or not number.is_finite():
        return None
    return number


def fn_coalesce(first: Any, *rest: Any) -> Any:
    """The first argument that is not ``None``."""
    if first is not None:
        return _plain(first)
    for value in rest:
        if value is not None:
            return _plain(value)
    return None


# -- dates --------------------------------------------------------------------------


def resolve_clock(now: datetime | None) -> datetime:
    """The evaluation's "now": the caller's, or the default clock's; a naive one is taken as UTC."""
    if now is None:
        return default_clock().now()
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now


def fn_today(clock: datetime) -> date:
    """The date of the evaluation clock (see :func:`resolve_clock`)."""
    return clock.date()


def fn_now(clock: datetime) -> datetime:
    """The evaluation clock itself, a timezone-aware datetime."""
    return clock


def fn_days(count: Any) -> timedelta | None:
    """A duration of ``count`` days, to add to or subtract from a date."""
    number = v.to_number(count)
    if number is None:
        return None
    try:
        return timedelta(days=number if type(number) is int else float(number))
    except (OverflowError, ValueError):
        return None


def fn_days_between(start: Any, end: Any) -> int | None:
    """Calendar days from ``start`` to ``end`` (negative if ``end`` is earlier).

    Times of day are ignored: yesterday 23:00 to today 01:00 is one day,
    which is what "days since last contact" means to a salesperson.
    """
    first, last = v.as_date(start), v.as_date(end)
    if first is None or last is None:
        return None
    return (last - first).days


def fn_year(value: Any) -> int | None:
    """The year of a date, datetime or ISO text."""
    day = v.as_date(value)
    return None if day is None else day.year


def fn_month(value: Any) -> int | None:
    """The month (1-12) of a date, datetime or ISO text."""
    day = v.as_date(value)
    return None if day is None else day.month


def fn_day(value: Any) -> int | None:
    """The day of the month of a date, datetime or ISO text."""
    day = v.as_date(value)
    return None if day is None else day.day


def fn_date(value: Any) -> date | None:
    """A date from ISO text (``"2024-03-31"``) or from a datetime."""
    return v.as_date(value)


# -- text ---------------------------------------------------------------------------


def fn_lower(value: Any) -> str | None:
    """Text in lower case."""
    return value.lower() if isinstance(value, str) else None


def fn_upper(value: Any) -> str | None:
    """Text in upper case."""
    return value.upper() if isinstance(value, str) else None


def fn_trim(value: Any) -> str | None:
    """Text without leading and trailing spaces."""
    return value.strip() if isinstance(value, str) else None


def format_decimal(number: Decimal) -> str:
    """A Decimal as people write it: ``1000`` not ``1E+3``, ``0`` not ``-0``.

    Trailing zeros are kept (``12.50`` stays ``12.50``: it is money).
    Absurd exponents keep the scientific form so text() cannot be made to
    print a million zeros.
    """
    if not number.is_finite():
        return str(number)
    if number.is_zero():
        number = number.copy_abs()
    if abs(number.adjusted()) > 1000 or abs(number.as_tuple().exponent) > 1000:
        return str(number)
    return format(number, "f")


def fn_text(value: Any) -> str | None:
    """Any value as text: numbers without exponent, dates in ISO, true/false."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        value = v.to_decimal(value)
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def fn_is_empty(value: Any) -> bool:
    """True for ``None``, blank text (spaces only count as blank) and empty lists."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | Mapping | set | frozenset):
        return not value
    return False


def fn_contains(haystack: Any, needle: Any) -> bool:
    """Whether text contains some text, or a list contains a value."""
    if isinstance(haystack, str):
        return isinstance(needle, str) and needle in haystack
    if isinstance(haystack, _LISTS):
        return bool(v.contains(haystack, needle))
    return False


def fn_startswith(text: Any, prefix: Any) -> bool:
    """Whether text starts with a prefix; False unless both are text."""
    return isinstance(text, str) and isinstance(prefix, str) and text.startswith(prefix)


# -- the table ----------------------------------------------------------------------

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": fn_abs,
    "avg": fn_avg,
    "coalesce": fn_coalesce,
    "contains": fn_contains,
    "count": fn_count,
    "date": fn_date,
    "day": fn_day,
    "days": fn_days,
    "days_between": fn_days_between,
    "is_empty": fn_is_empty,
    "len": fn_len,
    "lower": fn_lower,
    "max": fn_max,
    "min": fn_min,
    "month": fn_month,
    "now": fn_now,
    "number": fn_number,
    "round": fn_round,
    "startswith": fn_startswith,
    "sum": fn_sum,
    "text": fn_text,
    "today": fn_today,
    "trim": fn_trim,
    "upper": fn_upper,
    "year": fn_year,
}
"""Every function an expression may call, by the name consultants write."""

CLOCK_FUNCTIONS = frozenset({"now", "today"})
"""Functions that receive the evaluation clock instead of arguments; never constant-folded."""


def _arity(name: str, function: Callable[..., Any]) -> tuple[int, int | None]:
    """(minimum, maximum or None) positional arguments a consultant may pass."""
    if name in CLOCK_FUNCTIONS:
        return 0, 0
    low, high = 0, 0
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            return low, None
        high += 1
        if parameter.default is parameter.empty:
            low += 1
    return low, high


ARITY: dict[str, tuple[int, int | None]] = {
    name: _arity(name, function) for name, function in FUNCTIONS.items()
}
"""Allowed argument counts per function, checked at compile time."""
