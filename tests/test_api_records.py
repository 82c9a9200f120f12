"""The REST API: records through the services, with versions, scopes and problem+json errors."""

from __future__ import annotations

import pytest

from engine.web import create_app
from tests.api_support import Api, api_for, core_site
from tests.web_support import csrf, login

PROBLEM = "application/problem+json"


@pytest.fixture
def site(tmp_path, db_url):
    opened = core_site(tmp_path, db_url)
    yield opened
    opened.close()


@pytest.fixture
def admin(site):
    return api_for(site, "admin")


@pytest.fixture
def rep(site):
    return api_for(site, "rep")


def _problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    data = response.get_json()
    assert data["status"] == status and data["title"] and data["detail"]
    if code:
        assert data["code"] == code
    text = response.get_data(as_text=True).lower()
    assert "traceback" not in text and "select " not in text and "insert " not in text
    return data


def test_crud_round_trip(admin):
    created = admin.post("/customer", {"name": "Acme Trading", "kind": "client"})
    assert created.status_code == 201, created.get_json()
    record = created.get_json()
    assert created.headers["Location"] == f"/api/v1/customer/{record['id']}"
    assert created.headers["ETag"] == f'"{record["version"]}"'
    got = admin.get(f"/customer/{record['id']}").get_json()
    assert got["name"] == "Acme Trading" and got["kind"] == "client"
    patched = admin.patch(f"/customer/{record['id']}", {"name": "Acme Ltd"},
                          headers={"If-Match": f'"{got["version"]}"'})
    assert patched.status_code == 200 and patched.get_json()["name"] == "Acme Ltd"
    version = patched.get_json()["version"]
    again = admin.patch(f"/customer/{record['id']}", {"phone": "123", "version": version})
    assert again.status_code == 200
    version = again.get_json()["version"]
    archived = admin.post(f"/customer/{record['id']}/archive")
    assert archived.status_code == 200 and archived.get_json()["archived"] is True
    assert admin.get("/customer").get_json()["total"] == 0
    restored = admin.post(f"/customer/{record['id']}/restore")
    assert restored.get_json()["archived"] is False
    version = restored.get_json()["version"]
    history = admin.get(f"/customer/{record['id']}/history").get_json()["items"]
    assert len(history) >= 3
    assert admin.delete(f"/customer/{record['id']}", headers={
        "If-Match": f'"{version}"'}).status_code == 204
    _problem(admin.get(f"/customer/{record['id']}"), 404, "not_found")


def test_list_filters_sort_pagination_fields(admin):
    for name, kind in [("Alpha", "client"), ("Beta", "prospect"), ("Gamma", "client"),
                       ("Delta", "partner")]:
        assert admin.post("/customer", {"name": name, "kind": kind}).status_code == 201
    page = admin.get("/customer?kind=client&sort=-name").get_json()
    assert [r["name"] for r in page["items"]] == ["Gamma", "Alpha"] and page["total"] == 2
    page = admin.get("/customer?sort=name&limit=2&offset=2").get_json()
    assert [r["name"] for r in page["items"]] == ["Delta", "Gamma"]
    assert "total" not in page and page["has_more"] is False
    page = admin.get("/customer?sort=name&limit=2&offset=2&count=true").get_json()
    assert page["total"] == 4
    page = admin.get("/customer?kind__in=client,partner&fields=name&sort=name").get_json()
    assert page["items"][0].keys() == {"id", "version", "name"}
    assert [r["name"] for r in page["items"]] == ["Alpha", "Delta", "Gamma"]
    assert [r["name"] for r in admin.get("/customer?q=gam").get_json()["items"]] == ["Gamma"]
    errors = _problem(admin.get("/customer?nosuch__eq=1"), 422, "validation_failed")["errors"]
    assert "nosuch" in errors
    _problem(admin.get("/customer?limit=abc"), 422)
    _problem(admin.get("/customer?kind__zz=1"), 422)


