"""Pack hooks that read another record and write it back, run by many writers at once.

Each test fires concurrent writes through real threads, each with its own
database connection, at PostgreSQL (the production database, where a lost
update is possible) and at SQLite (whose single writer lock must give the
same answers), and asserts the exact end state: every write accepted and
counted once, no "changed by someone else" for a write that sent no version,
and no rule (stock, credit, one accepted quotation) broken by a race.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from engine.context import Actor, FixedClock
from engine.errors import CrmError, LedgerRefused
from engine.storage.queries import Filter, Sort
from packs.membership.jobs import expire_points
from packs.membership.till import member_keys, record_purchase, redeem, renew
from tests.support import open_migrated, write_site

SYSTEM = Actor.system()
NOW = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.UTC)
WRITERS = 20


def at_once(count: int, write: Callable[[int], Any]) -> list[Any]:
    """Run ``write(i)`` for i in range(count) in as many threads, released together.

    Each outcome is what the write returned, or the engine error it raised
    (any other exception fails the test).
    """
    barrier = threading.Barrier(count)

    def one(i: int) -> Any:
        barrier.wait()
        try:
            return write(i)
        except CrmError as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def kinds(outcomes: list[Any]) -> Counter:
    return Counter("ok" if not isinstance(o, Exception) else type(o).__name__ for o in outcomes)


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request):
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")


def open_site(tmp_path, url, packs, users):
    site = open_migrated(write_site(tmp_path / "site", url, packs), clock=FixedClock(NOW))
    for login, role in users:
        site.users.create(login, password="password-1", roles=[role])
    return site


# -- membership: renewals and points ------------------------------------------------------


@pytest.fixture
def shop(tmp_path, db):
    site = open_site(tmp_path, db, ["membership"], [("boss", "owner"), ("clerk", "clerk")])
    boss = site.users.actor("boss")
    store = site.records.create(boss, "store", {"code": "SH01", "name": "上海南京路店"})
    site.users.link("clerk", "store", store["id"])
    member = site.records.create(boss, "member", {
        "name": "张伟", "phone": "13800001111", "home_store": store["id"],
        "join_date": "2026-03-10", "expiry_date": "2027-03-09"})
    site.test_store, site.test_member = store, member
    yield site
    site.close()


def test_concurrent_renewals_each_move_the_expiry_by_their_months(shop):
    clerk = shop.users.actor("clerk")
    member = shop.test_member
    keys = member_keys(member["name"], member["member_number"])
    outcomes = at_once(WRITERS, lambda i: renew(shop.records, clerk, keys, months=1,
                                                store=shop.test_store["id"]))
    assert kinds(outcomes) == {"ok": WRITERS}
    stored = shop.records.get(SYSTEM, "member", member["id"])
    assert stored["expiry_date"] == dt.date(2028, 11, 9)  # 2027-03-09 plus 20 months
    # each renewal recorded the expiry it gave, one month after the one before
    given = sorted(r["new_expiry"] for r in outcomes)
    assert given == [dt.date(2027 + (2 + m) // 12, (2 + m) % 12 + 1, 9) for m in range(1, 21)]
    assert stored["version"] == member["version"] + WRITERS


def test_concurrent_purchases_earn_every_point_and_upgrade_once(shop):
    """14 purchases of 150 reach silver (2000); the later ones earn silver's 1.2."""
    clerk = shop.users.actor("clerk")
    member = shop.test_member
    keys = member_keys(member["name"], member["member_number"])
    outcomes = at_once(WRITERS, lambda i: record_purchase(
        shop.records, clerk, keys, shop.test_store["id"], {"amount": "150"}))
    assert kinds(outcomes) == {"ok": WRITERS}
    assert sorted(p["points_earned"] for p in outcomes) == [15] * 14 + [18] * 6
    balance = shop.records.ledgers.balance(SYSTEM, "points_entry", member=member["id"])
    assert balance.quantity == 14 * 15 + 6 * 18 and balance.movements == WRITERS
    assert shop.records.get(SYSTEM, "member", member["id"])["tier"] == "silver"
    changes = shop.records.list(SYSTEM, "tier_change", limit=100).rows
    assert [(c["from_tier"], c["to_tier"], c["annual_spend"]) for c in changes] == [
        ("standard", "silver", Decimal("2100.00"))]



