"""Receivables (应收账款) and their ageing: the payment plan less what was collected.

Every sales model that is paid in instalments shares this (see
docs/packs/building_blocks.md); a pack's reports call these functions.

Each instalment of the payment schedule (``payment_plan``) is owed on its due
date; collections (``collection``) are recorded against it. What is still
owed on an instalment whose due date has come is a receivable, aged by the
days since that date:

- ``0-30``: due today up to 30 days ago; ``31-60``; ``61-90``; ``90+``;
- instalments not yet due are ``current`` (owed, but not a receivable yet):
  kept apart, never added to an overdue bucket.

A collection can never take an instalment above its amount (hooks.py), so
an instalment's outstanding amount is its amount less its collections.

Everything is read with the asking actor, so finance sees the company's
receivables and a manager their team's.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.pack_api import Actor, Records

PAGE = 1000

#: Ageing buckets: key, first and last day overdue (None: no end).
BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-30", 0, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("90+", 91, None),
)
CURRENT = "current"
ZERO = Decimal("0")


def bucket_of(days_overdue: int) -> str:
    """The ageing bucket of a receivable ``days_overdue`` days past its due date."""
    if days_overdue < 0:
        return CURRENT
    for key, first, last in BUCKETS:
        if days_overdue >= first and (last is None or days_overdue <= last):
            return key
    raise AssertionError("the buckets cover every day")  # pragma: no cover


@dataclass(frozen=True)
class Instalment:
    """One instalment of the schedule with what was collected against it."""

    plan_id: int
    name: str
    due_date: dt.date
    amount: Decimal
    collected: Decimal
    last_received: dt.date | None
    #: The instalment as read (with the fields the sales-model packs add, e.g. ``contract``).
    record: dict[str, Any] = field(compare=False, repr=False)

    @property
    def outstanding(self) -> Decimal:
        return max(self.amount - self.collected, ZERO)

    def days_overdue(self, today: dt.date) -> int:
        return (today - self.due_date).days

    @property
    def paid_late_by(self) -> int | None:
        """Days after the due date the instalment was fully paid (None: not paid, or on time)."""
        if self.outstanding > 0 or self.last_received is None:
            return None
        late = (self.last_received - self.due_date).days
        return late if late > 0 else None


def all_rows(records: Records, actor: Actor, entity: str) -> list[dict[str, Any]]:
    """Every record of ``entity`` the actor reads, oldest first, page by page."""
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = records.list(actor, entity, sort=(), limit=PAGE, offset=offset, with_total=False)
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        offset += PAGE


def instalments(records: Records, actor: Actor) -> list[Instalment]:
    """Every instalment the actor reads, with the collections the actor reads against it."""
    collected: dict[int, Decimal] = defaultdict(lambda: ZERO)
    last: dict[int, dt.date] = {}
    for row in all_rows(records, actor, "collection"):
        plan = row["payment_plan"]
        collected[plan] += Decimal(row["amount"] or 0)
        if plan not in last or row["received_on"] > last[plan]:
            last[plan] = row["received_on"]
    return [
        Instalment(plan_id=row["id"], name=row["name"], due_date=row["due_date"],
                   amount=Decimal(row["amount"]), collected=collected[row["id"]],
                   last_received=last.get(row["id"]), record=row)
        for row in all_rows(records, actor, "payment_plan")
    ]


def ageing(records: Records, actor: Actor, today: dt.date) -> dict[str, Decimal]:
    """Outstanding amounts per bucket on ``today``: ``current`` then ``0-30`` … ``90+``."""
    totals = {CURRENT: ZERO, **{key: ZERO for key, _, _ in BUCKETS}}
    for item in instalments(records, actor):
        if item.outstanding > 0:
            totals[bucket_of(item.days_overdue(today))] += item.outstanding
    return totals


@dataclass(frozen=True)
class PaymentReminder:
    """An instalment to remind the customer (or finance) of."""

    instalment: Instalment
    kind: str  # "due_soon" or "overdue"
    days: int  # days until due (due_soon) or days overdue (overdue)


def payment_reminders(records: Records, actor: Actor, today: dt.date, *,
                      before: int = 7, after: tuple[int, ...] = (1, 30, 60, 90)
                      ) -> list[PaymentReminder]:
    """Unpaid instalments falling due within ``before`` days, and those exactly ``after`` days late.

    Run once a day (a scheduled job or ``crm`` script), it lists the
    reminders due that day: one ahead of the due date and one at each of the
    ``after`` marks, so nobody is reminded every day.
    """
    due: list[PaymentReminder] = []
    for item in instalments(records, actor):
        if item.outstanding <= 0:
            continue
        overdue = item.days_overdue(today)
        if overdue < 0 and -overdue <= before:
            due.append(PaymentReminder(item, "due_soon", -overdue))
        elif overdue in after:
            due.append(PaymentReminder(item, "overdue", overdue))
    due.sort(key=lambda r: (r.instalment.due_date, r.instalment.plan_id))
    return due
