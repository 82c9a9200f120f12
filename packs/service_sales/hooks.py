"""The service-sales pack's record hooks (declared under ``hooks:`` in entities/*.yaml).

A won opportunity with service lines gets its draft contract at once
(:func:`draft_contract_on_win`), written by whoever won it — so they are the
contract's author, and may not approve it.

An instalment keeps what was collected against it (``collected``,
``settled``) so a reminder rule can say "not settled" and lists can filter
on it. The collections stay the record of truth: after every collection
saved or deleted, the instalment's figures are summed again from them, in
the same transaction, as the engine's system actor; nobody else may set
them (:func:`keep_collected`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.pack_api import Actor, Filter, PermissionDenied

SYSTEM = Actor.system()


def _resum(context: Any, plan_id: int) -> None:
    """Sum the instalment's collections under its lock: a collection saved at the same time
    waits, then sums again with this one in it, so neither total leaves the other out."""
    def summed(plan: dict[str, Any]) -> dict[str, Any]:
        rows = context.records.aggregate(SYSTEM, "collection", {"sum": "sum:amount"},
                                         filters=[Filter("payment_plan", "eq", plan_id)],
                                         conn=context.conn)
        collected = Decimal(str(rows[0]["sum"] or 0)) if rows else Decimal(0)
        return {"collected": collected, "settled": collected >= plan["amount"]}

    context.records.update_with(SYSTEM, "payment_plan", plan_id, summed, conn=context.conn)


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


LINE_KEYS = ("service", "unit", "quantity", "rate")


def draft_contract_on_win(context: Any) -> None:
    """Draft the contract of an opportunity just won, from its service lines (once)."""
    transition = context.transition
    if transition is None or transition.to_stage != "won":
        return
    deal = context.values
    lines = [{k: line.get(k) for k in LINE_KEYS} for line in deal.get("service_lines") or []]
    if not lines:
        return
    existing = context.records.count(SYSTEM, "contract", filters=[
        Filter("opportunity", "eq", deal["id"])], conn=context.conn)
    if existing:
        return  # reopened and won again: the contract is already there
    values = {"name": deal["name"], "customer": deal["customer"], "opportunity": deal["id"],
              "lines": lines}
    if deal.get("owner") is not None:
        values["owner"] = deal["owner"]
    try:
        context.records.create(context.actor, "contract", values, conn=context.conn)
    except PermissionDenied:  # whoever won may not write contracts: drafted by the pack
        context.records.create(SYSTEM, "contract", values, conn=context.conn)
