"""The dashboards as an owner sees them: readable charts, no overlaps, filters, click-through.

Chromium (tests/browser_support.py) opens the sales dashboards of a generated
company (``crm demo --size 300``'s data) on a 1440×900 desktop in English and
a 390×844 phone in Chinese, and measures: every chart text at least 11 px on
screen (its font size times the SVG's scale), no two texts of a chart
touching (compared in their own rotated frame, so turned labels count
right), no page wider than the window, no console or CSP error, filters that
change the figures, and a bar whose list counts what the bar says.
Screenshots go to /tmp for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from engine.context import SetClock
from packs.core.demo_generator import generate
from tests.browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    LOGIN,
    PASSWORD,
    PHONE,
    demo_site,
    require_chromium,
    serve,
)

pytestmark = pytest.mark.browser
ZH_LOGIN = "demo-zh"
SIZES = [pytest.param(PHONE, ZH_LOGIN, id="phone-zh"),
         pytest.param(DESKTOP, LOGIN, id="desktop-en")]
SHOTS = Path("/tmp/visioncrm-dashboards")

#: Each chart text's size on screen and every pair of texts of one chart that touch.
MEASURE_JS = """
() => {
  const found = {small: [], overlaps: [], texts: 0, charts: 0};
  for (const svg of document.querySelectorAll('.chart svg')) {
    found.charts += 1;
    const toSvg = svg.getScreenCTM().inverse();
    const boxes = [];
    for (const t of svg.querySelectorAll('text')) {
      if (!t.textContent.trim()) continue;
      found.texts += 1;
      const screen = t.getScreenCTM();
      const scale = Math.hypot(screen.a, screen.b);
      const px = parseFloat(getComputedStyle(t).fontSize) * scale;
      if (px < 11) found.small.push(t.textContent + ' ' + px.toFixed(1));
      const m = toSvg.multiply(screen);
      const angle = Math.atan2(m.b, m.a);
      const b = t.getBBox();
      const corners = [[b.x, b.y], [b.x + b.width, b.y], [b.x, b.y + b.height],
                       [b.x + b.width, b.y + b.height]].map(([x, y]) => {
        const X = m.a * x + m.c * y + m.e, Y = m.b * x + m.d * y + m.f;
        return [Math.cos(-angle) * X - Math.sin(-angle) * Y,
                Math.sin(-angle) * X + Math.cos(-angle) * Y];
      });
      const xs = corners.map((c) => c[0]), ys = corners.map((c) => c[1]);
      boxes.push({text: t.textContent, angle: Math.round(angle * 100),
                  x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys), y1: Math.max(...ys)});
    }
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const [p, q] = [boxes[i], boxes[j]];
      if (p.angle !== q.angle) continue;
      const gap = 0.5;  // glyph boxes include line spacing: a hair of touching is not an overlap
      if (p.x0 + gap < q.x1 && q.x0 + gap < p.x1 && p.y0 + gap < q.y1 && q.y0 + gap < p.y1)
        found.overlaps.push(p.text + ' / ' + q.text);
    }
  }
  for (const el of document.querySelectorAll('.chart figcaption, .chart summary, .dashboard-filters label')) {
    const px = parseFloat(getComputedStyle(el).fontSize);
    if (px < 11) found.small.push(el.textContent.trim().slice(0, 20) + ' ' + px);
  }
  found.scroll = document.documentElement.scrollWidth - window.innerWidth;
  return found;
}
"""

#: The funnel's bars as "label: value" (their links' names), in order.
FUNNEL_JS = """
() => [...document.querySelectorAll('.widget-funnel svg a')].map((a) => a.getAttribute('aria-label'))
"""


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    require_chromium()
    clock = SetClock(dt.datetime.now(dt.UTC))
    site = demo_site(tmp_path_factory.mktemp("dash") / "site", clock=clock)
    generate(site, 300, seed=7)
    site.users.create(ZH_LOGIN, password=PASSWORD, display_name="演示", language="zh",
                      roles=["admin"], is_admin=True)
    with serve(site) as url:
        yield url
    site.close()


@pytest.fixture(scope="module")
def browser(base_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def signed_in(browser, base_url, viewport, login):
    context = browser.new_context(base_url=base_url, viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    return context, page, errors


@pytest.mark.parametrize(("viewport", "login"), SIZES)
@pytest.mark.parametrize("name", ["sales", "sales_analysis"])
def test_charts_are_readable_and_nothing_overlaps(browser, base_url, viewport, login, name):
    context, page, errors = signed_in(browser, base_url, viewport, login)
    page.goto(f"/dashboards/{name}")
    found = page.evaluate(MEASURE_JS)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{viewport['width']}.png"), full_page=True)
    context.close()
    assert found["charts"] >= 3 and found["texts"] > 20
    assert found["small"] == []
    assert found["overlaps"] == [], found["overlaps"]
    assert found["scroll"] <= 0
    assert errors == []


@pytest.mark.parametrize(("viewport", "login"), SIZES)
def test_filters_change_the_figures_and_a_bar_opens_its_list(browser, base_url, viewport,
                                                             login):
    context, page, errors = signed_in(browser, base_url, viewport, login)
    page.goto("/dashboards/sales")
    everyone = page.evaluate(FUNNEL_JS)
    # a phone's first screen shows figures: the filters wait behind one control
    panel = page.locator(".dashboard-filter-panel")
    assert panel.evaluate("(el) => el.open") == (viewport == DESKTOP)
    if viewport != DESKTOP:
        assert not page.locator(".dashboard-filters").is_visible()
        page.click(".dashboard-filter-panel > summary")
    team = page.locator(".dashboard-filters select[name=team] option").nth(1)
    page.select_option(".dashboard-filters select[name=team]", team.get_attribute("value"))
    page.click(".dashboard-filters button[type=submit]")
    page.wait_for_url(re.compile(r"team=\d+"))
    narrowed = page.evaluate(FUNNEL_JS)
    assert narrowed and narrowed != everyone
    assert page.locator(".dashboard-filter-panel .filter-count").inner_text() == "1"
    if viewport != DESKTOP:
        page.click(".dashboard-filter-panel > summary")
    # everyone's open deals expected to close within a year of today (deals with no expected
    # close date are in no period)
    today = dt.date.today()
    page.select_option(".dashboard-filters select[name=team]", "")
    page.select_option(".dashboard-filters select[name=period]", "custom")
    page.fill(".dashboard-filters input[name=from]", (today - dt.timedelta(days=365)).isoformat())
    page.fill(".dashboard-filters input[name=to]", (today + dt.timedelta(days=365)).isoformat())
    page.click(".dashboard-filters button[type=submit]")
    page.wait_for_url(re.compile(r"period=custom"))
    coming = page.evaluate(FUNNEL_JS)
    assert coming and coming != everyone
    label = coming[0]
    count = int(label.rsplit(":", 1)[1].replace(",", ""))
    page.locator(".widget-funnel svg a").first.click()
    page.wait_for_url(re.compile(r"/r/opportunity\?"))
    assert int(page.locator(".list-total").get_attribute("data-total")) == count
    # the list shows what narrows it: here the view's own stage and expected-close filters
    first = (today - dt.timedelta(days=365)).isoformat()
    assert page.locator("input[name=expected_close__ge]").input_value() == first
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"drill-{viewport['width']}.png"), full_page=True)
    context.close()
    assert errors == []
