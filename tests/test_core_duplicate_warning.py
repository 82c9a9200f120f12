"""Likely duplicates are shown before a new customer is saved: in the form and over the API."""

from __future__ import annotations

import io

import pytest

from engine.context import Actor
from engine.web import create_app
from tests.api_support import PASSWORD, Api, core_site
from tests.web_support import login, post


@pytest.fixture
def site(tmp_path, db_url):
    opened = core_site(tmp_path, db_url)
    rep = opened.users.actor("rep")
    for values in ({"name": "华信科技有限公司", "phone": "+86 21 5080 1234"},
                   {"name": "Northwind Traders Co., Ltd.", "email": "Sales@Northwind.example.com"},
                   {"name": "ＡＢＣ电子（集团）有限责任公司"}):
        opened.records.create(rep, "customer", values)
    opened.records.create(opened.users.actor("other"), "customer", {"name": "远方咨询有限公司"})
    yield opened
    opened.close()


@pytest.fixture
def api(site):
    token, _ = site.users.tokens.create("rep", "tests")
    return Api(create_app(site, testing=True), token)


@pytest.mark.parametrize(("query", "name", "reasons"), [
    ({"name": "华信科技有限责任公司"}, "华信科技有限公司", ["name"]),            # another suffix
    ({"name": "华信科技"}, "华信科技有限公司", ["name"]),                        # no suffix
    ({"name": "華信科技 Co., Ltd."}, None, []),                                   # traditional 華 differs
    ({"name": "ABC电子(集团)"}, "ＡＢＣ电子（集团）有限责任公司", ["name"]),      # full-width letters, brackets
    ({"name": "northwind traders"}, "Northwind Traders Co., Ltd.", ["name"]),
    ({"phone": "021-5080 1234"}, "华信科技有限公司", ["phone"]),                  # other formatting
    ({"phone": "0086 21 50801234"}, "华信科技有限公司", ["phone"]),
    ({"email": "SALES@northwind.EXAMPLE.com"}, "Northwind Traders Co., Ltd.", ["email"]),
    ({"name": "远方咨询"}, None, []),                                             # another's customer
])
def test_the_api_lists_likely_duplicates_within_the_callers_scope(api, query, name, reasons):
    answer = api.get("/customer/duplicates", query_string=query)
    assert answer.status_code == 200, answer.get_json()
    items = answer.get_json()["items"]
    assert [i["record"]["name"] for i in items] == ([name] if name else [])
    assert [i["reasons"] for i in items] == ([reasons] if name else [])


def test_the_api_refuses_what_it_cannot_check(api, site):
    assert api.get("/customer/duplicates").get_json()["items"] == []
    assert api.get("/product/duplicates").status_code == 404
    assert api.get("/customer/duplicates", query_string={"exclude": "x"}).status_code == 422
    kept = site.records.list(Actor.system(), "customer", search="华信").rows[0]
    same = api.get("/customer/duplicates", query_string={"name": "华信科技",
                                                         "exclude": str(kept["id"])})
    assert same.get_json()["items"] == []


def test_merge_over_the_api_previews_then_merges(site):
    rep = site.users.actor("rep")
    kept = site.records.list(rep, "customer", search="华信").rows[0]
    dup = site.records.create(rep, "customer", {"name": "华信科技", "region": "上海"})
    site.records.create(rep, "contact", {"name": "李娜", "customer": dup["id"]})
    admin = Api(create_app(site, testing=True), site.users.tokens.create("admin", "t")[0])
    preview = admin.post(f"/customer/{kept['id']}/merge", json={"duplicate": dup["id"],
                                                                "dry_run": True})
    assert preview.status_code == 200, preview.get_json()
    assert preview.get_json()["moved"] == {"contact.customer": 1}
    assert site.records.get(rep, "customer", dup["id"])["archived"] is False
    done = admin.post(f"/customer/{kept['id']}/merge", json={"duplicate": dup["id"]})
    assert done.status_code == 200 and done.get_json()["kept"]["region"] == "上海"
    assert admin.post(f"/customer/{kept['id']}/merge", json={"duplicate": "x"}).status_code == 422
    salesperson = Api(create_app(site, testing=True), site.users.tokens.create("rep", "r")[0])
    refused = salesperson.post(f"/customer/{kept['id']}/merge", json={"duplicate": kept["id"] + 99})
    assert refused.status_code in (403, 404)


def test_the_form_warns_before_saving_a_likely_duplicate(site):
    client = create_app(site, testing=True).test_client()
    login(client, "rep", PASSWORD)
    before = site.records.count(Actor.system(), "customer")
    warned = post(client, "/r/customer/new", {"name": "华信科技（有限公司）", "kind": "client",
                                              "phone": "021 5080 1234"})
    page = warned.get_data(as_text=True)
    assert warned.status_code == 200 and "This may already exist" in page
    assert "华信科技有限公司" in page and "name, phone" in page
    assert 'name="confirm_duplicates"' in page and "华信科技（有限公司）" in page  # values kept
    assert site.records.count(Actor.system(), "customer") == before  # nothing saved yet

    back = post(client, "/r/customer/new", {"name": "华信科技（有限公司）", "kind": "client",
                                            "edit_again": "1"})
    assert back.status_code == 200 and 'value="华信科技（有限公司）"' in back.get_data(as_text=True)
    assert site.records.count(Actor.system(), "customer") == before

    saved = post(client, "/r/customer/new", {"name": "华信科技（有限公司）", "kind": "client",
                                             "confirm_duplicates": "1"})
    assert saved.status_code == 302
    assert site.records.count(Actor.system(), "customer") == before + 1

    fresh = post(client, "/r/customer/new", {"name": "全新客户", "kind": "prospect"})
    assert fresh.status_code == 302  # nothing alike: saved straight away


