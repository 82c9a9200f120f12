"""Generated views and locale formatting: the pieces pages are built from."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from engine.metadata.entity_views import ViewRegistry, generate
from engine.web.i18n import translate
from engine.web.presentation import formatting
from tests.support import open_migrated, write_site


@pytest.fixture
def site(tmp_path, sqlite_url):
    opened = open_migrated(write_site(tmp_path / "site", sqlite_url, ["core"]))
    yield opened
    opened.close()


def test_generated_views_of_an_entity_with_a_workflow(site):
    views = generate(site.registry, site.registry.entities["opportunity"])
    assert views.columns[:2] == ("name", "stage")
    assert "lines" not in views.columns and "lost_note" not in views.columns
    main, lines = views.form
    assert "stage" not in main.fields  # only transitions move it
    assert "number" not in main.fields and "weighted_amount" not in main.fields
    assert main.fields[:2] == ("name", "customer")
    assert lines.lines == "lines"
    assert views.filters[0] == "stage"
    assert {"amount", "weighted_amount", "lines_total"} <= views.money_fields


def test_every_core_entity_gets_views(site):
    registry = ViewRegistry(site.registry)
    for key, entity in site.registry.entities.items():
        views = registry.of(key)
        assert views.columns
        declared = site.registry.views.get(key)
        if declared is not None and declared.columns:
            assert views.columns == declared.columns
        elif entity.title_field:
            assert views.columns[0] == entity.title_field
        assert views.form[0].fields


def test_money_numbers_and_dates_per_language():
    assert formatting.money(Decimal("1234567.5")) == "¥1,234,567.50"
    assert formatting.money(Decimal("-3"), "USD") == "-$3.00"
    assert formatting.money(Decimal("3"), "CHF") == "3.00 CHF"
    assert formatting.number(1234567) == "1,234,567"
    day = dt.date(2026, 6, 1)
    assert formatting.date(day, "en") == "Jun 1, 2026"
    assert formatting.date(day, "zh") == "2026年6月1日"
    moment = dt.datetime(2026, 6, 1, 1, 30, tzinfo=dt.UTC)
    assert formatting.datetime(moment, "zh", "Asia/Shanghai") == "2026年6月1日 09:30"
    assert formatting.duration(3 * 86400, "en") == "3.0 d"


def test_ui_words_in_both_languages():
    assert translate("save", "zh-CN") == "保存" and translate("save", "en") == "Save"
    assert translate("total", "zh", count=3) == "共 3 条"
    assert translate("no-such-word", "zh") == "no-such-word"