def test_points_expire_once_and_count_the_redemptions_made_meanwhile(shop):
    """100 points earned long ago, 50 lately; 10 redemptions of 10 race 10 runs of the expiry."""
    clerk, member = shop.users.actor("clerk"), shop.test_member
    keys = member_keys(member["name"], member["member_number"])
    clock = shop.records.clock
    store = shop.test_store["id"]
    record_purchase(shop.records, clerk, keys, store, {"amount": "1000"})
    clock.current = dt.datetime(2027, 1, 5, 2, 0, tzinfo=dt.UTC)
    record_purchase(shop.records, clerk, keys, store, {"amount": "500"})
    clock.current = dt.datetime(2028, 3, 11, 2, 0, tzinfo=dt.UTC)

    def write(i: int) -> Any:
        if i % 2:
            return redeem(shop.records, clerk, keys, 10, store=store)
        return expire_points(shop.records, SYSTEM, dt.date(2028, 3, 11))

    outcomes = at_once(WRITERS, write)
    assert set(kinds(outcomes)) <= {"ok", "LedgerRefused"}
    assert all(isinstance(o, dict) for o in outcomes[::2])  # every run of the job finished
    entries = shop.records.list(SYSTEM, "points_entry", filters=[
        Filter("member", "eq", member["id"])], sort=[Sort("id")], limit=100).rows
    expiries = [e for e in entries if e["kind"] == "expire"]
    redeemed = [e for e in entries if e["kind"] == "redeem"]
    assert len(expiries) <= 1
    expired = sum(e["points"] for e in expiries)
    assert sum(sum(run.values()) for run in outcomes[::2]) == expired
    # the old 100 points were either redeemed before the expiry ran, or expired by it
    before = [e for e in redeemed if not expiries or e["id"] < expiries[0]["id"]]
    assert expired + 10 * len(before) == 100
    balance = shop.records.ledgers.balance(SYSTEM, "points_entry", member=member["id"])
    assert balance.quantity == 150 - 10 * len(redeemed) - expired >= 0


# -- service sales: an instalment's collections ----------------------------------------------


def test_concurrent_collections_are_all_summed_on_their_instalment(tmp_path, db):
    """20 collections deleted at once: the instalment sums the 20 left."""
    site = open_site(tmp_path, db, ["service_sales"], [("boss", "owner"), ("fin", "finance")])
    try:
        boss, fin = site.users.actor("boss"), site.users.actor("fin")
        customer = site.records.create(boss, "customer", {"name": "华东电力设计院"})
        contract = site.records.create(boss, "contract", {"name": "咨询服务",
                                                          "customer": customer["id"]})
        plan = site.records.create(fin, "payment_plan", {
            "name": "签约款", "contract": contract["id"], "due_date": "2026-03-31",
            "amount": "34000"})

        def collect(amount: str) -> dict[str, Any]:
            return site.records.create(fin, "collection", {
                "payment_plan": plan["id"], "received_on": "2026-03-10", "amount": amount})

        kept = [collect("1000") for _ in range(WRITERS)]
        wrong = [collect("700") for _ in range(WRITERS)]
        assert site.records.get(fin, "payment_plan", plan["id"])["collected"] == Decimal("34000")
        # collections are created one at a time (their number's sequence row is locked),
        # deletions are not: 20 wrong ones deleted at once
        outcomes = at_once(WRITERS, lambda i: site.records.delete(fin, "collection",
                                                                  wrong[i]["id"]))
        assert kinds(outcomes) == {"ok": WRITERS}
        stored = site.records.get(fin, "payment_plan", plan["id"])
        assert stored["collected"] == Decimal("20000.00") and stored["settled"] is False
        left = site.records.list(fin, "collection", limit=100).rows
        assert sorted(c["id"] for c in left) == sorted(c["id"] for c in kept)
    finally:
        site.close()


