"""What people see, checked in a real browser: readable, reachable, honest about errors.

Chromium (tests/browser_support.py) opens the demo on a 390×844 phone in Chinese and on a
1440×900 desktop in English and measures what a person would notice: the quick-create
panel's text against its background (WCAG contrast), the panel inside the viewport, each
Save button reachable and not covered, an error flash that does not look like a success,
dashboard tables laid out as tables, and the site icon.  Screenshots of the panel go to
/tmp (never the repository) for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from engine.context import SetClock
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
    with_contrast,
)

pytestmark = pytest.mark.browser
ZH_LOGIN = "demo-zh"
SIZES = [pytest.param(PHONE, ZH_LOGIN, id="phone-zh"), pytest.param(DESKTOP, LOGIN, id="desktop-en")]

#: WCAG 2 contrast of each visible label and input of the quick-create panel, against the
#: first opaque background behind it.
CONTRASTS_JS = with_contrast("""
  const panel = document.querySelector('.quick-panel');
  return [...panel.querySelectorAll('label, input:not([type=hidden]), select, textarea, h3')]
    .filter((el) => el.getClientRects().length)
    .map((el) => ({what: el.tagName + ' ' + (el.textContent || el.name || '').trim().slice(0, 30),
                   ratio: contrast(el)}));
""")

#: The button at the centre of ``el`` is the one a tap reaches (nothing covers it).
HIT_JS = """
(el) => {
  const box = el.getBoundingClientRect();
  const x = box.left + box.width / 2, y = box.top + box.height / 2;
  const hit = document.elementFromPoint(x, y);
  return {inside: box.top >= 0 && box.bottom <= window.innerHeight && box.left >= 0
                  && box.right <= window.innerWidth,
          reached: hit !== null && (hit === el || el.contains(hit))};
}
"""


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    require_chromium()
    clock = SetClock(dt.datetime.now(dt.UTC))
    site = demo_site(tmp_path_factory.mktemp("look") / "site", clock=clock)
    site.users.create(ZH_LOGIN, password=PASSWORD, display_name="演示", language="zh",
                      roles=["admin"], is_admin=True)
    actor = site.users.actor(LOGIN)
    customer = site.records.create(actor, "customer", {"name": "Zero Industries"})
    deal = site.records.create(actor, "opportunity", {"name": "Zero deal",
                                                      "customer": customer["id"], "amount": "1000"})
    site.workflows.transition(actor, "opportunity", deal["id"], "proposal", {})
    clock.offset += dt.timedelta(days=40)  # customers with no activity fill a dashboard table
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


def signed_in(browser, base_url, viewport, login, *, script=True):
    context = browser.new_context(base_url=base_url, viewport=viewport,
                                  java_script_enabled=script)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto("/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    return context, page


@pytest.mark.parametrize(("viewport", "login"), SIZES)
def test_quick_create_is_readable_fits_and_every_save_is_reachable(browser, base_url,
                                                                    viewport, login):
    context, page = signed_in(browser, base_url, viewport, login)
    page.goto("/r/customer")
    page.click("#quick-create summary")
    panel = page.locator(".quick-panel")
    panel.wait_for(state="visible")
    page.screenshot(path=f"/tmp/web1-quick-{viewport['width']}.png")

    contrasts = page.evaluate(CONTRASTS_JS)
    assert len(contrasts) >= 4  # a heading, labels and inputs of each quick form
    assert [c for c in contrasts if c["ratio"] < 4.5] == []

    box = panel.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    assert page.evaluate("() => document.documentElement.scrollWidth") <= viewport["width"]

    saves = panel.locator("form.quick-form button[type=submit]")
    assert saves.count() >= 1
    for i in range(saves.count()):
        save = saves.nth(i)
        save.scroll_into_view_if_needed()
        assert save.evaluate(HIT_JS) == {"inside": True, "reached": True}, i
    context.close()


def test_an_error_flash_does_not_look_like_a_success(browser, base_url):
    """Moving a deal to lost without its reason (the board without script) flashes an error
    above the page asking for the reason."""
    context, page = signed_in(browser, base_url, PHONE, ZH_LOGIN, script=False)
    page.goto("/r/opportunity/kanban")
    move = page.locator(".board-card", has_text="Zero deal").locator("form.card-move")
    move.locator("select[name=to]").select_option("lost")
    move.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/r/opportunity/kanban"))
    error = page.locator(".flash")
    assert error.count() == 1
    assert "丢单原因" in error.inner_text()
    assert error.get_attribute("class") == "flash flash-error"
    assert error.get_attribute("role") == "alert"
    error_background = error.evaluate("(el) => getComputedStyle(el).backgroundColor")
    page.goto("/r/opportunity/kanban")
    assert page.locator(".board-column[data-stage=proposal] .board-card",
                        has_text="Zero deal").count() == 1  # nothing moved

    page.goto("/profile")
    page.locator("form:has(select[name=language]) button[type=submit]").click()
    page.wait_for_url(re.compile(r"/profile$"))
    success = page.locator(".flash")
    assert success.get_attribute("class") == "flash flash-success"
    success_background = success.evaluate("(el) => getComputedStyle(el).backgroundColor")
    assert error_background != success_background
    assert "rgba(0, 0, 0, 0)" not in (error_background, success_background)
    context.close()


def test_dashboard_tables_are_tables_and_scroll_in_their_own_box(browser, base_url):
    context, page = signed_in(browser, base_url, PHONE, LOGIN)
    page.goto("/dashboards/sales_analysis")
    tables = page.locator("main table")
    assert tables.count() >= 1
    for i in range(tables.count()):
        table = tables.nth(i)
        assert table.evaluate("(el) => getComputedStyle(el).display") == "table"
        wrap = table.evaluate("(el) => getComputedStyle(el.parentElement).overflowX")
        assert wrap == "auto"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    context.close()


def test_the_site_icon_is_served(browser, base_url):
    context, page = signed_in(browser, base_url, DESKTOP, LOGIN)
    answer = page.request.get("/favicon.ico")
    assert answer.status == 200
    assert answer.headers["content-type"] in ("image/vnd.microsoft.icon", "image/x-icon")
    assert answer.body()[:4] == b"\x00\x00\x01\x00"  # an ICO file
    linked = page.locator("link[rel=icon]").get_attribute("href")
    svg = page.request.get(linked)
    assert svg.status == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    context.close()
