"""The service-sales pack: a consultancy's deal from opportunity to renewal, by hand-computed numbers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.errors import PermissionDenied, TransitionRefused, ValidationFailed
from engine.metadata.loader import load_registry
from engine.notifications.reminders import ReminderScheduler
from engine.services.views.figures import ReportRequest
from engine.storage.queries import Filter, Sort
from packs.service_sales import reports
from packs.service_sales.delivery import delivery_progress, utilisation, working_days
from packs.service_sales.demo_generator import generate
from packs.service_sales.receivables import ageing, bucket_of, instalments, payment_reminders
from packs.service_sales.renewals import raise_renewals, renewals_due
from tests.support import open_migrated, write_site

# 09:00 in Shanghai on Monday 5 January 2026
START = dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.UTC)
NEW_ENTITIES = {"contract", "payment_plan", "collection", "delivery"}


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def site(tmp_path, db_url, clock):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["service_sales"]), clock=clock)
    for login, role in (("boss", "owner"), ("mgr", "manager"), ("zhang", "consultant"),
                        ("li", "consultant"), ("fin", "finance")):
        opened.users.create(login, password="password-1", roles=[role])
    opened.users.teams.create("delivery", manager="mgr")
    opened.users.teams.add_member("delivery", "zhang")
    yield opened
    opened.close()


def codes(call) -> list[str]:
    with pytest.raises(TransitionRefused) as caught:
        call()
    return [r.code for r in caught.value.reasons]


def at(clock, day: str) -> dt.date:
    """Move the clock to 09:00 Shanghai on ``day``."""
    clock.current = dt.datetime.fromisoformat(f"{day}T01:00:00+00:00")
    return dt.date.fromisoformat(day)


# -- the definitions ------------------------------------------------------------


def test_service_sales_defines_its_entities_workflow_and_roles():
    registry = load_registry(["service_sales"])
    assert set(registry.entities) >= NEW_ENTITIES
    assert "contract_review" in registry.workflows
    assert {"consultant", "finance"} <= set(registry.roles)


# -- the scenario -----------------------------------------------------------------


def test_a_consultancy_deal_from_opportunity_to_renewal(site, clock):
    boss, mgr, zhang, fin = (site.users.actor(x) for x in ("boss", "mgr", "zhang", "fin"))
    records, flows = site.records, site.workflows
    lines = [{"service": "ERP 实施顾问", "unit": "hour", "quantity": "120", "rate": "1500"},
             {"service": "Workshops 培训", "unit": "day", "quantity": "10", "rate": "8000"}]

    # Win the opportunity, its value from the service lines.
    customer = records.create(zhang, "customer", {"name": "华信科技有限公司", "kind": "client"})
    deal = records.create(zhang, "opportunity", {"name": "华信 ERP 实施", "customer": customer["id"],
                                                 "service_lines": lines})
    assert deal["services_total"] == Decimal("260000")
    flows.transition(zhang, "opportunity", deal["id"], "proposal",
                     {"amount": deal["services_total"]})
    assert flows.transition(zhang, "opportunity", deal["id"], "won")["stage"] == "won"

    # Winning drafted the contract from the service lines, by the winner; review needs
    # lines and payment terms.
    (contract,) = records.list(zhang, "contract", filters=[
        Filter("opportunity", "eq", deal["id"])], with_children=True).rows
    assert contract["total"] == Decimal("260000") and contract["stage"] == "draft"
    assert contract["created_by"] == zhang.user_id and len(contract["lines"]) == 2
    contract = records.update(zhang, "contract", contract["id"], {
        "name": "华信 ERP 实施服务合同", "start_date": "2026-01-12", "end_date": "2026-06-30"})
    assert contract["number"].startswith("HT-2026-")
    assert codes(lambda: flows.transition(zhang, "contract", contract["id"],
                                          "under_review")) == ["guard"]
    records.update(zhang, "contract", contract["id"],
                   {"payment_terms": "签约30%,中期40%,验收30%"})
    flows.transition(zhang, "contract", contract["id"], "under_review")

    # Returned for changes (with the reviewer's comment), corrected, resubmitted.
    assert codes(lambda: flows.transition(mgr, "contract", contract["id"],
                                          "returned")) == ["missing_fields"]
    flows.transition(mgr, "contract", contract["id"], "returned",
                     {"review_comment": "请补充验收标准"})
    records.update(zhang, "contract", contract["id"],
                   {"payment_terms": "签约30%,中期40%,验收30%;验收标准见附件"})
    flows.transition(zhang, "contract", contract["id"], "under_review")

    # The author cannot approve; a manager may not approve above 200,000; the owner may.
    assert codes(lambda: flows.transition(zhang, "contract", contract["id"],
                                          "approved")) == ["role", "guard"]
    assert codes(lambda: flows.transition(mgr, "contract", contract["id"],
                                          "approved")) == ["guard"]
    assert flows.transition(boss, "contract", contract["id"], "approved")["stage"] == "approved"

    # A manager approves a small contract of their consultant, never their own.
    small = records.create(zhang, "contract", {"name": "小额运维", "customer": customer["id"],
                                               "payment_terms": "月结", "lines": [
                                                   {"service": "运维", "quantity": "20",
                                                    "rate": "1000"}]})
    flows.transition(zhang, "contract", small["id"], "under_review")
    assert flows.transition(mgr, "contract", small["id"], "approved")["stage"] == "approved"
    own = records.create(mgr, "contract", {"name": "经理的合同", "customer": customer["id"],
                                           "payment_terms": "一次性",
                                           "lines": [{"service": "咨询", "rate": "5000"}]})
    flows.transition(mgr, "contract", own["id"], "under_review")
    assert codes(lambda: flows.transition(mgr, "contract", own["id"], "approved")) == ["guard"]

    flows.transition(zhang, "contract", contract["id"], "signed", {"signed_on": "2026-01-08"})
    flows.transition(zhang, "contract", contract["id"], "active")
    history = [h["to_stage"] for h in flows.history(zhang, "contract", contract["id"])]
    assert history == ["under_review", "returned", "under_review", "approved", "signed",
                       "active"]

    # Deliveries: 80 of 120 hours, 4 of 10 days.
    for who, line, qty, day in ((zhang, 1, "40", "2026-01-12"), (zhang, 1, "30", "2026-01-19"),
                                (zhang, 2, "4", "2026-01-20"), (mgr, 1, "10", "2026-01-26")):
        records.create(who, "delivery", {"summary": "实施", "contract": contract["id"],
                                         "line": line, "quantity": qty, "performed_on": day})
    (progress,) = delivery_progress(records, boss, contract_id=contract["id"])
    assert [(ln.contracted, ln.delivered, ln.percent) for ln in progress.lines] == [
        (Decimal("120"), Decimal("80"), Decimal("66.7")),
        (Decimal("10"), Decimal("4"), Decimal("40.0"))]
    # (80 × 1500 + 4 × 8000) / 260000 = 152000 / 260000 = 58.46 %
    assert progress.delivered_value == Decimal("152000")
    assert progress.completion == Decimal("58.5")

    # Utilisation in January: 22 working days × 8 h = 176 h.
    assert working_days(dt.date(2026, 1, 1), dt.date(2026, 1, 31)) == 22
    used = {u.user_id: u for u in utilisation(records, boss, dt.date(2026, 1, 1),
                                              dt.date(2026, 1, 31))}
    zhang_id, mgr_id = zhang.user_id, mgr.user_id
    assert used[zhang_id].hours == Decimal("102")  # 40 + 30 + 4 days × 8
    assert used[zhang_id].percent == Decimal("58.0")  # 102 / 176
    assert used[mgr_id].hours == Decimal("10") and used[mgr_id].percent == Decimal("5.7")

    # The payment schedule and two collections, the second one late.
    plans = [records.create(fin, "payment_plan", {"name": name, "contract": contract["id"],
                                                  "due_date": due, "amount": amount})
             for name, due, amount in (("签约款", "2026-01-20", "78000"),
                                       ("中期款", "2026-03-31", "104000"),
                                       ("验收款", "2026-06-30", "78000"))]
    records.create(fin, "collection", {"payment_plan": plans[0]["id"], "received_on": "2026-01-18",
                                       "amount": "78000"})
    settled = {p["name"]: (p["collected"], p["settled"]) for p in records.list(
        fin, "payment_plan", sort=[Sort("due_date")]).rows}
    assert settled == {"签约款": (Decimal("78000"), True), "中期款": (0, False),
                       "验收款": (0, False)}

    with pytest.raises(ValidationFailed):  # kept from the collections, not typed
        records.update(fin, "payment_plan", plans[2]["id"], {"settled": True})

    # The payment_due reminder rule: not for the settled instalment, 7 days before the next.
    scheduler = ReminderScheduler(records, site.pipeline, clock=clock,
                                  timezone=site.config.timezone)
    outbox = site.schema.system("crm_outbox")

    def payment_messages():
        with site.engine.connect() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.source == "payment_due"))
            return sorted({(r.record_id, r.user_id) for r in rows})

    at(clock, "2026-01-21")
    scheduler.scan()
    assert payment_messages() == []
    at(clock, "2026-03-24")
    scheduler.scan()
    assert payment_messages() == [(plans[1]["id"], fin.user_id)]
    reminders = payment_reminders(records, fin, at(clock, "2026-03-25"))
    assert [(r.instalment.name, r.kind, r.days) for r in reminders] == [("中期款", "due_soon", 6)]
    reminders = payment_reminders(records, fin, at(clock, "2026-04-01"))
    assert [(r.instalment.name, r.kind, r.days) for r in reminders] == [("中期款", "overdue", 1)]
    assert ageing(records, fin, at(clock, "2026-04-10")) == {
        "current": Decimal("78000"), "0-30": Decimal("104000"), "31-60": 0, "61-90": 0,
        "90+": 0}
    records.create(fin, "collection", {"payment_plan": plans[1]["id"], "received_on": "2026-04-25",
                                       "amount": "104000"})
    assert records.get(fin, "payment_plan", plans[1]["id"])["settled"] is True
    late = {i.name: i.paid_late_by for i in instalments(records, fin)}
    assert late == {"签约款": None, "中期款": 25, "验收款": None}

    # Renewal: 60 days before 30 June is 1 May; raised once.
    assert raise_renewals(records, boss, at(clock, "2026-04-30")) == []
    (renewal_id,) = raise_renewals(records, boss, at(clock, "2026-05-01"))
    assert raise_renewals(records, boss, at(clock, "2026-05-02")) == []
    renewal = records.get(boss, "opportunity", renewal_id)
    assert renewal["owner"] == zhang_id and renewal["customer"] == customer["id"]
    assert renewal["amount"] == Decimal("260000") and renewal["expected_close"] == dt.date(2026, 6, 30)
    assert len(renewal["service_lines"]) == 2
    assert records.get(zhang, "contract", contract["id"])["renewal_opportunity"] == renewal_id
    assert [r["id"] for r in renewals_due(records, boss, dt.date(2026, 5, 2),
                                          include_raised=True)] == [contract["id"]]

    # Sign-off and completion; the last instalment partly paid, then ageing past 60 and 90 days.
    assert codes(lambda: flows.transition(zhang, "contract", contract["id"],
                                          "completed")) == ["missing_fields"]
    flows.transition(zhang, "contract", contract["id"], "completed",
                     {"customer_signoff_by": "王建国", "customer_signoff_on": "2026-06-28"})
    records.create(fin, "collection", {"payment_plan": plans[2]["id"], "received_on": "2026-07-10",
                                       "amount": "30000"})
    assert ageing(records, fin, at(clock, "2026-09-01")) == {  # 63 days late
        "current": 0, "0-30": 0, "31-60": 0, "61-90": Decimal("48000"), "90+": 0}
    assert ageing(records, fin, at(clock, "2026-10-15"))["90+"] == Decimal("48000")  # 107 days

    # The figures the dashboard draws agree with the services.
    request = ReportRequest(site=site, actor=fin, now=clock.now())
    figure = reports.receivables_ageing(request)
    assert figure.series[0].values == (0, 0, 0, 0, Decimal("48000"))
    by_status = reports.contracts_by_status(ReportRequest(site=site, actor=boss, now=clock.now()))
    values = dict(zip(by_status.categories, by_status.series[0].values, strict=True))
    assert values["Completed"] == Decimal("260000") and values["Approved"] == Decimal("20000")
    assert values["Under review"] == Decimal("5000")


def test_money_stays_with_finance(site):
    zhang, fin = site.users.actor("zhang"), site.users.actor("fin")
    with pytest.raises(PermissionDenied):
        site.records.list(zhang, "collection")
    with pytest.raises(PermissionDenied):
        site.records.list(zhang, "payment_plan")
    customer = site.records.create(zhang, "customer", {"name": "远方咨询"})
    contract = site.records.create(zhang, "contract", {"name": "年度顾问", "customer": customer["id"],
                                                       "payment_terms": "季付", "lines": [
                                                           {"service": "顾问", "rate": "1"}]})
    site.workflows.transition(zhang, "contract", contract["id"], "under_review")
    with pytest.raises(PermissionDenied):  # finance reads contracts but does not move them
        site.workflows.transition(fin, "contract", contract["id"], "approved")
    assert site.records.count(fin, "contract") == 1


def test_ageing_buckets_edges():
    assert [bucket_of(d) for d in (-1, 0, 30, 31, 60, 61, 90, 91, 400)] == [
        "current", "0-30", "0-30", "31-60", "31-60", "61-90", "61-90", "90+", "90+"]


def test_demo_data_and_generated_consultancy_feed_every_report(site, clock):
    paths = [Path(p.path) for p in site.registry.packs.values()]
    site.users.create("root", password="password-1", roles=["admin"], is_admin=True)
    root = site.users.actor("root")
    load_demo(site.records, root, paths, workflows=site.workflows)
    stages = sorted(c["stage"] for c in site.records.list(root, "contract").rows)
    assert stages == ["draft", "under_review"]
    at(clock, "2026-11-23")
    made = generate(site, 100, seed=7)
    assert made.counts["contract"] == 10 and made.counts["delivery"] > 10
    assert {u.role for u in made.users} == {"owner", "manager", "consultant", "finance"}
    again = [(c["name"], c["stage"], c["total"]) for c in site.records.list(
        root, "contract", limit=100, sort=[Sort("id")]).rows]
    assert {stage for _, stage, _ in again} >= {"active", "completed", "approved", "returned",
                                               "draft", "terminated"}
    for login in ("svc_owner", "svc_manager", "zheng_hua", "sun_fin"):
        request = ReportRequest(site=site, actor=site.users.actor(login), now=clock.now())
        for report in (reports.contracts_by_status, reports.delivery_by_contract,
                       reports.consultant_utilisation, reports.renewals_coming):
            figure = report(request)
            assert all(len(figure.categories) == len(s.values) for s in figure.series), report
        if login != "zheng_hua":
            ageing_figure = reports.receivables_ageing(request)
            assert sum(ageing_figure.series[0].values) > 0
    owner = ReportRequest(site=site, actor=site.users.actor("svc_owner"), now=clock.now())
    assert len(reports.delivery_by_contract(owner).categories) == sum(
        1 for _, stage, _ in again if stage in ("signed", "active", "completed"))


def test_the_generator_is_deterministic(site):
    generate(site, 80, seed=3)
    generate(site, 80, seed=3)  # the same people again, and the same contracts once more
    rows = [(r["name"], r["stage"], r["total"]) for r in site.records.list(
        Actor.system(), "contract", limit=100, sort=[Sort("id")]).rows]
    assert len(rows) == 16 and rows[:8] == rows[8:]
    assert len(site.users.list()) == 5 + 7