def test_concurrent_collections_never_take_an_instalment_above_its_amount(tmp_path, db):
    """20 collections of 1,000 at once on a 15,000 instalment: 15 fit, 5 are refused."""
    site = open_site(tmp_path, db, ["service_sales"], [("boss", "owner"), ("fin", "finance")])
    try:
        boss, fin = site.users.actor("boss"), site.users.actor("fin")
        customer = site.records.create(boss, "customer", {"name": "华东电力设计院"})
        contract = site.records.create(boss, "contract", {"name": "咨询服务",
                                                          "customer": customer["id"]})
        plan = site.records.create(fin, "payment_plan", {
            "name": "签约款", "contract": contract["id"], "due_date": "2026-03-31",
            "amount": "15000"})
        outcomes = at_once(WRITERS, lambda i: site.records.create(fin, "collection", {
            "payment_plan": plan["id"], "received_on": "2026-03-10", "amount": "1000"}))
        assert kinds(outcomes) == {"ok": 15, "ValidationFailed": 5}
        stored = site.records.get(fin, "payment_plan", plan["id"])
        assert stored["collected"] == Decimal("15000.00") and stored["settled"] is True
        assert site.records.count(fin, "collection") == 15
    finally:
        site.close()



def test_concurrent_renewal_runs_raise_one_opportunity_per_contract(tmp_path, db):
    from packs.service_sales.renewals import raise_renewals

    site = open_site(tmp_path, db, ["service_sales"], [("boss", "owner"), ("zhang", "consultant")])
    try:
        boss, zhang = site.users.actor("boss"), site.users.actor("zhang")
        customer = site.records.create(zhang, "customer", {"name": "华信"})
        contracts = []
        for n in range(3):
            contract = site.records.create(zhang, "contract", {
                "name": f"运维 {n}", "customer": customer["id"], "payment_terms": "月结",
                "start_date": "2026-01-01", "end_date": "2026-06-30",
                "lines": [{"service": "运维", "quantity": "20", "rate": "1000"}]})
            site.workflows.transition(zhang, "contract", contract["id"], "under_review")
            site.workflows.transition(boss, "contract", contract["id"], "approved")
            site.workflows.transition(zhang, "contract", contract["id"], "signed",
                                      {"signed_on": "2026-01-01"})
            site.workflows.transition(zhang, "contract", contract["id"], "active")
            contracts.append(contract["id"])
        runs = at_once(10, lambda i: raise_renewals(site.records, boss, dt.date(2026, 5, 1)))
        assert all(isinstance(run, list) for run in runs)
        raised = sorted(opportunity for run in runs for opportunity in run)
        assert len(raised) == 3
        stored = sorted(site.records.get(boss, "contract", c)["renewal_opportunity"]
                        for c in contracts)
        assert stored == raised
        assert site.records.count(boss, "opportunity") == 3
    finally:
        site.close()


# -- trading: moving-average cost, stock and orders ------------------------------------------


@pytest.fixture
def trade(tmp_path, db):
    site = open_site(tmp_path, db, ["core", "trading"],
                     [("boss", "owner"), ("wally", "warehouse"), ("sam", "sales")])
    wally = site.users.actor("wally")
    site.test_warehouse = site.records.create(wally, "warehouse", {"code": "SH",
                                                                    "name": "Shanghai"})["id"]
    yield site
    site.close()


def new_product(site, code: str) -> int:
    boss = site.users.actor("boss")
    return site.records.create(boss, "product", {"code": code, "name": f"Widget {code}",
                                                 "list_price": 40})["id"]


def move(site, product: int, kind: str, quantity: Any, unit_cost: Any = None) -> dict:
    values = {"moved_on": "2026-03-10", "product": product, "warehouse": site.test_warehouse,
              "kind": kind, "quantity": quantity}
    if unit_cost is not None:
        values["unit_cost"] = unit_cost
    return site.records.create(site.users.actor("wally"), "stock_move", values)


