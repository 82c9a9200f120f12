"""Value rules of the expression language: numbers, dates, nulls.

Consultants should not have to think about Python's number tower, so every
operator here accepts whatever a record hands us (``int``, ``Decimal``,
``float``, ``None``, dates, ISO strings) and either returns the obvious
answer or ``None``. Nothing in this module raises for data-dependent
reasons: a record with an odd value must not break a form or a workflow.

Decimal arithmetic goes through one fixed :data:`CONTEXT` rather than the
thread's ambient context, so an expression gives the same answer whatever
the host process did to ``decimal.getcontext()``.

Each operator starts with a fast path for the common exact types (checked
with ``type(x) is ...``, which is cheaper than ``isinstance`` and keeps
``bool`` out of arithmetic) and falls back to a slower coercing path.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from functools import lru_cache
from typing import Any

CONTEXT = Context(
    prec=28,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
"""The arithmetic context of every expression (28 significant digits)."""

_SEQUENCES = (list, tuple)
_ORDERABLE = frozenset({int, Decimal, float, str, date, datetime, timedelta})

# Errors that data can provoke in an operation; each one means "no answer".
DATA_ERRORS = (ArithmeticError, TypeError, ValueError, AttributeError, KeyError, IndexError)

_add = CONTEXT.add
_sub = CONTEXT.subtract
_mul = CONTEXT.multiply
_div = CONTEXT.divide


# -- coercion -----------------------------------------------------------------------


def to_number(value: Any) -> int | Decimal | None:
    """``value`` as ``int`` or ``Decimal``; floats go through ``str`` so 0.1 stays 0.1.

    Booleans are not numbers here: ``true + 1`` is a mistake, not 2.
    """
    kind = type(value)
    if kind is int or kind is Decimal:
        return value
    if kind is float:
        return Decimal(str(value)) if value == value else None  # NaN is not a number
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(str(value)) if value == value else None
    return None


def to_decimal(value: Any) -> Decimal | None:
    """``value`` as a ``Decimal`` (ints included), or ``None``."""
    number = to_number(value)
    if number is None:
        return None
    return number if type(number) is Decimal else Decimal(number)


def parse_iso(text: str) -> date | datetime | None:
    """Parse an ISO 8601 date (``2024-01-31``) or date-time; ``None`` if it is neither.

    Date-only text gives a ``date`` so that comparing it with a date field
    does not drag in times of day. Cached because the same literal is
    compared against every record; text too long to be a date is rejected
    before it can reach (and bloat) the cache.
    """
    if len(text) > 64:
        return None
    return _parse_iso(text)


@lru_cache(maxsize=1024)
def _parse_iso(text: str) -> date | datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) <= 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def as_date(value: Any) -> date | None:
    """A ``date`` from a date, a datetime (its date part) or ISO text."""
    if isinstance(value, str):
        value = parse_iso(value)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return None


def _align_datetimes(a: date, b: date) -> tuple[date, date]:
    """Make two date-likes comparable: date vs datetime, naive vs aware.

    A plain date stands for midnight; a naive datetime is taken to be in the
    same zone as the aware one it is compared with.
    """
    a_dt = isinstance(a, datetime)
    b_dt = isinstance(b, datetime)
    if a_dt != b_dt:
        if a_dt:
            b = datetime(b.year, b.month, b.day, tzinfo=a.tzinfo)
        else:
            a = datetime(a.year, a.month, a.day, tzinfo=b.tzinfo)
    elif a_dt:
        if a.tzinfo is None and b.tzinfo is not None:
            a = a.replace(tzinfo=b.tzinfo)
        elif b.tzinfo is None and a.tzinfo is not None:
            b = b.replace(tzinfo=a.tzinfo)
    return a, b


def align(a: Any, b: Any) -> tuple[Any, Any]:
    """Coerce two operands of different types so Python can compare them.

    Floats become Decimals (``Decimal("0.1") == 0.1`` is False in Python);
    ISO text next to a date becomes a date; dates and datetimes meet at
    midnight. Anything else is returned unchanged.
    """
    if type(a) is float or type(b) is float:
        na, nb = to_number(a), to_number(b)
        if na is not None and nb is not None:
            return na, nb
        return a, b
    a_date = isinstance(a, date)
    b_date = isinstance(b, date)
    if a_date and isinstance(b, str):
        parsed = parse_iso(b)
        if parsed is None:
            return a, b
        b, b_date = parsed, True
    elif b_date and isinstance(a, str):
        parsed = parse_iso(a)
        if parsed is None:
            return a, b
        a, a_date = parsed, True
    if a_date and b_date:
        return _align_datetimes(a, b)
    return a, b


# -- arithmetic ---------------------------------------------------------------------


def _is_num(kind: type) -> bool:
    return kind is int or kind is Decimal


def add(a: Any, b: Any) -> Any:
    """``a + b``: numbers, two strings, or date/datetime + timedelta."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a + b
    if _is_num(ta) and _is_num(tb):
        try:
            return _add(a, b)
        except ArithmeticError:
            return None
    if a is None or b is None:
        return None
    if ta is str:
        return a + b if tb is str else None
    if tb is str:
        return None
    if (
        isinstance(a, date | timedelta)
        and tb is timedelta
        or (ta is timedelta and isinstance(b, date))
    ):
        try:
            return a + b
        except OverflowError:
            return None
    na, nb = to_number(a), to_number(b)
    if na is None or nb is None:
        return None
    return add(na, nb)


