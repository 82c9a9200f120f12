"""The membership numbers behind the reports, read with the asking actor's scope.

A clerk's scope reaches no member (lookup only) and only their own
purchases, so every count here is 0 for a clerk and their own sales only —
the same rule as every other read.

- new members: joined in the last ``days`` days;
- active: not expired and with a purchase in the last 365 days;
- lapsed: expired, or no purchase in the last 365 days;
- points issued / redeemed / expired / adjusted: sums of the ledger's
  movements by kind; outstanding: their signed total (the liability).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from engine.pack_api import Actor, Filter, Records

ZERO = Decimal(0)


def sales_by(records: Records, actor: Actor, field: str, since: dt.date, until: dt.date
             ) -> dict[int | None, tuple[int, Decimal]]:
    """Purchases in [since, until] grouped by ``field`` (store, owner = clerk): count, amount."""
    rows = records.aggregate(actor, "purchase", {"n": "count", "amount": "sum:total"},
                             group_by=[field], filters=[
                                 Filter("purchased_on", "ge", since.isoformat()),
                                 Filter("purchased_on", "le", until.isoformat())])
    return {r[field]: (int(r["n"]), Decimal(str(r["amount"] or 0))) for r in rows}


def sales_per_month(records: Records, actor: Actor, today: dt.date, months: int = 12
                    ) -> list[tuple[str, Decimal]]:
    """Sales of each of the last ``months`` calendar months, oldest first."""
    result = []
    year, month = today.year, today.month
    for _ in range(months):
        start = dt.date(year, month, 1)
        end = dt.date(year + (month == 12), month % 12 + 1, 1)
        rows = records.aggregate(actor, "purchase", {"amount": "sum:total"}, filters=[
            Filter("purchased_on", "ge", start.isoformat()),
            Filter("purchased_on", "lt", end.isoformat())])
        result.append((f"{year}-{month:02d}", Decimal(str(rows[0]["amount"] or 0))))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return result[::-1]


@dataclass(frozen=True)
class MemberActivity:
    new: int
    active: int
    lapsed: int
    total: int


def member_activity(records: Records, actor: Actor, today: dt.date, *, days: int = 30
                    ) -> MemberActivity:
    total = records.count(actor, "member")
    new = records.count(actor, "member", filters=[
        Filter("join_date", "gt", (today - dt.timedelta(days=days)).isoformat())])
    year_ago = (today - dt.timedelta(days=365)).isoformat()
    buyers = {r["member"] for r in records.aggregate(
        actor, "purchase", {"n": "count"}, group_by=["member"],
        filters=[Filter("purchased_on", "gt", year_ago)])}
    current: set[int] = set()
    offset = 0
    while True:
        page = records.list(actor, "member", filters=[Filter("expiry_date", "ge", today.isoformat())],
                            limit=1000, offset=offset, with_total=False)
        current.update(r["id"] for r in page.rows)
        if not page.has_more:
            break
        offset += 1000
    active = len(current & buyers)
    return MemberActivity(new=new, active=active, lapsed=total - active, total=total)


def points_by_kind(records: Records, actor: Actor) -> dict[str, int]:
    """Points per movement kind (as written, positive) and ``outstanding`` (the balance)."""
    rows = records.aggregate(actor, "points_entry", {"points": "sum:points",
                                                     "signed": "sum:signed_points"},
                             group_by=["kind"])
    found = {r["kind"]: int(r["points"] or 0) for r in rows}
    totals = {k: found.get(k, 0) for k in ("earn", "redeem", "expire", "adjust")}
    totals["outstanding"] = sum(int(r["signed"] or 0) for r in rows)
    return totals


def members_by_tier(records: Records, actor: Actor) -> dict[str, int]:
    rows = records.aggregate(actor, "member", {"n": "count"}, group_by=["tier"])
    return {r["tier"]: int(r["n"]) for r in rows}


def expiries_between(records: Records, actor: Actor, since: dt.date, until: dt.date) -> int:
    return records.count(actor, "member", filters=[
        Filter("expiry_date", "ge", since.isoformat()),
        Filter("expiry_date", "le", until.isoformat())])
