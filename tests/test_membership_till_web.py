"""The look-up page at the till: a clerk finds a member only by the exact pair, then serves them.

Through the Flask test client, as a clerk on a tablet would: the page is
engine/web/till.py (generic), the member's actions are the membership
pack's quick forms, and every number is checked against the rules of
packs/membership/loyalty.yaml (1 point per 10 yuan, standard tier ×1, no
promotion in March).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from engine.context import Actor, FixedClock
from engine.web.app import create_app
from tests.support import open_migrated, write_site
from tests.web_support import login, post

START = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
BALANCE = re.compile(r'data-balance="points_entry">([^<]*)<')


@pytest.fixture
def site(tmp_path, db_url):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["membership"]),
                           clock=FixedClock(START))
    for name, role in (("boss", "owner"), ("clerk", "clerk"), ("rep", "sales")):
        opened.users.create(name, password="correct-horse", roles=[role])
    boss = opened.users.actor("boss")
    store = opened.records.create(boss, "store", {"code": "SH01", "name": "上海南京路店"})
    opened.users.link("clerk", "store", store["id"])
    member = opened.records.create(boss, "member", {
        "name": "张伟", "phone": "13800001111", "home_store": store["id"],
        "join_date": "2026-03-10", "expiry_date": "2027-03-09"})
    other = opened.records.create(boss, "member", {
        "name": "李娜", "phone": "13800002222", "home_store": store["id"],
        "join_date": "2026-03-10", "expiry_date": "2027-03-09"})
    opened.records.create(Actor.system(), "points_entry", {
        "member": member["id"], "kind": "adjust", "points": 100, "note": "welcome"})
    opened.test_store, opened.test_member, opened.test_other = store, member, other
    yield opened
    opened.close()


@pytest.fixture
def clerk(site):
    client = create_app(site, testing=True).test_client()
    assert login(client, "clerk", "correct-horse").status_code == 302
    return client


def keys(name: str, number: str) -> dict[str, str]:
    return {"key-name": name, "key-member_number": number}


def balance(page: str) -> str:
    found = BALANCE.search(page)
    assert found, "no points balance on the card"
    return found.group(1).strip()


def test_the_sidebar_offers_the_lookup_to_the_clerk_only(site, clerk):
    home = clerk.get("/").get_data(as_text=True)
    assert 'href="/lookup/member"' in home
    assert clerk.get("/lookup").headers["Location"].endswith("/lookup/member")
    form = clerk.get("/lookup/member")
    assert form.status_code == 200
    text = form.get_data(as_text=True)
    assert 'name="key-name"' in text and 'name="key-member_number"' in text
    assert "张伟" not in text and "李娜" not in text
    # The clerk's header has no quick form whose member picker would list nothing.
    assert "/quick/purchase/" not in home and "/quick/points_entry/" not in home
    boss = create_app(site, testing=True).test_client()
    login(boss, "boss", "correct-horse")
    owner_home = boss.get("/").get_data(as_text=True)
    assert 'href="/lookup/member"' not in owner_home  # the owner lists members instead
    assert "/quick/purchase/till_purchase" in owner_home
    assert boss.get("/lookup/member").status_code == 404
    rep = create_app(site, testing=True).test_client()
    login(rep, "rep", "correct-horse")
    assert 'href="/lookup/' not in rep.get("/").get_data(as_text=True)
    assert rep.get("/lookup/member").status_code in (403, 404)


def test_only_the_exact_pair_finds_the_member(site, clerk):
    member = site.test_member
    number = member["member_number"]
    misses = [keys("张", number),                        # a partial name
              keys("张伟", number[:-1] + str((int(number[-1]) + 1) % 10)),  # wrong
              keys(site.test_other["name"], number)]     # someone else's name
    for typed in misses:
        page = post(clerk, "/lookup/member", typed)
        text = page.get_data(as_text=True)
        assert page.status_code == 404, typed
        assert "No match" in text and "till-card" not in text
        assert "13800001111" not in text
    alone = post(clerk, "/lookup/member", keys("张伟", ""))  # the name alone
    assert alone.status_code == 422
    assert "till-card" not in alone.get_data(as_text=True)
    found = post(clerk, "/lookup/member", keys("张伟", number))
    text = found.get_data(as_text=True)
    assert found.status_code == 200 and "till-card" in text
    assert "张伟" in text and number in text and "13800001111" in text
    assert balance(text) == "100"
    assert "李娜" not in text
    # The actions are the pack's quick forms, with the keys carried again (never an id).
    for quick in ("purchase/till_purchase", "points_entry/redeem",
                  "membership_renewal/renew"):
        assert f'action="/lookup/member/{quick}"' in text
    assert f'/r/member/{member["id"]}' not in text


def test_a_purchase_earns_points_by_the_rule(site, clerk):
    number = site.test_member["member_number"]
    store = site.test_store["id"]
    page = post(clerk, "/lookup/member/purchase/till_purchase", {
        **keys("张伟", number), "purchase-till_purchase-store": store,
        "purchase-till_purchase-amount": "358", "purchase-till_purchase-payment_method": "cash"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200, text
    assert balance(text) == "135"  # 100 + floor(358 / 10) × 1
    assert "till-saved" in text
    purchases = site.records.lookup_related(site.users.actor("clerk"), "member",
                                            {"name": "张伟", "member_number": number},
                                            "purchase", "member").rows
    assert len(purchases) == 1 and purchases[0]["points_earned"] == 35
    assert purchases[0]["owner"] == site.users.actor("clerk").user_id
    # The purchase shows in the member's history on the card.
    assert purchases[0]["receipt"] in text


def test_over_redemption_is_refused_and_the_balance_kept(site, clerk):
    number = site.test_member["member_number"]
    store = site.test_store["id"]
    refused = post(clerk, "/lookup/member/points_entry/redeem", {
        **keys("张伟", number), "points_entry-redeem-points": "150",
        "points_entry-redeem-store": store})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409
    assert "till-refused" in text and "till-saved" not in text
    assert balance(text) == "100"
    assert 'value="150"' in text  # what was typed is shown again
    done = post(clerk, "/lookup/member/points_entry/redeem", {
        **keys("张伟", number), "points_entry-redeem-points": "40",
        "points_entry-redeem-store": store})
    assert done.status_code == 200
    assert balance(done.get_data(as_text=True)) == "60"


def test_renewal_moves_the_expiry_on(site, clerk):
    number = site.test_member["member_number"]
    page = post(clerk, "/lookup/member/membership_renewal/renew", {
        **keys("张伟", number), "membership_renewal-renew-months": "12",
        "membership_renewal-renew-fee": "99",
        "membership_renewal-renew-store": site.test_store["id"]})
    assert page.status_code == 200, page.get_data(as_text=True)
    boss = site.users.actor("boss")
    assert str(site.records.get(boss, "member", site.test_member["id"])["expiry_date"]) \
        == "2028-03-09"


def test_an_action_with_wrong_keys_writes_nothing(site, clerk):
    page = post(clerk, "/lookup/member/purchase/till_purchase", {
        **keys("张伟", "M0000099"), "purchase-till_purchase-store": site.test_store["id"],
        "purchase-till_purchase-amount": "100"})
    assert page.status_code == 404
    assert "No match" in page.get_data(as_text=True)
    assert site.records.count(Actor.system(), "purchase") == 0


def test_the_clerk_still_gets_no_member_outside_the_lookup(site, clerk):
    member = site.test_member
    number = member["member_number"]
    assert post(clerk, "/lookup/member", keys("张伟", number)).status_code == 200
    # The list and its search: the service gives the clerk no rows (the page is empty).
    for path in ("/r/member", "/r/member?q=张", "/r/member?count=1", "/r/member/lookup?q=张"):
        listed = clerk.get(path)
        assert listed.status_code in (200, 403, 404), path
        text = listed.get_data(as_text=True)
        assert "张伟" not in text and "李娜" not in text and number not in text, path
    # A detail URL is a 404 even right after a successful lookup: the lookup scope
    # opens no get-by-id, and nothing is remembered between requests.
    assert clerk.get(f"/r/member/{member['id']}").status_code == 404
    assert clerk.get(f"/r/member/{site.test_other['id']}").status_code == 404
    assert clerk.get(f"/r/member/{member['id']}/edit").status_code in (403, 404)
    # An entity without a lookup scope for the clerk has no look-up page.
    assert clerk.get("/lookup/store").status_code == 404
    assert clerk.get("/lookup/nothing").status_code == 404


def test_the_page_speaks_chinese(site, clerk):
    assert post(clerk, "/profile", {"action": "language", "language": "zh"}).status_code == 302
    page = post(clerk, "/lookup/member", keys("张伟", "M0000099"))
    text = page.get_data(as_text=True)
    assert "没有匹配的记录" in text and "查找会员" in text
