"""View and dashboard YAML: what is accepted, overlays, and mistakes reported at file:line."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from engine.context import Actor, FixedClock
from engine.errors import DefinitionError
from engine.metadata.entity_views import ViewRegistry
from engine.metadata.loader import load_registry
from engine.services.views.dashboards import DashboardService
from engine.services.views.figures import Figure
from tests.support import open_migrated, write_pack, write_site

FILES = {
    "entities/customer.yaml": """
        entity: customer
        fields:
          name: {type: string, required: true, searchable: true}
          phone: {type: phone}
          level: {type: choice, choices: {a: A, b: B}}
          notes: {type: text}
    """,
    "entities/deal.yaml": """
        entity: deal
        fields:
          name: {type: string, required: true}
          customer: {type: reference, to: customer}
          amount: {type: decimal}
          lines:
            type: lines
            fields:
              item: {type: string}
              quantity: {type: decimal}
    """,
    "workflows/deal.yaml": """
        workflow: deal_flow
        entity: deal
        field: stage
        figures: {value: amount}
        stages:
          open: {label: Open, probability: 20}
          won: {label: Won, category: won, probability: 100}
          lost: {label: Lost, category: lost, probability: 0}
        transitions:
          win: {from: open, to: won}
          lose: {from: open, to: lost}
    """,
    "roles.yaml": """
        roles:
          sales:
            entities:
              "*": {rights: [read, create, update], scope: own}
          boss:
            entities:
              "*": {rights: all, scope: all}
    """,
}

VIEW = """
    view: deal
    list:
      columns: [name, customer, stage, amount, owner]
      sort: -amount
      filters: [stage, customer, amount]
      search: [name]
    form:
      tabs: true
      sections:
        - section: main
          label: {en: Deal, zh: 商机}
          fields: [name, amount]
        - section: items
          fields: [lines]
    kanban:
      card: [customer, amount]
"""


def load(tmp_path, files: dict[str, str], *, overlay: dict[str, str] | None = None):
    write_pack(tmp_path / "packs", "p", {**FILES, **files})
    overlay_dir = None
    if overlay:
        overlay_dir = tmp_path / "custom"
        overlay_dir.mkdir()
        for name, text in overlay.items():
            (overlay_dir / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return load_registry(["p"], search_paths=[tmp_path / "packs"], overlay_dir=overlay_dir)


def problems(tmp_path, files: dict[str, str], **kwargs) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load(tmp_path, files, **kwargs)
    return [str(p) for p in caught.value.problems if p.severity == "error"]


def test_a_view_overrides_the_generated_one_and_keeps_what_it_leaves_out(tmp_path):
    registry = load(tmp_path, {"views/deal.yaml": VIEW})
    views = ViewRegistry(registry).of("deal")
    assert views.columns == ("name", "customer", "stage", "amount", "owner")
    assert views.default_sort == "-amount" and views.search == ("name",)
    assert views.filters == ("stage", "customer", "amount")
    assert views.form_tabs and views.card == ("customer", "amount")
    main, items = views.form[:2]
    assert main.fields == ("name", "amount") and main.label.zh == "商机"
    assert items.lines == "lines"
    # 'customer' is an input the layout forgot: still on the form, in a last section
    assert views.form[-1].key == "more" and "customer" in views.form[-1].fields
    generated = ViewRegistry(registry).of("customer")
    assert generated.columns[0] == "name" and generated.default_sort == "-id"


def test_a_site_overlay_changes_only_the_keys_it_writes(tmp_path):
    registry = load(tmp_path, {"views/deal.yaml": VIEW}, overlay={"deal_view.yaml": """
        view: deal
        list:
          columns: [name, amount]
    """})
    views = ViewRegistry(registry).of("deal")
    assert views.columns == ("name", "amount")
    assert views.default_sort == "-amount"  # from the pack, not replaced
    assert views.form_tabs


def test_view_mistakes_are_reported_at_their_lines(tmp_path):
    found = problems(tmp_path, {"views/deal.yaml": """
        view: deal
        list:
          columns: [name, amout]
          filters: [name]
          search: [amount]
        form:
          sections:
            - section: main
              fields: [name, name2]
            - section: main
              fields: [name]
        related:
          - entity: customr
    """, "views/nothing.yaml": """
        view: nothing
    """, "views/customer.yaml": """
        view: customer
        kanban:
          card: [name]
    """})
    text = "\n".join(found)
    assert "packs/p/views/deal.yaml:3" in text and "did you mean 'amount'" in text
    assert "views/deal.yaml:4" in text and "a list filter takes" in text
    assert "views/deal.yaml:5" in text and "searched takes" in text
    assert "views/deal.yaml:9" in text and "no field 'name2'" in text
    assert "the section 'main' is declared twice" in text
    assert "'name' is already in section 'main'" in text
    assert "no entity 'customr'" in text and "did you mean 'customer'" in text
    assert "views/nothing.yaml:1" in text and "no entity 'nothing'" in text
    assert "views/customer.yaml:2" in text and "has no workflow" in text


def test_view_shape_errors_come_from_the_schema(tmp_path):
    found = problems(tmp_path, {"views/deal.yaml": """
        view: deal
        lists:
          columns: [name]
    """})
    assert any("views/deal.yaml:2" in p and "unknown key 'lists'" in p for p in found)


BOARD = """
    dashboard: sales
    label: {en: Sales, zh: 销售}
    roles: [sales, boss]
    widgets:
      - funnel: deal
      - weighted_pipeline: deal
        roles: [boss]
      - won_lost: deal
        months: 3
      - sla_overdue: deal
      - report: p.deals_by_name
        title: {en: Deals by name, zh: 按名称}
        params: {top: 2}
      - report: p.broken
