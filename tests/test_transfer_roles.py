"""Who may transfer customers, as the core roles describe it, through service, web and API.

The owner (scope ``all``) transfers anyone's customers; a sales manager
(scope ``team``) those of their team's people to their team's people; a
salesperson, whose ``owner`` field is read-only, nobody's — not on the
transfer page and not by changing ``owner`` through the API.  The page
names people by their display names and the rules by their translated names.
"""

from __future__ import annotations

import datetime as dt

import pytest

from engine.context import Actor, FixedClock
from engine.errors import PermissionDenied
from engine.web import create_app
from tests.api_support import api_for
from tests.support import open_migrated, write_site
from tests.web_support import login, post

NOW = dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system()
PASSWORD = "password-1"


@pytest.fixture
def site(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    people = {"boss": ("老板", "owner"), "mgr": ("Mia Manager", "manager"),
              "alice": ("Alice Chen", "sales"), "bob": ("Bob Wu", "sales"),
              "carol": ("Carol Li", "sales")}
    for login_, (name, role) in people.items():
        opened.users.create(login_, password=PASSWORD, display_name=name, roles=[role])
    opened.users.teams.create("east", label="East", manager="mgr")
    for member in ("alice", "bob"):
        opened.users.teams.add_member("east", member)
    opened.users.teams.create("west", label="West")
    opened.users.teams.add_member("west", "carol")
    for owner in ("alice", "carol"):
        opened.records.create(SYSTEM, "customer", {
            "name": f"{owner} customer", "owner": opened.users.get(owner)["id"]})
    yield opened
    opened.close()


def owners(site):
    rows = site.records.list(SYSTEM, "customer", limit=50).rows
    return {r["name"]: site.users.login_of(r["owner"]) for r in rows}


def test_the_owner_transfers_anyones_customers(site):
    boss = site.users.actor("boss")
    assert site.transfers.may_transfer(boss)
    site.transfers.run(boss, "carol", ["alice"])
    assert owners(site)["carol customer"] == "alice"


def test_a_manager_transfers_within_their_team_only(site):
    mgr = site.users.actor("mgr")
    assert site.transfers.may_transfer(mgr)
    assert {p["login"] for p in site.transfers.people(mgr)} == {"mgr", "alice", "bob"}
    with pytest.raises(PermissionDenied):  # carol is not on their team
        site.transfers.preview(mgr, "carol", ["bob"])
    with pytest.raises(PermissionDenied):  # nor may alice's customers go to her
        site.transfers.run(mgr, "alice", ["carol"])
    assert owners(site) == {"alice customer": "alice", "carol customer": "carol"}
    plan = site.transfers.preview(mgr, "alice", ["bob"])
    assert plan.counts() == {"customer": 1}
    site.transfers.run(mgr, "alice", ["bob"])
    assert owners(site)["alice customer"] == "bob"


def test_a_salesperson_transfers_nobodys_customers(site):
    alice = site.users.actor("alice")
    assert not site.transfers.may_transfer(alice)
    for source, target in (("carol", ["alice"]), ("alice", ["bob"])):
        with pytest.raises(PermissionDenied):
            site.transfers.preview(alice, source, target)
        with pytest.raises(PermissionDenied):
            site.transfers.run(alice, source, target)
    assert owners(site) == {"alice customer": "alice", "carol customer": "carol"}


def _client(site, who):
    client = create_app(site, testing=True).test_client()
    assert login(client, who, PASSWORD).status_code == 302
    return client


def test_the_page_names_people_and_rules_and_refuses_a_salesperson(site):
    mgr = _client(site, "mgr")
    page = mgr.get("/transfer")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Alice Chen" in html and "Bob Wu" in html
    assert "Carol Li" not in html  # not someone the manager may transfer from or to
    assert "In turn (round robin)" in html and ">round_robin<" not in html
    assert "/transfer" in mgr.get("/").get_data(as_text=True)  # the menu offers it
    preview = post(mgr, "/transfer", {"step": "preview", "from_login": "alice",
                                      "to_logins": "bob", "rule": "balanced"})
    shown = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Alice Chen → Bob Wu" in shown
    assert "<td>Bob Wu</td>" in shown
    outside = post(mgr, "/transfer", {"step": "confirm", "from_login": "carol",
                                      "to_logins": "bob", "rule": "round_robin"})
    assert outside.status_code == 403
    done = post(mgr, "/transfer", {"step": "confirm", "from_login": "alice",
                                   "to_logins": "bob", "rule": "round_robin"})
    assert done.status_code == 302
    assert owners(site)["alice customer"] == "bob"

    alice = _client(site, "alice")
    assert alice.get("/transfer").status_code == 403
    assert "/transfer" not in alice.get("/").get_data(as_text=True)
    refused = post(alice, "/transfer", {"step": "confirm", "from_login": "carol",
                                        "to_logins": "alice", "rule": "round_robin"})
    assert refused.status_code == 403
    assert owners(site)["carol customer"] == "carol"


def test_through_the_api_a_salesperson_cannot_hand_customers_over(site):
    api = api_for(site, "alice")
    rows = site.records.list(SYSTEM, "customer", limit=50).rows
    mine = next(r for r in rows if r["name"] == "alice customer")
    theirs = next(r for r in rows if r["name"] == "carol customer")
    bob = site.users.get("bob")["id"]
    own = api.patch(f"/customer/{mine['id']}", {"owner": bob, "version": mine["version"]})
    assert own.status_code in (403, 422), own.get_json()
    other = api.patch(f"/customer/{theirs['id']}", {"owner": site.users.get("alice")["id"],
                                                    "version": theirs["version"]})
    assert other.status_code in (403, 404), other.get_json()
    assert owners(site) == {"alice customer": "alice", "carol customer": "carol"}
