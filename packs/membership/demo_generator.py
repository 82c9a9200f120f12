"""A chain of three stores, generated: the membership pack's demo (``crm demo --size N``).

``10 × size`` members (3,000 for ``--size 300``; at least 30), spread over
three stores with a store manager and two clerks each, joined over the last
three years, with a year of purchases at the till — lines of several
categories, some of them excluded from points — earning points by the rules
of loyalty.yaml (the purchase hooks compute them and upgrade tiers exactly
as at a real till), and redemptions by a sixth of the members.

Deterministic: one ``random.Random(seed)`` and Faker(``zh_CN``) seeded with
``seed`` drive every choice, and every date is computed from the site's
clock. Fast: members and purchases are written with
``records.create_many`` — the same checks and hooks as one by one, far fewer
queries — as the system actor with the serving clerk as ``owner``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from faker import Faker

from engine.pack_api import Actor, NotFound, ValidationFailed, transaction
from packs.core.demo_generator import DemoUser, GeneratedDemo

if TYPE_CHECKING:
    from engine.pack_api import Site

SYSTEM = Actor.system()
STORES = (("SH01", "上海南京路店", "上海市黄浦区南京东路 800 号"),
          ("SH02", "上海徐家汇店", "上海市徐汇区漕溪北路 12 号"),
          ("HZ01", "杭州西湖店", "杭州市上城区湖滨路 25 号"))
CATEGORIES = (("apparel", ("衬衫", "连衣裙", "羊毛衫", "外套"), (99, 899)),
              ("cosmetics", ("面霜", "口红", "精华液"), (69, 699)),
              ("food", ("坚果礼盒", "茶叶", "咖啡豆"), (29, 299)),
              ("tobacco", ("香烟", "白酒"), (30, 600)),
              ("gift_card", ("礼品卡",), (100, 1000)),
              ("services", ("改衣服务", "护理服务"), (20, 200)))
WEIGHTS = (40, 25, 20, 6, 4, 5)
BATCH = 500


def _staff(site: Site, stores: list[dict[str, Any]]) -> list[DemoUser]:
    users = [DemoUser("mb_owner", "钱总", "owner", None)]
    for index, store in enumerate(stores, start=1):
        users.append(DemoUser(f"mb_manager{index}", f"{store['name']}店长", "store_manager",
                              store["code"]))
        users += [DemoUser(f"mb_clerk{index}{n}", f"{store['name']}店员{n}", "clerk", store["code"])
                  for n in (1, 2)]
    by_code = {s["code"]: s["id"] for s in stores}
    for user in users:
        try:
            site.users.get(user.login)
        except NotFound:
            site.users.create(user.login, password=user.password, display_name=user.display_name,
                              language="zh", roles=[user.role])
            if user.team:
                site.users.link(user.login, "store", by_code[user.team])
    return users


def _stores(site: Site) -> list[dict[str, Any]]:
    found = []
    for code, name, address in STORES:
        rows = site.records.list(SYSTEM, "store", filters=[], search=None, limit=1000).rows
        existing = next((r for r in rows if r["code"] == code), None)
        found.append(existing or site.records.create(SYSTEM, "store", {
            "code": code, "name": name, "address": address}))
    return found


def _create(site: Site, entity: str, rows: list[dict[str, Any]], conn: Any) -> list[int]:
    """Write ``rows`` in the caller's transaction; a refused row stops the demo, named."""
    outcome = site.records.create_many(SYSTEM, entity, rows, conn=conn)
    if not outcome.ok:
        raise ValidationFailed({f"{entity} {index + 1}.{key}": texts
                                for index, found in enumerate(outcome.errors) if found
                                for key, texts in found.items()})
    return [i for i in outcome.ids if i is not None]


def _lines(rng: random.Random) -> list[dict[str, Any]]:
    lines = []
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        category, items, (low, high) = rng.choices(CATEGORIES, WEIGHTS)[0]
        lines.append({"category": category, "description": rng.choice(items),
                      "amount": rng.randint(low, high)})
    return lines


def generate(site: Site, size: int = 300, *, seed: int = 2026,
             progress: Callable[[int, int], None] | None = None) -> GeneratedDemo:
    """Add the chain (see the module docstring); ``progress(done, size)`` after each batch."""
    rng = random.Random(seed)
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    today = site.clock.now().astimezone(ZoneInfo(site.config.timezone)).date()
    stores = _stores(site)
    users = _staff(site, stores)
    ids = {u["login"]: u["id"] for u in site.users.list()}
    clerks = {s["id"]: [ids[u.login] for u in users if u.role == "clerk" and u.team == s["code"]]
              for s in stores}
    total = max(30, 10 * size)
    counts = {"store": len(stores), "member": 0, "purchase": 0, "points_entry": 0}
    done = 0
    while done < total:
        chunk = min(BATCH, total - done)
        members = []
        for _ in range(chunk):
            joined = today - dt.timedelta(days=rng.randint(0, 3 * 365))
            expires = joined + dt.timedelta(days=365 * (1 + (today - joined).days // 365))
            if rng.random() < 0.15:
                expires -= dt.timedelta(days=365)  # did not renew: lapsed
            members.append({
                "name": fake.name(), "phone": fake.phone_number(),
                "email": fake.email() if rng.random() < 0.4 else None,
                "category": rng.choices(("individual", "family", "corporate", "staff"),
                                        (80, 12, 5, 3))[0],
                "join_date": joined, "expiry_date": expires,
                "birthday": fake.date_of_birth(minimum_age=18, maximum_age=75),
                "sms_opt_in": rng.random() < 0.7, "email_opt_in": rng.random() < 0.3,
                "home_store": rng.choice(stores)["id"]})
        with transaction(site.records) as conn:
            created = [{**m, "id": i} for m, i in zip(
                members, _create(site, "member", members, conn), strict=True)]
            purchases = []
            for member in created:
                active = member["expiry_date"] >= today and rng.random() < 0.85
                visits = rng.randint(1, 6) if active else rng.randint(0, 1)
                first = max(member["join_date"], today - dt.timedelta(days=365))
                span = (today - first).days
                for day in sorted(first + dt.timedelta(days=rng.randint(0, span))
                                  for _ in range(visits if span > 0 else 0)):
                    store = member["home_store"] if rng.random() < 0.8 else rng.choice(stores)["id"]
                    purchases.append({
                        "member": member["id"], "store": store, "purchased_on": day,
                        "lines": _lines(rng), "owner": rng.choice(clerks[store]),
                        "payment_method": rng.choice(("wechat", "alipay", "card", "cash"))})
            purchases.sort(key=lambda p: p["purchased_on"])
            for start in range(0, len(purchases), BATCH):
                _create(site, "purchase", purchases[start:start + BATCH], conn)
            counts["member"] += len(created)
            counts["purchase"] += len(purchases)
        done += chunk
        if progress:  # counted in the caller's units (``size``), as crm demo's bar expects
            progress(done * size // total, size)
    balances = site.ledgers.balances(SYSTEM, "points_entry", by=["member"])
    redemptions = []
    for balance in balances:
        if balance.quantity >= 100 and rng.random() < 1 / 6:
            member = balance.dimensions["member"]
            redemptions.append({"member": member, "kind": "redeem",
                                "points": int(balance.quantity) // 2, "note": "积分兑换礼品",
                                "occurred_on": today - dt.timedelta(days=rng.randint(0, 30))})
    if redemptions:
        with transaction(site.records) as conn:
            _create(site, "points_entry", redemptions, conn)
    counts["points_entry"] = site.records.count(SYSTEM, "points_entry")
    return GeneratedDemo(users=users, counts=counts)
