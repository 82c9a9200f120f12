"""Each measure of a figure carries its own unit, written per language on web, API and CLI.

A count beside an amount stays a count, days stay days: the owner's dashboards of every
built-in pack, computed on its demo data, show no count as money (web, API and the CLI
table), and a dashboard's ``units:`` is checked when definitions load, with the file and
line of a wrong unit.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.cli.report_commands import figure_lines
from engine.context import Actor, SetClock
from engine.demo import load_demo
from engine.errors import DefinitionError
from engine.services.views.dashboards import DashboardService
from engine.services.views.figure_text import UNITS, format_value
from engine.services.views.figures import Figure, Series
from engine.web import create_app
from tests.api_support import api_for
from tests.support import open_migrated, write_site
from tests.web_support import login

PASSWORD = "password-1"
PACKS = ["core", "trading", "distribution", "membership", "project_sales", "service_sales"]
#: Words in a series' English name that say what it measures ("0-30 days" of an ageing
#: table is money; "Days overdue" is days).
NAMED = [(re.compile(r"^days\b", re.I), {"days"}), (re.compile(r"^hours?\b", re.I), {"hours"}),
         (re.compile(r"%|\brate\b|utilisation|completion", re.I), {"percent"})]


@pytest.mark.parametrize(("value", "unit", "language", "text"), [
    (4, "count", "en", "4"), (1234, "count", "zh", "1,234"), (Decimal("2.50"), "count", "en", "2.5"),
    (Decimal("60"), "money", "en", "¥60.00"), (Decimal("-1234.5"), "money", "zh", "-¥1,234.50"),
    (Decimal("68.50"), "percent", "en", "68.5%"), (Decimal("168"), "percent", "zh", "168%"),
    (3, "days", "en", "3 days"), (1, "days", "en", "1 day"), (Decimal("2.5"), "days", "zh", "2.5 天"),
    (Decimal("12.25"), "hours", "en", "12.3 h"), (7, "hours", "zh", "7 小时"),
    (Decimal("1234.500"), "number", "en", "1,234.5"), (Decimal("3.000"), "number", "zh", "3"),
    (None, "money", "en", ""),
])
def test_each_unit_is_written_for_its_reader(value, unit, language, text):
    assert format_value(value, unit, "CNY", language) == text


def test_a_currency_without_a_symbol_follows_the_amount():
    assert format_value(Decimal("9.5"), "money", "CHF", "en") == "9.50 CHF"
    figure = Figure({"en": "T"}, "table", "money", ("a",),
                    (Series({"en": "Sales"}, (Decimal(5),), currency="USD"),
                     Series({"en": "Orders"}, (2,), unit="count")))
    assert figure_lines(figure, "en", "CNY")[-2:] == [figure_lines(figure, "en")[-2],
                                                     figure_lines(figure, "en")[-1]]
    assert "$5.00" in figure_lines(figure, "en")[-1] and " 2" in figure_lines(figure, "en")[-1]
    data = figure.as_json("zh", "CNY")
    assert [(s["key"], s["unit"], s.get("currency"), s["text"]) for s in data["series"]] == [
        ("sales", "money", "USD", ["$5.00"]), ("orders", "count", None, ["2"])]


BAD_UNITS = """\
dashboard: checked
widgets:
  - funnel: opportunity
    units: {count: dollars}
  - won_lost: opportunity
    units: {won: count, wins: count}
