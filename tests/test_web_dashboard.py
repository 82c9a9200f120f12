"""The home dashboard draws the pipeline figures as inline SVG, in the actor's scope."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from engine.context import FixedClock
from engine.web import create_app
from engine.web.dashboards.charts import (
    Bar,
    Series,
    bar_chart,
    chart,
    grouped_columns,
    nice_ticks,
    short_value,
)
from tests.support import open_migrated, write_site
from tests.web_support import login, post

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run

NOW = dt.datetime(2026, 6, 15, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse"


def test_bar_chart_escapes_labels_and_uses_no_style_attributes():
    svg = bar_chart([Bar("<b>x</b>", Decimal(3), "3"), Bar("y", 0, "0")], title="T & U")
    assert svg.startswith("<svg") and svg.count('class="bar"') == 2
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "T &amp; U" in svg
    assert "style=" not in svg


def test_grouped_columns_draw_a_bar_per_series_and_category():
    svg = grouped_columns(["2026-05", "2026-06"], [Series("won", [1, 2], "#0f0"),
                                                   Series("lost", [0, 1], "#f00")], title="t")
    assert svg.count('class="bar"') == 4 and "style=" not in svg


def test_value_axes_have_round_ticks_and_counts_whole_ones():
    assert nice_ticks(187) == [0, 50, 100, 150, 200]
    assert nice_ticks(1.0, whole=True) == [0, 1]
    assert nice_ticks(7, whole=True) == [0, 2, 4, 6, 8]
    assert nice_ticks(0) == [0, 1]


def test_chart_values_are_short_in_each_language():
    assert short_value(Decimal("1234567"), "money", "CNY", "en") == "¥1.2M"
    assert short_value(Decimal("1250000"), "money", "CNY", "zh") == "¥125万"
    assert short_value(Decimal("171000000"), "money", "CNY", "zh") == "¥1.7亿"
    assert short_value(12, "count", "CNY", "en") == "12"
    assert short_value(Decimal("50.5"), "percent", "CNY", "en") == "50.5 %"


def test_crowded_categories_are_turned_and_thinned_and_all_stay_in_the_table():
    names = [f"Salesperson number {i}" for i in range(30)]
    drawn = chart("column", "T", names, [Series("won", list(range(30)), "#2563eb")],
                  show=str, axis=str, links=["/r/x?a=1", "https://evil.example/"] * 15,
                  language="en")
    labels = re.findall(r'class="category x-label"[^>]*>([^<]*)<', drawn)
    assert 0 < len(labels) < 30 and all("rotate(-45" in t for t in
                                        re.findall(r'<text class="category x-label"[^>]*>',
                                                   drawn))
    assert drawn.count('<th scope="row">') == 30  # the data table has every category
    assert "evil.example" not in drawn and drawn.count('href="/r/x?a=1"') == 30
    assert "<desc" in drawn and "Salesperson number 29: 29" in drawn
    assert 'font-size="13"' in drawn and "style=" not in drawn


def test_short_categories_stay_level_and_every_one_is_written():
    drawn = chart("column", "T", ["Q1", "Q2", "Q3"], [Series("a", [1, 2, 3], "#2563eb"),
                                                      Series("b", [3, 2, 1], "#c2410c")],
                  show=str, axis=str, links=[], language="zh")
    assert "rotate(" not in drawn and drawn.count('x-label"') == 3
    assert 'class="legend"' in drawn and "数据表" in drawn


@pytest.fixture
def site(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    opened.users.create("admin", password=PASSWORD, roles=["admin"], is_admin=True)
    actor = opened.users.actor("admin")
    acme = opened.records.create(actor, "customer", {"name": "Acme Trading"})
    for name, amount in (("ERP roll-out", "120000"), ("Racks", "8000"), ("Lost one", "500")):
        opened.records.create(actor, "opportunity", {"name": name, "customer": acme["id"],
                                                     "amount": amount})
    lost = opened.records.list(actor, "opportunity", search="Lost one").rows[0]
    opened.workflows.transition(actor, "opportunity", lost["id"], "lost",
                                {"lost_reason": "price"})
    yield opened
    opened.close()


def test_home_draws_funnel_owner_and_won_lost_charts(site):
    client = create_app(site, testing=True).test_client()
    assert login(client, "admin", PASSWORD).status_code == 302
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert html.count("<svg") >= 3 and 'class="bar"' in html
    assert "Pipeline funnel" in html and "Weighted pipeline by owner" in html
    assert "Won and lost by month" in html and "2026-06" in html
    assert "Initial contact" in html
    post(client, "/profile", {"action": "language", "language": "zh"})
    zh = client.get("/").get_data(as_text=True)
    assert "销售漏斗" in zh and "初步接触" in zh


def test_home_shows_only_what_the_actor_may_read(site):
    site.users.create("nobody", password=PASSWORD, roles=[])
    client = create_app(site, testing=True).test_client()
    assert login(client, "nobody", PASSWORD).status_code == 302
    page = client.get("/")
    assert page.status_code == 200
    assert "<svg" not in page.get_data(as_text=True)


def _figure(kind: str, unit: str = "count", **extra):
    from engine.services.views.figures import Figure
    from engine.services.views.figures import Series as FigureSeries

    return Figure(title={"en": "<T>", "zh": "图"}, kind=kind, unit=unit,
                  categories=("<a>", "b"),
                  series=(FigureSeries({"en": "S"}, (Decimal("1200.5"), 3)),), **extra)


def test_figures_are_drawn_by_kind_and_formatted_by_unit():
    from engine.web.dashboards.figures import draw

    bar = draw(_figure("bar", "money"), "en", "CNY")
    assert bar.startswith("<svg") and "¥1,200.50" in bar and "&lt;a&gt;" in bar
    assert "<a>" not in bar and "style=" not in bar
    assert draw(_figure("line"), "en", "CNY").count("<circle") == 2
    assert draw(_figure("column"), "en", "CNY").count('class="bar"') == 2
    table = draw(_figure("table", "hours", links=("/r/x/1", "javascript:alert(1)")), "en", "CNY")
    assert '<a href="/r/x/1">&lt;a&gt;</a>' in table and "javascript" not in table
    assert "1,200.5 h" in table
    assert "1,200.5" in draw(_figure("number"), "en", "CNY")
