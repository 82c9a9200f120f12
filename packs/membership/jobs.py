"""The membership pack's daily jobs: expiring old points and the anniversary tier review.

Run once a day (a scheduled job, or a script) with the system actor and the
day in the site's time zone; both are idempotent, so running one twice on a
day, or catching up a missed day, changes nothing more.

Points expiry (first in, first out): on ``today``, points earned before the
cutoff (``expire_after_months`` ago) and not since spent have expired. What
has left the balance so far — redemptions, expiries and negative
adjustments — is taken from the oldest points first, so

    to expire = max(0, earned before the cutoff − everything that has left)

and one ``expire`` movement records it.

Tier review: a member whose anniversary of joining is ``today`` gets the
tier their spend in the membership year just ended reaches — possibly lower
than now (upgrades happen at once with each purchase; downgrades only here).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from engine.pack_api import Actor, Filter, JobContext, Records, transaction
from packs.membership.hooks import change_tier
from packs.membership.loyalty import LoyaltyRules, add_months, load_rules

PAGE = 1000


def _rows(records: Records, actor: Actor, entity: str, filters: list[Filter]) -> list[dict]:
    rows, offset = [], 0
    while True:
        page = records.list(actor, entity, filters=filters, limit=PAGE, offset=offset,
                            with_total=False)
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        offset += PAGE


def _due(records: Records, actor: Actor, member: int, cutoff: dt.date, conn: Any) -> int:
    """Points of ``member`` earned before ``cutoff`` and not yet left the balance."""
    def total(*filters: Filter) -> int:
        rows = records.aggregate(actor, "points_entry", {"points": "sum:signed_points"},
                                 filters=[Filter("member", "eq", member), *filters], conn=conn)
        return int(rows[0]["points"] or 0) if rows else 0

    earned = total(Filter("signed_points", "gt", 0), Filter("occurred_on", "lt", cutoff.isoformat()))
    return earned + total(Filter("signed_points", "lt", 0))


def expire_points(records: Records, actor: Actor, today: dt.date,
                  rules: LoyaltyRules | None = None) -> dict[int, int]:
    """Write the expiry movements due on ``today``; member id → points expired.

    Each member's points are counted again in the transaction that expires
    them, with the member locked as redemptions and purchases lock it
    (hooks.py): a redemption made meanwhile is counted, and a second run at
    the same time finds nothing left to expire.
    """
    rules = rules or load_rules()
    cutoff = rules.expiry_cutoff(today)
    old_earned: dict[int, int] = defaultdict(int)
    spent: dict[int, int] = defaultdict(int)
    for row in _rows(records, actor, "points_entry", []):
        change = int(row["signed_points"])
        if change > 0 and row["occurred_on"] < cutoff:
            old_earned[row["member"]] += change
        elif change < 0:
            spent[row["member"]] -= change
    expired = {}
    for member, earned in sorted(old_earned.items()):
        if earned - spent[member] <= 0:
            continue
        with transaction(records) as conn:
            records.locked(actor, "member", member, conn=conn)
            due = _due(records, actor, member, cutoff, conn)
            if due > 0:
                records.create(actor, "points_entry", {
                    "member": member, "kind": "expire", "points": due, "occurred_on": today,
                    "note": f"earned before {cutoff}"}, conn=conn)
                expired[member] = due
    return expired


def _spend_by_member(records: Records, actor: Actor, since: dt.date, until: dt.date,
                     members: list[int]) -> dict[int, Decimal]:
    rows = records.aggregate(actor, "purchase", {"spend": "sum:total"}, group_by=["member"],
                             filters=[Filter("member", "in", members),
                                      Filter("purchased_on", "ge", since.isoformat()),
                                      Filter("purchased_on", "lt", until.isoformat())])
    return {r["member"]: Decimal(str(r["spend"] or 0)) for r in rows}


def review_tiers(records: Records, actor: Actor, today: dt.date,
                 rules: LoyaltyRules | None = None) -> dict[int, tuple[str, str]]:
    """Set the tier of members whose anniversary is ``today``; member id → (from, to)."""
    rules = rules or load_rules()
    members = [m for m in _rows(records, actor, "member", [
        Filter("join_date", "lt", today.isoformat())])
        if m["join_date"].month == today.month and add_months(
            m["join_date"], 12 * (today.year - m["join_date"].year)) == today]
    if not members:
        return {}
    spend = _spend_by_member(records, actor, add_months(today, -12), today,
                             [m["id"] for m in members])
    changed = {}
    for member in members:
        amount = spend.get(member["id"], Decimal(0))
        tier = rules.tier_for(amount)
        if tier != member["tier"]:
            with transaction(records) as conn:
                change_tier(records, member, tier, "anniversary", today, amount, conn=conn)
            changed[member["id"]] = (member["tier"], tier)
    return changed


def points_expiry(context: JobContext) -> dict[str, int]:
    """The scheduled job (pack.yaml ``jobs:``): :func:`expire_points` on the occurrence's day."""
    expired = expire_points(context.records, context.actor, context.today)
    return {"members": len(expired), "points": sum(expired.values())}


def tier_review(context: JobContext) -> dict[str, int]:
    """The scheduled job (pack.yaml ``jobs:``): :func:`review_tiers` on the occurrence's day."""
    changed = review_tiers(context.records, context.actor, context.today)
    return {"members": len(changed)}
