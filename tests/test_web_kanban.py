"""The kanban board: columns with counts and sums, marks, and moves that go through the workflow."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.context import FixedClock
from engine.web import create_app
from tests.support import open_migrated, write_site
from tests.web_support import login, post

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse"
FETCH = {"X-Requested-With": "fetch"}


@pytest.fixture
def site(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"])
    clock = FixedClock(NOW - dt.timedelta(days=30))
    opened = open_migrated(root, clock=clock)
    opened.users.create("admin", password=PASSWORD, roles=["admin"], is_admin=True)
    actor = opened.users.actor("admin")
    acme = opened.records.create(actor, "customer", {"name": "Acme Trading"})
    opened.records.create(actor, "opportunity", {"name": "Old deal", "customer": acme["id"],
                                                 "amount": "5000"})
    opened.records.create(actor, "complaint", {"subject": "Late delivery",
                                               "customer": acme["id"]})
    clock.now = lambda: NOW  # type: ignore[method-assign]
    opened.records.create(actor, "opportunity", {"name": "ERP roll-out", "customer": acme["id"],
                                                 "amount": "120000"})
    yield opened
    opened.close()


@pytest.fixture
def admin(site):
    client = create_app(site, testing=True).test_client()
    assert login(client, "admin", PASSWORD).status_code == 302
    return client


def _id(site, name: str) -> int:
    actor = site.users.actor("admin")
    rows = site.records.list(actor, "opportunity", search=name, limit=5).rows
    return next(r["id"] for r in rows if r["name"] == name)


def test_board_shows_columns_counts_sums_and_marks(admin, site):
    page = admin.get("/r/opportunity/kanban")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'data-stage="initial"' in html and 'data-stage="lost"' in html
    assert "ERP roll-out" in html and "Old deal" in html
    assert '<span class="board-count" data-role="count">2</span>' in html
    assert "125,000" in html  # the sum of the initial column
    assert "is-stale" in html  # the old deal was idle for 30 days
    assert 'href="/r/opportunity/kanban"' in admin.get("/r/opportunity").get_data(as_text=True)


def test_entities_without_workflow_have_no_board(admin):
    assert admin.get("/r/customer/kanban").status_code == 404
    assert 'kanban' not in admin.get("/r/customer").get_data(as_text=True)


def test_overdue_cards_are_marked(admin):
    html = admin.get("/r/complaint/kanban").get_data(as_text=True)
    assert "is-overdue" in html


def test_move_accepted_and_refused_as_json(admin, site):
    deal = _id(site, "ERP roll-out")
    ok = post(admin, "/r/opportunity/kanban/move", {"record_id": deal, "to": "needs"},
              headers=FETCH)
    assert ok.status_code == 200 and ok.get_json()["ok"]
    assert site.records.get(site.users.actor("admin"), "opportunity", deal)["stage"] == "needs"
    refused = post(admin, "/r/opportunity/kanban/move", {"record_id": deal, "to": "won"},
                   headers=FETCH)
    assert refused.status_code == 409
    assert refused.get_json()["reasons"]


def test_guard_refusal_carries_its_message(admin, site):
    actor = site.users.actor("admin")
    deal = _id(site, "ERP roll-out")
    site.workflows.transition(actor, "opportunity", deal, "proposal", {})
    site.records.update(actor, "opportunity", deal, {"amount": "0"})
    refused = post(admin, "/r/opportunity/kanban/move", {"record_id": deal, "to": "won"},
                   headers=FETCH)
    assert refused.status_code == 409
    assert "A won opportunity needs its amount." in refused.get_json()["reasons"]


def test_fields_asked_on_the_way(admin, site):
    deal = _id(site, "ERP roll-out")
    asked = post(admin, "/r/opportunity/kanban/move", {"record_id": deal, "to": "lost"},
                 headers=FETCH)
    assert asked.status_code in (409, 422)
    ask = asked.get_json()["ask"]
    assert [a["key"] for a in ask] == ["lost_reason"]
    assert ["price", "Price too high"] in ask[0]["choices"]
    done = post(admin, "/r/opportunity/kanban/move",
                {"record_id": deal, "to": "lost", "lost_reason": "price"}, headers=FETCH)
    assert done.status_code == 200, done.get_json()
    assert site.records.get(site.users.actor("admin"), "opportunity", deal)["lost_reason"] == "price"


def test_move_without_javascript_redirects_with_a_message(admin, site):
    deal = _id(site, "ERP roll-out")
    moved = post(admin, "/r/opportunity/kanban/move", {"record_id": deal, "to": "won"})
    assert moved.status_code == 302 and moved.headers["Location"].endswith("/r/opportunity/kanban")
    assert "flash-error" in admin.get("/r/opportunity/kanban").get_data(as_text=True)
    post(admin, "/r/opportunity/kanban/move", {"record_id": deal, "to": "needs"})
    assert "flash-success" in admin.get("/r/opportunity/kanban").get_data(as_text=True)


def test_move_needs_the_csrf_token(admin, site):
    deal = _id(site, "ERP roll-out")
    assert admin.post("/r/opportunity/kanban/move",
                      data={"record_id": deal, "to": "needs"}).status_code == 400