def test_concurrent_receipts_move_the_average_cost_by_every_receipt(trade):
    product = new_product(trade, "R-1")
    version = trade.records.get(SYSTEM, "product", product)["version"]
    outcomes = at_once(WRITERS, lambda i: move(trade, product, "in", 1, 10 + i))
    assert kinds(outcomes) == {"ok": WRITERS}
    stored = trade.records.get(SYSTEM, "product", product)
    assert stored["avg_cost"] == Decimal("19.5000")  # (10 + 11 + … + 29) / 20
    assert stored["version"] == version + WRITERS
    stock = trade.ledgers.balance(SYSTEM, "stock_move", product=product)
    assert stock.quantity == WRITERS and stock.amounts["value"] == Decimal("390.00")


def test_concurrent_issues_never_overdraw_and_the_last_takes_the_last_cent(trade):
    """20 units worth 226.01; 21 issues of one unit at once: 20 leave, value ends at 0.00."""
    product = new_product(trade, "I-1")
    for quantity, price in ((7, "10.00"), (5, "13.33"), (8, "11.17")):
        move(trade, product, "in", quantity, price)
    outcomes = at_once(WRITERS + 1, lambda i: move(trade, product, "out", 1))
    assert kinds(outcomes) == {"ok": WRITERS, "LedgerRefused": 1}
    stock = trade.ledgers.balance(SYSTEM, "stock_move", product=product)
    assert stock.quantity == 0 and stock.amounts["value"] == Decimal("0.00")
    issued = [o for o in outcomes if not isinstance(o, LedgerRefused)]
    assert sum(o["value"] for o in issued) == Decimal("-226.01")


def test_concurrent_deliveries_of_one_order_ship_it_exactly_once(trade):
    boss, wally, sam = (trade.users.actor(n) for n in ("boss", "wally", "sam"))
    product = new_product(trade, "D-1")
    move(trade, product, "in", 30, "10.00")
    client = trade.records.create(sam, "customer", {"name": "Buyer Ltd", "kind": "client"})
    order = trade.records.create(sam, "sales_order", {
        "customer": client["id"], "warehouse": trade.test_warehouse,
        "lines": [{"product": product, "quantity": WRITERS, "unit_price": 20}]})
    trade.workflows.transition(sam, "sales_order", order["id"], "confirmed")
    outcomes = at_once(WRITERS + 1, lambda i: trade.records.create(wally, "delivery", {
        "sales_order": order["id"], "lines": [{"product": product, "quantity": 1}]}))
    assert kinds(outcomes) == {"ok": WRITERS, "ValidationFailed": 1}
    shipped = trade.records.get(boss, "sales_order", order["id"])
    assert shipped["stage"] == "shipped"
    assert shipped["lines"][0]["shipped_quantity"] == WRITERS
    assert shipped["lines"][0]["cost_amount"] == Decimal("200.00")
    stock = trade.ledgers.balance(SYSTEM, "stock_move", product=product)
    assert stock.quantity == 10 and stock.amounts["value"] == Decimal("100.00")


# -- distribution: dealer credit and end-customer claims -----------------------------------


@pytest.fixture
def channel(tmp_path, db):
    site = open_site(tmp_path, db, ["core", "distribution"],
                     [("boss", "owner"), ("cm", "channel_manager"), ("ann", "dealer_user"),
                      ("ben", "dealer_user")])
    boss, cm = site.users.actor("boss"), site.users.actor("cm")
    site.users.teams.create("east", manager="cm")
    gold = site.records.create(boss, "dealer_level", {
        "code": "G", "name": "Gold", "discount": 20, "default_credit_limit": 10000})["id"]
    site.test_dealers = [site.records.create(cm, "customer", {
        "name": name, "kind": "dealer", "dealer_level": gold, "region": "East"})["id"]
        for name in ("Alpha Dealer", "Beta Dealer")]
    site.test_unit = site.records.create(boss, "product", {
        "code": "U-1", "name": "Unit", "category": "units", "list_price": 100})["id"]
    site.users.link("ann", "customer", site.test_dealers[0])
    site.users.link("ben", "customer", site.test_dealers[1])
    yield site
    site.close()


