"""The membership pack's record hooks (declared under ``hooks:`` in entities/*.yaml).

They run inside the write's transaction, so a purchase, its points and a tier
upgrade are written together or not at all. Reads and writes of other
records here act as the engine's system actor: a clerk may record a purchase
for a member they looked up, but may not read that member by id, and the
points and tier that follow from the purchase are the pack's doing, not the
clerk's (``owner`` keeps who caused them).

A renewal moves the member's expiry on from its current value, and a
purchase's points depend on the member's tier and may upgrade it: both read
the member with ``records.locked`` (docs/hooks.md), so concurrent renewals
or purchases of one member run one after the other, each from what the one
before wrote — no month, point or upgrade is lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal
from typing import Any

from engine.pack_api import Actor, Filter, NotFound
from packs.membership.loyalty import add_months, load_rules, year_start

SYSTEM = Actor.system()
POINTS_TEXT = {"en": "Points are computed from the purchase; they cannot be typed in.",
               "zh": "积分由消费自动计算,不能手工填写。"}


def _member(context: Any, ref: Any) -> dict[str, Any]:
    """The member a value names (an id, or before the engine resolves it the lookup keys),
    locked until the write's transaction ends: what is computed from it stays true."""
    keys = getattr(ref, "keys", None)
    if isinstance(keys, dict):  # a clerk's reference by name and number, still unresolved
        ref = context.records.lookup(SYSTEM, "member", keys, conn=context.conn)["id"]
    return context.records.locked(SYSTEM, "member", ref, conn=context.conn)


def _day(value: Any, default: dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value) if value else default


def check_member(context: Any) -> None:
    """A membership cannot expire before it starts."""
    joined, expires = context.values.get("join_date"), context.values.get("expiry_date")
    if joined and expires and expires < joined:
        context.error("expiry_date", {"en": "The expiry date is before the join date.",
                                      "zh": "到期日期早于入会日期。"})


def compute_points(context: Any) -> None:
    """Set ``points_earned`` from loyalty.yaml; a recorded purchase is not changed after."""
    values = context.values
    if not context.is_new:
        fixed = [f for f in ("member", "lines", "amount", "purchased_on", "points_earned")
                 if context.changed(f)]
        for name in fixed:
            context.error(name, {"en": "A recorded purchase is not changed: record a "
                                       "points adjustment instead.",
                                 "zh": "已记录的消费不能修改,请改为登记积分调整。"})
        return
    if values.get("points_earned"):
        context.error("points_earned", POINTS_TEXT)
        return
    if values.get("member") is None:
        return  # the engine reports the missing member
    rules = load_rules()
    try:
        member = _member(context, values["member"])
    except NotFound:
        return  # the engine refuses the reference with its own message
    day = _day(values.get("purchased_on"), context.now.date())
    eligible = rules.eligible(values.get("lines") or [], values.get("amount"))
    values["points_earned"] = rules.points(eligible, member.get("tier") or "standard", day)


def _annual_spend(context: Any, member: dict[str, Any], today: dt.date) -> Decimal:
    since = year_start(member["join_date"], today)
    rows = context.records.aggregate(
        SYSTEM, "purchase", {"spend": "sum:total"},
        filters=[Filter("member", "eq", member["id"]),
                 Filter("purchased_on", "ge", since.isoformat()),
                 Filter("purchased_on", "le", today.isoformat())], conn=context.conn)
    return Decimal(str(rows[0]["spend"] or 0)) if rows else Decimal(0)


def record_earned_points(context: Any) -> None:
    """Write the purchase's points to the ledger and upgrade the member's tier if reached."""
    if not context.is_new:
        return
    purchase = context.values
    day = _day(purchase.get("purchased_on"), context.now.date())
    owner = purchase.get("owner") or context.actor.user_id  # the clerk who served
    if purchase.get("points_earned"):
        entry = {"member": purchase["member"], "kind": "earn",
                 "points": purchase["points_earned"], "occurred_on": day,
                 "purchase": purchase["id"], "store": purchase.get("store"),
                 "note": purchase.get("receipt")}
        if owner is not None:
            entry["owner"] = owner
        context.records.create(SYSTEM, "points_entry", entry, conn=context.conn)
    rules = load_rules()
    member = _member(context, purchase["member"])
    spend = _annual_spend(context, member, day)
    reached = rules.tier_for(spend)
    current = member.get("tier") or rules.tier_order[0]
    if rules.rank(reached) > rules.rank(current):
        change_tier(context.records, member, reached, "upgrade", day, spend, conn=context.conn)


def change_tier(records: Any, member: dict[str, Any], tier: str, reason: str, day: dt.date,
                spend: Decimal, *, conn: Any) -> None:
    """Set the member's tier and keep the change in the tier history (``member`` as read
    under the lock the caller holds, or read here under one)."""
    member = records.locked(SYSTEM, "member", member["id"], conn=conn)
    if member.get("tier") == tier:
        return  # another write set it meanwhile
    records.update(SYSTEM, "member", member["id"], {"tier": tier}, version=member["version"],
                   conn=conn)
    records.create(SYSTEM, "tier_change", {
        "member": member["id"], "from_tier": member.get("tier"), "to_tier": tier,
        "changed_on": day, "reason": reason, "annual_spend": spend,
        "owner": member.get("owner")}, conn=conn)


def check_points_entry(context: Any) -> None:
    """Earned and expired points are the pack's own movements; clerks only redeem.

    A new movement holds its member (as purchases and the expiry job do), so
    the expiry job counts a redemption made at the same time.
    """
    values, actor = context.values, context.actor
    if context.is_new and values.get("member") is not None:
        with contextlib.suppress(NotFound):  # the engine refuses a missing member itself
            _member(context, values["member"])
    kind, points = values.get("kind"), values.get("points")
    engine_itself = actor.user_id is None and actor.is_admin
    if kind in ("earn", "expire") and not engine_itself:
        context.error("kind", {"en": "Points are earned by purchases and expire by the "
                                     "expiry job; record a redemption or an adjustment.",
                               "zh": "积分由消费获得、由过期任务扣除;请登记兑换或调整。"})
    if kind == "adjust" and not actor.is_admin and not (
            actor.roles & {"owner", "store_manager"}):
        context.error("kind", {"en": "Only store managers and the owner adjust points.",
                               "zh": "只有店长和老板可以调整积分。"})
    if points is not None and kind != "adjust" and points <= 0:
        context.error("points", {"en": "Give a number of points above 0.",
                                 "zh": "积分须大于0。"})
    if points == 0:
        context.error("points", {"en": "Give a number of points other than 0.",
                                 "zh": "积分不能为0。"})


def extend_membership(context: Any) -> None:
    """Work out the new expiry: the months paid for, from the expiry or from today if passed."""
    if not context.is_new or context.values.get("member") is None:
        return
    try:
        member = _member(context, context.values["member"])
    except NotFound:
        return  # the engine refuses the reference with its own message
    renewed = _day(context.values.get("renewed_on"), context.now.date())
    start = max(member.get("expiry_date") or renewed, renewed)
    context.values["new_expiry"] = add_months(start, int(context.values.get("months") or 12))


def apply_renewal(context: Any) -> None:
    """Move the member's expiry date to the renewal's new expiry (the member is still locked
    by ``extend_membership``, which computed it)."""
    if context.is_new and context.values.get("new_expiry"):
        context.records.update_with(SYSTEM, "member", context.values["member"],
                                    lambda member: {"expiry_date": context.values["new_expiry"]},
                                    conn=context.conn)
