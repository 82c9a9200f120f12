"""A salesperson's week, then the figures a manager reviews on Friday — all checked by hand.

Wang (team east) plans and records visits, moves his deals, wins one and
loses one with a reason, and submits his weekly report; his teammate Zhou
works one deal; Zhao, in another team, wins one of his own.  The core
pack's reports (packs/core/reports.py) are then read as the manager, as
Wang and as the owner, and every number is compared with one worked out
below from the week's events — so scopes and formulas are both checked.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.context import FixedClock
from engine.services.views.figures import ReportRequest
from engine.web import create_app
from packs.core import reports
from packs.core.reports import prefill_sales_report
from tests.api_support import Api
from tests.support import open_migrated, write_site
from tests.web_support import login as log_in

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run

MONDAY = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai
PASSWORD = "password-1"


@pytest.fixture
def clock():
    return FixedClock(MONDAY)


@pytest.fixture
def site(tmp_path, db_url, clock):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["core"]), clock=clock)
    for login, role, name in (("boss", "owner", "Boss"), ("mgr", "manager", "Manager"),
                              ("wang", "sales", "Wang"), ("zhou", "sales", "Zhou"),
                              ("zhao", "sales", "Zhao")):
        opened.users.create(login, password=PASSWORD, roles=[role], display_name=name)
    opened.users.teams.create("east", manager="mgr")
    opened.users.teams.add_member("east", "wang")
    opened.users.teams.add_member("east", "zhou")
    opened.users.teams.create("south")
    opened.users.teams.add_member("south", "zhao")
    yield opened
    opened.close()


def _week(site, clock) -> dict:
    """The week's events through the services; returns the records the checks name."""
    rec, flows = site.records, site.workflows
    wang, zhou, zhao, mgr = (site.users.actor(x) for x in ("wang", "zhou", "zhao", "mgr"))
    # Monday 09:00: customers, deals, visit plans, the month's targets
    huaxin = rec.create(wang, "customer", {"name": "华信科技有限公司"})
    jinding = rec.create(wang, "customer", {"name": "金鼎装饰"})
    big = rec.create(wang, "opportunity", {"name": "机房改造", "customer": huaxin["id"],
                                           "amount": "800000"})
    small = rec.create(wang, "opportunity", {"name": "办公室装修", "customer": jinding["id"],
                                             "amount": "240000"})
    rec.create(wang, "opportunity", {"name": "二期扩容", "customer": huaxin["id"],
                                     "amount": "500000"})
    visit_huaxin = rec.create(wang, "activity", {
        "subject": "拜访华信", "kind": "visit", "customer": huaxin["id"], "opportunity": big["id"],
        "location": "上海", "purpose": "确认需求", "due_at": "2026-11-24T02:00:00Z"})
    visit_jinding = rec.create(wang, "activity", {
        "subject": "拜访金鼎", "kind": "visit", "customer": jinding["id"],
        "opportunity": small["id"], "purpose": "报价", "due_at": "2026-11-25T06:00:00Z"})
    yuanfang = rec.create(zhou, "customer", {"name": "远方咨询"})
    service = rec.create(zhou, "opportunity", {"name": "年度服务", "customer": yuanfang["id"],
                                               "amount": "300000"})
    visit_yuanfang = rec.create(zhou, "activity", {
        "subject": "拜访远方", "kind": "visit", "customer": yuanfang["id"],
        "due_at": "2026-11-25T03:00:00Z"})
    for login, amount in (("wang", "1000000"), ("zhou", "500000")):
        rec.create(mgr, "sales_target", {
            "name": f"{login} 2026-11", "period": "month", "period_start": "2026-11-01",
            "period_end": "2026-11-30", "amount": amount, "owner": site.users.get(login)["id"]})
    southern = rec.create(zhao, "customer", {"name": "南方贸易"})
    zhaos = rec.create(zhao, "opportunity", {"name": "南方年单", "customer": southern["id"],
                                             "amount": "60000"})

    # Tuesday 09:00: Wang's first visit; his big deal moves on; Zhou's deal too
    clock.advance(days=1)
    rec.update(wang, "activity", visit_huaxin["id"], {"done": True, "outcome": "需求确认",
                                                      "next_step": "提交方案"})
    flows.transition(wang, "opportunity", big["id"], "needs")
    flows.transition(wang, "opportunity", big["id"], "proposal")
    flows.transition(zhou, "opportunity", service["id"], "needs")

    # Wednesday 09:00: the other visits; Jinding goes elsewhere
    clock.advance(days=1)
    rec.update(wang, "activity", visit_jinding["id"], {"done": True, "outcome": "价格偏高"})
    rec.update(zhou, "activity", visit_yuanfang["id"], {"done": True, "outcome": "介绍方案"})
    flows.transition(wang, "opportunity", small["id"], "lost",
                     {"lost_reason": "price", "lost_note": "选择了更便宜的供应商"})

    # Thursday 09:00: a complaint nobody acknowledges; Zhao signs his deal
    clock.advance(days=1)
    case = rec.create(wang, "complaint", {"subject": "样机噪音大", "customer": huaxin["id"]})
    flows.transition(zhao, "opportunity", zhaos["id"], "proposal")
    flows.transition(zhao, "opportunity", zhaos["id"], "won")

    # Friday 19:00: the big deal is signed
    clock.advance(days=1, hours=10)
    flows.transition(wang, "opportunity", big["id"], "negotiation",
                     {"expected_close": "2026-11-27"})
    flows.transition(wang, "opportunity", big["id"], "won")
    return {"huaxin": huaxin, "case": case}


