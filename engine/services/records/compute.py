"""Defaults and computed fields, evaluated in dependency order.

A computed field may read other computed fields (``weighted = total *
probability / 100`` where ``total = sum(lines.amount)``), so fields are
ordered once per entity by what their expressions read; line fields are
computed before the record's own, since totals read them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.metadata.model import Field
from engine.metadata.values import ValueProblem, coerce


def _order(fields: Mapping[str, Field]) -> tuple[Field, ...]:
    computed = {k: f for k, f in fields.items() if f.type == "computed" and f.expression}
    ordered: list[Field] = []
    state: dict[str, int] = {}

    def visit(key: str) -> None:
        if state.get(key) == 2:
            return
        if state.get(key) == 1:  # a cycle: evaluate in definition order
            return
        state[key] = 1
        for name in computed[key].expression.names:  # type: ignore[union-attr]
            if name in computed and name != key:
                visit(name)
        state[key] = 2
        ordered.append(computed[key])

    for key in computed:
        visit(key)
    return tuple(ordered)


class ComputedOrder:
    """Per-registry memo of each field set's evaluation order.

    Keyed by the identity of the registry's (immutable) field mappings, and
    owned by the service that owns the registry, so it can neither go stale
    nor leak between sites.
    """

    def __init__(self) -> None:
        self._orders: dict[int, tuple[Mapping[str, Field], tuple[Field, ...]]] = {}
        self._picked: dict[tuple[str, int], tuple[Mapping[str, Field], tuple[Field, ...]]] = {}

    def __call__(self, fields: Mapping[str, Field]) -> tuple[Field, ...]:
        found = self._orders.get(id(fields))
        if found is None or found[0] is not fields:
            found = (fields, _order(fields))
            self._orders[id(fields)] = found
        return found[1]

    def picked(self, fields: Mapping[str, Field], kind: str) -> tuple[Field, ...]:
        """The fields of ``fields`` of one ``kind``, in order, found once per field set
        rather than once per record: ``defaulted`` (a default or a default expression),
        ``lines``, ``lists`` (lines and many-to-many: an empty list to start with)."""
        found = self._picked.get((kind, id(fields)))
        if found is None or found[0] is not fields:
            found = (fields, tuple(f for f in fields.values() if _PICKS[kind](f)))
            self._picked[(kind, id(fields))] = found
        return found[1]


_PICKS = {
    "defaulted": lambda f: f.default is not None or f.default_expression is not None,
    "lines": lambda f: f.type == "lines",
    "lists": lambda f: f.type in ("lines", "many_to_many"),
}


def result_value(field: Field, value: Any) -> Any:
    """Bring an expression's result to the field's declared type (None if it does not fit)."""
    if value is None:
        return None
    try:
        return coerce(field, value)
    except ValueProblem:
        if field.value_type == "decimal":
            # Expressions keep full precision; the stored value is rounded to the field's scale.
            try:
                quantum = Decimal(1).scaleb(-(field.scale if field.scale is not None else 2))
                return Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
            except Exception:  # noqa: BLE001 - a value that cannot be a number
                return None
        return None


def apply_computed(
    fields: Mapping[str, Field],
    values: dict[str, Any],
    now: dt.datetime,
    order: ComputedOrder,
    *,
    stored: bool,
) -> None:
    """Fill computed fields in place, lines first, then the record's own.

    ``stored=True`` computes the fields that are saved (on every write);
    ``stored=False`` the ones computed on read.
    """
    for field in order.picked(fields, "lines"):
        if isinstance(values.get(field.key), list):
            for line in values[field.key]:
                apply_computed(field.fields, line, now, order, stored=stored)
    for field in order(fields):
        if field.stored == stored:
            values[field.key] = result_value(field, field.expression.evaluate(values, now=now))


def apply_defaults(fields: Mapping[str, Field], values: dict[str, Any], now: dt.datetime,
                   order: ComputedOrder | None = None) -> None:
    """Give fields left empty their default, literal first, then expressions.

    With ``order`` only the fields that have a default are walked (found once
    per field set), as a big import runs this per row.
    """
    chosen = fields.values() if order is None else order.picked(fields, "defaulted")
    for field in chosen:
        if field.default is None or not field.is_input or field.type in ("lines", "many_to_many"):
            continue
        if values.get(field.key) is None:
            try:
                values[field.key] = coerce(field, field.default)
            except ValueProblem:
                values[field.key] = None
    for field in chosen:
        if field.default_expression is not None and values.get(field.key) is None:
            values[field.key] = result_value(field, field.default_expression.evaluate(values, now=now))
