"""Merging duplicate customers: generic over the registry, previewed, all or nothing, checked.

The core pack's own references are covered in test_core_duplicates.py; here a
second pack adds entities of its own that refer to customers — a plain
reference, a reference column of a lines field and a one-per-customer
(unique) reference — and the merge moves them without being told about them.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main
from engine.context import Actor, FixedClock
from engine.errors import NotFound, PermissionDenied, ValidationFailed
from engine.services.records.merge import merge, plan_merge
from engine.web import create_app
from tests.support import open_migrated, write_pack, write_site
from tests.web_support import login, post

NOW = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
PASSWORD = "password-1"

LOGISTICS = {
    "entities/shipment.yaml": """
        entity: shipment
        label: {en: Shipment, zh: 发货}
        title_field: reference
        fields:
          reference: {type: string, required: true, label: {en: Reference, zh: 单号}}
          consignee:
            type: reference
            to: customer
            label: {en: Consignee, zh: 收货方}
          stops:
            type: lines
            label: {en: Stops, zh: 途经}
            fields:
              place: {type: string, label: {en: Place, zh: 地点}}
              customer:
                type: reference
                to: customer
                label: {en: Customer, zh: 客户}
    """,
    "entities/credit_account.yaml": """
        entity: credit_account
        label: {en: Credit account, zh: 信用账户}
        fields:
          customer:
            type: reference
            to: customer
            unique: true
            label: {en: Customer, zh: 客户}
          limit: {type: decimal, label: {en: Limit, zh: 额度}}
    """,
}


@pytest.fixture
def site(tmp_path, db_url):
    pack = write_pack(tmp_path / "packs", "logistics", LOGISTICS, depends=["core"])
    root = write_site(tmp_path / "site", db_url, ["core", "logistics"],
                      pack_paths=[pack.parent])
    opened = open_migrated(root, clock=FixedClock(NOW))
    opened.users.create("admin", password=PASSWORD, roles=["admin"], is_admin=True)
    opened.users.create("mgr", password=PASSWORD, roles=["manager"])
    opened.users.create("wang", password=PASSWORD, roles=["sales"])
    opened.users.create("li", password=PASSWORD, roles=["sales"])
    opened.users.teams.create("east", manager="mgr")
    opened.users.teams.add_member("east", "wang")
    yield opened
    opened.close()


def _pair(site):
    wang = site.users.actor("wang")
    kept = site.records.create(wang, "customer", {"name": "华信科技有限公司",
                                                  "phone": "021-50801234"})
    dup = site.records.create(wang, "customer", {"name": "华信科技", "region": "上海"})
    return kept, dup


def test_every_pack_entity_referring_to_the_duplicate_moves(site):
    rec, system = site.records, Actor.system()
    kept, dup = _pair(site)
    other = rec.create(system, "customer", {"name": "远方咨询"})
    shipment = rec.create(system, "shipment", {
        "reference": "SH-1", "consignee": dup["id"],
        "stops": [{"place": "上海", "customer": dup["id"]},
                  {"place": "杭州", "customer": other["id"]}]})
    account = rec.create(system, "credit_account", {"customer": dup["id"], "limit": "50000"})
    mgr = site.users.actor("mgr")

    plan = plan_merge(rec, mgr, kept["id"], dup["id"])
    assert plan.moved == {"shipment.consignee": 1, "shipment.stops.customer": 1,
                          "credit_account.customer": 1}
    assert plan.fills == {"region": "上海"}
    assert rec.get(system, "shipment", shipment["id"])["consignee"] == dup["id"]  # a preview

    result = merge(rec, mgr, kept["id"], dup["id"])
    assert result.moved == plan.moved
    moved = rec.get(system, "shipment", shipment["id"])
    assert moved["consignee"] == kept["id"]
    assert [s["customer"] for s in moved["stops"]] == [kept["id"], other["id"]]
    assert moved["version"] == shipment["version"] + 1
    assert rec.get(system, "credit_account", account["id"])["customer"] == kept["id"]
    assert result.kept["region"] == "上海" and rec.get(system, "customer", dup["id"])["archived"]


def test_a_unique_reference_both_records_fill_refuses_the_whole_merge(site):
    rec, system = site.records, Actor.system()
    kept, dup = _pair(site)
    contact = rec.create(system, "contact", {"name": "王建国", "customer": dup["id"]})
    rec.create(system, "credit_account", {"customer": dup["id"]})
    rec.create(system, "credit_account", {"customer": kept["id"]})
    with pytest.raises(ValidationFailed) as refused:
        merge(rec, site.users.actor("mgr"), kept["id"], dup["id"])
    assert "credit_account" in str(refused.value.errors) or "Credit" in str(refused.value.errors)
    # nothing changed: the contact stays, the duplicate is not archived
    assert rec.get(system, "contact", contact["id"])["customer"] == dup["id"]
    assert rec.get(system, "customer", dup["id"])["archived"] is False


def test_merge_needs_delete_rights_and_both_records_in_scope(site):
    rec = site.records
    kept, dup = _pair(site)
    lis = rec.create(site.users.actor("li"), "customer", {"name": "华信科技股份有限公司"})
    with pytest.raises(PermissionDenied):
        plan_merge(rec, site.users.actor("wang"), kept["id"], dup["id"])
    with pytest.raises(NotFound):  # Li is not in the manager's team: not found, not moved
        merge(rec, site.users.actor("mgr"), kept["id"], lis["id"])
    with pytest.raises(ValidationFailed):
        merge(rec, site.users.actor("mgr"), kept["id"], kept["id"])
    merge(rec, site.users.actor("mgr"), kept["id"], dup["id"])
    with pytest.raises(NotFound):  # an archived duplicate is merged once only
        merge(rec, site.users.actor("admin"), kept["id"], dup["id"])


def test_the_kept_customer_shows_the_merge_on_its_timeline(site):
    kept, dup = _pair(site)
    result = merge(site.records, site.users.actor("mgr"), kept["id"], dup["id"])
    history = site.records.history(site.users.actor("mgr"), "customer", kept["id"])
    [row] = [r for r in history if r["action"] == "merge"]
    assert row["change_id"] == result.change_id
    assert row["new_value"]["id"] == dup["id"] and row["new_value"]["title"] == "华信科技"
    app = create_app(site, testing=True)
    client = app.test_client()
    login(client, "mgr", PASSWORD)
    page = client.get(f"/r/customer/{kept['id']}").get_data(as_text=True)
    assert "merged duplicate records" in page


def test_crm_merge_previews_then_merges(site, tmp_path):
    kept, dup = _pair(site)
    site.records.create(Actor.system(), "contact", {"name": "李娜", "customer": dup["id"]})
    runner = CliRunner()
    args = ["--site", str(tmp_path / "site"), "merge", "customer", str(kept["id"]),
            str(dup["id"]), "--as", "mgr"]
    shown = runner.invoke(main, [*args, "--dry-run"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "contact.customer  1" in shown.output and "Dry run" in shown.output
    assert site.records.get(Actor.system(), "customer", dup["id"])["archived"] is False
    done = runner.invoke(main, [*args, "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert data["moved"] == {"contact.customer": 1} and data["merged"] == dup["id"]
    refused = runner.invoke(main, [*args[:-2], "--as", "wang"])
    assert refused.exit_code == 1 and "Error:" in refused.output


def test_the_merge_page_previews_and_merges(site):
    kept, dup = _pair(site)
    contact = site.records.create(Actor.system(), "contact", {"name": "李娜",
                                                              "customer": dup["id"]})
    client = create_app(site, testing=True).test_client()
    login(client, "mgr", PASSWORD)
    detail = client.get(f"/r/customer/{kept['id']}").get_data(as_text=True)
    assert f"/r/customer/{kept['id']}/merge" in detail
    page = client.get(f"/r/customer/{kept['id']}/merge")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "华信科技" in text and f"drop={dup['id']}" in text
    preview = client.get(f"/r/customer/{kept['id']}/merge?drop={dup['id']}")
    text = preview.get_data(as_text=True)
    assert "Contacts" in text and "Merge and archive the duplicate" in text
    assert client.get(f"/r/customer/{kept['id']}/merge?drop=abc").status_code == 422
    done = post(client, f"/r/customer/{kept['id']}/merge", {"drop": str(dup["id"])})
    assert done.status_code == 302
    assert site.records.get(Actor.system(), "contact", contact["id"])["customer"] == kept["id"]
    # a salesperson gets neither the link nor the merge
    other = create_app(site, testing=True).test_client()
    login(other, "wang", PASSWORD)
    assert f"/r/customer/{kept['id']}/merge" not in other.get(
        f"/r/customer/{kept['id']}").get_data(as_text=True)
    third = site.records.create(site.users.actor("wang"), "customer", {"name": "华信 科技"})
    refused = post(other, f"/r/customer/{kept['id']}/merge", {"drop": str(third["id"])})
    assert refused.status_code == 403
    assert site.records.get(Actor.system(), "customer", third["id"])["archived"] is False


def test_audit_rows_of_a_merge_share_one_change_id(site):
    kept, dup = _pair(site)
    site.records.create(Actor.system(), "shipment", {"reference": "S", "consignee": dup["id"]})
    result = merge(site.records, site.users.actor("mgr"), kept["id"], dup["id"])
    audit = site.schema.system("crm_audit")
    with site.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(
            select(audit).where(audit.c.change_id == result.change_id)).mappings()]
    assert {(r["entity"], r["action"]) for r in rows} == {("customer", "merge"),
                                                          ("shipment", "merge")}
