"""The reference picker in Chromium: any of the trading demo's 104 products goes on a quotation.

A salesperson on a 390×844 phone (Chinese) and an owner on a 1440×900 desktop (English)
type into the line's product picker, move with the arrow keys and choose with Enter; the
list of choices stays inside the window, is not covered, its text is readable (WCAG
contrast ≥ 4.5), its rows are tall enough to tap, Escape closes it, and the page logs no
CSP or script error.  The saved quotation holds product #104.  Screenshots go to /tmp.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from engine.context import Actor, SetClock
from engine.demo import load_demo
from tests.browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    require_chromium,
    serve,
    with_contrast,
)
from tests.support import open_migrated, write_site

pytestmark = pytest.mark.browser
PASSWORD = "password-1"

#: Contrast of every option's text against the list's background, where each option is
#: drawn, and whether the option at its centre is what a tap there reaches.
LISTBOX_JS = with_contrast("""
  const list = document.querySelector('.picker-list:not([hidden])');
  const box = list.getBoundingClientRect();
  const texts = [...list.querySelectorAll('.picker-title, .picker-detail, .picker-note')]
    .filter((el) => el.getClientRects().length).map(contrast);
  const first = list.querySelector('[role=option]');
  const at = first.getBoundingClientRect();
  const hit = document.elementFromPoint(at.left + at.width / 2, at.top + at.height / 2);
  return {left: box.left, right: box.right, top: box.top, bottom: box.bottom,
          width: window.innerWidth, height: window.innerHeight,
          lowest: Math.min(...texts), optionHeight: at.height,
          reached: hit !== null && first.contains(hit),
          fontSize: parseFloat(getComputedStyle(first).fontSize)};
""")


@pytest.fixture(scope="module")
def trading(tmp_path_factory):
    require_chromium()
    root = tmp_path_factory.mktemp("pickers") / "site"
    site = open_migrated(write_site(root, f"sqlite:///{root.parent / 'crm.db'}",
                                    ["core", "trading"], name="Jinding Trading CRM"),
                         clock=SetClock(dt.datetime.now(dt.UTC)))
    site.users.create("sam", password=PASSWORD, roles=["sales"], language="zh",
                      display_name="萨姆")
    site.users.create("boss", password=PASSWORD, roles=["owner"], display_name="Boss")
    paths = [Path(site.registry.packs[p].path) for p in ("core", "trading")]
    load_demo(site.records, Actor.system(), paths, workflows=site.workflows)
    site.records.create(site.users.actor("sam"), "customer", {"name": "萨姆的客户 Samson"})
    with serve(site) as url:
        yield site, url
    site.close()


@pytest.fixture(scope="module")
def browser(trading):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _pick(page, selector, text, screenshot):
    """Type ``text`` into a picker, check its list as a person sees it, choose with Enter."""
    combo = page.locator(selector)
    combo.click()
    combo.fill(text)
    listbox = page.locator(".picker-list:not([hidden])[aria-busy=false]")
    listbox.locator("[role=option]", has_text=text).first.wait_for()
    assert combo.get_attribute("aria-expanded") == "true"
    seen = page.evaluate(LISTBOX_JS)
    page.screenshot(path=screenshot)
    assert seen["left"] >= 0 and seen["right"] <= seen["width"], seen
    assert seen["top"] >= 0 and seen["bottom"] <= seen["height"], seen
    assert seen["lowest"] >= 4.5, seen
    assert seen["reached"], seen  # nothing covers the choices
    assert seen["optionHeight"] >= 40 and seen["fontSize"] >= 14, seen
    combo.press("ArrowDown")
    active = combo.get_attribute("aria-activedescendant")
    assert active and page.locator(f"#{active}").get_attribute("aria-selected") == "true"
    combo.press("Enter")
    assert combo.get_attribute("aria-expanded") == "false"
    return combo


@pytest.mark.parametrize(("viewport", "login", "customer"), [
    pytest.param(PHONE, "sam", "Samson", id="phone-zh"),
    pytest.param(DESKTOP, "boss", "Samson", id="desktop-en"),
])
def test_product_104_goes_on_a_quotation_line(trading, browser, viewport, login, customer):
    site, url = trading
    product = site.records.get(Actor.system(), "product", 104)
    context = browser.new_context(base_url=url, viewport=viewport,
                                  has_touch=viewport is PHONE, is_mobile=viewport is PHONE)
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto("/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    page.goto("/r/quotation/new")
    width = viewport["width"]

    _pick(page, "#f-customer-q", customer, f"/tmp/picker-customer-{width}.png")
    chosen = page.locator("#f-customer").input_value()
    assert site.records.get(Actor.system(), "customer", int(chosen))["name"].endswith(customer)
    # The line's product: every one of the 104 is reachable, #104 here by its Chinese name.
    combo = page.locator("#f-lines-0-product-q")
    combo.scroll_into_view_if_needed()
    combo.click()
    combo.fill("zzz-nothing")
    page.locator(".picker-note.is-empty").wait_for()
    combo.press("Enter")  # nothing to choose: the form is not sent either
    assert page.url.endswith("/r/quotation/new")
    combo.press("Escape")
    assert combo.get_attribute("aria-expanded") == "false"
    _pick(page, "#f-lines-0-product-q", product["name"], f"/tmp/picker-product-{width}.png")
    assert page.locator("#f-lines-0-product").input_value() == str(product["id"])
    assert combo.input_value().startswith(product["name"])
    page.fill("[name=lines-0-quantity]", "3")
    page.fill("[name=lines-0-unit_price]", "140")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    page.locator("form.record-form button.primary[type=submit]").click()
    page.wait_for_url(re.compile(r"/r/quotation/\d+$"))
    quote_id = int(page.url.rsplit("/", 1)[1])
    saved = site.records.get(Actor.system(), "quotation", quote_id)
    assert [line["product"] for line in saved["lines"]] == [104]
    assert problems == []
    context.close()


def test_without_javascript_the_picker_searches_by_its_button(trading, browser):
    site, url = trading
    product = site.records.get(Actor.system(), "product", 1)
    context = browser.new_context(base_url=url, viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto("/login")
    page.fill("input[name=login]", "sam")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.goto("/r/quotation/new")
    page.fill("[name=lines-0-product__find]", product["code"])
    page.click("button[name=_find][value=lines-0-product]")
    page.wait_for_load_state()
    options = page.locator("#f-lines-0-product option")
    assert options.nth(1).inner_text().startswith(product["name"])
    page.select_option("#f-lines-0-product", str(product["id"]))
    button = page.locator("button[name=_find][value=lines-0-product]")
    box = button.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"] and box["height"] >= 40
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    page.locator("#f-lines-0-product").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/picker-nojs-390.png")
    context.close()
