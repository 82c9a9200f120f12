"""The distribution pack's hooks: dealer prices and credit, dealer stock, end-customer claims.

- A shipment in draft is priced on every save: each line takes the
  product's list price and the dealer level's discount (the category's own
  discount when the level has one), unless given; a discount other than the
  level's marks the shipment ``discount_overridden``. The dealer's credit
  used is its receivable — shipments approved, shipped or received, less
  payments — and a shipment that would take it beyond the credit limit (the
  dealer's own, else its level's) is marked ``over_credit``. Either mark
  means the shipment must be granted by finance or the owner.
- Shipping writes one ``sell_in`` movement per line into the dealer's stock
  ledger; a sell-out report writes ``sell_out`` movements, all lines checked
  at once, so a report selling more than the dealer holds is refused with
  every short product named.
- The first claim on an end customer attributes it; a second dealer's claim
  on the same customer is a conflict for a channel manager.

Credit is decided with the dealer locked (``records.locked``) and claims are
attributed one at a time (``records.lock_name``), so neither rule is broken
by writes that arrive together (docs/hooks.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from engine.pack_api import (
    ValidationFailed,
    normalise_name,
    normalise_phone,
    say,
    with_pack_rights,
)

ZERO = Decimal(0)
OWED_STAGES = ("approved", "shipped", "received")


def _d(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else ZERO


def receivable(records: Any, conn: Any, dealer_id: Any, *, leave_out: Any = None) -> Decimal:
    """What a dealer owes: shipments approved, shipped or received, less its payments."""
    shipments = records.schema.table("shipment")
    payments = records.schema.table("dealer_payment")
    owed = conn.execute(select(func.coalesce(func.sum(shipments.c.total), 0)).where(
        shipments.c.dealer == dealer_id, shipments.c.stage.in_(OWED_STAGES),
        shipments.c.id != (leave_out or 0))).scalar_one()
    paid = conn.execute(select(func.coalesce(func.sum(payments.c.amount), 0)).where(
        payments.c.dealer == dealer_id)).scalar_one()
    return _d(owed) - _d(paid)


def credit_limit(records: Any, actor: Any, conn: Any, dealer: dict[str, Any]) -> Decimal | None:
    """The dealer's own credit limit, else its level's default; None when neither is set."""
    if dealer.get("credit_limit") is not None:
        return _d(dealer["credit_limit"])
    if dealer.get("dealer_level"):
        level = records.get(with_pack_rights(actor), "dealer_level", dealer["dealer_level"],
                            conn=conn)
        if level.get("default_credit_limit") is not None:
            return _d(level["default_credit_limit"])
    return None


def price_shipment(context: Any) -> None:
    """before_save of shipment: prices, the level's discounts, and the approval marks."""
    values, before = context.values, context.previous
    if before is not None and before.get("stage") != "draft":
        return  # fixed once out of draft
    if not values.get("dealer"):
        return
    actor, conn, records = with_pack_rights(context.actor), context.conn, context.records
    # one credit decision per dealer at a time: two shipments approved at once cannot
    # both fit in the same remaining credit
    dealer = records.locked(actor, "customer", values["dealer"], conn=conn)
    if dealer.get("kind") != "dealer":
        context.error("dealer", {"en": "Choose a customer of kind dealer.",
                                 "zh": "请选择类型为代理商的客户。"})
        return
    level = (records.get(actor, "dealer_level", dealer["dealer_level"], conn=conn)
             if dealer.get("dealer_level") else None)
    by_category = {row["category"]: _d(row["discount"])
                   for row in (level or {}).get("category_discounts") or []}
    overridden = False
    total = ZERO
    for line in values.get("lines") or []:
        if not line.get("product"):
            continue
        product = records.get(actor, "product", line["product"], conn=conn)
        if line.get("list_price") is None:
            line["list_price"] = product.get("list_price") or ZERO
        standard = by_category.get(product.get("category"), _d(level["discount"]) if level else ZERO)
        if line.get("discount") is None:
            line["discount"] = standard
        elif _d(line["discount"]) != standard:
            overridden = True
        total += _d(line.get("quantity")) * _d(line["list_price"]) * (100 - _d(line["discount"])) / 100
    limit = credit_limit(records, context.actor, conn, dealer)
    used = receivable(records, conn, dealer["id"], leave_out=values.get("id"))
    values["discount_overridden"] = overridden
    values["over_credit"] = limit is not None and used + total > limit
    values["credit_available"] = None if limit is None else limit - used
    if values.get("stage") == "approved" and (overridden or values["over_credit"]) and not (
            context.transition and context.transition.transition == "grant"):
        context.error("over_credit", {
            "en": "This shipment needs approval (changed discount or beyond the credit limit).",
            "zh": "此发货单需要审批(折扣已修改或超出信用额度)。"})


def ship_to_dealer(context: Any) -> None:
    """The shipment's 'ship' transition: every line into the dealer's stock."""
    shipment = context.record
    for line in shipment["lines"]:
        context.records.create(with_pack_rights(context.actor), "dealer_stock_move", {
            "moved_on": shipment.get("shipped_on") or context.now.date(),
            "dealer": shipment["dealer"], "product": line["product"], "kind": "sell_in",
            "quantity": line["quantity"], "amount": line.get("amount"),
            "shipment": shipment["id"], "note": shipment["number"]}, conn=context.conn)