def _figure(site, login: str, name: str, **params):
    figure = getattr(reports, name)(ReportRequest(site, site.users.actor(login),
                                                  site.clock.now(), params))
    return {"categories": list(figure.categories),
            "series": {s.name["en"]: list(s.values) for s in figure.series}}


def test_the_managers_figures_after_a_salespersons_week(site, clock):
    made = _week(site, clock)
    # Open deals in the team: 二期扩容 500,000 (initial, 10%), 年度服务 300,000 (needs, 30%).
    assert _figure(site, "mgr", "pipeline") == {
        "categories": ["Initial contact", "Needs confirmed"],
        "series": {"Open value": [Decimal("500000"), Decimal("300000")]}}
    assert _figure(site, "mgr", "weighted_pipeline")["series"]["Weighted value"] == [
        Decimal("50000.00"), Decimal("90000.00")]
    # Wang sees only his own open deal
    assert _figure(site, "wang", "pipeline")["series"]["Open value"] == [Decimal("500000")]

    # Win rate: Wang won 1 and lost 1 → 50%; Zhao (another team) only for the owner.
    assert _figure(site, "mgr", "win_rate_by_owner") == {
        "categories": ["Wang"], "series": {"Win rate": [Decimal("50.00")]}}
    assert _figure(site, "boss", "win_rate_by_owner") == {
        "categories": ["Wang", "Zhao"],
        "series": {"Win rate": [Decimal("50.00"), Decimal("100.00")]}}
    assert _figure(site, "zhou", "win_rate_by_owner")["categories"] == []

    # Cycle: 机房改造 Mon 09:00 → Fri 19:00 = 4 d 10 h = 4.4 d; 办公室装修 Mon → Wed = 2.0 d.
    assert _figure(site, "mgr", "cycle_by_owner") == {
        "categories": ["Wang"],
        "series": {"To won": [Decimal("4.4")], "To lost": [Decimal("2.0")]}}

    # Visits done per week (from Monday): Wang 2 this week, Zhou 1; none the week before.
    assert _figure(site, "mgr", "visits_per_week", weeks=2) == {
        "categories": ["2026-11-16", "2026-11-23"],
        "series": {"Wang": [0, 2], "Zhou": [0, 1]}}
    assert _figure(site, "wang", "visits_per_week", weeks=2)["series"] == {"Wang": [0, 2]}

    # New customers this week: Wang's 2 and Zhou's 1 for the manager; Wang's 2 for him.
    assert _figure(site, "mgr", "new_customers", period="week", periods=2)["series"] == {
        "Customers": [0, 3]}
    assert _figure(site, "wang", "new_customers", period="week", periods=2)["series"] == {
        "Customers": [0, 2]}
    assert _figure(site, "boss", "new_customers", period="month", periods=1) == {
        "categories": ["2026-11"], "series": {"Customers": [4]}}

    # No activity in 3 days (Friday 19:00): 华信's last visit was Tuesday 10:00 (3 d 9 h);
    # 金鼎 (Wednesday 14:00) and 远方 (Wednesday 11:00) were seen less than 3 days ago.
    idle = _figure(site, "mgr", "customers_without_activity", days=3)
    assert idle == {"categories": ["华信科技有限公司"],
                    "series": {"Days since the last activity": [3]}}

    # The complaint came Thursday 09:00, promised within 24 h: 10 hours late on Friday 19:00.
    assert _figure(site, "mgr", "complaints_overdue") == {
        "categories": ["样机噪音大"], "series": {"Hours overdue": [Decimal("10.0")]}}
    assert _figure(site, "zhou", "complaints_overdue")["categories"] == []

    # Targets for November against what was won in November.
    assert _figure(site, "mgr", "target_vs_actual") == {
        "categories": ["Wang", "Zhou"],
        "series": {"Target": [Decimal("1000000"), Decimal("500000")],
                   "Won": [Decimal("800000"), Decimal("0")]}}
    assert _figure(site, "wang", "target_vs_actual", month="2026-11")["categories"] == ["Wang"]
    assert _figure(site, "mgr", "target_vs_actual", month="2026-10")["categories"] == []
    assert made["case"]["id"]


