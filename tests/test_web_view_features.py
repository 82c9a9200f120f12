"""Lists, forms and pages driven by view metadata: saved filters, bulk actions, search
fields, live rules, quick create, transfer, declared dashboards and their JSON."""

from __future__ import annotations

import datetime as dt

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
    opened.users.create("sam", password=PASSWORD, roles=["sales"])
    opened.users.create("sue", password=PASSWORD, roles=["sales"])
    yield opened
    opened.close()


@pytest.fixture
def app(site):
    return create_app(site, testing=True)


def client_for(app, name: str):
    client = app.test_client()
    assert login(client, name, PASSWORD).status_code == 302
    return client


@pytest.fixture
def admin(app):
    return client_for(app, "admin")


@pytest.fixture
def acme(site):
    return site.records.create(site.users.actor("admin"), "customer",
                               {"name": "Acme Trading", "region": "Shanghai", "kind": "client"})


def test_list_uses_the_declared_columns_and_search_fields(admin, site, acme):
    site.records.create(site.users.actor("admin"), "customer", {"name": "Beta", "region": "Xian"})
    page = admin.get("/r/customer").get_data(as_text=True)
    assert ">Owner<" in page and ">admin<" in page  # the view's owner column, by name
    found = admin.get("/r/customer?q=shanghai").get_data(as_text=True)  # region: a view search field
    assert "Acme Trading" in found and "Beta" not in found


def test_saved_filters_belong_to_their_user(app, admin, site, acme):
    response = post(admin, "/r/customer/filters", {"name": "Clients", "query": "kind=client&offset=25"})
    assert response.status_code == 302 and response.headers["Location"].endswith("?kind=client")
    page = admin.get("/r/customer").get_data(as_text=True)
    assert "Clients" in page and "?kind=client" in page
    saved = site.schema.system("crm_saved_filter")
    with site.engine.connect() as conn:
        (row,) = conn.execute(saved.select()).mappings().all()
    assert row["query"] == "kind=client"  # paging is not kept
    sam = client_for(app, "sam")
    assert "Clients" not in sam.get("/r/customer").get_data(as_text=True)
    assert post(sam, f"/r/customer/filters/{row['id']}/delete").status_code == 404
    assert post(admin, f"/r/customer/filters/{row['id']}/delete").status_code == 302
    assert "Clients" not in admin.get("/r/customer").get_data(as_text=True)
    refused = post(admin, "/r/customer/filters", {"name": " ", "query": ""}, follow_redirects=True)
    assert "Give the filter a name." in refused.get_data(as_text=True)


