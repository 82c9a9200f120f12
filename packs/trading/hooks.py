"""The trading pack's hooks: stock documents post to the stock ledger, costed by moving average.

Moving-average cost (移动加权平均): a product's average cost is the stock
value on hand divided by the quantity on hand, over every warehouse, read
from the ledger (``value`` is summed with the quantity, docs/ledger.md).
A receipt adds its quantity at its purchase price, so the average moves;
an issue (delivery, sample, loss, transfer out) takes its quantity out at
the average of that moment, so the average stays.  The issue's value is
its cost of goods, which gives the gross margin.  When an issue empties a
product completely it takes the whole remaining value, so no rounding cent
is left behind.

Concurrency: a movement reads the product's average under the product's
lock (``records.locked``, docs/hooks.md) and a document posts against its
order under the order's lock, so receipts, deliveries and transfers of the
same product or order run one after the other — each from what the one
before wrote. A document locks its order first, then its products in id
order, so two documents never wait for each other in a circle.

Documents (goods receipts, deliveries, transfers) are posted when saved:
their ``after_save`` hook writes the movements, the order's received or
shipped quantities and the order's stage in the save's own transaction, so
a refusal anywhere leaves nothing written.  They are never changed later.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from engine.pack_api import ValidationFailed, say, with_pack_rights

OUT_KINDS = ("out", "adjust_out", "transfer_out")
CENT = Decimal("0.01")
COST_PLACES = Decimal("0.0001")
ZERO = Decimal(0)


def _d(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else ZERO


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _product_name(context: Any, product_id: Any) -> str:
    product = context.records.get(with_pack_rights(context.actor), "product", product_id,
                                  conn=context.conn)
    return f"{product['code']} {product['name']}"


def average_cost(records: Any, actor: Any, product_id: Any, conn: Any) -> tuple[Decimal, Decimal, Decimal]:
    """(quantity on hand, stock value, moving-average cost) of a product over every warehouse."""
    on_hand = records.ledgers.balance(with_pack_rights(actor), "stock_move", product=product_id,
                                      conn=conn)
    quantity, value = on_hand.quantity, on_hand.amounts.get("value", ZERO)
    if quantity > 0:
        return quantity, value, (value / quantity).quantize(COST_PLACES, ROUND_HALF_UP)
    product = records.get(with_pack_rights(actor), "product", product_id, conn=conn)
    fallback = product.get("avg_cost") or product.get("cost") or ZERO
    return quantity, value, _d(fallback)


# -- the stock ledger ----------------------------------------------------------------


def price_stock_move(context: Any) -> None:
    """before_save of stock_move: the unit cost and signed value of a new movement."""
    if not context.is_new:
        return  # a ledger refuses changes anyway
    move = context.values
    if not move.get("product") or move.get("quantity") is None or not move.get("kind"):
        return  # the engine reports the missing fields
    quantity = _d(move["quantity"])
    # the product stays locked until this movement is written: no other movement of it
    # can change the average or the value on hand in between
    context.records.locked(with_pack_rights(context.actor), "product", move["product"],
                           conn=context.conn)
    on_hand, value, average = average_cost(context.records, context.actor, move["product"],
                                           context.conn)
    if move["kind"] in OUT_KINDS:
        move["unit_cost"] = average
        if quantity == on_hand and on_hand > 0:
            move["value"] = -value  # the last units take the last cent
        else:
            move["value"] = -(quantity * average).quantize(CENT, ROUND_HALF_UP)
        return
    if move["kind"] == "in" and move.get("unit_cost") is None:
        context.error("unit_cost", {"en": "A receipt needs its purchase price.",
                                    "zh": "入库需要填写采购价。"})
        return
    if move.get("unit_cost") is None:
        move["unit_cost"] = average
    if move["kind"] == "transfer_in" and move.get("value") is not None:
        return  # the value that left the other warehouse
    move["value"] = (quantity * _d(move["unit_cost"])).quantize(CENT, ROUND_HALF_UP)


def update_average_cost(context: Any) -> None:
    """after_save of stock_move: a receipt moves the product's moving-average cost."""
    move = context.values
    if context.previous is not None or move.get("kind") not in ("in", "adjust_in"):
        return

    def moved(_product: dict[str, Any]) -> dict[str, Any]:
        _, _, average = average_cost(context.records, context.actor, move["product"],
                                     context.conn)
        changes: dict[str, Any] = {"avg_cost": average}
        if move["kind"] == "in" and move.get("purchase_order"):
            changes["last_purchase_price"] = move.get("unit_cost")
        return changes

    context.records.update_with(with_pack_rights(context.actor), "product", move["product"], moved,
                                conn=context.conn)