"""
REPORTS = '''
from decimal import Decimal

from engine.services.views.figures import Figure, Series


def deals_by_name(request):
    rows = request.site.records.list(request.actor, "deal", limit=100, with_total=False).rows
    top = int(request.param("top", 5))
    rows = sorted(rows, key=lambda r: r["name"])[:top]
    return Figure(title={"en": "x"}, kind="bar", unit="money",
                  categories=tuple(r["name"] for r in rows),
                  series=(Series({"en": "Amount"}, tuple(Decimal(r["amount"] or 0) for r in rows)),))


def broken(request):
    raise RuntimeError("no data source")
'''


def test_dashboard_mistakes_are_reported_at_their_lines(tmp_path):
    found = problems(tmp_path, {"dashboards/d.yaml": """
        dashboard: d
        roles: [salse]
        widgets:
          - funnel: customer
          - won_lost: dael
          - report: p.nothing
          - report: q.thing
          - sla_overdue: deal
            params: {a: 1}
          - funnel: deal
            by: stage
    """, "reports.py": "def something(request):\n    return None\n"})
    text = "\n".join(found)
    assert "dashboards/d.yaml:2" in text and "no role 'salse'" in text
    assert "dashboards/d.yaml:4" in text and "customer has no workflow" in text
    assert "dashboards/d.yaml:5" in text and "no entity 'dael'" in text
    assert "dashboards/d.yaml:6" in text and "has no function 'nothing'" in text
    assert "dashboards/d.yaml:7" in text and "no pack 'q'" in text
    assert "dashboards/d.yaml:9" in text and "'params' applies only to a report widget" in text
    assert "dashboards/d.yaml:11" in text and "'by' applies only to a weighted_pipeline" in text


def test_a_weighted_pipeline_groups_by_owner_or_stage_only(tmp_path):
    found = problems(tmp_path, {"dashboards/d.yaml": """
        dashboard: d
        widgets:
          - weighted_pipeline: deal
            by: region
    """})
    assert any("d.yaml:4" in p and "owner, stage" in p and "region" in p for p in found)


def test_a_widget_needs_exactly_one_kind(tmp_path):
    found = problems(tmp_path, {"dashboards/d.yaml": """
        dashboard: d
        widgets:
          - title: Nothing
    """})
    assert any("dashboards/d.yaml:3" in p and "exactly one of funnel" in p for p in found)


@pytest.fixture
def board_site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "p", {**FILES, "dashboards/sales.yaml": BOARD,
                                         "reports.py": REPORTS})
    root = write_site(tmp_path / "site", db_url, ["p"], pack_paths=[tmp_path / "packs"])
    site = open_migrated(root, clock=FixedClock(dt.datetime(2026, 6, 15, 8, tzinfo=dt.UTC)))
    site.users.create("ann", password="pw-123456789", roles=["sales"])
    site.users.create("bob", password="pw-123456789", roles=["sales"])
    site.users.create("boss", password="pw-123456789", roles=["boss"])
    yield site
    site.close()


def test_dashboard_figures_follow_roles_and_scope(board_site):
    site = board_site
    ann, bob, boss = (site.users.actor(n) for n in ("ann", "bob", "boss"))
    site.records.create(ann, "deal", {"name": "Ann big", "amount": "900"})
    site.records.create(ann, "deal", {"name": "Ann small", "amount": "100"})
    site.records.create(bob, "deal", {"name": "Bob deal", "amount": "500"})
    service = DashboardService(site)
    assert service.home(ann).name == "sales"
    shown = {w.widget.kind + ":" + w.widget.target: w for w in service.figures(ann, service.home(ann))}
    assert "weighted_pipeline:deal" not in shown  # boss only
    report = shown["report:p.deals_by_name"]
    assert isinstance(report.figure, Figure)
    assert report.figure.categories == ("Ann big", "Ann small")  # only Ann's own deals
    assert report.figure.title["en"] == "Deals by name"  # the widget's title wins
    assert sum(shown["funnel:deal"].figure.series[0].values) == 2  # Ann's two open deals
    broken = shown["report:p.broken"]
    assert broken.figure is None and "no data source" in broken.error
    everything = {w.widget.kind: w for w in service.figures(boss, service.home(boss))}
    assert "weighted_pipeline" in everything
    assert everything["weighted_pipeline"].figure.unit == "money"
    top = service.figures(boss, service.home(boss))
    names = next(w for w in top if w.widget.target == "p.deals_by_name").figure.categories
    assert names == ("Ann big", "Ann small")  # top 2 of all three, by name


def test_a_role_no_dashboard_names_gets_the_generated_one(board_site):
    site = board_site
    nobody = Actor(user_id=None, login="x", roles=frozenset({"auditor"}))
    service = DashboardService(site)
    home = service.home(nobody)
    assert home.name == "home"
    assert {w.kind for w in home.widgets} == {"funnel", "weighted_pipeline", "won_lost",
                                              "sla_overdue"}


def test_a_site_report_lives_in_custom_reports_py(tmp_path):
    overlay = {"board.yaml": """
        dashboard: mine
        widgets:
          - report: site.my_figure
    """, "reports.py": "def my_figure(request):\n    return None\n"}
    registry = load(tmp_path, {}, overlay=overlay)
    assert registry.dashboards["mine"].widgets[0].function == "my_figure"
    found = problems(tmp_path / "again", {}, overlay={**overlay, "reports.py": "x = 1\n"})
    assert any("custom/board.yaml:3" in p and "custom/reports.py has no function 'my_figure'" in p for p in found)
