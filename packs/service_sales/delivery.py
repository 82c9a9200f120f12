"""Service delivery against contracts: delivered vs contracted, completion, utilisation.

A delivery names its contract and the line's number (1 for the first line)
and a quantity in that line's unit. For each line, delivered is the sum of
its deliveries; the contract's completion is weighted by value:

    completion % = Σ min(delivered, contracted) × rate / Σ contracted × rate × 100

so an over-delivered line does not hide an untouched one, and a line of
small value weighs little. Utilisation is a consultant's delivered hours in a
period (days count as ``hours_per_day`` hours; units are not time) over the
working hours of the period (Monday to Friday × ``hours_per_day``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from engine.pack_api import Actor, Filter, Records
from packs.service_sales.records_io import all_rows

ZERO = Decimal("0")
HUNDRED = Decimal("100")


def percent(part: Decimal, whole: Decimal) -> Decimal:
    """``part`` of ``whole`` in percent with one decimal (0 when the whole is 0)."""
    if not whole:
        return Decimal("0.0")
    return (part * HUNDRED / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LineProgress:
    line_no: int
    service: str
    unit: str
    contracted: Decimal
    delivered: Decimal
    rate: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(self.contracted - self.delivered, ZERO)

    @property
    def percent(self) -> Decimal:
        return percent(min(self.delivered, self.contracted), self.contracted)


@dataclass(frozen=True)
class ContractProgress:
    contract_id: int
    number: str
    name: str
    stage: str
    lines: tuple[LineProgress, ...]
    #: Deliveries naming a line the contract does not have (to correct).
    unmatched: Decimal

    @property
    def contracted_value(self) -> Decimal:
        return sum((ln.contracted * ln.rate for ln in self.lines), ZERO)

    @property
    def delivered_value(self) -> Decimal:
        return sum((min(ln.delivered, ln.contracted) * ln.rate for ln in self.lines), ZERO)

    @property
    def completion(self) -> Decimal:
        return percent(self.delivered_value, self.contracted_value)


def delivery_progress(records: Records, actor: Actor, *, contract_id: int | None = None,
                      stages: tuple[str, ...] = ("signed", "active", "completed")
                      ) -> list[ContractProgress]:
    """Progress of each contract the actor reads in ``stages`` (or of one contract)."""
    filters = ([Filter("id", "eq", contract_id)] if contract_id is not None
               else [Filter("stage", "in", list(stages))])
    contracts = all_rows(records, actor, "contract", filters, with_children=True)
    delivered: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
    if contracts:
        ids = [c["id"] for c in contracts]
        for row in all_rows(records, actor, "delivery", [Filter("contract", "in", ids)]):
            delivered[(row["contract"], row["line"])] += Decimal(row["quantity"] or 0)
    result = []
    for contract in contracts:
        lines = tuple(
            LineProgress(line_no=no, service=line["service"], unit=line.get("unit") or "hour",
                         contracted=Decimal(line.get("quantity") or 0),
                         delivered=delivered.pop((contract["id"], no), ZERO),
                         rate=Decimal(line.get("rate") or 0))
            for no, line in enumerate(contract.get("lines") or [], start=1)
        )
        unmatched = sum((q for (cid, _), q in delivered.items() if cid == contract["id"]), ZERO)
        result.append(ContractProgress(contract_id=contract["id"], number=contract.get("number")
                                       or "", name=contract["name"], stage=contract["stage"],
                                       lines=lines, unmatched=unmatched))
    return result


def working_days(since: dt.date, until: dt.date) -> int:
    """Monday-to-Friday days in [since, until] (both included)."""
    days = 0
    day = since
    while day <= until:
        days += day.weekday() < 5
        day += dt.timedelta(days=1)
    return days


@dataclass(frozen=True)
class Utilisation:
    user_id: int | None
    hours: Decimal
    capacity: Decimal

    @property
    def percent(self) -> Decimal:
        return percent(self.hours, self.capacity)


def utilisation(records: Records, actor: Actor, since: dt.date, until: dt.date, *,
                hours_per_day: Decimal = Decimal("8")) -> list[Utilisation]:
    """Delivered hours per consultant (the deliveries' owner) in [since, until]."""
    rows = all_rows(records, actor, "delivery", [Filter("performed_on", "ge", since.isoformat()),
                                                 Filter("performed_on", "le", until.isoformat())])
    units: dict[tuple[int, int], str] = {}
    if rows:
        ids = sorted({r["contract"] for r in rows})
        for contract in all_rows(records, actor, "contract", [Filter("id", "in", ids)],
                                 with_children=True):
            for no, line in enumerate(contract.get("lines") or [], start=1):
                units[(contract["id"], no)] = line.get("unit") or "hour"
    hours: dict[int | None, Decimal] = defaultdict(lambda: ZERO)
    for row in rows:
        unit = units.get((row["contract"], row["line"]), "hour")
        quantity = Decimal(row["quantity"] or 0)
        if unit == "hour":
            hours[row["owner"]] += quantity
        elif unit == "day":
            hours[row["owner"]] += quantity * hours_per_day
    capacity = Decimal(working_days(since, until)) * hours_per_day
    return [Utilisation(user, total, capacity)
            for user, total in sorted(hours.items(), key=lambda kv: (-kv[1], kv[0] or 0))]
