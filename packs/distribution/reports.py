"""The distribution pack's reports (engine/services/views/figures.py).

Every query adds the record service's scope conditions for the actor, so
a dealer's user sees its own dealer only, a channel manager their reach,
the owner everything — the same functions serve all three.

Definitions:

- **sell-in**: quantities shipped into the dealer's stock (``sell_in``
  movements); **sell-out**: quantities the dealer reported sold;
  **sell-through** = sell-out ÷ sell-in of the period, in %.
- **weeks of cover** = dealer stock now ÷ average weekly sell-out over the
  last ``weeks`` weeks (default 8); empty when nothing was sold.
- **receivable** = shipments approved, shipped or received − payments;
  **credit use** = receivable ÷ credit limit (the dealer's, else its level's).
- **ageing**: payments settle the oldest shipments first; what is left of
  each shipment is aged by its payment due date (else its shipping date).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from engine.pack_api import Figure, ReportRequest, Series

ZERO = Decimal(0)
OWED_STAGES = ("approved", "shipped", "received")
AGE_BUCKETS = ((30, "0-30"), (60, "31-60"), (90, "61-90"), (None, "90+"))


def _label(en: str, zh: str) -> dict[str, str]:
    return {"en": en, "zh": zh}






def _query(request: ReportRequest, entity: str, *columns: str, where: Iterable[Any] = ()) -> list:
    table, scope = request.records.scope_conditions(request.actor, entity)
    with request.records.engine.connect() as conn:
        return conn.execute(select(*[table.c[c] for c in columns]).where(
            *[w(table) for w in where], *scope)).all()


def _dealers(request: ReportRequest) -> dict[int, dict[str, Any]]:
    """The dealers the actor may read, by id."""
    rows = _query(request, "customer", "id", "name", "region", "dealer_level", "credit_limit",
                  where=[lambda t: t.c.kind == "dealer", lambda t: t.c.archived.is_(False)])
    return {r.id: {"name": r.name, "region": r.region, "level": r.dealer_level,
                   "credit_limit": r.credit_limit} for r in rows}


def _flows(request: ReportRequest, since: dt.date | None = None) -> dict[int, list[Decimal]]:
    """Per dealer: [sell-in, sell-out] quantities since a day (all time without one)."""
    conditions = [lambda t: t.c.kind.in_(("sell_in", "sell_out"))]
    if since is not None:
        conditions.append(lambda t: t.c.moved_on >= since)
    flows: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for dealer, kind, quantity in _query(request, "dealer_stock_move", "dealer", "kind",
                                         "quantity", where=conditions):
        flows[dealer][0 if kind == "sell_in" else 1] += quantity
    return flows


def sell_through(sell_in: Decimal, sell_out: Decimal) -> Decimal | None:
    """Sell-out ÷ sell-in in %, one decimal; None when nothing came in."""
    if not sell_in:
        return None
    return (sell_out * 100 / sell_in).quantize(Decimal("0.1"))


def sell_in_vs_sell_out(request: ReportRequest) -> Figure:
    """Sell-in, sell-out and sell-through per dealer over the last ``months`` (default 3)."""
    months = request.int_param("months", 3, 60)
    since = request.today() - dt.timedelta(days=months * 30)
    dealers = _dealers(request)
    flows = _flows(request, since)
    order = sorted((d for d in flows if d in dealers), key=lambda d: -flows[d][0])
    return Figure(
        _label("Sell-in vs sell-out per dealer", "代理商进货与出货"), "bar", "number",
        tuple(dealers[d]["name"] for d in order),
        (Series(_label("Sell-in", "进货"), tuple(flows[d][0] for d in order)),
         Series(_label("Sell-out", "出货"), tuple(flows[d][1] for d in order)),
         Series(_label("Sell-through %", "动销率%"),
                tuple(sell_through(*flows[d]) for d in order), unit="percent")),
        _label(f"Quantities of the last {months} months; sell-through = sell-out ÷ sell-in.",
               f"最近 {months} 个月的数量;动销率 = 出货 ÷ 进货。"),
    )


def dealer_stock_cover(request: ReportRequest) -> Figure:
    """Each dealer's stock and weeks of cover at the sell-out pace of the last ``weeks``."""
    weeks = request.int_param("weeks", 8, 104)
    dealers = _dealers(request)
    stock = {b.dimensions["dealer"]: b.quantity for b in request.ledgers.balances(
        request.actor, "dealer_stock_move", by=["dealer"])}
    sold = _flows(request, request.today() - dt.timedelta(weeks=weeks))
    order = sorted((d for d in stock if d in dealers), key=lambda d: -stock[d])
    cover = []
    for d in order:
        weekly = sold[d][1] / weeks if d in sold else ZERO
        cover.append((stock[d] / weekly).quantize(Decimal("0.1")) if weekly else None)
    return Figure(
        _label("Dealer stock and weeks of cover", "代理商库存与可售周数"), "table", "number",
        tuple(dealers[d]["name"] for d in order),
        (Series(_label("Stock", "库存"), tuple(stock[d] for d in order)),
         Series(_label("Weeks of cover", "可售周数"), tuple(cover))),
        _label(f"Stock ÷ average weekly sell-out of the last {weeks} weeks.",
               f"库存 ÷ 最近 {weeks} 周的平均周出货量。"),
    )


def _owed(request: ReportRequest) -> tuple[dict[int, list], dict[int, Decimal]]:
    shipments: dict[int, list] = defaultdict(list)
    for row in _query(request, "shipment", "dealer", "total", "shipped_on", "due_on", "id",
                      where=[lambda t: t.c.stage.in_(OWED_STAGES)]):
        shipments[row.dealer].append(row)
    paid: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for dealer, amount in _query(request, "dealer_payment", "dealer", "amount"):
        paid[dealer] += amount
    return shipments, paid


