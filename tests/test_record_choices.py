"""Reference pickers search every record the user may read, and nothing else.

The trading demo (104 products) through the web lookup, the API's ``/choices`` and the
form without JS: any product can be picked (by name, code, Chinese text or ``#id``); a
salesperson never finds another owner's customer, and a hidden field is never matched
nor shown, so its value cannot be probed by search terms.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.services.records.choices import choose
from engine.web import create_app
from tests.api_support import api_for
from tests.conftest import BACKEND, fresh_pg_schema
from tests.support import open_migrated, write_site
from tests.web_support import login, post

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
PASSWORD = "password-1"
#: The sales role as shipped, but the customer's phone hidden from salespeople.
HIDE_PHONE = """
roles:
  sales:
    entities:
      customer:
        fields: {phone: hidden}
"""


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """One database for the module: the demo loads once (SQLite or PostgreSQL, as the run)."""
    if BACKEND == "postgresql":
        with fresh_pg_schema() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('choices-db') / 'crm.db'}"


@pytest.fixture(scope="module")
def site(tmp_path_factory, db):
    root = tmp_path_factory.mktemp("choices") / "site"
    opened = open_migrated(write_site(root, db, ["core", "trading"],
                                      overlays={"roles.yaml": HIDE_PHONE}),
                           clock=FixedClock(NOW))
    for name, role in (("boss", "owner"), ("sam", "sales"), ("sue", "sales")):
        opened.users.create(name, password=PASSWORD, roles=[role])
    paths = [Path(opened.registry.packs[p].path) for p in ("core", "trading")]
    load_demo(opened.records, Actor.system(), paths, workflows=opened.workflows)
    boss = opened.users.actor("boss")
    for name, customer, phone in (("sam", "萨姆自己的客户", "13900001111"),
                                  ("sue", "苏的秘密客户 Hidden Harbor", "13800002222")):
        made = opened.records.create(opened.users.actor(name), "customer", {"name": customer})
        opened.records.update(boss, "customer", made["id"], {"phone": phone},
                              version=made["version"])
    yield opened
    opened.close()


def web(site, name):
    client = create_app(site, testing=True).test_client()
    login(client, name, PASSWORD)
    return client


def titles(data, key="results"):
    return [r["title"] for r in data[key]]


def test_every_product_of_the_trading_demo_can_be_found(site):
    boss = site.users.actor("boss")
    assert site.records.count(boss, "product") == 104
    sam = web(site, "sam")
    last = site.records.get(boss, "product", 104)
    first = site.records.get(boss, "product", 1)
    for query, wanted in ((last["name"], last), (last["code"], last), ("#104", last),
                          (first["code"].lower(), first), ("#1", first)):
        data = sam.get(f"/r/product/lookup?q={quote(query)}").get_json()
        assert wanted["id"] in [r["id"] for r in data["results"]], query
        hit = next(r for r in data["results"] if r["id"] == wanted["id"])
        assert hit["title"] == wanted["name"] and wanted["code"] in hit["detail"]
    # Chinese words, all of them found in one record.
    data = sam.get("/r/product/lookup?q=手套 绝缘").get_json()
    assert titles(data) == ["绝缘手套"]
    # A short page says there is more; a bigger one may be asked for, up to 50.
    data = sam.get("/r/product/lookup?q=TR").get_json()
    assert len(data["results"]) == 20 and data["has_more"] is True
    assert len(sam.get("/r/product/lookup?q=TR&limit=50").get_json()["results"]) == 50
    found = choose(site.records, site.users.actor("sam"), "product", "TR", limit=50)
    everything = [c.id for c in found.items]
    assert len(everything) == len(set(everything)) == 50 and found.has_more


def test_a_salesperson_cannot_find_another_owners_customer(site):
    sue_customer = site.records.list(site.users.actor("sue"), "customer",
                                     search="Hidden Harbor").rows[0]
    sam = web(site, "sam")
    api = api_for(site, "sam")
    for query in ("Hidden Harbor", "苏的秘密", f"#{sue_customer['id']}", sue_customer["code"]):
        assert sam.get(f"/r/customer/lookup?q={quote(query)}").get_json()["results"] == []
        answer = api.get(f"/customer/choices?q={quote(query)}")
        assert answer.status_code == 200 and answer.get_json()["items"] == [], query
    # Their own customer is found both ways; the owner finds both.
    assert titles(sam.get("/r/customer/lookup?q=萨姆").get_json()) == ["萨姆自己的客户"]
    assert [i["title"] for i in api.get("/customer/choices?q=萨姆").get_json()["items"]] == \
        ["萨姆自己的客户"]
    boss = api_for(site, "boss").get("/customer/choices?q=Hidden Harbor").get_json()
    assert [i["id"] for i in boss["items"]] == [sue_customer["id"]]


def test_a_hidden_field_is_neither_searched_nor_shown(site):
    sam = web(site, "sam")
    api = api_for(site, "sam")
    boss = api_for(site, "boss")
    # The owner sees phones: their own search by phone finds the customer, shown with it.
    found = boss.get("/customer/choices?q=13900001111").get_json()["items"]
    assert [i["title"] for i in found] == ["萨姆自己的客户"] and "13900001111" in found[0]["detail"]
    # Sam's phone rule hides it: no digit of it matches, and no choice carries it.
    for probe in ("13900001111", "1390000", "139"):
        assert sam.get(f"/r/customer/lookup?q={probe}").get_json()["results"] == []
        assert api.get(f"/customer/choices?q={probe}").get_json()["items"] == []
    mine = api.get("/customer/choices?q=萨姆").get_json()["items"]
    assert mine and "1390000" not in str(mine)
    assert "1390000" not in sam.get("/r/customer/lookup?q=萨姆").get_data(as_text=True)


def test_bad_searches_are_refused_with_a_message(site):
    sam = web(site, "sam")
    api = api_for(site, "sam")
    assert sam.get("/r/product/lookup?q=" + "x" * 201).status_code == 422
    assert sam.get("/r/product/lookup?q=a%00b").status_code == 422
    for bad in ("limit=0", "limit=51", "limit=x", "q=" + "y" * 201):
        answer = api.get(f"/product/choices?{bad}")
        assert answer.status_code == 422, bad
        assert answer.get_json()["errors"]
    assert api.get("/nothing/choices?q=a").status_code == 404
    assert api_for(site, "sam").get("/purchase_order/choices?q=a").status_code == 403


def test_the_form_without_javascript_searches_and_keeps_every_line(site):
    boss = site.users.actor("boss")
    sam = web(site, "sam")
    customer = site.records.list(site.users.actor("sam"), "customer").rows[0]
    product = site.records.get(boss, "product", 104)
    page = sam.get("/r/quotation/new").get_data(as_text=True)
    assert 'name="lines-0-product__find"' in page and 'data-picker' in page
    before = site.records.count(boss, "quotation")
    form = {"customer": str(customer["id"]), "lines-0-product": "",
            "lines-0-quantity": "2", "lines-0-unit_price": "9",
            "lines-0-product__find": product["name"], "_find": "lines-0-product"}
    answer = post(sam, "/r/quotation/new", form)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and site.records.count(boss, "quotation") == before
    assert re.search(rf'<option value="{product["id"]}"\s*>{product["name"]}', html)
    assert f'value="{product["name"]}"' in html  # the search stays in its box
    form.update({"lines-0-product": str(product["id"])})
    del form["_find"]
    saved = post(sam, "/r/quotation/new", form)
    assert saved.status_code == 302, saved.get_data(as_text=True)[:2000]
    quote_id = int(saved.headers["Location"].rsplit("/", 1)[1])
    # Editing it offers that product selected in its line, whatever page of products it is on.
    edit = sam.get(f"/r/quotation/{quote_id}/edit").get_data(as_text=True)
    assert re.search(rf'<option value="{product["id"]}" selected', edit)
    assert site.records.get(boss, "quotation", quote_id)["lines"][0]["product"] == product["id"]
