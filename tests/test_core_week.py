"""A salesperson's week with the core pack, through the service layer only.

Monday Wang plans visits; during the week he records them, moves his
opportunities, wins one, loses one with a reason, logs an expense and a
customer's complaint, and submits his weekly report. His manager sees the team's figures; Wang sees only
his own, and a colleague in another team sees none of his.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from engine.context import FixedClock
from engine.errors import NotFound, TransitionRefused
from engine.storage.queries import Filter
from packs.core.reports import prefill_sales_report
from tests.support import open_migrated, write_site

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run

MONDAY = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai


@pytest.fixture
def clock():
    return FixedClock(MONDAY)


@pytest.fixture
def site(tmp_path, db_url, clock):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["core"]), clock=clock)
    opened.users.create("mgr", password="password-1", roles=["manager"])
    opened.users.create("wang", password="password-1", roles=["sales"])
    opened.users.create("zhao", password="password-1", roles=["sales"])
    opened.users.teams.create("east", manager="mgr")
    opened.users.teams.add_member("east", "wang")
    yield opened
    opened.close()


def test_a_salespersons_week(site, clock):
    rec, flows, figures = site.records, site.workflows, site.pipeline
    wang, mgr, zhao = (site.users.actor(x) for x in ("wang", "mgr", "zhao"))

    # Monday: the customers, their people, the deals, the visit plans
    huaxin = rec.create(wang, "customer", {"name": "华信科技有限公司", "kind": "client",
                                           "source": "referral", "value_tier": "a"})
    jinding = rec.create(wang, "customer", {"name": "金鼎装饰", "source": "visit"})
    li = rec.create(wang, "contact", {"name": "李娜", "customer": huaxin["id"],
                                      "title": "技术总监", "wechat": "lina"})
    big = rec.create(wang, "opportunity", {"name": "机房改造", "customer": huaxin["id"],
                                           "amount": "800000"})
    small = rec.create(wang, "opportunity", {"name": "办公室装修", "customer": jinding["id"],
                                             "amount": "240000"})
    plans = [rec.create(wang, "activity", {
        "subject": subject, "kind": "visit", "customer": customer["id"], "opportunity": opp["id"],
        "location": where, "purpose": why, "due_at": when})
        for subject, customer, opp, where, why, when in (
            ("拜访华信", huaxin, big, "上海", "确认需求", "2026-11-24T02:00:00Z"),
            ("拜访金鼎", jinding, small, "杭州", "报价", "2026-11-25T06:00:00Z"))]
    plans[0] = rec.update(wang, "activity", plans[0]["id"], {"contact": li["id"]})

    # Tuesday: the first visit happened; the deal moves on
    clock.advance(days=1)
    rec.update(wang, "activity", plans[0]["id"], {"done": True, "outcome": "需求确认",
                                                  "next_step": "提交方案"})
    flows.transition(wang, "opportunity", big["id"], "needs")
    flows.transition(wang, "opportunity", big["id"], "proposal", comment="方案已提交")
    rec.create(wang, "expense", {"summary": "上海高铁", "category": "travel", "amount": "553",
                                 "customer": huaxin["id"], "opportunity": big["id"]})

    # Wednesday: the second visit; the customer goes elsewhere
    clock.advance(days=1)
    rec.update(wang, "activity", plans[1]["id"], {"done": True, "outcome": "价格偏高"})
    flows.transition(wang, "opportunity", small["id"], "lost",
                     {"lost_reason": "price", "lost_note": "选择了更便宜的供应商"})

    # Thursday: a complaint comes in; Friday: the big deal is signed
    clock.advance(days=1)
    case = rec.create(wang, "complaint", {"subject": "样机噪音大", "category": "complaint",
                                          "customer": huaxin["id"], "channel": "wechat",
                                          "contact": li["id"]})
    clock.advance(days=1, hours=2)  # Friday 11:00
    flows.transition(wang, "opportunity", big["id"], "negotiation",
                     {"expected_close": "2026-11-27"})
    flows.transition(wang, "opportunity", big["id"], "won")
    # the won deal left a kick-off task for Wang; the complaint missed its 24h promise
    tasks = rec.list(wang, "activity", search="Kick-off").rows
    assert [t["opportunity"] for t in tasks] == [big["id"]]
    [late] = figures.overdue(wang, "complaint")
    assert late.record_id == case["id"]

    # the manager sees the team's figures, Wang his own, Zhao nothing of Wang's
    other = rec.create(zhao, "customer", {"name": "远方咨询"})
    rec.create(zhao, "opportunity", {"name": "年度服务", "customer": other["id"],
                                     "amount": "60000"})
    rate = figures.win_rate(mgr, "opportunity")
    assert (rate.won, rate.lost, rate.rate) == (1, 1, Decimal("50.00"))
    assert rate.won_value == Decimal("800000") and rate.lost_value == Decimal("240000")
    mine = figures.win_rate(zhao, "opportunity")
    assert (mine.won, mine.lost, mine.rate) == (0, 0, None)
    assert {r["name"] for r in rec.list(mgr, "opportunity").rows} == {"机房改造", "办公室装修"}
    assert {r["name"] for r in rec.list(wang, "opportunity").rows} == {"机房改造", "办公室装修"}
    assert rec.list(zhao, "opportunity").total == 1
    with pytest.raises(NotFound):
        rec.get(zhao, "complaint", case["id"])
    assert figures.overdue(zhao, "complaint") == []
    visits = rec.count(mgr, "activity", filters=[Filter("kind", "eq", "visit"),
                                                  Filter("done", "eq", True)])
    assert visits == 2
    [spent] = rec.aggregate(mgr, "expense", {"total": "sum:amount"})
    assert Decimal(str(spent["total"])) == Decimal("553")
    [none] = rec.aggregate(zhao, "expense", {"total": "sum:amount"})
    assert none["total"] in (None, 0)

    # Friday evening: the weekly report, pre-filled from the week, edited and submitted
    values = prefill_sales_report(rec, wang, "week", dt.date(2026, 11, 27))
    assert (values["period_start"], values["period_end"]) == (dt.date(2026, 11, 23),
                                                              dt.date(2026, 11, 29))
    assert (values["visits"], values["calls"], values["new_opportunities"]) == (2, 0, 2)
    assert values["new_opportunity_value"] == Decimal("1040000")
    assert values["talks"].splitlines() == ["11-24 10:00 拜访华信: 需求确认 → 提交方案",
                                            "11-25 14:00 拜访金鼎: 价格偏高"]
    assert prefill_sales_report(rec, zhao, "week", dt.date(2026, 11, 27))["visits"] == 0
    report = rec.create(wang, "sales_report", {**values, "competitors": "低价供应商",
                                               "feedback": "样机噪音"})
    flows.transition(wang, "sales_report", report["id"], "submitted")
    with pytest.raises(TransitionRefused):  # the manager reviews, not Wang
        flows.transition(wang, "sales_report", report["id"], "reviewed")
    returned = flows.transition(mgr, "sales_report", report["id"], "returned",
                                {"manager_comment": "补充华信的回款计划"})
    assert returned["stage"] == "returned"
    rec.update(wang, "sales_report", report["id"], {"next_plan": "华信首付款12月5日前到账"})
    flows.transition(wang, "sales_report", report["id"], "submitted")
    assert flows.transition(mgr, "sales_report", report["id"], "reviewed")["stage"] == "reviewed"
    assert rec.count(zhao, "sales_report") == 0
