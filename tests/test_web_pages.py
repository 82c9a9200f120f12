"""The web UI renders every page type for every entity, and keeps people out when it should."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.context import FixedClock
from engine.web import create_app
from tests.support import open_migrated, write_site
from tests.web_support import csrf, login, post, sample_records

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
def app(site):
    return create_app(site, testing=True)


@pytest.fixture
def admin(app):
    client = app.test_client()
    assert login(client, "admin", PASSWORD).status_code == 302
    return client


@pytest.fixture
def data(site):
    actor = site.users.actor("admin")
    acme = site.records.create(actor, "customer", {"name": "Acme Trading", "kind": "client"})
    beta = site.records.create(actor, "customer", {"name": "Beta Foods"})
    contact = site.records.create(actor, "contact", {"name": "Li Lei", "customer": acme["id"]})
    opp = site.records.create(actor, "opportunity", {
        "name": "ERP roll-out", "customer": acme["id"], "amount": "120000",
        "lines": [{"item": "Licences", "quantity": "10", "unit_price": "1000"}]})
    activity = site.records.create(actor, "activity", {
        "subject": "First visit", "kind": "visit", "customer": acme["id"],
        "contact": contact["id"], "opportunity": opp["id"]})
    more = {
        "customer_relation": {"from_customer": beta["id"], "kind": "supplier_to",
                              "to_customer": acme["id"]},
        "complaint": {"subject": "Late delivery", "customer": acme["id"]},
        "product": {"code": "P-1", "name": "Rack", "list_price": "4500", "cost": "3100"},
        "sales_target": {"name": "2026 Q3", "period": "quarter", "period_start": "2026-07-01",
                         "period_end": "2026-09-30", "amount": "100000"},
        "expense": {"summary": "Taxi", "amount": "80", "opportunity": opp["id"]},
        "sales_report": {"name": "Week 23", "period": "week", "period_start": "2026-06-01",
                         "period_end": "2026-06-07", "talks": "Visited Acme"},
    }
    found = {key: site.records.create(actor, key, values) for key, values in more.items()
             if key in site.registry.entities}
    return {"customer": acme, "contact": contact, "opportunity": opp, "activity": activity,
            **found}


def test_login_is_required(app):
    client = app.test_client()
    response = client.get("/r/customer")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_bad_login_says_so_and_logout_ends_the_session(app):
    client = app.test_client()
    response = login(client, "admin", "wrong-password")
    assert response.status_code == 401
    assert "Wrong login or password." in response.get_data(as_text=True)
    assert login(client, "admin", PASSWORD).status_code == 302
    assert client.get("/").status_code == 200
    assert post(client, "/logout").status_code == 302
    assert client.get("/").status_code == 302


def test_login_redirects_only_within_the_site(app):
    client = app.test_client()
    response = post(client, "/login", {"login": "admin", "password": PASSWORD,
                                       "next": "//evil.example/"})
    assert response.headers["Location"] == "/"


def test_every_page_of_every_core_entity_renders(admin, site, data):
    samples = {**sample_records(site, site.users.actor("admin")), **data}
    for key in site.registry.entities:
        record = samples[key]
        for path in (f"/r/{key}", f"/r/{key}/new", f"/r/{key}/{record['id']}",
                     f"/r/{key}/{record['id']}/edit"):
            response = admin.get(path)
            assert response.status_code == 200, (path, response.get_data(as_text=True)[:500])
    assert admin.get("/").status_code == 200
    assert admin.get("/profile").status_code == 200


def test_detail_shows_related_records_lines_and_timeline(admin, data):
    page = admin.get(f"/r/customer/{data['customer']['id']}").get_data(as_text=True)
    assert "ERP roll-out" in page and "Li Lei" in page and "First visit" in page
    assert "created the record" in page
    opp = admin.get(f"/r/opportunity/{data['opportunity']['id']}").get_data(as_text=True)
    assert "Licences" in opp and "¥10,000.00" in opp and "¥120,000.00" in opp


def test_list_searches_sorts_filters_and_pages(admin, site, data):
    page = admin.get("/r/customer?q=acme").get_data(as_text=True)
    assert "Acme Trading" in page and "Beta Foods" not in page
    page = admin.get("/r/customer?kind=client").get_data(as_text=True)
    assert "Acme Trading" in page and "Beta Foods" not in page
    page = admin.get("/r/customer?sort=name").get_data(as_text=True)
    assert page.index("Acme Trading") < page.index("Beta Foods")
    assert "2 in all" in page
    bad = admin.get("/r/opportunity?amount__ge=lots")
    assert bad.status_code == 422
    actor = site.users.actor("admin")
    for number in range(30):
        site.records.create(actor, "customer", {"name": f"Bulk {number:02}"})
    first = admin.get("/r/customer?sort=name").get_data(as_text=True)
    assert "in all" not in first and "offset=25" in first  # no full count unless asked
    assert "count=1" in first
    counted = admin.get("/r/customer?sort=name&count=1").get_data(as_text=True)
    assert "32 in all" in counted
    second = admin.get("/r/customer?sort=name&offset=25").get_data(as_text=True)
    assert "Bulk 29" in second and "32 in all" in second  # the last page counts itself


def test_unknown_entity_and_record_are_404(admin):
    assert admin.get("/r/nothing").status_code == 404
    response = admin.get("/r/customer/999")
    assert response.status_code == 404
    assert "Traceback" not in response.get_data(as_text=True)


def test_security_headers_are_set(app):
    response = app.test_client().get("/login")
    headers = response.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "<script>" not in response.get_data(as_text=True)  # no inline scripts


def test_session_cookie_is_http_only_and_lax(app):
    client = app.test_client()
    response = login(client, "admin", PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie


def test_a_post_without_csrf_token_is_refused(admin, data):
    response = admin.post(f"/r/customer/{data['customer']['id']}/archive", data={})
    assert response.status_code == 400
    assert "form expired" in response.get_data(as_text=True)
    response = admin.post("/login", data={"login": "admin", "password": PASSWORD,
                                          "csrf_token": "forged"})
    assert response.status_code == 400


def test_secret_key_is_kept_in_the_site_folder(site):
    first = create_app(site).config["SECRET_KEY"]
    stored = site.config.root / ".secret_key"
    assert stored.read_text() == first and stored.stat().st_mode & 0o777 == 0o600
    assert create_app(site).config["SECRET_KEY"] == first


def test_chinese_ui_for_a_chinese_user(app, site, data):
    site.users.create("wang", password=PASSWORD, roles=["owner"], language="zh")
    client = app.test_client()
    login(client, "wang", PASSWORD)
    page = client.get("/r/customer").get_data(as_text=True)
    assert "客户" in page and "新建" in page and "搜索" in page
    detail = client.get(f"/r/opportunity/{data['opportunity']['id']}").get_data(as_text=True)
    assert "销售机会" in detail and "时间线" in detail and "2026年" in detail


def test_profile_changes_language_and_password(admin):
    response = post(admin, "/profile", {"action": "language", "language": "zh"})
    assert response.status_code == 302
    assert "个人设置" in admin.get("/profile").get_data(as_text=True)
    wrong = post(admin, "/profile", {"action": "password", "current_password": "nope",
                                     "new_password": "another-horse"})
    assert wrong.status_code == 422 and "当前密码错误" in wrong.get_data(as_text=True)
    ok = post(admin, "/profile", {"action": "password", "current_password": PASSWORD,
                                  "new_password": "another-horse"})
    assert ok.status_code == 302
    client = admin.application.test_client()
    assert login(client, "admin", "another-horse").status_code == 302


def test_navigation_shows_only_readable_entities(app, site, data, tmp_path):
    site.users.create("sam", password=PASSWORD, roles=["sales"])
    client = app.test_client()
    login(client, "sam", PASSWORD)
    page = client.get("/").get_data(as_text=True)
    assert "/r/customer" in page
    assert csrf(client)


def test_templates_and_static_files_ship_in_the_wheel():
    """Every file the UI needs matches a package-data pattern of pyproject.toml."""
    import fnmatch
    import tomllib
    from pathlib import Path

    import engine.web

    root = Path(engine.web.__file__).parent
    config = tomllib.loads((root.parents[1] / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["*"]
    files = [p for folder in ("templates", "static") for p in (root / folder).iterdir()]
    assert files
    for path in files:
        assert any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns), path


VIEWER = """
roles:
  viewer:
    label: {en: Viewer, zh: 查看者}
    entities:
      customer: {rights: [read], scope: all}