def test_concurrent_approvals_stay_within_the_dealer_credit(channel):
    """Credit 10000, shipments of 800 approved at once: 12 fit (9600), the other 8 do not."""
    cm = channel.users.actor("cm")
    alpha = channel.test_dealers[0]
    drafts = [channel.records.create(cm, "shipment", {
        "dealer": alpha, "lines": [{"product": channel.test_unit, "quantity": 10}]})
        for _ in range(WRITERS)]
    assert {d["total"] for d in drafts} == {Decimal("800")} and not any(
        d["needs_approval"] for d in drafts)
    outcomes = at_once(WRITERS, lambda i: channel.workflows.transition(
        cm, "shipment", drafts[i]["id"], "approved"))
    counted = kinds(outcomes)
    assert counted["ok"] == 12 and sum(counted.values()) == WRITERS
    assert set(counted) <= {"ok", "TransitionRefused", "ValidationFailed"}
    approved = channel.records.list(SYSTEM, "shipment", filters=[
        Filter("stage", "eq", "approved")], limit=100)
    assert approved.total == 12 and sum(s["total"] for s in approved.rows) == Decimal("9600")


def test_concurrent_first_claims_create_one_end_customer(channel):
    ann, ben = channel.users.actor("ann"), channel.users.actor("ben")
    alpha, beta = channel.test_dealers

    def claim(i: int) -> dict:
        who, dealer = (ann, alpha) if i % 2 else (ben, beta)
        return channel.records.create(who, "end_customer_claim", {
            "dealer": dealer, "name": "星河科技有限公司", "phone": "13900001111"})

    outcomes = at_once(WRITERS, claim)
    assert kinds(outcomes) == {"ok": WRITERS}
    ends = channel.records.list(SYSTEM, "customer", filters=[
        Filter("kind", "eq", "end_customer")], limit=100).rows
    assert len(ends) == 1
    holder = ends[0]["dealer"]
    claims = channel.records.list(SYSTEM, "end_customer_claim", limit=100).rows
    assert {(c["dealer"] == holder, c["stage"], c["end_customer"]) for c in claims} == {
        (True, "accepted", ends[0]["id"]), (False, "conflict", ends[0]["id"])}
    assert sum(c["dealer"] == holder for c in claims) == WRITERS // 2


# -- project sales: one accepted quotation per project --------------------------------------


def test_concurrent_acceptances_accept_one_quotation_version(tmp_path, db):
    from tests.project_sales_support import open_project_site, project_in_negotiation

    opened = open_project_site(tmp_path, db)
    try:
        ann = opened.actors["ann"]
        client = opened.records.create(ann, "customer", {"name": "Eastern Hospital",
                                                         "kind": "client"})
        project = project_in_negotiation(opened.site, ann, "Ward Wi-Fi", 90000, client["id"])
        first = opened.records.list(ann, "quotation", limit=10).rows
        versions = [first[0]]
        for number in range(2, WRITERS + 1):
            quotation = opened.records.create(ann, "quotation", {
                "project": project["id"], "version_no": number, "title": f"v{number}",
                "lines": [{"item": "Everything", "quantity": 1, "unit_price": 90000 + number}]})
            versions.append(opened.workflows.transition(ann, "quotation", quotation["id"],
                                                        "sent"))
        outcomes = at_once(WRITERS, lambda i: opened.workflows.transition(
            ann, "quotation", versions[i]["id"], "accepted"))
        assert kinds(outcomes) == {"ok": 1, "TransitionRefused": WRITERS - 1}
        (won,) = [o for o in outcomes if not isinstance(o, Exception)]
        accepted = opened.records.list(ann, "quotation", filters=[
            Filter("stage", "eq", "accepted")], limit=100)
        assert [q["id"] for q in accepted.rows] == [won["id"]]
        stored = opened.records.get(ann, "project", project["id"])
        assert stored["accepted_version"] == won["version_no"]
        assert stored["contract_value"] == won["total"]
    finally:
        opened.site.close()
