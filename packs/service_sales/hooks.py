"""The service-sales pack's record hooks (declared under ``hooks:`` in entities/*.yaml).

A won opportunity with service lines gets its draft contract at once
(:func:`draft_contract_on_win`), written by whoever won it — so they are the
contract's author, and may not approve it.

The instalments and collections are the receivables block's (packs/receivables).
"""

from __future__ import annotations

from typing import Any

from engine.pack_api import Actor, Filter, PermissionDenied

SYSTEM = Actor.system()


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