def test_quick_create_warns_as_the_form_does(site):
    client = create_app(site, testing=True).test_client()
    login(client, "rep", PASSWORD)
    assert "New customer" in client.get("/r/customer").get_data(as_text=True)
    before = site.records.count(Actor.system(), "customer")
    typed = {"quick-customer-new-name": "Northwind Traders", "quick-customer-new-phone": "",
             "quick-customer-new-email": "", "quick-customer-new-region": "",
             "next": "/r/customer"}
    warned = post(client, "/quick/customer/new", typed)
    page = warned.get_data(as_text=True)
    assert warned.status_code == 200 and "Northwind Traders Co., Ltd." in page
    assert 'name="quick-customer-new-name" value="Northwind Traders"' in page
    assert site.records.count(Actor.system(), "customer") == before

    saved = post(client, "/quick/customer/new", {**typed, "confirm_duplicates": "1"})
    assert saved.status_code == 302 and saved.headers["Location"] == "/r/customer"
    assert site.records.count(Actor.system(), "customer") == before + 1

    fresh = post(client, "/quick/customer/new", {**typed, "quick-customer-new-name": "全新客户"})
    assert fresh.status_code == 302
    assert site.records.count(Actor.system(), "customer") == before + 2


def test_an_import_warns_of_rows_like_readable_records_and_earlier_rows(site):
    from engine.services.dataio.importing import Importer

    site.users.create("mgr", password=PASSWORD, roles=["manager"])
    site.users.teams.create("east", manager="mgr")
    site.users.teams.add_member("east", "rep")  # mgr reads rep's customers, not other's
    mgr = site.users.actor("mgr")
    data = ("名称,电话,邮箱\n"
            "华信科技（有限公司）,021 5080 1234,\n"       # line 2: name and phone
            "远方咨询,,\n"                                 # 3: like another's customer only
            "全新客户甲,,new@example.com\n"                # 4: nothing alike
            "\"全新客户甲 Co., Ltd.\",,NEW@example.com\n"  # 5: like line 4
            "Contoso,,sales@northwind.example.com\n")      # 6: e-mail of a readable one
    before = site.records.count(Actor.system(), "customer")
    report = Importer(site.records).run(mgr, "customer", data.encode(), "c.csv", dry_run=True)
    assert report.ok and report.created == 5, [e.to_dict() for e in report.row_errors]
    found = {d.line: d.to_dict() for d in report.likely_duplicates}
    assert sorted(found) == [2, 5, 6]
    assert [(m["name"], m["reasons"]) for m in found[2]["records"]] == [
        ("华信科技有限公司", ["name", "phone"])]
    assert found[5] == {"line": 5, "records": [], "lines": [
        {"line": 4, "reasons": ["name", "email"]}]}
    assert found[6]["records"][0]["reasons"] == ["email"]
    assert site.records.count(Actor.system(), "customer") == before  # a check writes nothing

    client = create_app(site, testing=True).test_client()
    login(client, "mgr", PASSWORD)
    page = post(client, "/r/customer/import", {
        "action": "check", "file": (io.BytesIO(data.encode()), "c.csv")},
        content_type="multipart/form-data")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "3 row(s) look like records already there" in html
    assert "华信科技有限公司" in html and "line 4 of this file" in html and "远方咨询" not in html


def test_an_import_by_a_role_that_cannot_read_compares_with_nothing(tmp_path, db_url):
    """A loader may import customers without reading them: no records to compare, no error."""
    from engine.services.dataio.importing import Importer
    from tests.support import open_migrated, write_site

    root = write_site(tmp_path / "loader", db_url, ["core"], overlays={"roles.yaml": """
        roles:
          loader:
            label: {en: Loader, zh: 导入员}
            entities:
              customer: {rights: [create, import], scope: own}
    """})
    with open_migrated(root) as opened:
        opened.records.create(Actor.system(), "customer", {"name": "华信科技有限公司"})
        opened.users.create("loader", password=PASSWORD, roles=["loader"])
        report = Importer(opened.records).run(
            opened.users.actor("loader"), "customer",
            "名称\n华信科技\n新客户\n新客户\n".encode(), "c.csv", dry_run=True)
    assert report.ok and report.created == 3
    assert [(d.line, d.records, d.lines) for d in report.likely_duplicates] == [
        (4, [], [{"line": 3, "reasons": ["name"]}])]  # the file's own rows, nothing else