# -- keeping orders and documents honest ----------------------------------------------


def _line_keys(lines: Any, keys: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """The given terms of each line, numbers made comparable (None counts as 0)."""
    return [tuple(line.get(k) if k == "product" else _d(line.get(k)) for k in keys)
            for line in lines or []]


def _protect(context: Any, locked: tuple[str, ...], line_terms: tuple[str, ...],
             engine_terms: tuple[str, ...], written_by: dict[str, str]) -> None:
    """Terms fixed once an order leaves draft; quantities only its documents write.

    The documents post with the engine's rights (``is_admin``), so an
    administrator could correct a quantity by hand; no other user can.
    """
    before = context.previous
    values = context.values
    in_draft = before is None or before.get("stage") == "draft"
    if not context.actor.is_admin:
        new = _line_keys(values.get("lines"), engine_terms)
        if in_draft:
            tampered = any(value != ZERO for row in new for value in row)
        else:
            tampered = new != _line_keys(before.get("lines"), engine_terms)
        if tampered:
            context.error("lines", written_by)
    if in_draft:
        return
    changed = [name for name in locked if values.get(name) != before.get(name)]
    if _line_keys(values.get("lines"), line_terms) != _line_keys(before.get("lines"), line_terms):
        changed.append("lines")
    for name in changed:
        context.error(name, {"en": "Fixed once the order has left draft.",
                             "zh": "订单离开草稿阶段后不可修改。"})


def protect_purchase_order(context: Any) -> None:
    """before_save of purchase_order."""
    _protect(context, ("supplier", "warehouse"), ("product", "quantity", "unit_price"),
             ("received_quantity",),
             {"en": "Received quantities are written by goods receipts.",
              "zh": "到货数量由入库单写入。"})


def protect_sales_order(context: Any) -> None:
    """before_save of sales_order."""
    _protect(context, ("customer",), ("product", "quantity", "unit_price", "discount"),
             ("shipped_quantity", "cost_amount"),
             {"en": "Shipped quantities and cost are written by deliveries.",
              "zh": "出库数量和成本由出库单写入。"})


def keep_documents_unchanged(context: Any) -> None:
    """before_save of receipts, deliveries and transfers: posted once, never edited."""
    if context.previous is not None:
        context.error("record", {"en": "A posted document cannot be changed; post a correction.",
                                 "zh": "已过账的单据不可修改,请另行冲正。"})
    if not context.values.get("lines"):
        context.error("lines", {"en": "Add at least one line.", "zh": "请至少填写一行明细。"})
    for i, line in enumerate(context.values.get("lines") or []):
        if _d(line.get("quantity")) <= 0:
            context.error(f"lines[{i}].quantity", {"en": "Give a quantity above zero.",
                                                   "zh": "数量须大于零。"})
    if context.entity.key == "stock_transfer" and context.values.get(
            "from_warehouse") == context.values.get("to_warehouse"):
        context.error("to_warehouse", {"en": "Choose another warehouse than the one it leaves.",
                                       "zh": "调入仓库不能与调出仓库相同。"})


def refuse_document_delete(context: Any) -> None:
    """before_delete of posted documents."""
    raise ValidationFailed({"record": [say(
        context.actor, "A posted document cannot be deleted; post a correction.",
        "已过账的单据不可删除,请另行冲正。")]})


def _line_input(line: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: line.get(k) for k in keys}


def _allocate(context: Any, order_lines: list[dict[str, Any]], document_lines: list[dict[str, Any]],
              done_key: str, messages: tuple[str, str]) -> list[tuple[int, dict[str, Any], Decimal]]:
    """Spread each document line over the order's open lines of its product.

    Returns (document line index, order line, quantity) chunks; raises naming
    every product the document takes more of than the order has left.
    """
    chunks = []
    over = []
    for index, got in enumerate(document_lines):
        wanted = _d(got["quantity"])
        left = wanted
        candidates = [line for line in order_lines if line["product"] == got["product"]]
        for line in candidates:
            room = _d(line["quantity"]) - _d(line.get(done_key))
            take = min(room, left)
            if take > 0:
                line[done_key] = _d(line.get(done_key)) + take
                chunks.append((index, line, take))
                left -= take
        if left > 0:
            open_quantity = wanted - left
            over.append(say(context.actor, messages[0], messages[1]).format(
                product=_product_name(context, got["product"]), left=_plain(open_quantity),
                wanted=_plain(wanted)))
    if over:
        raise ValidationFailed({"lines": over})
    return chunks


def _follow(context: Any, entity: str, record_id: Any, stage: str) -> None:
    """Move an order to the stage its documents now justify (its guards check the quantities)."""
    context.workflows.transition(with_pack_rights(context.actor), entity, record_id, stage,
                                 conn=context.conn)


class _Posting(NamedTuple):
    """How a stock document posts against its order: a goods receipt against its purchase
    order, a delivery against its sales order. Both allocate their lines to the order's open
    quantities, write the stock moves, count the quantities done on the order's lines and move
    the order on, so that shape lives once (``_post``) and only the moves differ."""

    order_entity: str
    order_field: str  # the document's reference to its order
    first_stage: str  # the order's stage before any document posts against it
    partial_stage: str
    done_stage: str
    done_key: str  # the order line's quantity this document adds to
    line_keys: tuple[str, ...]  # the order line's values written back
    refused: tuple[str, str]  # en, zh; {number} and {stage} are the order's
    over: tuple[str, str]  # en, zh; see _allocate


_Chunks = list[tuple[int, dict[str, Any], Decimal]]


def _post(context: Any, posting: _Posting,
          write_moves: Callable[[Any, dict[str, Any], dict[str, Any], Any, _Chunks], None]) -> None:
    """Post a stock document saved for the first time (see ``_Posting``); ``write_moves``
    is called with (context, document, order, warehouse, chunks) and may update the chunks'
    order lines."""
    if context.previous is not None:
        return
    document = context.values
    actor, conn, records = with_pack_rights(context.actor), context.conn, context.records
    # the order's done quantities are read, added to and written back: hold it meanwhile
    order = records.locked(actor, posting.order_entity, document[posting.order_field],
                           conn=conn)
    if order["stage"] not in (posting.first_stage, posting.partial_stage):
        en, zh = posting.refused
        raise ValidationFailed({posting.order_field: [say(
            context.actor, en.format(number=order["number"], stage=order["stage"]),
            zh.format(number=order["number"], stage=order["stage"]))]})
    warehouse = document.get("warehouse") or order["warehouse"]
    lines = [dict(line) for line in order["lines"]]
    chunks = _allocate(context, lines, document["lines"], posting.done_key, posting.over)
    records.locked_all(actor, "product", [line["product"] for _, line, _ in chunks], conn=conn)
    write_moves(context, document, order, warehouse, chunks)
    records.update(actor, posting.order_entity, order["id"],
                   {"lines": [_line_input(line, posting.line_keys) for line in lines]},
                   version=order["version"], conn=conn)
    complete = all(_d(line[posting.done_key]) >= _d(line["quantity"]) for line in lines)
    if complete:
        _follow(context, posting.order_entity, order["id"], posting.done_stage)
    elif order["stage"] == posting.first_stage:
        _follow(context, posting.order_entity, order["id"], posting.partial_stage)


_RECEIPT = _Posting(
    "purchase_order", "purchase_order", "ordered", "partially_received", "received",
    "received_quantity", ("product", "quantity", "unit_price", "received_quantity"),
    ("Only an ordered purchase order can be received; {number} is {stage}.",
     "只有已下单的采购订单可以入库;{number} 当前为 {stage}。"),
    ("{product}: the order has {left} left to receive, this receipt brings {wanted}.",
     "{product}:订单剩余待收 {left},本次入库 {wanted}。"))

_DELIVERY = _Posting(
    "sales_order", "sales_order", "confirmed", "partially_shipped", "shipped",
    "shipped_quantity",
    ("product", "quantity", "unit_price", "discount", "shipped_quantity", "cost_amount"),
    ("Only a confirmed order can be shipped; {number} is {stage}.",
     "只有已确认的订单可以出库;{number} 当前为 {stage}。"),
    ("{product}: the order has {left} left to ship, this delivery ships {wanted}.",
     "{product}:订单剩余待发 {left},本次出库 {wanted}。"))


def _stock_in(context: Any, receipt: dict[str, Any], order: dict[str, Any], warehouse: Any,
              chunks: _Chunks) -> None:
    """A receipt's moves: stock in at the receipt line's price, else the order line's."""
    actor = with_pack_rights(context.actor)
    for index, line, quantity in chunks:
        price = receipt["lines"][index].get("unit_price")
        context.records.create(actor, "stock_move", {
            "moved_on": receipt["received_on"], "product": line["product"],
            "warehouse": warehouse, "kind": "in", "quantity": quantity,
            "unit_cost": price if price is not None else line["unit_price"],
            "supplier": order["supplier"], "purchase_order": order["id"],
            "note": receipt["number"]}, conn=context.conn)


def _stock_out(context: Any, delivery: dict[str, Any], order: dict[str, Any], warehouse: Any,
               chunks: _Chunks) -> None:
    """A delivery's moves: every line's stock checked at once, then stock out at cost, the
    cost counted on the order line."""
    actor, conn, records = with_pack_rights(context.actor), context.conn, context.records
    records.ledgers.guard(conn, context.actor, records.entity("stock_move"), [
        {"product": line["product"], "warehouse": warehouse, "signed_quantity": -quantity}
        for _, line, quantity in chunks])
    for _, line, quantity in chunks:
        net = _d(line["unit_price"]) * (100 - _d(line.get("discount"))) / 100
        move = records.create(actor, "stock_move", {
            "moved_on": delivery["shipped_on"], "product": line["product"],
            "warehouse": warehouse, "kind": "out", "quantity": quantity,
            "sales_amount": (quantity * net).quantize(CENT, ROUND_HALF_UP),
            "customer": order["customer"], "sales_order": order["id"],
            "note": delivery["number"]}, conn=conn)
        line["cost_amount"] = _d(line.get("cost_amount")) - _d(move["value"])


def post_goods_receipt(context: Any) -> None:
    """after_save of goods_receipt: stock in at the purchase price, received quantities, stage."""
    _post(context, _RECEIPT, _stock_in)


def post_delivery(context: Any) -> None:
    """after_save of delivery: every line's stock checked at once, stock out at cost, stage."""
    _post(context, _DELIVERY, _stock_out)


def post_stock_transfer(context: Any) -> None:
    """after_save of stock_transfer: out of one warehouse and into the other at the same value."""
    if context.previous is not None:
        return
    transfer = context.values
    actor, conn, records = with_pack_rights(context.actor), context.conn, context.records
    records.locked_all(actor, "product", [line["product"] for line in transfer["lines"]],
                       conn=conn)
    records.ledgers.guard(conn, context.actor, records.entity("stock_move"), [
        {"product": line["product"], "warehouse": transfer["from_warehouse"],
         "signed_quantity": -_d(line["quantity"])} for line in transfer["lines"]])
    for line in transfer["lines"]:
        common = {"moved_on": transfer["moved_on"], "product": line["product"],
                  "quantity": line["quantity"], "note": transfer["number"]}
        out = records.create(actor, "stock_move", {
            **common, "warehouse": transfer["from_warehouse"], "kind": "transfer_out"}, conn=conn)
        records.create(actor, "stock_move", {
            **common, "warehouse": transfer["to_warehouse"], "kind": "transfer_in",
            "unit_cost": out["unit_cost"], "value": -_d(out["value"])}, conn=conn)


# -- quotations and samples (workflow hooks) ------------------------------------------


def convert_to_order(context: Any) -> None:
    """The quotation's 'convert' transition: a draft sales order with the quotation's lines.

    The order points back at its quotation (``sales_order.quotation``); the
    transition's ``created`` list hands it to the caller.
    """
    quotation = context.record
    keys = ("product", "quantity", "unit_price", "discount")
    order = context.records.create(with_pack_rights(context.actor), "sales_order", {
        "customer": quotation["customer"], "quotation": quotation["id"],
        "warehouse": quotation.get("warehouse"), "owner": quotation["owner"],
        "lines": [_line_input(line, keys) for line in quotation["lines"]],
    }, conn=context.conn)
    context.created.append(("sales_order", order))


def send_sample(context: Any) -> dict[str, Any]:
    """The sample's 'send' transition: the goods leave stock at the moving-average cost."""
    sample = context.record
    move = context.records.create(with_pack_rights(context.actor), "stock_move", {
        "product": sample["product"], "warehouse": sample["warehouse"], "kind": "out",
        "quantity": sample["quantity"], "customer": sample["customer"], "sample": sample["id"],
        "moved_on": context.now.date(), "note": sample["number"]}, conn=context.conn)
    return {"unit_cost": move["unit_cost"]}


def return_sample(context: Any) -> None:
    """The sample's 'return' transition: the goods come back at the cost they left at."""
    sample = context.record
    context.records.create(with_pack_rights(context.actor), "stock_move", {
        "product": sample["product"], "warehouse": sample["warehouse"], "kind": "adjust_in",
        "quantity": sample["quantity"], "unit_cost": sample.get("unit_cost"),
        "customer": sample["customer"], "sample": sample["id"],
        "moved_on": context.now.date(), "note": sample["number"]}, conn=context.conn)
