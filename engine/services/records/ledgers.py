"""Append-only ledgers: movements that add up to balances, and the guard on them.

An entity declared with ``ledger:`` (docs/ledger.md) holds movements — stock
in and out, points earned and spent.  Nothing stores a balance: it is the
sum of the movements of one combination of dimension values (product and
warehouse), read through the dimensions' index, so the balance and the
ledger can never disagree.  The record service calls :meth:`LedgerService.guard`
inside its write transaction before inserting a movement, and
:func:`refuse_change` before any update, archive or delete.

Concurrency: a movement that lowers a balance takes, on PostgreSQL, a
transaction-scoped advisory lock on its (entity, dimension values) key before
summing, so two writers taking stock from the same shelf run one after the
other and the second sees the first's movement (READ COMMITTED takes a new
snapshot per statement).  On SQLite every write transaction already holds the
database's write lock from its ``BEGIN IMMEDIATE``.  Keys are locked in a
fixed order, so writers of several balances do not deadlock each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from engine.context import Actor
from engine.errors import LedgerRefused, NotFound, ValidationFailed
from engine.i18n import message
from engine.metadata.model import Entity, LedgerDef

if TYPE_CHECKING:
    from engine.services.records.service import RecordService

DimensionKey = tuple[Any, ...]


@dataclass(frozen=True)
class Balance:
    """One balance: the dimension values it is kept per, its quantity and summed amounts."""

    dimensions: Mapping[str, Any]
    quantity: Decimal
    amounts: Mapping[str, Decimal]
    movements: int

    def as_json(self) -> dict[str, Any]:
        return {
            "dimensions": dict(self.dimensions),
            "quantity": str(self.quantity),
            "amounts": {k: str(v) for k, v in self.amounts.items()},
            "movements": self.movements,
        }


def _number(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def lock_key(entity_key: str, key: DimensionKey) -> int:
    """A signed 64-bit advisory-lock key for one balance (collisions only serialise more)."""
    text = json.dumps([entity_key, *key], default=str, ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def refuse_change(actor: Actor, entity: Entity) -> None:
    """Raise if the entity is a ledger: its movements are never changed, archived or deleted."""
    if entity.ledger is not None:
        raise LedgerRefused(
            message("ledger_append_only", actor.language, entity=entity.plural.get(actor.language)),
            "append_only",
        )


class LedgerService:
    """Balances of ledger entities, within the actor's scope, and the guard on new movements."""

    def __init__(self, records: RecordService) -> None:
        self.records = records

    def ledger(self, entity_key: str) -> tuple[Entity, LedgerDef]:
        entity = self.records.entity(entity_key)
        if entity.ledger is None:
            raise NotFound(f"The entity '{entity_key}' is not a ledger.")
        return entity, entity.ledger

    # -- reading -----------------------------------------------------------

    def balances(
        self,
        actor: Actor,
        entity_key: str,
        *,
        by: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> list[Balance]:
        """Balances grouped ``by`` some dimensions (all by default), of the movements the actor sees.

        ``where`` narrows to dimension values (``{"warehouse": 2}``); a group
        by fewer dimensions adds the balances of the others together (stock
        of a product over every warehouse).
        """
        entity, ledger = self.ledger(entity_key)
        by = tuple(ledger.dimensions if by is None else by)
        where = dict(where or {})
        unknown = [d for d in (*by, *where) if d not in ledger.dimensions]
        if unknown:
            raise ValidationFailed({d: [f"'{d}' is not a dimension of this ledger "
                                        f"({', '.join(ledger.dimensions)})"] for d in unknown})
        table, scope = self.records.scope_conditions(actor, entity.key)
        columns = [table.c[d] for d in by]
        query = (
            select(
                *columns,
                func.coalesce(func.sum(table.c[ledger.quantity]), 0).label("crm_quantity"),
                *[func.coalesce(func.sum(table.c[a]), 0).label(f"crm_amount_{a}")
                  for a in ledger.amounts],
                func.count().label("crm_movements"),
            )
            .where(*scope, *[table.c[d] == v for d, v in where.items()])
            .group_by(*columns)
            .order_by(*columns)
        )
        with self.records._read(conn) as c:
            rows = c.execute(query).mappings().all()
        hidden = self.records.hidden(actor, entity)
        return [
            Balance(
                dimensions={d: row[d] for d in by},
                quantity=_number(row["crm_quantity"]),
                amounts={a: _number(row[f"crm_amount_{a}"]) for a in ledger.amounts
                         if a not in hidden},
                movements=int(row["crm_movements"]),
            )
            for row in rows
        ]

    def balance(
        self, actor: Actor, entity_key: str, *, conn: Connection | None = None, **dimensions: Any
    ) -> Balance:
        """The one balance of the given dimension values (a subset adds the others together)."""
        found = self.balances(actor, entity_key, by=(), where=dimensions, conn=conn)
        if found:
            return Balance(dimensions=dimensions, quantity=found[0].quantity,
                           amounts=found[0].amounts, movements=found[0].movements)
        _, ledger = self.ledger(entity_key)
        return Balance(dimensions=dimensions, quantity=Decimal(0),
                       amounts={a: Decimal(0) for a in ledger.amounts}, movements=0)

    # -- the guard ---------------------------------------------------------

    def guard(
        self, conn: Connection, actor: Actor, entity: Entity, movements: Iterable[Mapping[str, Any]],
        *, pending: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Refuse movements that would take a balance below zero, naming every such balance.

        Call inside the write transaction that inserts them (the record
        service does, per movement; a pack checks a whole document's lines
        first to name every short product at once).  Only balances that go
        down are locked and summed: a movement that adds cannot break the rule.
        ``pending`` are movements counted as if already stored (a check of a
        file, which writes nothing, holds each row against the rows before it).
        """
        ledger = entity.ledger
        if ledger is None or ledger.allow_negative:
            return
        change: dict[DimensionKey, Decimal] = {}
        for movement in movements:
            key = tuple(movement.get(d) for d in ledger.dimensions)
            change[key] = change.get(key, Decimal(0)) + _number(movement.get(ledger.quantity))
        lowering = sorted((k for k, v in change.items() if v < 0), key=lambda k: json.dumps(
            k, default=str))
        if not lowering:
            return
        table = self.records.schema.table(entity.key)
        if conn.dialect.name == "postgresql":
            for key in lowering:
                conn.execute(select(func.pg_advisory_xact_lock(lock_key(entity.key, key))))
        before: dict[DimensionKey, Decimal] = {}
        for movement in pending:
            key = tuple(movement.get(d) for d in ledger.dimensions)
            before[key] = before.get(key, Decimal(0)) + _number(movement.get(ledger.quantity))
        shortfalls = []
        for key in lowering:
            current = before.get(key, Decimal(0)) + _number(conn.execute(
                select(func.coalesce(func.sum(table.c[ledger.quantity]), 0)).where(
                    *[table.c[d] == v for d, v in zip(ledger.dimensions, key, strict=True)])
            ).scalar_one())
            if current + change[key] < 0:
                shortfalls.append((key, current, -change[key]))
        if shortfalls:
            texts = []
            details = []
            for key, current, needed in shortfalls:
                named = self.describe(conn, actor, entity, key)
                texts.append(message("ledger_negative", actor.language, dimensions=named,
                                     balance=_plain(current), needed=_plain(needed)))
                details.append({"dimensions": dict(zip(ledger.dimensions, key, strict=True)),
                                "named": named, "balance": str(current), "needed": str(needed)})
            raise LedgerRefused(" ".join(texts), "negative_balance", details)

    def describe(self, conn: Connection, actor: Actor, entity: Entity, key: DimensionKey) -> str:
        """Dimension values as a person reads them: 'Product 42U rack, Warehouse Shanghai'."""
        assert entity.ledger is not None
        parts = []
        for name, value in zip(entity.ledger.dimensions, key, strict=True):
            field = entity.fields[name]
            shown: Any = value
            if field.type == "reference" and field.to and value is not None:
                target = self.records.registry.entities[field.to]
                if target.title_field:
                    other = self.records.schema.table(target.key)
                    title = conn.execute(select(other.c[target.title_field]).where(
                        other.c.id == value)).scalar()
                    shown = title if title is not None else value
            elif field.type == "choice" and value in field.choices:
                shown = field.choices[value].get(actor.language)
            parts.append(f"{field.label.get(actor.language)} {shown}")
        return ", ".join(parts)


def _plain(value: Decimal) -> str:
    """A quantity without trailing zeros (5, not 5.0000)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
