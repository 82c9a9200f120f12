"""The project_sales pack: it checks clean, speaks both languages, and its demo loads through
the flows, with figures worked out by hand from demo/data.yaml."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.errors import DefinitionError
from engine.metadata.loader import load_registry
from engine.services.views.dashboards import DashboardService
from tests.support import open_migrated, write_pack, write_site

SYSTEM = Actor.system()
NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
PACK_ENTITIES = {"employee", "project", "proposal", "quotation", "competitor", "project_contract",
                 "purchase_order", "milestone", "instalment", "collection"}


def test_project_sales_defines_its_entities_roles_and_dashboard():
    registry = load_registry(["project_sales"])
    assert set(registry.entities) >= PACK_ENTITIES
    assert {"project_manager", "finance"} <= set(registry.roles)
    assert "projects" in registry.dashboards


def test_kinds_of_partner_companies_extend_the_core_customer():
    kinds = load_registry(["project_sales"]).entities["customer"].fields["kind"].choices
    assert {"client", "supplier", "designer", "builder", "supervisor"} <= set(kinds)
    assert kinds["builder"].zh == "施工方" and kinds["supervisor"].zh == "监理方"


def test_a_role_scope_naming_a_project_field_that_is_not_the_team_is_refused(tmp_path):
    write_pack(tmp_path, "site_pack", {"roles.yaml": """
        roles:
          sales:
            entities:
              project: {scope: {via: team.project_role}}
    """}, depends=("project_sales",))
    with pytest.raises(DefinitionError) as caught:
        load_registry(["site_pack"], search_paths=[tmp_path])
    assert "'project_role' is a choice field, not a reference of the team lines" in str(
        caught.value)


@pytest.fixture
def demo_site(tmp_path, db_url):
    site = open_migrated(write_site(tmp_path / "site", db_url, ["project_sales"]),
                         clock=FixedClock(NOW))
    paths = [Path(site.registry.packs[name].path) for name in ("core", "project_sales")]
    load_demo(site.records, SYSTEM, paths, workflows=site.workflows)
    yield site
    site.close()


def test_the_demo_reaches_every_stage_through_the_flows(demo_site):
    records = demo_site.records
    stages = Counter(p["stage"] for p in records.list(SYSTEM, "project", limit=100).rows)
    assert stages == {"lead": 2, "requirements": 1, "proposal": 1, "quotation": 1,
                      "negotiation": 2, "signed": 5, "lost": 1}
    delivery = Counter(c["stage"] for c in records.list(SYSTEM, "project_contract").rows)
    assert delivery == {"procurement": 1, "implementation": 1, "delivered": 1, "accepted": 1,
                        "paid": 1}
    kinds = Counter(c["kind"] for c in records.list(SYSTEM, "customer", limit=100).rows)
    assert kinds["builder"] == 1 and kinds["supervisor"] == 1 and kinds["designer"] == 1
    # Every project stage was entered by a transition, recorded in the stage history.
    history = demo_site.workflows.history(SYSTEM, "project_contract",
                                          records.list(SYSTEM, "project_contract",
                                                       filters=[]).rows[0]["id"])
    assert history


def test_the_demo_dashboard_shows_the_two_projects_at_eighty_percent(demo_site):
    service = DashboardService(demo_site)
    shown = {w.widget.target.split(".", 1)[1]: w.figure
             for w in service.figures(SYSTEM, service.get(SYSTEM, "projects"))}
    by_stage = dict(zip(shown["weighted_pipeline_by_stage"].categories,
                        shown["weighted_pipeline_by_stage"].series[1].values, strict=True))
    # Negotiation: 华信 800,000 and 金鼎 240,000, both at 80 %: 640,000 + 192,000.
    assert by_stage["Negotiation"] == Decimal("832000")
    ranked = shown["weighted_projects"]
    weights = dict(zip(ranked.categories, ranked.series[1].values, strict=True))
    assert weights["华信数据中心扩容"] == Decimal("640000")
    assert weights["金鼎办公区智能化改造"] == Decimal("192000")
    # Overdue on 24 November 2026: 嘉禾's advance (114,000 − 100,000 collected, due 20 October)
    # and 东方银行's acceptance payment (540,000 − 300,000, due 1 November).
    overdue = shown["overdue_instalments"]
    assert dict(zip(overdue.categories, overdue.series[2].values, strict=True)) == {
        "嘉禾物流仓储监控 · 预付款 30%": Decimal("14000"),
        "东方银行苏州分行机房改造 · 验收款 60%": Decimal("240000")}
    assert overdue.series[3].values == (35, 23)
    # 嘉禾's second installation phase was due on 20 November and is not done.
    assert shown["overdue_milestones"].categories == ("嘉禾物流仓储监控 · 二期库区安装",)
    # Margin of 瑞达: 560,000 − the one order placed (10 × 20,000); the draft order is no cost.
    margins = {c: v for c, v in zip(shown["margin_per_project"].categories,
                                    shown["margin_per_project"].series[3].values, strict=True)}
    assert margins["瑞达精密MES机房及网络"] == Decimal("360000")
    # 东方银行: 900,000 − (318,000 + 2 × 95,000 ordered + 3,200 expense) = 388,800.
    assert margins["东方银行苏州分行机房改造"] == Decimal("388800")