def test_validation_errors_per_field(admin):
    data = _problem(admin.post("/customer", {"kind": "nonsense"}), 422, "validation_failed")
    assert "name" in data["errors"] and "kind" in data["errors"]
    _problem(admin.post("/customer", data="name=x",
                        headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    _problem(admin.post("/customer", data="{not json", headers={
        "Content-Type": "application/json"}), 422)
    _problem(admin.post("/customer", [1, 2]), 422)
    _problem(admin.get("/nosuch"), 404)
    _problem(admin.get("/customer/not-a-number"), 404)
    _problem(admin.call("PUT", "/customer"), 405)


def test_stale_version_is_409_with_current_values_and_missing_version_428(admin):
    record = admin.post("/customer", {"name": "Acme"}).get_json()
    admin.patch(f"/customer/{record['id']}", {"name": "Acme 2", "version": record["version"]})
    stale = _problem(admin.patch(f"/customer/{record['id']}",
                                 {"name": "Mine", "version": record["version"]}), 409, "conflict")
    assert stale["current"]["name"] == "Acme 2"
    assert stale["current"]["version"] == record["version"] + 1
    _problem(admin.patch(f"/customer/{record['id']}", {"name": "Mine"}), 428, "version_required")
    _problem(admin.delete(f"/customer/{record['id']}"), 428)
    _problem(admin.delete(f"/customer/{record['id']}", headers={
        "If-Match": f'"{record["version"]}"'}), 409)
    assert admin.get(f"/customer/{record['id']}").get_json()["name"] == "Acme 2"


def test_scope_a_salesperson_sees_only_their_customers(site, admin, rep):
    other = api_for(site, "other")
    mine = rep.post("/customer", {"name": "Mine"}).get_json()
    theirs = other.post("/customer", {"name": "Theirs"}).get_json()
    _problem(rep.get(f"/customer/{theirs['id']}"), 404)
    _problem(rep.patch(f"/customer/{theirs['id']}", {"name": "x", "version": 1}), 404)
    _problem(rep.get(f"/customer/{theirs['id']}/history"), 404)
    page = rep.get("/customer").get_json()
    assert [r["name"] for r in page["items"]] == ["Mine"] and page["total"] == 1
    assert rep.get(f"/customer/{mine['id']}").status_code == 200
    assert admin.get("/customer").get_json()["total"] == 2
    # Salespeople may not delete customers.
    _problem(rep.delete(f"/customer/{mine['id']}", headers={"If-Match": '"1"'}), 403)


def test_related_lists(site, admin, rep):
    acme = admin.post("/customer", {"name": "Acme"}).get_json()
    admin.post("/contact", {"name": "Li Lei", "customer": acme["id"]})
    admin.post("/contact", {"name": "Han Meimei", "customer": acme["id"]})
    related = admin.get(f"/customer/{acme['id']}/related/contact/customer?sort=name").get_json()
    assert [r["name"] for r in related["items"]] == ["Han Meimei", "Li Lei"]
    _problem(admin.get(f"/customer/{acme['id']}/related/contact/name"), 404)
    _problem(rep.get(f"/customer/{acme['id']}/related/contact/customer"), 404)


def test_authentication(site, admin):
    app = create_app(site, testing=True)
    _problem(Api(app, None).get("/customer"), 401, "unauthorized")
    _problem(Api(app, "crm_nonsense").get("/customer"), 401)
    _problem(admin.get("/customer", headers={"Authorization": "Basic abc"}), 401)
    token, row = site.users.tokens.create("admin", "revoked")
    assert Api(app, token).get("/customer").status_code == 200
    site.users.tokens.revoke(row["id"])
    _problem(Api(app, token).get("/customer"), 401)


def test_session_auth_needs_the_csrf_header_for_writes(site):
    client = create_app(site, testing=True).test_client()
    assert login(client, "admin", "correct-horse").status_code == 302
    assert client.get("/api/v1/customer").status_code == 200
    refused = client.post("/api/v1/customer", json={"name": "Acme"})
    _problem(refused, 403, "csrf_failed")
    done = client.post("/api/v1/customer", json={"name": "Acme"},
                       headers={"X-CSRF-Token": csrf(client)})
    assert done.status_code == 201


def test_bearer_writes_need_no_csrf_and_big_bodies_are_413(admin):
    assert admin.post("/customer", {"name": "x"}).status_code == 201
    _problem(admin.post("/customer", {"name": "x" * (2 * 1024 * 1024)}), 413, "too_large")
