"""The trading pack's reports (engine/services/views/figures.py): sales, margin, stock, buying.

Sales and gross margin are read from the stock ledger: every delivery line
wrote a movement out with its sales amount and its cost of goods (the
moving-average cost of that day, as a negative value), so revenue, cost and
margin by period, product and customer are sums over the same rows — and
stay inside the actor's scope, because every query adds the record
service's scope conditions.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from engine.pack_api import Figure, Filter, ReportRequest, Series, ValidationFailed

ZERO = Decimal(0)
SALES = {"en": "Sales", "zh": "销售额"}
COST = {"en": "Cost of goods", "zh": "销售成本"}
MARGIN = {"en": "Gross margin", "zh": "毛利"}
OPEN_PO_STAGES = ("approved", "ordered", "partially_received")


def _label(en: str, zh: str) -> dict[str, str]:
    return {"en": en, "zh": zh}






def _titles(request: ReportRequest, entity: str, ids: Iterable[Any]) -> dict[Any, str]:
    """Display names of records the actor may read (products as 'code name')."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    table, scope = request.records.scope_conditions(request.actor, entity)
    columns = [table.c.id, table.c.name]
    if entity == "product":
        columns.append(table.c.code)
    with request.records.engine.connect() as conn:
        found = conn.execute(select(*columns).where(table.c.id.in_(wanted), *scope)).all()
    if entity == "product":
        return {row[0]: f"{row[2]} {row[1]}" for row in found}
    return {row[0]: row[1] for row in found}


def _sales_rows(request: ReportRequest) -> list[Any]:
    """(moved_on, product, customer, sales amount, cost) of every delivery movement in scope."""
    table, scope = request.records.scope_conditions(request.actor, "stock_move")
    query = select(table.c.moved_on, table.c.product, table.c.customer,
                   table.c.sales_amount, table.c.value).where(
        table.c.kind == "out", table.c.sales_order.is_not(None), *scope)
    with request.records.engine.connect() as conn:
        return conn.execute(query).all()


