"""The receivables block's record hooks (declared under ``hooks:`` in entities/*.yaml).

An instalment keeps what was collected against it (``collected``,
``settled``) so a reminder rule can say "not settled" and lists can filter
on it. The collections stay the record of truth: after every collection
saved or deleted, the instalment's figures are summed again from them, in
the same transaction, as the engine's system actor; nobody else may set
them (:func:`keep_collected`).

A collection may pay part of an instalment, never more than is still due
on it (:func:`refuse_overpayment`): money above what is owed is not a
receivable being collected, and counting it would make the ageing wrong.
The sum is read under the instalment's lock so two collections saved at
the same time cannot both fit into the same remaining amount.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from engine.pack_api import Actor, Filter, NotFound, ValidationFailed

SYSTEM = Actor.system()


def _money(value: Any) -> Decimal | None:
    """A decimal amount, or None when it is missing or not a number (validation says so)."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _collected(context: Any, plan_id: int, *, leaving_out: int | None = None) -> Decimal:
    """The sum of the instalment's collections (without collection ``leaving_out``)."""
    filters = [Filter("payment_plan", "eq", plan_id)]
    if leaving_out is not None:
        filters.append(Filter("id", "ne", leaving_out))
    rows = context.records.aggregate(SYSTEM, "collection", {"sum": "sum:amount"},
                                     filters=filters, conn=context.conn)
    return Decimal(str(rows[0]["sum"] or 0)) if rows else Decimal(0)


def _resum(context: Any, plan_id: int) -> None:
    """Sum the instalment's collections under its lock: a collection saved at the same time
    waits, then sums again with this one in it, so neither total leaves the other out.

    A sum that grew above the amount due is refused here too: collections
    checked together before any was written (an import's batch) each fit on
    their own, and the engine then writes them again one by one, each checked
    by :func:`refuse_overpayment` with the ones before it in the sum.
    """
    def summed(plan: dict[str, Any]) -> dict[str, Any]:
        collected = _collected(context, plan_id)
        amount = Decimal(str(plan["amount"]))
        if collected > amount and collected > Decimal(str(plan.get("collected") or 0)):
            text = (f"该付款节点的回款合计 {collected:,.2f} 将超过应收金额 {amount:,.2f}。"
                    if context.actor.language == "zh" else
                    f"The collections would come to {collected:,.2f}, above the "
                    f"{amount:,.2f} due on this instalment.")
            raise ValidationFailed({"amount": [text]})
        return {"collected": collected, "settled": collected >= amount}

    context.records.update_with(SYSTEM, "payment_plan", plan_id, summed, conn=context.conn)


def refuse_overpayment(context: Any) -> None:
    """A collection may not take an instalment above its amount due."""
    plan_id = context.values.get("payment_plan")
    amount = context.values.get("amount")
    if plan_id is None or amount is None:
        return  # validation reports the missing values
    if not (context.is_new or context.changed("amount") or context.changed("payment_plan")):
        return
    paid = _money(amount)
    if paid is None:
        return  # validation reports the amount that is not a number
    try:  # lock the instalment: a collection saved at the same time waits for this one
        plan = context.records.locked(SYSTEM, "payment_plan", plan_id, conn=context.conn)
    except NotFound:
        return  # validation reports the reference to a missing instalment
    others = _collected(context, plan_id,
                        leaving_out=None if context.is_new else context.previous["id"])
    due = Decimal(str(plan["amount"])) - others
    if paid > due:
        context.error("amount", {
            "en": f"Only {max(due, Decimal(0)):,.2f} is still due on this instalment "
                  f"(of {Decimal(str(plan['amount'])):,.2f}).",
            "zh": f"该付款节点尚未收回的金额仅为 {max(due, Decimal(0)):,.2f}"
                  f"(应收 {Decimal(str(plan['amount'])):,.2f})。"})


def update_instalment(context: Any) -> None:
    """Sum the collections of the instalment(s) this collection belongs (or belonged) to."""
    plans = {context.values.get("payment_plan")}
    if context.previous:
        plans.add(context.previous.get("payment_plan"))
    for plan in sorted(p for p in plans if p is not None):
        _resum(context, plan)


def keep_collected(context: Any) -> None:
    """Only the pack sets ``collected`` and ``settled``: they follow the collections."""
    actor = context.actor
    if actor.user_id is None and actor.is_admin:
        return
    for name in ("collected", "settled"):
        if context.changed(name) and (not context.is_new or context.values.get(name)):
            context.error(name, {"en": "Kept from the collections: record a collection instead.",
                                 "zh": "由回款记录自动计算,请登记回款。"})


def keep_amount_above_collected(context: Any) -> None:
    """An instalment's amount may not fall below what was already collected against it."""
    amount = _money(context.values.get("amount"))
    if context.is_new or not context.changed("amount") or amount is None:
        return
    collected = _collected(context, context.previous["id"])
    if amount < collected:
        context.error("amount", {
            "en": f"{collected:,.2f} is already collected against this instalment.",
            "zh": f"该付款节点已回款 {collected:,.2f}。"})