def sub(a: Any, b: Any) -> Any:
    """``a - b``: numbers, date - timedelta, date - date (a timedelta)."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a - b
    if _is_num(ta) and _is_num(tb):
        try:
            return _sub(a, b)
        except ArithmeticError:
            return None
    if a is None or b is None:
        return None
    if isinstance(a, date) or isinstance(b, date):
        a, b = align(a, b)
        if isinstance(a, date) and (tb is timedelta or isinstance(b, date)):
            try:
                return a - b
            except (OverflowError, TypeError):
                return None
        return None
    if ta is timedelta and tb is timedelta:
        return a - b
    na, nb = to_number(a), to_number(b)
    if na is None or nb is None:
        return None
    return sub(na, nb)


def mul(a: Any, b: Any) -> Any:
    """``a * b`` for numbers only (``"ab" * 1000000`` would be a memory bomb)."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a * b
    if _is_num(ta) and _is_num(tb):
        try:
            return _mul(a, b)
        except ArithmeticError:
            return None
    na, nb = to_number(a), to_number(b)
    if na is None or nb is None:
        return None
    return mul(na, nb)


def truediv(a: Any, b: Any) -> Decimal | None:
    """``a / b``, always a Decimal (``7 / 2`` is 3.5); by zero gives ``None``."""
    ta, tb = type(a), type(b)
    if _is_num(ta) and _is_num(tb):
        try:
            return _div(a, b)
        except ArithmeticError:
            return None
    na, nb = to_number(a), to_number(b)
    if na is None or nb is None:
        return None
    return truediv(na, nb)


def _decimal_divmod(a: Decimal, b: Decimal) -> tuple[Decimal, Decimal]:
    """Floor division and modulo with Python's int rules (the result of ``%``
    has the sign of the divisor) instead of Decimal's truncating ones, so
    ``-7 // 2`` is -4 whether the numbers are ints or Decimals."""
    q, r = CONTEXT.divmod(a, b)
    if r and (r < 0) != (b < 0):
        q = _sub(q, 1)
        r = _add(r, b)
    return q, r


def floordiv(a: Any, b: Any) -> int | Decimal | None:
    """``a // b``, rounding down; by zero gives ``None``."""
    na, nb = to_number(a), to_number(b)
    if na is None or nb is None or not nb:
        return None
    if type(na) is int and type(nb) is int:
        return na // nb
    try:
        return _decimal_divmod(Decimal(na), Decimal(nb))[0]
    except ArithmeticError:
        return None


def mod(a: Any, b: Any) -> int | Decimal | None:
    """``a % b`` with the sign of ``b``; by zero gives ``None``."""
    na, nb = to_number(a), to_number(b)
    if na is None or nb is None or not nb:
        return None
    if type(na) is int and type(nb) is int:
        return na % nb
    try:
        return _decimal_divmod(Decimal(na), Decimal(nb))[1]
    except ArithmeticError:
        return None