def check_dealer_movement(context: Any) -> None:
    """before_save of dealer_stock_move: a dealer's own users record sell-out only.

    Their spreadsheet of sales (imported as movements) may take stock out;
    stock comes in only by the brand's shipments and adjustments.
    """
    actor = context.actor
    if context.is_new and not actor.is_admin and "dealer_user" in actor.roles and (
            context.values.get("kind") != "sell_out"):
        context.error("kind", {"en": "A dealer records sell-out only; stock comes in by "
                                     "shipments.", "zh": "代理商只能上报出货;进货以发货单为准。"})


def keep_reports_unchanged(context: Any) -> None:
    """before_save of sell_out: posted once; every line a positive quantity."""
    if context.previous is not None:
        context.error("record", {"en": "A posted sell-out report cannot be changed; report a "
                                       "correction.", "zh": "已上报的出货单不可修改,请另行冲正。"})
    if not context.values.get("lines"):
        context.error("lines", {"en": "Add at least one line.", "zh": "请至少填写一行明细。"})
    for i, line in enumerate(context.values.get("lines") or []):
        if _d(line.get("quantity")) <= 0:
            context.error(f"lines[{i}].quantity", {"en": "Give a quantity above zero.",
                                                   "zh": "数量须大于零。"})


def refuse_report_delete(context: Any) -> None:
    raise ValidationFailed({"record": [say(
        context.actor, "A posted sell-out report cannot be deleted; report a correction.",
        "已上报的出货单不可删除,请另行冲正。")]})


def post_sell_out(context: Any) -> None:
    """after_save of sell_out: every line out of the dealer's stock, all checked at once."""
    if context.previous is not None:
        return
    report = context.values
    records, conn = context.records, context.conn
    moves = [{"dealer": report["dealer"], "product": line["product"],
              "signed_quantity": -_d(line["quantity"])} for line in report["lines"]]
    records.ledgers.guard(conn, context.actor, records.entity("dealer_stock_move"), moves)
    for line in report["lines"]:
        records.create(with_pack_rights(context.actor), "dealer_stock_move", {
            "moved_on": report["sold_on"], "dealer": report["dealer"],
            "product": line["product"], "kind": "sell_out", "quantity": line["quantity"],
            "amount": line.get("amount"), "end_customer": line.get("end_customer"),
            "sell_out": report["id"], "note": report["number"]}, conn=conn)


def _find_end_customer(records: Any, conn: Any, name: str, phone: Any) -> dict[str, Any] | None:
    """The end customer a claim names: same name once normalised, or same phone."""
    table = records.schema.table("customer")
    key, digits = normalise_name(name), normalise_phone(phone) if phone else ""
    rows = conn.execute(select(table.c.id, table.c.name, table.c.phone, table.c.dealer).where(
        table.c.kind == "end_customer", table.c.archived.is_(False)).order_by(table.c.id)).all()
    for row in rows:
        if (key and normalise_name(row.name) == key) or (
                digits and row.phone and normalise_phone(row.phone) == digits):
            return {"id": row.id, "dealer": row.dealer}
    return None


def attribute_end_customer(context: Any) -> None:
    """after_save of end_customer_claim: attribute a first claim, or raise a conflict."""
    if context.previous is not None:
        return
    claim = context.values
    actor, conn, records = with_pack_rights(context.actor), context.conn, context.records
    # claims are attributed one at a time: two first claims on the same new end customer
    # would otherwise both find none and create it twice
    records.lock_name("distribution.end_customer", conn=conn)
    found = _find_end_customer(records, conn, claim["name"], claim.get("phone"))
    workflows = context.workflows
    if found is None:
        dealer = records.get(actor, "customer", claim["dealer"], conn=conn)
        created = records.create(actor, "customer", {
            "name": claim["name"], "phone": claim.get("phone"), "kind": "end_customer",
            "region": claim.get("region"), "dealer": claim["dealer"], "owner": dealer["owner"],
        }, conn=conn)
        workflows.transition(actor, "end_customer_claim", claim["id"], "accepted",
                             {"end_customer": created["id"]}, conn=conn)
    elif found["dealer"] in (None, claim["dealer"]):
        if found["dealer"] is None:
            records.update(actor, "customer", found["id"], {"dealer": claim["dealer"]}, conn=conn)
        workflows.transition(actor, "end_customer_claim", claim["id"], "accepted",
                             {"end_customer": found["id"]}, conn=conn)
    else:
        workflows.transition(actor, "end_customer_claim", claim["id"], "conflict",
                             {"end_customer": found["id"], "held_by": found["dealer"]},
                             conn=conn)


def award_end_customer(context: Any) -> None:
    """The claim's 'award' transition: the end customer moves to the claiming dealer."""
    claim = context.record
    if claim.get("end_customer"):
        context.records.update(with_pack_rights(context.actor), "customer", claim["end_customer"],
                               {"dealer": claim["dealer"]}, conn=context.conn)