def test_the_weekly_report_and_the_report_command(site, clock, tmp_path):
    _week(site, clock)
    wang, mgr = site.users.actor("wang"), site.users.actor("mgr")
    values = prefill_sales_report(site.records, wang, "week", dt.date(2026, 11, 27))
    assert (values["visits"], values["new_opportunities"]) == (2, 3)
    assert values["new_opportunity_value"] == Decimal("1540000")
    report = site.records.create(wang, "sales_report", {**values, "next_plan": "华信回款"})
    site.workflows.transition(wang, "sales_report", report["id"], "submitted")
    assert site.workflows.transition(mgr, "sales_report", report["id"],
                                     "reviewed")["stage"] == "reviewed"

    runner = CliRunner()
    base = ["--site", str(tmp_path / "site"), "report"]
    at_week = {"clock": clock}  # the CLI reads the week the data sits in, whatever today is
    listed = runner.invoke(main, base, obj=at_week, catch_exceptions=False)
    assert "core.win_rate_by_owner" in listed.output and "prefill" not in listed.output
    shown = runner.invoke(main, [*base, "core.target_vs_actual", "--as", "mgr",
                                 "--param", "month=2026-11"], obj=at_week, catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == "Target vs actual, 2026-11"
    assert lines[2].split() == ["Wang", "¥1,000,000.00", "¥800,000.00"]  # money, in CNY
    as_json = runner.invoke(main, [*base, "core.visits_per_week", "--as", "wang", "--json",
                                   "--param", "weeks=1"], obj=at_week,
                            catch_exceptions=False)
    assert json.loads(as_json.output)["series"] == [{"key": "wang", "unit": "count",
                                                     "name": {"en": "Wang", "zh": "Wang"},
                                                     "values": [2], "text": ["2"]}]
    bad = runner.invoke(main, [*base, "core.visits_per_week", "--as", "mgr",
                               "--param", "weeks=0"], obj=at_week)
    assert bad.exit_code == 1 and "weeks" in bad.output
    unknown = runner.invoke(main, [*base, "core.prefill_sales_report", "--as", "mgr"],
                            obj=at_week)
    assert unknown.exit_code == 1 and "There is no report" in unknown.output


def test_the_sales_analysis_dashboard_shows_the_same_figures(site, clock):
    _week(site, clock)
    token, _ = site.users.tokens.create("mgr", "dashboard")
    api = Api(create_app(site, testing=True), token)
    answer = api.get("/dashboards/sales_analysis")
    assert answer.status_code == 200, answer.get_json()
    widgets = answer.get_json()["widgets"]
    assert [w["error"] for w in widgets] == [None] * 9
    by_target = {w["target"]: w["figure"] for w in widgets}
    assert by_target["core.win_rate_by_owner"]["categories"] == ["Wang"]
    assert by_target["core.win_rate_by_owner"]["series"][0]["values"] == ["50.00"]
    assert by_target["core.visits_per_week"]["series"] == [
        {"key": "wang", "name": {"en": "Wang", "zh": "Wang"}, "unit": "count",
         "values": [0, 0, 0, 0, 0, 0, 0, 2], "text": ["0"] * 7 + ["2"]},
        {"key": "zhou", "name": {"en": "Zhou", "zh": "Zhou"}, "unit": "count",
         "values": [0, 0, 0, 0, 0, 0, 0, 1], "text": ["0"] * 7 + ["1"]}]
    page = create_app(site, testing=True).test_client()
    log_in(page, "mgr", PASSWORD)
    html = page.get("/dashboards/sales_analysis")
    assert html.status_code == 200 and "<svg" in html.get_data(as_text=True)