def test_bulk_transition_reports_each_record(admin, site, acme):
    actor = site.users.actor("admin")
    made = [site.records.create(actor, "opportunity", {"name": f"Deal {n}", "amount": "10",
                                                        "customer": acme["id"]})
            for n in range(3)]
    site.workflows.transition(actor, "opportunity", made[2]["id"], "proposal")
    response = post(admin, "/r/opportunity/bulk", {
        "action": "transition", "transition_value": "needs",
        "ids": [str(m["id"]) for m in made], "back": "sort=name"}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "2 moved." in page and "1 refused" in page and f"#{made[2]['id']}" in page
    stages = [site.records.get(actor, "opportunity", m["id"])["stage"] for m in made]
    assert stages == ["needs", "needs", "proposal"]


def test_bulk_reassign_and_archive_go_through_the_services(app, admin, site, acme):
    sam_id = site.users.actor("sam").user_id
    response = post(admin, "/r/customer/bulk", {"action": "reassign",
                                                 "reassign_value": str(sam_id),
                                                 "ids": [str(acme["id"])]},
                    follow_redirects=True)
    assert "1 handed over." in response.get_data(as_text=True)
    assert site.records.get(site.users.actor("admin"), "customer", acme["id"])["owner"] == sam_id
    sue = client_for(app, "sue")  # may update customers, but not Sam's
    response = post(sue, "/r/customer/bulk", {"action": "archive", "ids": [str(acme["id"])]},
                    follow_redirects=True)
    assert "0 archived." in response.get_data(as_text=True)
    assert "1 refused" in response.get_data(as_text=True)
    assert not site.records.get(site.users.actor("admin"), "customer", acme["id"])["archived"]


def test_list_counts_only_when_asked_or_on_its_last_page(admin, site, acme):
    page = admin.get("/r/customer").get_data(as_text=True)
    assert "1 in all" in page  # a single page counts itself
    actor = site.users.actor("admin")
    for n in range(26):
        site.records.create(actor, "customer", {"name": f"C{n:02}"})
    first = admin.get("/r/customer").get_data(as_text=True)
    assert "in all" not in first and "count=1" in first


def test_rules_endpoint_evaluates_visible_if_and_required_if(admin):
    answer = post(admin, "/r/activity/rules", {"kind": "visit", "done": "1"}).get_json()
    assert answer["visible"]["location"] is True and answer["required"]["customer"] is True
    answer = post(admin, "/r/activity/rules", {"kind": "call"}).get_json()
    assert answer["visible"]["location"] is False and answer["required"]["customer"] is False


def test_form_draws_conditional_fields_hidden_with_the_rules_url(admin):
    page = admin.get("/r/activity/new").get_data(as_text=True)
    assert 'data-rules-url="/r/activity/rules"' in page
    assert 'data-field="location" hidden' in page  # kind defaults to call: not a visit


def test_quick_create_from_the_header(admin, site, acme):
    page = admin.get("/r/customer").get_data(as_text=True)
    assert 'id="quick-create"' in page and "Visit record" in page
    response = post(admin, "/quick/activity/visit", {
        "quick-activity-visit-customer": str(acme["id"]),
        "quick-activity-visit-subject": "Visited Acme",
        "quick-activity-visit-due_at": "2026-06-01T10:00",
        "quick-activity-visit-outcome": "Wants a quote",
        "next": "/r/customer"})
    assert response.status_code == 302 and response.headers["Location"] == "/r/customer"
    made = site.records.list(site.users.actor("admin"), "activity", search="Visited").rows
    assert made[0]["kind"] == "visit" and made[0]["done"] is True
    assert made[0]["outcome"] == "Wants a quote"
    bad = post(admin, "/quick/activity/visit", {"quick-activity-visit-subject": "No customer"})
    assert bad.status_code == 422  # the full form, with what was typed and the message
    assert 'value="No customer"' in bad.get_data(as_text=True)


def test_transfer_preview_then_confirm(app, admin, site, acme):
    actor = site.users.actor("admin")
    sam_id = site.users.actor("sam").user_id
    site.records.update(actor, "customer", acme["id"], {"owner": sam_id})
    preview = post(admin, "/transfer", {"from_login": "sam", "to_logins": ["sue"],
                                        "rule": "round_robin"})
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Acme Trading" in page and 'value="confirm"' in page
    plan = page.split('class="card transfer-plan"')[1]  # a table that scrolls in its own box
    assert '<div class="table-wrap"><table class="data-table transfer-moves">' in plan
    assert 'class="grid"' not in plan
    assert site.records.get(actor, "customer", acme["id"])["owner"] == sam_id  # not yet
    done = post(admin, "/transfer", {"step": "confirm", "from_login": "sam",
                                     "to_logins": ["sue"], "rule": "round_robin"})
    assert done.status_code == 302
    assert site.records.get(actor, "customer", acme["id"])["owner"] == site.users.actor("sue").user_id
    assert client_for(app, "sam").get("/transfer").status_code == 403


def test_declared_dashboard_page_and_its_json(app, admin, site, acme):
    page = admin.get("/").get_data(as_text=True)
    assert 'data-dashboard="sales"' in page
    assert admin.get("/dashboards/sales").status_code == 200
    assert admin.get("/dashboards/nothing").status_code == 404
    token, _ = site.users.tokens.create("admin", "dash")
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    listed = api.get("/api/v1/dashboards", headers=headers).get_json()
    assert "sales" in [d["name"] for d in listed["items"]]
    site.records.create(site.users.actor("admin"), "opportunity",
                        {"name": "Big", "customer": acme["id"], "amount": "5000"})
    home = api.get("/api/v1/dashboards/home", headers=headers).get_json()
    assert home["name"] == "sales"
    funnel = next(w for w in home["widgets"] if w["kind"] == "funnel")
    assert funnel["figure"]["kind"] == "funnel" and sum(funnel["figure"]["series"][0]["values"]) == 1
    assert api.get("/api/v1/dashboards/nothing", headers=headers).status_code == 404


def test_conflict_shows_theirs_and_yours(admin, site, acme):
    site.records.update(site.users.actor("admin"), "customer", acme["id"], {"region": "Hangzhou"})
    response = post(admin, f"/r/customer/{acme['id']}/edit",
                    {"name": "Acme Trading", "region": "Suzhou", "version": "1"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "Yours" in page
    assert "<td>Hangzhou</td><td>Suzhou</td>" in page
