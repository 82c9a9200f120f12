"""The core pack: its definitions check clean, its rules hold, its complaint SLAs are tracked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.errors import NotFound, PermissionDenied, TransitionRefused, ValidationFailed
from engine.metadata.loader import load_registry
from engine.services.records.transfer import TransferService
from tests.support import open_migrated, write_site

# 09:00 in Shanghai
NINE = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system()
CORE_ENTITIES = {"customer", "contact", "customer_relation", "opportunity", "activity",
                 "complaint", "product", "sales_target", "expense", "sales_report"}


@pytest.fixture
def clock():
    return FixedClock(NINE)


@pytest.fixture
def site(tmp_path, db_url, clock):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["core"]), clock=clock)
    opened.users.create("boss", password="password-1", roles=["owner"])
    opened.users.create("mgr", password="password-1", roles=["manager"])
    for login in ("wang", "li"):
        opened.users.create(login, password="password-1", roles=["sales"])
    opened.users.create("root", password="password-1", roles=["admin"])
    opened.users.teams.create("east", manager="mgr")
    opened.users.teams.add_member("east", "wang")
    yield opened
    opened.close()


def errors_of(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        call()
    return caught.value.errors


# -- the definitions ----------------------------------------------------------


def test_core_defines_exactly_its_entities():
    assert set(load_registry(["core"]).entities) == CORE_ENTITIES


def test_core_roles_and_transfer_cover_the_new_entities():
    registry = load_registry(["core"])
    sales = registry.roles["sales"]
    assert set(sales.for_entity("product").rights) == {"read"}
    assert set(sales.for_entity("sales_target").rights) == {"read"}
    assert {"read", "create", "update", "transition"} <= set(sales.for_entity("complaint").rights)
    assert "manager_comment" in sales.for_entity("sales_report").readonly
    assert {"complaint", "customer_relation"} <= set(registry.transfer)
    assert "expense" not in registry.transfer and "sales_target" not in registry.transfer


def test_demo_data_loads_through_the_services(tmp_path, db_url):
    site = open_migrated(write_site(tmp_path / "demo", db_url, ["core"]))
    try:
        site.users.create("admin", password="password-1", roles=["admin"], is_admin=True)
        admin = site.users.actor("admin")
        paths = [Path(p.path) for p in site.registry.packs.values()]
        load_demo(site.records, admin, paths, workflows=site.workflows)
        counts = {key: site.records.count(admin, key) for key in CORE_ENTITIES}
        assert counts["customer"] == 8
        assert all(counts.values()), counts
        stages = {r["subject"]: r["stage"] for r in site.records.list(admin, "complaint").rows}
        assert stages["发票抬头如何修改"] == "closed" and stages["施工噪音投诉"] == "escalated"
    finally:
        site.close()


# -- customer rules -----------------------------------------------------------


def test_people_and_companies_have_their_own_profile(site):
    wang = site.users.actor("wang")
    person = site.records.create(wang, "customer", {"name": "张伟", "is_company": False,
                                                    "gender": "male", "birthday": "1985-03-02"})
    assert person["gender"] == "male" and person["birthday"] == dt.date(1985, 3, 2)
    # a company's profile does not apply to a person, and the reverse
    found = errors_of(lambda: site.records.create(wang, "customer", {
        "name": "李娜", "is_company": False, "company_size": "small"}))
    assert list(found) == ["company_size"]
    found = errors_of(lambda: site.records.create(wang, "customer", {
        "name": "华信科技有限公司", "gender": "female", "main_business": "系统集成"}))
    assert list(found) == ["gender"]
    company = site.records.create(wang, "customer", {"name": "华信科技有限公司",
                                                     "company_size": "medium",
                                                     "main_business": "系统集成"})
    assert company["is_company"] is True and company["kind"] == "prospect"
    # turning a person into a company drops the person's profile
    changed = site.records.update(wang, "customer", person["id"], {"is_company": True})
    assert changed["gender"] is None and changed["birthday"] is None


def test_a_blacklisted_customer_needs_a_reason_and_only_managers_set_it(site):
    mgr = site.users.actor("mgr")
    wang = site.users.actor("wang")
    customer = site.records.create(wang, "customer", {"name": "明辉家居", "value_tier": "b",
                                                      "credit_rating": "fair"})
    assert "blacklist_reason" in errors_of(lambda: site.records.update(
        mgr, "customer", customer["id"], {"blacklisted": True}))
    listed = site.records.update(mgr, "customer", customer["id"],
                                 {"blacklisted": True, "blacklist_reason": "拖欠货款", "vip": False})
    assert listed["blacklisted"] and listed["blacklist_reason"] == "拖欠货款"
    assert "blacklisted" in errors_of(lambda: site.records.update(
        wang, "customer", customer["id"], {"blacklisted": False}))


def test_activity_kinds_ask_for_what_they_need(site):
    wang = site.users.actor("wang")
    customer = site.records.create(wang, "customer", {"name": "金鼎装饰"})
    assert "customer" in errors_of(lambda: site.records.create(wang, "activity", {
        "subject": "拜访", "kind": "visit"}))
    assert "due_at" in errors_of(lambda: site.records.create(wang, "activity", {
        "subject": "发报价", "kind": "task"}))
    plan = site.records.create(wang, "activity", {
        "subject": "拜访金鼎", "kind": "visit", "customer": customer["id"], "location": "杭州",
        "purpose": "确认方案", "due_at": "2026-11-24T02:00:00Z"})
    # a visit done needs its record; the next step only applies once it is done
    assert "outcome" in errors_of(lambda: site.records.update(
        wang, "activity", plan["id"], {"done": True}))
    assert "next_step" in errors_of(lambda: site.records.update(
        wang, "activity", plan["id"], {"next_step": "报价"}))
    done = site.records.update(wang, "activity", plan["id"], {
        "done": True, "outcome": "客户认可方案", "next_step": "下周报价"})
    assert done["purpose"] == "确认方案" and done["next_step"] == "下周报价"
    # a call is quick: a subject is enough
    assert site.records.create(wang, "activity", {"subject": "电话"})["kind"] == "call"


def test_contacts_may_work_for_several_companies_and_companies_relate(site):
    wang = site.users.actor("wang")
    design = site.records.create(wang, "customer", {"name": "兰亭设计院", "kind": "partner"})
    client = site.records.create(wang, "customer", {"name": "金鼎装饰", "kind": "client"})
    other = site.records.create(wang, "customer", {"name": "华信科技"})
    su = site.records.create(wang, "contact", {"name": "苏婉", "customer": design["id"],
                                               "other_companies": [client["id"], other["id"]]})
    assert sorted(su["other_companies"]) == sorted([client["id"], other["id"]])
    relation = site.records.create(wang, "customer_relation", {
        "from_customer": design["id"], "kind": "partner_of", "to_customer": client["id"]})
    assert relation["kind"] == "partner_of"
    # someone else's customer cannot be linked to
    li = site.users.actor("li")
    assert "to_customer" in errors_of(lambda: site.records.create(li, "customer_relation", {
        "from_customer": site.records.create(li, "customer", {"name": "x"})["id"],
        "to_customer": client["id"]}))


def test_salespeople_read_the_catalogue_and_their_targets_only(site):
    mgr = site.users.actor("mgr")
    boss = site.users.actor("boss")
    wang = site.users.actor("wang")
    li = site.users.actor("li")
    site.records.create(boss, "product", {"code": "RK-42U", "name": "42U 机柜", "unit": "台",
                                          "list_price": "4500", "cost": "3100"})
    assert [p["name"] for p in site.records.list(li, "product").rows] == ["42U 机柜"]
    assert site.records.list(li, "product").rows[0]["margin"] == 1400
    with pytest.raises(PermissionDenied):
        site.records.create(li, "product", {"code": "X", "name": "X"})
    target = site.records.create(mgr, "sales_target", {
        "name": "2026 Q4 王", "period": "quarter", "period_start": "2026-10-01",
        "period_end": "2026-12-31", "amount": "1000000",
        "owner": site.users.get("wang")["id"]})
    assert [t["id"] for t in site.records.list(wang, "sales_target").rows] == [target["id"]]
    assert site.records.count(li, "sales_target") == 0
    spent = site.records.create(wang, "expense", {"summary": "高铁", "amount": "553"})
    assert spent["spent_on"] == dt.date(2026, 11, 23) and spent["reimbursed"] is False
    assert "reimbursed" in errors_of(lambda: site.records.update(
        wang, "expense", spent["id"], {"reimbursed": True}))
    assert site.records.update(mgr, "expense", spent["id"], {"reimbursed": True})["reimbursed"]


# -- complaints ---------------------------------------------------------------


def test_a_complaint_not_acknowledged_in_24_hours_is_overdue(site, clock):
    wang = site.users.actor("wang")
    customer = site.records.create(wang, "customer", {"name": "华信科技有限公司"})
    case = site.records.create(wang, "complaint", {"subject": "机柜交付延迟",
                                                   "customer": customer["id"]})
    assert case["stage"] == "received" and case["category"] == "complaint"
    clock.advance(hours=24)  # 09:00 the next day: due now, not yet late
    [status] = site.pipeline.sla(wang, "complaint")
    assert status.due_at == NINE + dt.timedelta(hours=24) and not status.overdue
    assert site.pipeline.overdue(wang, "complaint") == []
    clock.advance(minutes=1)  # 09:01
    [late] = site.pipeline.overdue(wang, "complaint")
    assert late.record_id == case["id"] and late.overdue_seconds == 60
    # acknowledging starts the next promise
    site.workflows.transition(wang, "complaint", case["id"], "acknowledged")
    assert site.pipeline.overdue(wang, "complaint") == []
    [status] = site.pipeline.sla(wang, "complaint")
    assert status.stage == "acknowledged" and status.due_at == clock.now() + dt.timedelta(days=2)


def test_complaint_flow_escalates_resolves_closes_and_only_managers_reopen(site):
    wang = site.users.actor("wang")
    mgr = site.users.actor("mgr")
    customer = site.records.create(wang, "customer", {"name": "金鼎装饰"})
    case = site.records.create(wang, "complaint", {"subject": "施工噪音", "category": "complaint",
                                                   "customer": customer["id"], "channel": "wechat"})
    with pytest.raises(ValidationFailed) as caught:  # read-only for users ...
        site.records.update(wang, "complaint", case["id"], {"escalated": True})
    assert caught.value.errors == {"escalated": ["This field is read-only."]}
    # ... set by the workflow's own action
    escalated = site.workflows.transition(wang, "complaint", case["id"], "escalated")
    assert escalated["stage"] == "escalated" and escalated["escalated"] is True
    with pytest.raises(TransitionRefused) as refused:
        site.workflows.transition(wang, "complaint", case["id"], "resolved")
    assert "missing_fields" in [r.code for r in refused.value.reasons]
    site.workflows.transition(wang, "complaint", case["id"], "resolved",
                              {"resolution": "调整施工时间"})
    closed = site.workflows.transition(wang, "complaint", case["id"], "closed",
                                       {"satisfaction": "satisfied"})
    assert closed["stage"] == "closed" and closed["escalated"] is True
    assert site.pipeline.sla(wang, "complaint") == []  # closed: no promise left
    with pytest.raises(TransitionRefused) as refused:
        site.workflows.transition(wang, "complaint", case["id"], "in_progress")
    assert [r.code for r in refused.value.reasons] == ["role"]
    reopened = site.workflows.transition(mgr, "complaint", case["id"], "in_progress",
                                         comment="客户再次反馈")
    assert reopened["stage"] == "in_progress"
    moves = [(h["from_stage"], h["to_stage"])
             for h in site.workflows.history(mgr, "complaint", case["id"])]
    assert ("closed", "in_progress") in moves


def test_open_complaints_and_relations_follow_a_transferred_customer(site):
    wang_id = site.users.get("wang")["id"]
    li_id = site.users.get("li")["id"]
    rec = site.records
    who = {"owner": wang_id}
    customer = rec.create(SYSTEM, "customer", {"name": "华信", **who})
    partner = rec.create(SYSTEM, "customer", {"name": "兰亭", **who})
    open_case = rec.create(SYSTEM, "complaint", {"subject": "延迟", "customer": customer["id"],
                                                 **who})
    done_case = rec.create(SYSTEM, "complaint", {"subject": "发票", "customer": customer["id"],
                                                 **who})
    site.workflows.transition(SYSTEM, "complaint", done_case["id"], "resolved",
                              {"resolution": "ok"})
    site.workflows.transition(SYSTEM, "complaint", done_case["id"], "closed")
    relation = rec.create(SYSTEM, "customer_relation", {
        "from_customer": customer["id"], "to_customer": partner["id"], **who})
    spent = rec.create(SYSTEM, "expense", {"summary": "taxi", "amount": "50",
                                           "customer": customer["id"], **who})
    transfers = TransferService(site.registry, site.schema, site.engine, clock=site.clock)
    transfers.run(site.users.actor("root"), "wang", ["li"])

    def owner(entity, record):
        return rec.get(SYSTEM, entity, record["id"])["owner"]

    assert owner("complaint", open_case) == li_id
    assert owner("complaint", done_case) == wang_id
    assert owner("customer_relation", relation) == li_id
    assert owner("expense", spent) == wang_id


def test_salespeople_see_what_others_logged_on_their_customers(site):
    """Contacts, visits and complaints of my customers, whoever entered them."""
    wang, li = site.users.actor("wang"), site.users.actor("li")
    mine = site.records.create(wang, "customer", {"name": "王的客户", "kind": "client"})
    boss = site.users.actor("boss")
    contact = site.records.create(boss, "contact", {"name": "赵经理", "customer": mine["id"]})
    visit = site.records.create(boss, "activity", {"subject": "老板拜访", "kind": "visit",
                                                   "customer": mine["id"],
                                                   "due_at": "2026-11-24T10:00:00+08:00"})
    assert site.records.get(wang, "contact", contact["id"])["name"] == "赵经理"
    assert site.records.get(wang, "activity", visit["id"])["subject"] == "老板拜访"
    with pytest.raises(PermissionDenied):  # read, not changed
        site.records.update(wang, "activity", visit["id"], {"subject": "changed"})
    for entity, record in (("contact", contact), ("activity", visit)):
        with pytest.raises(NotFound):
            site.records.get(li, entity, record["id"])
