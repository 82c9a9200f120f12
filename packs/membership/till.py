"""At the till: what a clerk does with a member found by the exact name and number.

Every function repeats the exact lookup (``records.lookup``) with the keys
the clerk typed — nothing is remembered between calls — so a clerk reaches a
member, their purchases and their points only with both the full name and
the member number. The same functions serve store managers and the owner,
whose scopes reach the member anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.pack_api import Actor, Records

PAGE = 1000


def member_keys(name: str, member_number: str) -> dict[str, str]:
    """The lookup keys, as typed (no trimming or case folding: the match is exact)."""
    return {"name": name, "member_number": member_number}


def _related(records: Records, actor: Actor, keys: Mapping[str, Any], entity: str
             ) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = records.lookup_related(actor, "member", keys, entity, "member", limit=PAGE,
                                      offset=offset, with_children=entity == "purchase")
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        offset += PAGE


@dataclass(frozen=True)
class MemberCard:
    """What the till shows once a member is found."""

    member: dict[str, Any]
    balance: int
    purchases: list[dict[str, Any]]
    points: list[dict[str, Any]]

    @property
    def spend(self) -> Decimal:
        return sum((Decimal(str(p.get("total") or 0)) for p in self.purchases), Decimal(0))


def member_card(records: Records, actor: Actor, keys: Mapping[str, Any]) -> MemberCard:
    """The member, their points balance (the sum of their ledger), purchases and movements."""
    member = records.lookup(actor, "member", keys)
    points = _related(records, actor, keys, "points_entry")
    purchases = _related(records, actor, keys, "purchase")
    purchases.sort(key=lambda p: (p["purchased_on"], p["id"]), reverse=True)
    points.sort(key=lambda p: (p["occurred_on"], p["id"]), reverse=True)
    return MemberCard(member=member, balance=sum(int(p["signed_points"]) for p in points),
                      purchases=purchases, points=points)


def record_purchase(records: Records, actor: Actor, keys: Mapping[str, Any],
                    store: int, values: Mapping[str, Any]) -> dict[str, Any]:
    """Record a purchase for the looked-up member; points follow from loyalty.yaml."""
    return records.create(actor, "purchase", {**values, "member": dict(keys), "store": store})


def redeem(records: Records, actor: Actor, keys: Mapping[str, Any], points: int,
           store: int | None = None, note: str | None = None) -> dict[str, Any]:
    """Take ``points`` from the member's balance; refused (LedgerRefused) beyond the balance."""
    values: dict[str, Any] = {"member": dict(keys), "kind": "redeem", "points": points,
                              "note": note}
    if store is not None:
        values["store"] = store
    return records.create(actor, "points_entry", values)


def renew(records: Records, actor: Actor, keys: Mapping[str, Any], *, months: int = 12,
          fee: Any = None, store: int | None = None) -> dict[str, Any]:
    """Renew the membership: its expiry moves ``months`` on (hooks.extend_membership)."""
    values: dict[str, Any] = {"member": dict(keys), "months": months, "fee": fee}
    if store is not None:
        values["store"] = store
    return records.create(actor, "membership_renewal", values)
