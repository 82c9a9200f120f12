"""Likely duplicate customers: names, phones and e-mails compared after normalising."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from engine.context import Actor, FixedClock
from engine.errors import PermissionDenied, ValidationFailed
from engine.services.records.duplicates import (
    DuplicateIndex,
    find_duplicates,
    merge,
    normalise_email,
    normalise_name,
    normalise_phone,
)
from tests.support import open_migrated, write_site

NOW = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("one", "other"), [
    ("华信科技有限公司", "华信科技"),
    ("华信科技有限公司", "华信科技股份有限公司"),
    ("华信科技有限责任公司", "华信科技 有限公司"),
    ("华信科技有限公司", "华信科技（有限公司）"),       # full-width brackets
    ("ＨＵＡＸＩＮ科技", "huaxin科技"),                # full-width letters
    ("华信科技１２３", "华信科技123"),                  # full-width digits
    ("Northwind Traders Co., Ltd.", "northwind traders"),
    ("Northwind Traders Inc.", "NORTHWIND  TRADERS LLC"),
    ("Contoso Engineering Limited", "Contoso-Engineering"),
])
def test_names_of_the_same_party_normalise_alike(one, other):
    assert normalise_name(one) == normalise_name(other) != ""


@pytest.mark.parametrize(("one", "other"), [
    ("华信科技有限公司", "华信电子有限公司"),
    ("Costco", "Cost"),               # 'co' is a suffix only as a word of its own
    ("有限公司", "公司"),              # a suffix alone is kept, not emptied
])
def test_different_names_stay_different(one, other):
    assert normalise_name(one) != normalise_name(other)


def test_phones_and_emails_normalise():
    assert normalise_phone("+86 21 5080 1234") == normalise_phone("021-50801234") == "2150801234"
    assert normalise_phone("0086 138 0000 1111") == normalise_phone("13800001111")
    assert normalise_phone("１３８ ０００ ０１１１１") == "13800001111"
    assert normalise_phone("110") == "" and normalise_phone(None) == ""
    assert normalise_email(" Info@HuaXin.example.CN ") == "info@huaxin.example.cn"


@pytest.fixture
def site(tmp_path, db_url):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["core"]), clock=FixedClock(NOW))
    for login in ("wang", "li"):
        opened.users.create(login, password="password-1", roles=["sales"])
    opened.users.create("boss", password="password-1", roles=["owner"])
    yield opened
    opened.close()


def test_likely_duplicates_are_found_within_the_actors_scope(site):
    wang = site.users.actor("wang")
    li = site.users.actor("li")
    boss = site.users.actor("boss")
    rec = site.records
    huaxin = rec.create(wang, "customer", {"name": "华信科技有限公司", "phone": "+86 21 5080 1234"})
    other = rec.create(wang, "customer", {"name": "上海远方咨询", "email": "info@yuanfang.cn"})
    rec.create(wang, "customer", {"name": "金鼎装饰工程有限公司"})
    lis = rec.create(li, "customer", {"name": "华信科技股份有限公司"})

    found = find_duplicates(rec, wang, {"name": "华信科技（有限公司）"})
    assert [(d.id, d.reasons) for d in found] == [(huaxin["id"], ("name",))]

    found = find_duplicates(rec, wang, {"name": "远方", "phone": "021-50801234",
                                        "email": "INFO@yuanfang.cn"})
    assert [(d.id, d.reasons) for d in found] == [(huaxin["id"], ("phone",)),
                                                  (other["id"], ("email",))]

    found = find_duplicates(rec, wang, {"name": "华信科技", "phone": "02150801234"})
    assert found[0].id == huaxin["id"] and found[0].reasons == ("name", "phone")
    assert lis["id"] not in [d.id for d in found]  # Li's customer is not Wang's to see

    # the owner sees everyone's: both 华信 records, strongest match first
    found = find_duplicates(rec, boss, {"name": "华信科技", "phone": "02150801234"})
    assert [d.id for d in found] == [huaxin["id"], lis["id"]]

    # editing a record does not find itself; nothing to compare finds nothing
    assert find_duplicates(rec, wang, huaxin, exclude_id=huaxin["id"]) == []
    assert find_duplicates(rec, wang, {"name": ""}) == []


def test_archived_customers_are_not_offered(site):
    wang = site.users.actor("wang")
    gone = site.records.create(wang, "customer", {"name": "Northwind Traders Ltd."})
    assert [d.id for d in find_duplicates(site.records, wang, {"name": "NORTHWIND TRADERS"})] \
        == [gone["id"]]
    site.records.archive(Actor.system(), "customer", gone["id"])
    assert find_duplicates(site.records, wang, {"name": "Northwind Traders"}) == []


def test_merge_moves_every_related_record_to_the_kept_customer(site):
    site.users.create("mgr", password="password-1", roles=["manager"])
    site.users.teams.create("east", manager="mgr")
    site.users.teams.add_member("east", "wang")
    wang, mgr = site.users.actor("wang"), site.users.actor("mgr")
    rec = site.records
    kept = rec.create(wang, "customer", {"name": "华信科技有限公司", "phone": "021-50801234"})
    dup = rec.create(wang, "customer", {"name": "华信科技", "email": "info@huaxin.cn",
                                        "industry": "系统集成", "phone": "+86 21 5080 9999"})
    partner = rec.create(wang, "customer", {"name": "兰亭设计院"})
    contact = rec.create(wang, "contact", {"name": "王建国", "customer": dup["id"]})
    designer = rec.create(wang, "contact", {"name": "苏婉", "customer": partner["id"],
                                            "other_companies": [dup["id"], kept["id"]]})
    opp = rec.create(wang, "opportunity", {"name": "机房改造", "customer": dup["id"],
                                           "amount": "800000"})
    site.workflows.transition(wang, "opportunity", opp["id"], "proposal")
    site.workflows.transition(wang, "opportunity", opp["id"], "won")  # customer read-only now
    case = rec.create(wang, "complaint", {"subject": "延迟", "customer": dup["id"]})
    relation = rec.create(wang, "customer_relation", {"from_customer": partner["id"],
                                                      "kind": "supplier_to",
                                                      "to_customer": dup["id"]})
    # a colleague's record outside the manager's team moves too
    lis = rec.create(Actor.system(), "activity", {"subject": "Li's call", "customer": dup["id"],
                                                  "owner": site.users.get("li")["id"]})

    with pytest.raises(PermissionDenied):  # salespeople do not remove customers
        merge(rec, wang, kept["id"], dup["id"])

    result = merge(rec, mgr, kept["id"], dup["id"])
    assert result.kept["email"] == "info@huaxin.cn" and result.kept["industry"] == "系统集成"
    assert result.kept["phone"] == "021-50801234"  # the kept value wins
    assert result.moved == {"contact.customer": 1, "contact.other_companies": 1,
                            "opportunity.customer": 1, "activity.customer": 2,
                            "complaint.customer": 1, "customer_relation.to_customer": 1}
    system = Actor.system()
    for entity, record in (("contact", contact), ("opportunity", opp), ("complaint", case),
                           ("activity", lis)):
        assert rec.get(system, entity, record["id"])["customer"] == kept["id"], entity
    assert rec.get(system, "customer_relation", relation["id"])["to_customer"] == kept["id"]
    assert rec.get(system, "contact", designer["id"])["other_companies"] == [kept["id"]]
    assert rec.get(system, "customer", dup["id"])["archived"] is True
    assert [c["id"] for c in rec.list(mgr, "customer").rows] == [partner["id"], kept["id"]]

    audit = site.schema.system("crm_audit")
    with site.engine.connect() as conn:
        rows = conn.execute(select(audit).where(audit.c.change_id == result.change_id)).mappings()
        rows = [dict(r) for r in rows]
    assert {(r["entity"], r["record_id"]) for r in rows} >= {
        ("customer", kept["id"]), ("customer", dup["id"]), ("contact", contact["id"]),
        ("opportunity", opp["id"]), ("activity", lis["id"])}
    assert all(r["action"] == "merge" and r["actor_id"] == mgr.user_id for r in rows)

    with pytest.raises(ValidationFailed):
        merge(rec, mgr, kept["id"], kept["id"])


def test_an_index_matches_candidates_against_what_was_added_strongest_first():
    index = DuplicateIndex()
    index.add(2, {"name": "华信科技有限公司", "phone": "+86 21 5080 1234"})
    index.add(3, {"name": "Northwind Traders", "email": "Sales@Northwind.example.com"})
    index.add(5, {"name": "远方咨询", "phone": "021-50801234"})
    index.add(7, {"name": "  ", "phone": "123"})  # nothing comparable: never matches
    assert index.matches({"name": "华信科技（股份有限公司）", "phone": "0086 21 50801234"}) == {
        2: ("name", "phone"), 5: ("phone",)}
    assert index.matches({"email": "sales@NORTHWIND.example.com "}) == {3: ("email",)}
    assert index.matches({"name": "", "phone": "123"}) == {}
    assert index.matches({"name": "Other Co."}) == {}
    index.add("line 4", {"name": "Other Company"})  # keys need only be hashable
    assert index.matches({"name": "other"}) == {"line 4": ("name",)}