"""


def test_a_wrong_unit_is_refused_with_its_file_and_line(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"],
                      overlays={"dashboards.yaml": BAD_UNITS})
    with pytest.raises(DefinitionError) as caught:
        open_migrated(root)
    text = str(caught.value)
    assert re.search(r"dashboards\.yaml:4\b.*dollars", text), text
    # A unit for a series the built-in widget does not have: the key's line, and a hint.
    root = write_site(tmp_path / "other", db_url, ["core"], overlays={
        "dashboards.yaml": BAD_UNITS.replace("{count: dollars}", "{count: number}")})
    with pytest.raises(DefinitionError) as caught:
        open_migrated(root)
    text = str(caught.value)
    assert re.search(r"dashboards\.yaml:6\b.*no series 'wins'; its series: won, lost", text), text


def test_a_dashboard_sets_a_series_unit(tmp_path, db_url):
    good = BAD_UNITS.replace("{count: dollars}", "{count: number}").replace(", wins: count", "")
    site = open_migrated(write_site(tmp_path / "site", db_url, ["core"],
                                    overlays={"dashboards.yaml": good}))
    try:
        widgets = site.registry.dashboards["checked"].widgets
        assert dict(widgets[0].units) == {"count": "number"}
        figure = Figure({"en": "F"}, "funnel", "count", ("x",), (Series({"en": "Count"}, (3,)),))
        assert figure.with_units(widgets[0].units).unit_of(
            figure.with_units(widgets[0].units).series[0]) == "number"
    finally:
        site.close()


def _check_series(pack: str, figure: Figure, where: str) -> None:
    for series in figure.series:
        unit = figure.unit_of(series)
        name = series.name.get("en", "")
        assert unit in UNITS, where
        values = [v for v in series.values if v is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            assert unit != "money", f"{pack} {where}: '{name}' counts but is shown as money"
        for pattern, allowed in NAMED:
            if pattern.search(name):
                assert unit in allowed, f"{pack} {where}: '{name}' is shown as {unit}"


@pytest.mark.parametrize("pack", PACKS)
def test_the_owners_dashboards_show_no_count_as_money(tmp_path, db_url, pack):
    packs = ["core"] if pack == "core" else ["core", pack]
    site = open_migrated(write_site(tmp_path / "site", db_url, packs),
                         clock=SetClock(dt.datetime.now(dt.UTC)))
    try:
        site.users.create("boss", password=PASSWORD, roles=["owner"], language="zh")
        load_demo(site.records, Actor.system(), [Path(site.registry.packs[p].path) for p in packs],
                  workflows=site.workflows)
        boss = site.users.actor("boss")
        service = DashboardService(site)
        dashboards = {d.name: d for d in [service.home(boss), *service.available(boss)]}
        client = create_app(site, testing=True).test_client()
        login(client, "boss", PASSWORD)
        api = api_for(site, "boss")
        shown = 0
        for name, dashboard in dashboards.items():
            for widget in service.figures(boss, dashboard):
                assert widget.error is None, (name, widget.key, widget.error)
                if widget.figure is None:
                    continue
                shown += 1
                _check_series(pack, widget.figure, f"{name}/{widget.key}")
            html = client.get(f"/dashboards/{name}").get_data(as_text=True)
            for unit in ("count", "days", "hours", "percent"):
                cells = re.findall(rf'<td class="num unit-{unit}">([^<]*)</td>', html)
                assert not [c for c in cells if "¥" in c], (name, unit, cells)
            data = api.get(f"/dashboards/{name}").get_json()
            for widget in data["widgets"]:
                for series in (widget["figure"] or {}).get("series", []):
                    if series["unit"] != "money":
                        assert not [t for t in series["text"] if "¥" in t], (name, series)
                    else:
                        assert series["currency"] == "CNY"
        assert shown >= 3, f"{pack}: the owner's dashboards showed {shown} figures"
    finally:
        site.close()


def test_crm_report_writes_counts_as_counts(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core", "membership"])
    site = open_migrated(root, clock=SetClock(dt.datetime.now(dt.UTC)))
    try:
        site.users.create("boss", password=PASSWORD, roles=["owner"])
        load_demo(site.records, Actor.system(),
                  [Path(site.registry.packs[p].path) for p in ("core", "membership")],
                  workflows=site.workflows)
    finally:
        site.close()
    result = CliRunner().invoke(main, ["--site", str(root), "report", "membership.sales_by_store",
                                      "--as", "boss"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "¥" in line]
    assert rows, result.output
    for row in rows:  # "store | ¥1,234.00 | 12": the purchases column is a plain count
        assert re.search(r"¥[\d,]+\.\d\d\s*\S?\s+\d+\s*$", row), row