"""


def test_a_read_only_role_sees_only_what_it_may_and_gets_403_for_the_rest(tmp_path, db_url):
    root = write_site(tmp_path / "s2", db_url, ["core"], overlays={"viewer.yaml": VIEWER})
    opened = open_migrated(root, clock=FixedClock(NOW))
    try:
        opened.users.create("vic", password=PASSWORD, roles=["viewer"])
        client = create_app(opened, testing=True).test_client()
        login(client, "vic", PASSWORD)
        home = client.get("/").get_data(as_text=True)
        assert "/r/customer" in home and "/r/opportunity" not in home
        listing = client.get("/r/customer").get_data(as_text=True)
        assert "/r/customer/new" not in listing  # no "New" button
        assert client.get("/r/customer/new").status_code == 403
        assert post(client, "/r/customer/new", {"name": "X"}).status_code == 403
        assert client.get("/r/opportunity").status_code == 403
    finally:
        opened.close()


def test_repeated_bad_logins_are_slowed_down(app, site):
    client = app.test_client()
    for _ in range(4):
        assert login(client, "admin", "wrong-password").status_code == 401
    response = login(client, "admin", PASSWORD)  # even the right password, from this address
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert "Too many failed attempts. Try again in 2 second(s)." in response.get_data(as_text=True)
    other = app.test_client()  # the right password from another address is let in
    assert post(other, "/login", {"login": "admin", "password": PASSWORD},
                environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 302
    site.clock.advance(seconds=2)
    assert login(client, "admin", PASSWORD).status_code == 302


def test_a_chinese_user_gets_engine_messages_in_chinese(app, site):
    site.users.create("wang", password=PASSWORD, roles=["owner"], language="zh")
    client = app.test_client()
    login(client, "wang", PASSWORD)
    response = post(client, "/r/customer/new", {"name": ""})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "此字段为必填项。" in page and "请修改下方标出的字段。" in page