def receivables_and_credit(request: ReportRequest) -> Figure:
    """Per dealer: receivable, credit limit and credit use in %."""
    dealers = _dealers(request)
    levels = {r.id: r.default_credit_limit for r in _query(
        request, "dealer_level", "id", "default_credit_limit")}
    shipments, paid = _owed(request)
    order = sorted(d for d in dealers if d in shipments or d in paid)
    owed = {d: sum((s.total or ZERO for s in shipments[d]), ZERO) - paid[d] for d in order}
    limits = {d: dealers[d]["credit_limit"] if dealers[d]["credit_limit"] is not None
              else levels.get(dealers[d]["level"]) for d in order}
    order.sort(key=lambda d: -owed[d])
    return Figure(
        _label("Receivables and credit use", "应收账款与信用额度使用"), "table", "money",
        tuple(dealers[d]["name"] for d in order),
        (Series(_label("Receivable", "应收账款"), tuple(owed[d] for d in order)),
         Series(_label("Credit limit", "信用额度"), tuple(limits[d] for d in order)),
         Series(_label("Credit use %", "额度使用%"), tuple(
             (owed[d] * 100 / limits[d]).quantize(Decimal("0.1")) if limits[d] else None
             for d in order), unit="percent")),
    )


def receivables_ageing(request: ReportRequest) -> Figure:
    """Per dealer, what is owed by age in days past due (payments settle the oldest first)."""
    today = request.today()
    dealers = _dealers(request)
    shipments, paid = _owed(request)
    ageing: dict[int, list[Decimal]] = {}
    for dealer, rows in shipments.items():
        if dealer not in dealers:
            continue
        left = paid[dealer]
        buckets = [ZERO] * len(AGE_BUCKETS)
        for row in sorted(rows, key=lambda r: (r.due_on or r.shipped_on or today, r.id)):
            open_amount = row.total or ZERO
            settled = min(left, open_amount)
            left -= settled
            open_amount -= settled
            if open_amount <= 0:
                continue
            age = (today - (row.due_on or row.shipped_on or today)).days
            for i, (limit, _) in enumerate(AGE_BUCKETS):
                if limit is None or age <= limit:
                    buckets[i] += open_amount
                    break
        if any(buckets):
            ageing[dealer] = buckets
    order = sorted(ageing, key=lambda d: -sum(ageing[d]))
    return Figure(
        _label("Receivables ageing", "应收账款账龄"), "table", "money",
        tuple(dealers[d]["name"] for d in order),
        tuple(Series(_label(f"{name} days", f"{name} 天"), tuple(ageing[d][i] for d in order))
              for i, (_, name) in enumerate(AGE_BUCKETS)),
        _label("Days past the payment due date (else the shipping date).",
               "超过付款到期日(无则按发货日期)的天数。"),
    )


def market_support_spend(request: ReportRequest) -> Figure:
    """Budget approved vs actual spend of market support, per kind."""
    kinds = request.site.registry.entities["market_support"].fields["kind"].choices
    totals: dict[str, list[Decimal]] = {k: [ZERO, ZERO] for k in kinds}
    for kind, budget, spent in _query(
            request, "market_support", "kind", "budget", "actual_spend",
            where=[lambda t: t.c.stage.in_(("approved", "completed"))]):
        totals[kind][0] += budget or ZERO
        totals[kind][1] += spent or ZERO
    language = request.actor.language
    return Figure(
        _label("Market support: budget vs spend", "市场支持:预算与实际花费"), "column", "money",
        tuple(kinds[k].get(language) for k in totals),
        (Series(_label("Budget approved", "批准预算"), tuple(v[0] for v in totals.values())),
         Series(_label("Actual spend", "实际花费"), tuple(v[1] for v in totals.values()))),
    )


def end_customers_per_dealer(request: ReportRequest) -> Figure:
    """How many end customers are attributed to each dealer."""
    dealers = _dealers(request)
    table, scope = request.records.scope_conditions(request.actor, "customer")
    with request.records.engine.connect() as conn:
        counts = dict(conn.execute(select(table.c.dealer, func.count()).where(
            table.c.kind == "end_customer", table.c.dealer.is_not(None),
            table.c.archived.is_(False), *scope).group_by(table.c.dealer)).all())
    order = sorted((d for d in counts if d in dealers), key=lambda d: -counts[d])
    return Figure(_label("End customers per dealer", "各代理商终端客户数"), "bar", "count",
                  tuple(dealers[d]["name"] for d in order),
                  (Series(_label("End customers", "终端客户"), tuple(counts[d] for d in order)),))


def dealers_by_level_and_region(request: ReportRequest) -> Figure:
    """Dealers per region, one series per level."""
    dealers = _dealers(request)
    levels = {r.id: r.name for r in _query(request, "dealer_level", "id", "name")}
    regions = sorted({d["region"] or "—" for d in dealers.values()})
    level_ids = sorted({d["level"] for d in dealers.values()}, key=lambda x: (x is None, x or 0))
    series = []
    for level in level_ids:
        name = levels.get(level, "—") if level is not None else "—"
        series.append(Series({"en": name, "zh": name}, tuple(
            sum(1 for d in dealers.values() if d["level"] == level and (d["region"] or "—") == r)
            for r in regions)))
    return Figure(_label("Dealers by level and region", "代理商级别与区域分布"), "column",
                  "count", tuple(regions), tuple(series))
