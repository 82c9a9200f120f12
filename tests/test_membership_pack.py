"""The membership pack: the till scenario by hand-computed numbers, and clerks who see no list."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.errors import (
    DefinitionError,
    LedgerRefused,
    NotFound,
    PermissionDenied,
    Throttled,
    ValidationFailed,
)
from engine.metadata.loader import load_registry
from engine.notifications.reminders import ReminderScheduler
from engine.services.views.figures import ReportRequest
from engine.storage.queries import Filter, Sort
from packs.membership import reports
from packs.membership.demo_generator import generate
from packs.membership.jobs import expire_points, review_tiers
from packs.membership.loyalty import load_rules, parse_rules, year_start
from packs.membership.till import member_card, member_keys, record_purchase, redeem, renew
from tests.api_support import api_for
from tests.support import open_migrated, write_site
from tests.web_support import login

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run

# 09:00 in Shanghai, 10 March 2026
START = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system()


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def site(tmp_path, db_url, clock):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["membership"]), clock=clock)
    for name, role in (("boss", "owner"), ("sm", "store_manager"), ("clerk", "clerk"),
                       ("clerk2", "clerk"), ("rep", "sales")):
        opened.users.create(name, password="correct-horse", roles=[role])
    boss = opened.users.actor("boss")
    stores = [opened.records.create(boss, "store", {"code": code, "name": name})
              for code, name in (("SH01", "上海南京路店"), ("SH02", "上海徐家汇店"))]
    opened.users.link("sm", "store", stores[0]["id"])
    opened.users.link("clerk", "store", stores[0]["id"])
    opened.users.link("clerk2", "store", stores[1]["id"])
    opened.test_stores = stores
    yield opened
    opened.close()


def at(clock, day: str, time: str = "09:00") -> dt.date:
    """Move the clock to ``time`` in Shanghai on ``day``."""
    clock.current = dt.datetime.fromisoformat(f"{day}T{time}:00+08:00").astimezone(dt.UTC)
    return dt.date.fromisoformat(day)


def new_member(site, store, **values):
    boss = site.users.actor("boss")
    base = {"name": "张伟", "phone": "13800001111", "home_store": store["id"],
            "join_date": "2026-03-10", "expiry_date": "2027-03-09", "birthday": "1990-04-02",
            "sms_opt_in": True}
    return site.records.create(boss, "member", {**base, **values})


# -- definitions and rules ---------------------------------------------------------


def test_the_pack_declares_its_reminders_and_ledger_and_its_rules_load():
    registry = load_registry(["membership"])
    assert {"member_expiry", "member_birthday"} <= set(registry.reminders)
    assert registry.entities["points_entry"].ledger is not None
    rules = load_rules()
    assert rules.points(Decimal("358"), "standard", dt.date(2026, 3, 1)) == 35
    assert rules.points(Decimal("100"), "silver", dt.date(2026, 3, 1)) == 12
    assert rules.points(Decimal("500"), "silver", dt.date(2026, 11, 5)) == 120  # 50 × 1.2 × 2
    assert rules.tier_for(Decimal("1999.99")) == "standard"
    assert rules.tier_for(Decimal("8000")) == "gold"


def test_bad_loyalty_rules_name_every_problem():
    with pytest.raises(DefinitionError) as caught:
        parse_rules({"points": {"per_amount": 0, "tier_multipliers": {"diamond": 3},
                                "promotions": [{"from": "2026-02-30", "to": "2026-01-01",
                                                "multiplier": 2}]},
                     "tiers": {"order": ["standard", "gold"], "thresholds": {}},
                     "extra": 1}, "loyalty.yaml")
    keys = {p.path for p in caught.value.problems}
    assert {"points.tier_multipliers.diamond", "points.promotions[0].from",
            "tiers.thresholds.gold", "extra"} <= keys


def test_membership_year_starts_at_the_last_anniversary():
    assert year_start(dt.date(2025, 3, 10), dt.date(2026, 3, 9)) == dt.date(2025, 3, 10)
    assert year_start(dt.date(2025, 3, 10), dt.date(2026, 3, 10)) == dt.date(2026, 3, 10)
    assert year_start(dt.date(2024, 2, 29), dt.date(2025, 3, 1)) == dt.date(2025, 2, 28)


# -- the till scenario ----------------------------------------------------------------


def test_the_till_scenario(site, clock):
    clerk, boss, sm = (site.users.actor(x) for x in ("clerk", "boss", "sm"))
    store, other_store = site.test_stores
    member = new_member(site, store)
    number = member["member_number"]
    assert number.startswith("M") and member["tier"] == "standard"

    # Partial name, wrong number, name alone: nothing.
    with pytest.raises(NotFound):
        member_card(site.records, clerk, member_keys("张", number))
    with pytest.raises(NotFound):
        member_card(site.records, clerk, member_keys("张伟", number[:-1] + str((int(number[-1]) + 1) % 10)))
    with pytest.raises(ValidationFailed):
        site.records.lookup(clerk, "member", {"name": "张伟"})
    with pytest.raises(NotFound):
        site.records.get(clerk, "member", member["id"])

    # The exact pair finds the member; a purchase earns points by the rules.
    keys = member_keys("张伟", number)
    assert member_card(site.records, clerk, keys).member["id"] == member["id"]
    purchase = record_purchase(site.records, clerk, keys, store["id"], {"lines": [
        {"category": "apparel", "description": "羊毛衫", "amount": "358"},
        {"category": "tobacco", "description": "香烟", "amount": "200"}]})
    assert purchase["total"] == Decimal("558") and purchase["points_earned"] == 35
    card = member_card(site.records, clerk, keys)
    assert card.balance == 35 and [p["id"] for p in card.purchases] == [purchase["id"]]
    assert [(p["kind"], p["signed_points"]) for p in card.points] == [("earn", 35)]

    # A clerk cannot record a purchase in a store they do not work in, nor earn points by hand.
    with pytest.raises(ValidationFailed):
        record_purchase(site.records, clerk, keys, other_store["id"], {"amount": "10"})
    with pytest.raises(ValidationFailed):
        site.records.create(clerk, "points_entry", {"member": keys, "kind": "earn",
                                                    "points": 1000})
    with pytest.raises(ValidationFailed):
        site.records.create(clerk, "points_entry", {"member": keys, "kind": "adjust",
                                                    "points": 50})
    with pytest.raises(ValidationFailed):
        record_purchase(site.records, clerk, keys, store["id"], {"amount": "10",
                                                                 "points_earned": 999})

    # Redeeming: within the balance, never beyond it; the ledger refuses changes.
    redeem(site.records, clerk, keys, 20, store["id"])
    with pytest.raises(LedgerRefused):
        redeem(site.records, clerk, keys, 16, store["id"])
    assert member_card(site.records, clerk, keys).balance == 15
    entry = member_card(site.records, clerk, keys).points[0]
    with pytest.raises((LedgerRefused, PermissionDenied)):
        site.records.update(boss, "points_entry", entry["id"], {"points": 1})

    # Crossing the silver threshold (2,000 in the membership year) upgrades at once;
    # the purchase that crosses earns at the old tier, the next one at the new.
    big = record_purchase(site.records, clerk, keys, store["id"], {"amount": "1700"})
    assert big["points_earned"] == 170
    assert site.records.get(boss, "member", member["id"])["tier"] == "silver"
    (change,) = site.records.list(boss, "tier_change").rows
    assert (change["from_tier"], change["to_tier"], change["reason"],
            change["annual_spend"]) == ("standard", "silver", "upgrade", Decimal("2258"))
    at(clock, "2026-11-05")  # Singles' Day promotion: × 2
    promo = record_purchase(site.records, clerk, keys, store["id"], {"amount": "500"})
    assert promo["points_earned"] == 120  # 50 × 1.2 × 2
    assert member_card(site.records, clerk, keys).balance == 15 + 170 + 120

    # Expiry reminders: 30 days before 9 March 2027 at 10:00, by SMS (opted in), not e-mail.
    scheduler = ReminderScheduler(site.records, site.pipeline, clock=clock,
                                  timezone=site.config.timezone)
    outbox = site.schema.system("crm_outbox")

    def expiry_messages():
        with site.engine.connect() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.source == "member_expiry"))
            return [(r.channel, r.address, r.status, r.record_id) for r in rows]

    at(clock, "2027-02-07", "09:59")
    scheduler.scan()
    assert expiry_messages() == []
    at(clock, "2027-02-07", "10:00")  # 2027-03-09 − 30 days = 2027-02-07, at 10:00
    scheduler.scan()
    sent = expiry_messages()
    assert [m for m in sent if m[0] == "sms"] == [("sms", "13800001111", "pending", member["id"])]
    assert not [m for m in sent if m[0] == "email" and m[2] == "pending"]  # no address
    scheduler.scan()
    assert expiry_messages() == sent  # not twice

    # Renewal extends the expiry by twelve months from the current expiry.
    renewal = renew(site.records, clerk, keys, months=12, fee="99", store=store["id"])
    assert renewal["new_expiry"] == dt.date(2028, 3, 9)
    assert site.records.get(boss, "member", member["id"])["expiry_date"] == dt.date(2028, 3, 9)

    # At the anniversary the tier is set from the year just ended: 2,758 stays silver.
    assert review_tiers(site.records, SYSTEM, at(clock, "2027-03-10")) == {}
    # A year later, nothing bought: down to standard.
    assert review_tiers(site.records, SYSTEM, at(clock, "2028-03-10")) == {
        member["id"]: ("silver", "standard")}
    assert site.records.get(sm, "member", member["id"])["tier"] == "standard"

    # Points older than 24 months expire, oldest first: 35 + 170 earned in March 2026,
    # 20 redeemed since → 185 expire on 2028-03-11; the 120 of November stay.
    assert expire_points(site.records, SYSTEM, at(clock, "2028-03-10")) == {}
    assert expire_points(site.records, SYSTEM, at(clock, "2028-03-11")) == {member["id"]: 185}
    assert expire_points(site.records, SYSTEM, at(clock, "2028-03-12")) == {}
    assert site.ledgers.balance(boss, "points_entry", member=member["id"]).quantity == 120

    # The figures agree with the ledger.
    request = ReportRequest(site=site, actor=boss, now=clock.now())
    liability = dict(zip(reports.points_liability(request).categories,
                         reports.points_liability(request).series[0].values, strict=True))
    assert liability["issued 发放"] == 325 and liability["redeemed 兑换"] == 20
    assert liability["expired 过期"] == 185 and liability["outstanding 未兑余额"] == 120


def test_store_managers_see_their_store_and_the_owner_all(site):
    store, other_store = site.test_stores
    sm, boss = site.users.actor("sm"), site.users.actor("boss")
    mine = new_member(site, store, name="李娜")
    theirs = new_member(site, other_store, name="王芳")
    assert [m["id"] for m in site.records.list(sm, "member").rows] == [mine["id"]]
    with pytest.raises(NotFound):
        site.records.get(sm, "member", theirs["id"])
    assert site.records.count(boss, "member") == 2
    with pytest.raises(ValidationFailed):  # the tier follows the rules
        site.records.update(sm, "member", mine["id"], {"tier": "platinum"})
    with pytest.raises(PermissionDenied):
        site.records.list(site.users.actor("rep"), "member")


def test_a_clerk_obtains_no_member_list_by_any_door(site):
    store, _ = site.test_stores
    clerk = site.users.actor("clerk")
    members = [new_member(site, store, name=f"会员{i}") for i in range(3)]
    records = site.records
    # The record service: list, search, filters, count, aggregates, export, get by id.
    assert records.list(clerk, "member").rows == []
    assert records.list(clerk, "member", search="会员").total == 0
    assert records.list(clerk, "member", filters=[Filter("home_store", "eq", store["id"])]).rows == []
    assert records.count(clerk, "member") == 0
    assert records.aggregate(clerk, "member", {"n": "count"}) == [{"n": 0}]
    with pytest.raises(PermissionDenied):
        list(records.export(clerk, "member"))
    for member in members:
        with pytest.raises(NotFound):
            records.get(clerk, "member", member["id"])
    # Purchases and points of members the clerk did not look up stay out of reach too.
    boss = site.users.actor("boss")
    other = record_purchase(records, boss, member_keys(members[0]["name"],
                                                       members[0]["member_number"]),
                            store["id"], {"amount": "100"})
    assert records.list(clerk, "purchase").rows == []
    assert records.list(clerk, "points_entry").rows == []
    with pytest.raises(NotFound):
        records.get(clerk, "purchase", other["id"])
    # The API: list, search, get, related lists.
    api = api_for(site, "clerk")
    listed = api.get("/member")
    assert listed.status_code == 200 and listed.get_json()["items"] == []
    assert api.get("/member?q=会员").get_json()["items"] == []
    assert api.get(f"/member/{members[0]['id']}").status_code == 404
    assert api.get(f"/member/{members[0]['id']}/related/purchase/member").status_code == 404
    found = api.post("/member/lookup", json={"name": members[1]["name"],
                                              "member_number": members[1]["member_number"]})
    assert found.status_code == 200 and found.get_json()["id"] == members[1]["id"]
    assert api.post("/member/lookup", json={"name": members[1]["name"]}).status_code == 422
    # The reference picker of the web forms.
    client = api.client
    login(client, "clerk", "correct-horse")
    picker = client.get("/r/member/lookup?q=会员")
    assert picker.status_code == 200 and picker.get_json()["results"] == []
    assert client.get("/r/member").status_code in (200, 403)
    assert "会员0" not in client.get("/r/member").get_data(as_text=True)
    # A clerk registers a new member and looks them up like any other, never by id.
    joined = records.create(clerk, "member", {"name": "赵新", "phone": "13600004444",
                                              "home_store": store["id"]})
    assert joined["member_number"].startswith("M") and joined["tier"] == "standard"
    with pytest.raises(NotFound):
        records.get(clerk, "member", joined["id"])
    assert records.lookup(clerk, "member", member_keys("赵新", joined["member_number"]))[
        "id"] == joined["id"]
    assert records.count(clerk, "member") == 0
    # Dashboards, in the browser and through the API: no member's name, no count of them.
    page = client.get("/dashboards/stores")
    assert page.status_code in (200, 403, 404)
    assert not any(m["name"] in page.get_data(as_text=True) for m in members)
    served = api.get("/dashboards/stores")
    if served.status_code == 200:
        text = served.get_data(as_text=True)
        assert not any(m["name"] in text or m["member_number"] in text for m in members)
    # Every membership figure counts nothing for a clerk.
    request = ReportRequest(site=site, actor=clerk, now=site.clock.now())
    assert all(v == 0 for v in reports.member_status(request).series[0].values)
    assert all(v == 0 for v in reports.tiers(request).series[0].values)
    assert all(v == 0 for v in reports.expiries(request).series[0].values)
    assert reports.sales_by_store(request).categories == ()


def test_the_generated_chain_is_deterministic_and_feeds_the_reports(site, clock):
    at(clock, "2026-11-23")
    made = generate(site, 5, seed=11)
    assert made.counts["member"] == 50 and made.counts["purchase"] > 50
    assert {u.role for u in made.users} == {"owner", "store_manager", "clerk"}
    first = [(m["name"], m["tier"], m["expiry_date"]) for m in site.records.list(
        SYSTEM, "member", limit=1000, sort=[Sort("id")]).rows]
    generate(site, 5, seed=11)  # the same stores and people, and the same members again
    rows = [(m["name"], m["tier"], m["expiry_date"]) for m in site.records.list(
        SYSTEM, "member", limit=1000, sort=[Sort("id")]).rows]
    assert rows[:50] == first and [r[0] for r in rows[50:]] == [r[0] for r in first]
    # Every purchase earned what the rules give at the tier of its day, and the ledger agrees.
    ledger = site.ledgers.balances(SYSTEM, "points_entry", by=["member"])
    assert all(b.quantity >= 0 for b in ledger)
    earned = site.records.aggregate(SYSTEM, "purchase", {"p": "sum:points_earned"})[0]["p"]
    issued = site.records.aggregate(SYSTEM, "points_entry", {"p": "sum:points"},
                                    filters=[Filter("kind", "eq", "earn")])[0]["p"]
    assert earned == issued > 0
    manager = site.users.actor("mb_manager1")
    request = ReportRequest(site=site, actor=manager, now=clock.now())
    stores = reports.sales_by_store(request)
    assert len(stores.categories) == 1  # a store manager sees their own store's sales
    owner = ReportRequest(site=site, actor=site.users.actor("mb_owner"), now=clock.now())
    assert len(reports.sales_by_store(owner).categories) == 3
    status = reports.member_status(owner).series[0].values
    assert status[1] + status[2] == 100  # active + lapsed = every member
    assert sum(reports.tiers(owner).series[0].values) == 100
    for report in (reports.sales_by_clerk, reports.sales_by_month, reports.points_liability,
                   reports.expiries):
        figure = report(owner)
        assert all(len(figure.categories) == len(s.values) for s in figure.series)


def test_demo_data_loads_through_the_services(tmp_path, db_url, clock):
    site = open_migrated(write_site(tmp_path / "demo", db_url, ["membership"]), clock=clock)
    try:
        site.users.create("root", password="correct-horse", roles=["admin"], is_admin=True)
        root = site.users.actor("root")
        load_demo(site.records, root, [Path(p.path) for p in site.registry.packs.values()],
                  workflows=site.workflows)
        li = next(m for m in site.records.list(root, "member", limit=100).rows if m["name"] == "李娜")
        # 2,400 at standard → 240 points and silver at once; 680 at silver → 68 × 1.2 = 81; −100.
        assert li["tier"] == "silver"
        assert site.ledgers.balance(root, "points_entry", member=li["id"]).quantity == 240 + 81 - 100
    finally:
        site.close()


def test_failed_lookups_are_throttled_for_every_process(site, clock):
    """A clerk who guesses member numbers is stopped after LOOKUP_THROTTLE's failures,
    whichever path guesses (lookup, a purchase given by keys) and whichever process counts:
    a second Site on the same database sees the same counter. Lookups that find their
    member count nothing; the boss, who reads members by scope, is never throttled."""
    from engine.services.records.reads import LOOKUP_THROTTLE
    from engine.site import Site

    clerk = site.users.actor("clerk")
    member = new_member(site, site.test_stores[0])
    keys = member_keys("张伟", member["member_number"])
    for _ in range(3):  # successes are taken back
        assert site.records.lookup(clerk, "member", keys)["id"] == member["id"]
    other = Site.open(site.config.root, clock=clock)  # another worker, same database
    try:
        wrong = [member_keys("张伟", f"X{n:07d}") for n in range(LOOKUP_THROTTLE.max_failures)]
        for n, guess in enumerate(wrong):
            records = site.records if n % 2 else other.records
            if n % 3 == 0:
                with pytest.raises(ValidationFailed) as refused:
                    records.create(clerk, "purchase", {"member": guess, "amount": "10"})
                assert "member" in refused.value.errors
            else:
                with pytest.raises(NotFound):
                    records.lookup(clerk, "member", guess)
        with pytest.raises(Throttled) as throttled:  # even the right keys wait now
            other.records.lookup(clerk, "member", keys)
        assert throttled.value.status == 429 and throttled.value.retry_after > 0
        with pytest.raises(Throttled):
            site.records.lookup_related(clerk, "member", keys, "purchase", "member")
        boss = site.users.actor("boss")
        assert site.records.lookup(boss, "member", keys)["id"] == member["id"]
        clock.current += LOOKUP_THROTTLE.lockout + dt.timedelta(seconds=1)
        assert site.records.lookup(clerk, "member", keys)["id"] == member["id"]
    finally:
        other.close()
