"""Forms, buttons and the reference picker: writes through the web UI."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from engine.context import FixedClock
from engine.web import create_app
from tests.support import open_migrated, write_site
from tests.web_support import login, post

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse"


@pytest.fixture
def site(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    opened.users.create("admin", password=PASSWORD, roles=["admin"], is_admin=True)
    yield opened
    opened.close()


@pytest.fixture
def admin(site):
    client = create_app(site, testing=True).test_client()
    assert login(client, "admin", PASSWORD).status_code == 302
    return client


@pytest.fixture
def acme(site):
    return site.records.create(site.users.actor("admin"), "customer", {"name": "Acme Trading"})


def test_create_with_an_error_then_success(admin, site, acme):
    refused = post(admin, "/r/opportunity/new", {"name": "", "customer": str(acme["id"]),
                                                 "amount": "12.345"})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "This field is required." in page and "At most 2 digits" in page
    assert 'value="12.345"' in page  # what was typed is kept
    created = post(admin, "/r/opportunity/new", {
        "name": "ERP roll-out", "customer": str(acme["id"]), "amount": "5000",
        "lines-0-item": "Licences", "lines-0-quantity": "2", "lines-0-unit_price": "300",
        "lines-1-item": "", "lines-1-quantity": "", "lines-1-unit_price": ""})
    assert created.status_code == 302
    record = site.records.get(site.users.actor("admin"), "opportunity",
                              created.headers["Location"].rsplit("/", 1)[1])
    assert record["name"] == "ERP roll-out" and record["stage"] == "initial"
    assert [line["item"] for line in record["lines"]] == ["Licences"]
    assert str(record["lines_total"]) == "600.00"


def test_line_errors_show_next_to_their_cell(admin, acme):
    response = post(admin, "/r/opportunity/new", {
        "name": "X", "customer": str(acme["id"]), "lines-0-quantity": "2"})
    assert response.status_code == 422
    assert "This field is required." in response.get_data(as_text=True)


def test_checkbox_and_required_if(admin, site, acme):
    response = post(admin, f"/r/customer/{acme['id']}/edit",
                    {"name": "Acme Trading", "blacklisted": "1", "version": "1"})
    assert response.status_code == 422  # blacklist_reason is then required
    assert 'name="blacklist_reason"' in response.get_data(as_text=True)
    ok = post(admin, f"/r/customer/{acme['id']}/edit",
              {"name": "Acme Trading", "blacklisted": "1", "blacklist_reason": "Unpaid bills",
               "version": "1"})
    assert ok.status_code == 302
    record = site.records.get(site.users.actor("admin"), "customer", acme["id"])
    assert record["blacklisted"] is True and record["vip"] is False


def test_edit_with_a_stale_version_explains_the_conflict(admin, site, acme):
    site.records.update(site.users.actor("admin"), "customer", acme["id"],
                        {"name": "Acme Trading Ltd", "region": "Shanghai"})
    response = post(admin, f"/r/customer/{acme['id']}/edit",
                    {"name": "Acme (mine)", "region": "", "version": "1"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Someone else changed this record" in page
    assert "Acme Trading Ltd" in page and "Shanghai" in page  # their values
    assert 'value="Acme (mine)"' in page  # mine, kept in the form
    assert 'name="version" value="2"' in page  # saving again overwrites knowingly
    again = post(admin, f"/r/customer/{acme['id']}/edit",
                 {"name": "Acme (mine)", "region": "Shanghai", "version": "2"})
    assert again.status_code == 302


def test_transition_button_moves_and_guard_refusal_is_explained(admin, site, acme):
    actor = site.users.actor("admin")
    opp = site.records.create(actor, "opportunity", {"name": "Deal", "customer": acme["id"]})
    page = admin.get(f"/r/opportunity/{opp['id']}").get_data(as_text=True)
    assert "Send proposal" in page and "Mark as lost" in page
    assert 'name="lost_reason"' in page  # asked for on the way to "lost"
    assert 'data-confirm="Close this opportunity as lost?"' in page
    refused = post(admin, f"/r/opportunity/{opp['id']}/transition",
                   {"to": "proposal", "version": "1"})
    assert refused.status_code == 409  # a proposal needs the amount
    assert "This step was refused" in refused.get_data(as_text=True)
    site.records.update(actor, "opportunity", opp["id"], {"amount": "0"})
    moved = post(admin, f"/r/opportunity/{opp['id']}/transition",
                 {"to": "proposal", "version": "2"})
    assert moved.status_code == 302
    assert "Moved to Proposal." in admin.get(moved.headers["Location"]).get_data(as_text=True)
    guard = post(admin, f"/r/opportunity/{opp['id']}/transition", {"to": "won"})
    assert guard.status_code == 409
    assert "A won opportunity needs its amount." in guard.get_data(as_text=True)
    lost = post(admin, f"/r/opportunity/{opp['id']}/transition",
                {"to": "lost", "lost_reason": "price"})
    assert lost.status_code == 302
    record = site.records.get(actor, "opportunity", opp["id"])
    assert record["stage"] == "lost" and record["lost_reason"] == "price"
    timeline = admin.get(f"/r/opportunity/{opp['id']}").get_data(as_text=True)
    assert "Proposal → Lost" in timeline


def test_archive_restore_and_delete_buttons(admin, site, acme):
    assert post(admin, f"/r/customer/{acme['id']}/archive").status_code == 302
    assert site.records.get(site.users.actor("admin"), "customer", acme["id"])["archived"]
    assert post(admin, f"/r/customer/{acme['id']}/restore").status_code == 302
    assert post(admin, f"/r/customer/{acme['id']}/delete").status_code == 302
    assert admin.get(f"/r/customer/{acme['id']}").status_code == 404


def test_delete_refused_while_referenced_says_why(admin, site, acme):
    site.records.create(site.users.actor("admin"), "opportunity",
                        {"name": "Deal", "customer": acme["id"]})
    response = post(admin, f"/r/customer/{acme['id']}/delete")
    assert response.status_code == 409
    assert "Opportunity" in response.get_data(as_text=True)


def test_reference_lookup_returns_only_matching_records(admin, site, acme):
    site.records.create(site.users.actor("admin"), "customer", {"name": "Beta Foods"})
    data = admin.get("/r/customer/lookup?q=acme").get_json()
    assert [r["title"] for r in data["results"]] == ["Acme Trading"]
    assert data["results"][0]["id"] == acme["id"]
    assert len(admin.get("/r/customer/lookup").get_json()["results"]) == 2
    assert admin.get("/r/nothing/lookup?q=x").status_code == 404


def test_lookup_needs_a_login(site):
    client = create_app(site, testing=True).test_client()
    assert client.get("/r/customer/lookup?q=a").status_code == 302


def test_sales_user_cannot_reach_what_the_policy_refuses(site, acme):
    site.users.create("sam", password=PASSWORD, roles=["sales"])
    client = create_app(site, testing=True).test_client()
    login(client, "sam", PASSWORD)
    assert client.get(f"/r/customer/{acme['id']}").status_code == 404  # not theirs
    response = post(client, f"/r/customer/{acme['id']}/delete")
    assert response.status_code in (403, 404)
    mine = post(client, "/r/customer/new", {"name": "Sam's shop"})
    assert mine.status_code == 302
    assert "Sam&#39;s shop" in client.get(mine.headers["Location"]).get_data(as_text=True)


def test_datetime_inputs_are_in_the_site_time_zone(admin, site, acme):
    created = post(admin, "/r/activity/new", {"subject": "Visit", "kind": "visit",
                                              "customer": str(acme["id"]),
                                              "due_at": "2026-06-02T09:30"})
    assert created.status_code == 302
    record_id = created.headers["Location"].rsplit("/", 1)[1]
    record = site.records.get(site.users.actor("admin"), "activity", record_id)
    assert record["due_at"] == dt.datetime(2026, 6, 2, 1, 30, tzinfo=dt.UTC)  # Asia/Shanghai
    form = admin.get(f"/r/activity/{record_id}/edit").get_data(as_text=True)
    assert 'value="2026-06-02T09:30"' in form


def test_a_transition_from_a_stale_page_is_refused(admin, site, acme):
    actor = site.users.actor("admin")
    opp = site.records.create(actor, "opportunity", {"name": "Deal", "customer": acme["id"]})
    site.records.update(actor, "opportunity", opp["id"], {"amount": "10"})
    response = post(admin, f"/r/opportunity/{opp['id']}/transition",
                    {"to": "needs", "version": "1"})
    assert response.status_code == 409
    assert site.records.get(actor, "opportunity", opp["id"])["stage"] == "initial"


def test_fields_locked_by_the_stage_are_shown_but_not_posted(admin, site, acme):
    actor = site.users.actor("admin")
    opp = site.records.create(actor, "opportunity", {"name": "Deal", "customer": acme["id"],
                                                     "amount": "900"})
    site.workflows.transition(actor, "opportunity", opp["id"], "proposal")
    site.workflows.transition(actor, "opportunity", opp["id"], "won")
    version = site.records.get(actor, "opportunity", opp["id"])["version"]
    form = admin.get(f"/r/opportunity/{opp['id']}/edit").get_data(as_text=True)
    assert re.search(r'<input id="f-amount"[^>]*disabled', form)
    saved = post(admin, f"/r/opportunity/{opp['id']}/edit",
                 {"name": "Deal (signed)", "amount": "1", "version": str(version)})
    assert saved.status_code == 302
    record = site.records.get(actor, "opportunity", opp["id"])
    assert record["name"] == "Deal (signed)" and str(record["amount"]) == "900.00"