def neg(a: Any) -> Any:
    """``-a`` for numbers and timedeltas."""
    if type(a) is int:
        return -a
    if type(a) is timedelta:
        return -a
    number = to_number(a)
    if number is None:
        return None
    if type(number) is int:
        return -number
    try:
        return CONTEXT.minus(number)
    except ArithmeticError:
        return None


def pos(a: Any) -> Any:
    """``+a``: a number unchanged (floats become Decimals), else ``None``."""
    if type(a) is timedelta:
        return a
    return to_number(a)


# -- comparison ---------------------------------------------------------------------


def eq(a: Any, b: Any) -> bool:
    """``a == b`` after :func:`align` (``None == None`` is True)."""
    if type(a) is type(b) and (type(a) is not datetime or _same_awareness(a, b)):
        try:
            return bool(a == b)
        except DATA_ERRORS:
            return False
    if a is None or b is None:
        return False
    a, b = align(a, b)
    try:
        return bool(a == b)
    except DATA_ERRORS:
        return False


def _same_awareness(a: datetime, b: datetime) -> bool:
    return (a.tzinfo is None) == (b.tzinfo is None)


def ne(a: Any, b: Any) -> bool:
    """``a != b``, the exact negation of :func:`eq`."""
    return not eq(a, b)


def _ordering(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool | None]:
    """Build ``<``-style operators: ``None`` on either side is False, a type
    mismatch that cannot be coerced is ``None`` (no answer)."""

    def ordered(a: Any, b: Any) -> bool | None:
        kind, other = type(a), type(b)
        if (kind is other and kind in _ORDERABLE) or (
            (kind is int or kind is Decimal) and (other is int or other is Decimal)
        ):
            try:
                return compare(a, b)
            except DATA_ERRORS:  # Decimal NaN; naive vs aware datetimes get aligned below
                if kind is not datetime:
                    return None
        if a is None or b is None:
            return False
        a, b = align(a, b)
        if type(a) is str and type(b) is not str or type(b) is str and type(a) is not str:
            return None  # "10" < 9 has no sensible answer
        try:
            return bool(compare(a, b))
        except DATA_ERRORS:
            return None

    ordered.__name__ = compare.__name__
    ordered.__doc__ = f"``{compare.__name__}`` with null and coercion rules."
    return ordered


lt = _ordering(operator.lt)
le = _ordering(operator.le)
gt = _ordering(operator.gt)
ge = _ordering(operator.ge)


def contains(container: Any, item: Any) -> bool | None:
    """``item in container`` for lists, tuples and strings.

    A missing container holds nothing (False). List membership uses
    :func:`eq`, so ``0.1 in [0.1]`` holds whether the values are floats or
    Decimals and ISO text matches dates.
    """
    if container is None:
        return False
    if isinstance(container, str):
        return item in container if isinstance(item, str) else None
    if isinstance(container, (list, tuple, set, frozenset)):
        return any(eq(item, element) for element in container)
    return None


def not_contains(container: Any, item: Any) -> bool | None:
    """``item not in container``; ``None`` stays ``None`` when there is no answer."""
    found = contains(container, item)
    return None if found is None else not found


# -- attribute access ---------------------------------------------------------------


def get_attr(obj: Any, key: str) -> Any:
    """``obj.key``: a mapping's value, or the values of a list of mappings.

    Reading through a list flattens one level, so ``orders.lines.amount``
    is one flat list of amounts that ``sum()`` can add up. Anything that is
    not a mapping (including Python objects) has no attributes: we never
    call ``getattr`` on data.
    """
    if type(obj) is dict:
        return obj.get(key)
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    if isinstance(obj, _SEQUENCES):
        result: list[Any] = []
        for item in obj:
            if isinstance(item, _SEQUENCES):
                result.extend(get_attr(item, key))
                continue
            value = item.get(key) if isinstance(item, Mapping) else None
            if isinstance(value, _SEQUENCES):
                result.extend(value)
            else:
                result.append(value)
        return result
    return None