def _margin_figure(request: ReportRequest, key: str, title: dict[str, str],
                   names: dict[Any, str] | None = None, limit: int | None = None) -> Figure:
    totals: dict[Any, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for moved_on, product, customer, amount, value in _sales_rows(request):
        group = {"period": f"{moved_on:%Y-%m}", "product": product, "customer": customer}[key]
        totals[group][0] += amount or ZERO
        totals[group][1] += -(value or ZERO)
    if key == "period":
        order = sorted(totals)
    else:
        order = sorted(totals, key=lambda g: totals[g][0] - totals[g][1], reverse=True)
    if limit:
        order = order[:limit]
    names = names if names is not None else (
        {} if key == "period" else _titles(request, key, order))
    categories = tuple(names.get(g, str(g)) if key != "period" else g for g in order)
    return Figure(
        title, "column" if key == "period" else "bar", "money", categories,
        (Series(SALES, tuple(totals[g][0] for g in order)),
         Series(COST, tuple(totals[g][1] for g in order)),
         Series(MARGIN, tuple(totals[g][0] - totals[g][1] for g in order))),
        _label("Delivered goods: sales after discount, cost at the moving-average cost on the "
               "day of shipping.", "已出库货物:折后销售额,成本按出库当日移动加权平均成本。"),
    )


def margin_by_period(request: ReportRequest) -> Figure:
    """Sales, cost of goods and gross margin per month of shipping."""
    return _margin_figure(request, "period", _label("Sales and gross margin by month",
                                                    "按月销售额与毛利"))


def margin_by_product(request: ReportRequest) -> Figure:
    """Sales, cost and gross margin per product, largest margin first (``top``, default 20)."""
    return _margin_figure(request, "product", _label("Gross margin by product", "按产品毛利"),
                          limit=request.int_param("top", 20, 1000))


def margin_by_customer(request: ReportRequest) -> Figure:
    """Sales, cost and gross margin per customer, largest margin first (``top``, default 20)."""
    return _margin_figure(request, "customer", _label("Gross margin by customer", "按客户毛利"),
                          limit=request.int_param("top", 20, 1000))


def stock_on_hand(request: ReportRequest) -> Figure:
    """Quantity and stock value on hand per product (all warehouses, or ``warehouse``)."""
    where = {"warehouse": int(request.param("warehouse"))} if request.param("warehouse") else {}
    balances = [b for b in request.ledgers.balances(request.actor, "stock_move",
                                                          by=["product"], where=where)
                if b.quantity != 0]
    balances.sort(key=lambda b: b.amounts.get("value", ZERO), reverse=True)
    balances = balances[:request.int_param("top", 20, 1000)]
    names = _titles(request, "product", [b.dimensions["product"] for b in balances])
    return Figure(
        _label("Stock on hand", "库存结存"), "table", "number",
        tuple(names.get(b.dimensions["product"], "?") for b in balances),
        (Series(_label("Quantity", "数量"), tuple(b.quantity for b in balances)),
         Series(_label("Stock value", "库存金额"),
                tuple(b.amounts.get("value", ZERO) for b in balances), unit="money")),
        _label("From the stock ledger; value at moving-average cost.",
               "来自库存流水;金额按移动加权平均成本。"),
    )


def below_reorder_level(request: ReportRequest) -> Figure:
    """Active products whose stock (all warehouses) is below their reorder level."""
    table, scope = request.records.scope_conditions(request.actor, "product")
    with request.records.engine.connect() as conn:
        products = conn.execute(select(table.c.id, table.c.code, table.c.name,
                                       table.c.reorder_level).where(
            table.c.reorder_level.is_not(None), table.c.active.is_(True),
            table.c.archived.is_(False), *scope).order_by(table.c.code)).all()
    on_hand = {b.dimensions["product"]: b.quantity for b in request.ledgers.balances(
        request.actor, "stock_move", by=["product"])}
    low = [(f"{code} {name}", on_hand.get(pid, ZERO), level)
           for pid, code, name, level in products if on_hand.get(pid, ZERO) < level]
    return Figure(
        _label("Below reorder level", "低于再订货点"), "table", "number",
        tuple(row[0] for row in low),
        (Series(_label("On hand", "库存"), tuple(row[1] for row in low)),
         Series(_label("Reorder level", "再订货点"), tuple(row[2] for row in low))),
    )


def open_purchase_orders(request: ReportRequest) -> Figure:
    """Purchase orders approved, ordered or partly received: value and quantity still to come."""
    records = request.records
    rows = []
    for stage in OPEN_PO_STAGES:
        page = records.list(request.actor, "purchase_order",
                            filters=[Filter("stage", "eq", stage)], limit=1000,
                            with_children=True, with_total=False)
        rows.extend(page.rows)
    rows.sort(key=lambda r: (r.get("expected_date") or dt.date.max, r["number"]))
    suppliers = _titles(request, "customer", [r["supplier"] for r in rows])
    return Figure(
        _label("Open purchase orders", "未完成采购订单"), "table", "number",
        tuple(f"{r['number']} {suppliers.get(r['supplier'], '')}".strip() for r in rows),
        (Series(_label("Value", "金额"), tuple(r["total"] or ZERO for r in rows), unit="money"),
         Series(_label("Still to receive", "待到货数量"),
                tuple((r["ordered_quantity"] or ZERO) - (r["received_quantity"] or ZERO)
                      for r in rows))),
    )


def not_sold_in_days(request: ReportRequest) -> Figure:
    """Active products in stock with no delivery in the last ``days`` (default 90): 久未交易产品."""
    days = request.int_param("days", 90)
    today = request.today()
    moves, scope = request.records.scope_conditions(request.actor, "stock_move")
    with request.records.engine.connect() as conn:
        last = dict(conn.execute(select(moves.c.product, func.max(moves.c.moved_on)).where(
            moves.c.kind == "out", moves.c.sales_order.is_not(None), *scope
        ).group_by(moves.c.product)).all())
    on_hand = {b.dimensions["product"]: b.quantity for b in request.ledgers.balances(
        request.actor, "stock_move", by=["product"]) if b.quantity > 0}
    idle = []
    for product, quantity in on_hand.items():
        sold = last.get(product)
        if sold is None or (today - sold).days > days:
            idle.append((product, quantity, (today - sold).days if sold else None))
    idle.sort(key=lambda row: (row[2] is not None, -(row[2] or 0)))
    names = _titles(request, "product", [row[0] for row in idle])
    return Figure(
        _label(f"In stock, not sold in {days} days", f"{days} 天未销售的库存产品"), "table",
        "number", tuple(names.get(row[0], "?") for row in idle),
        (Series(_label("On hand", "库存"), tuple(row[1] for row in idle)),
         Series(_label("Days since last sale", "距上次销售天数"), tuple(row[2] for row in idle),
                unit="days")),
        _label("Empty: never sold.", "空白表示从未销售。"),
    )


def price_comparison(request: ReportRequest) -> Figure:
    """供应比价 for one ``product``: each supplier's cheapest valid offer, last purchase price,
    and how many offers it made; cheapest first."""
    try:
        product = int(request.param("product"))
    except (TypeError, ValueError):
        raise ValidationFailed({"product": ["Choose a product."]}) from None
    today = request.today()
    records = request.records
    quotes = records.list(request.actor, "supplier_quote",
                          filters=[Filter("product", "eq", product)], limit=1000,
                          with_total=False).rows
    best: dict[Any, Decimal] = {}
    offers: dict[Any, int] = defaultdict(int)
    for quote in quotes:
        offers[quote["supplier"]] += 1
        valid = quote.get("valid_until") is None or quote["valid_until"] >= today
        if valid and (quote["supplier"] not in best or quote["price"] < best[quote["supplier"]]):
            best[quote["supplier"]] = quote["price"]
    moves, scope = records.scope_conditions(request.actor, "stock_move")
    with records.engine.connect() as conn:
        bought = conn.execute(select(moves.c.supplier, moves.c.unit_cost).where(
            moves.c.product == product, moves.c.kind == "in", moves.c.supplier.is_not(None),
            *scope).order_by(moves.c.moved_on, moves.c.id)).all()
    last = {supplier: cost for supplier, cost in bought}
    suppliers = sorted(set(offers) | set(last),
                       key=lambda s: (s not in best, best.get(s, ZERO)))
    names = _titles(request, "customer", suppliers)
    return Figure(
        _label("Price comparison", "供应比价"), "table", "money",
        tuple(names.get(s, str(s)) for s in suppliers),
        (Series(_label("Cheapest valid offer", "最低有效报价"), tuple(best.get(s) for s in suppliers)),
         Series(_label("Last purchase price", "最近采购价"), tuple(last.get(s) for s in suppliers)),
         Series(_label("Offers made", "报价次数"), tuple(offers.get(s, 0) for s in suppliers),
                unit="count")),
        _label("Offers valid today; cheapest first.", "今日有效的报价,从低到高。"),
    )
