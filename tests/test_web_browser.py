"""Real-browser tests: Playwright driving Debian's chromium against the served app.

They skip with the reason when playwright or chromium is missing, except
when ``CI`` is set: there a missing browser is a failure, not a skip.
"""

from __future__ import annotations

import re

import pytest

from engine.notifications.worker import NotificationWorker
from engine.services.dataio.importing.queue import BACKGROUND_ROWS
from tests.browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LOGIN,
    PASSWORD,
    demo_site,
    require_chromium,
    serve,
)

pytestmark = pytest.mark.browser
#: Where a card is grabbed: its padding, not its link or its move form.
GRIP = {"x": 3, "y": 3}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The served site and its URL."""
    require_chromium()
    site = demo_site(tmp_path_factory.mktemp("browser") / "site")
    actor = site.users.actor(LOGIN)
    acme = site.records.create(actor, "customer", {"name": "Zero Industries"})
    deal = site.records.create(actor, "opportunity", {"name": "Zero deal", "customer": acme["id"],
                                                      "amount": "1000"})
    site.workflows.transition(actor, "opportunity", deal["id"], "proposal", {})
    site.records.update(actor, "opportunity", deal["id"], {"amount": "0"})
    with serve(site) as url:
        yield url, site
    site.close()


@pytest.fixture(scope="module")
def base_url(served):
    return served[0]


@pytest.fixture(scope="module")
def browser(base_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


VIEWPORT = {"width": 1680, "height": 1000}


@pytest.fixture(scope="module")
def signed_in(browser, base_url):
    """The cookies of one login, shared by the tests (logins are throttled per address)."""
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    log_in(opened)
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def page(browser, base_url, signed_in):
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT, storage_state=signed_in)
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def log_in(page) -> None:
    page.goto("/login")
    page.fill("input[name=login]", LOGIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))


def test_login_lands_on_the_dashboard(browser, base_url):
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
    page = context.new_page()
    log_in(page)
    assert page.locator("h1").inner_text().startswith("Welcome")
    assert page.locator("a", has_text="Log out").count() == 0  # a button in a form
    assert page.locator("button", has_text="Log out").is_visible()
    context.close()


def test_create_with_a_validation_error_then_success(page):
    page.goto("/r/customer/new")
    page.click("form.record-form button[type=submit]")
    assert page.locator(".field-errors").first.is_visible()
    page.fill("#f-name", "Playwright Trading")
    page.click("form.record-form button[type=submit]")
    page.wait_for_url(re.compile(r"/r/customer/\d+$"))
    assert "Playwright Trading" in page.locator("h1").inner_text()


def test_reference_picker_searches_as_you_type(page):
    page.goto("/r/contact/new")
    combo = page.locator("#f-customer-q[role=combobox]")
    combo.fill("Zero")
    page.locator(".picker-list:not([hidden])[aria-busy=false] [role=option]",
                 has_text="Zero Industries").click()
    assert page.locator("#f-customer option:checked").inner_text().startswith("Zero Industries")
    assert combo.input_value().startswith("Zero Industries")


def test_lines_editor_total_updates_live(page):
    page.goto("/r/opportunity/new")
    page.fill("[name='lines-0-quantity']", "3")
    page.fill("[name='lines-0-unit_price']", "250")
    total = page.locator("output.lines-total").first
    page.wait_for_function("() => document.querySelector('output.lines-total').value !== ''")
    assert "750" in total.inner_text()


def test_kanban_drag_refused_by_the_guard_then_accepted(page):
    page.goto("/r/opportunity/kanban")
    card = page.locator(".board-card", has_text="Zero deal")
    card.drag_to(page.locator(".board-column[data-stage=won]"), source_position=GRIP)
    message = page.locator("#board-message")
    message.wait_for(state="visible")
    assert "A won opportunity needs its amount." in message.inner_text()
    assert page.locator(".board-column[data-stage=proposal] .board-card",
                        has_text="Zero deal").count() == 1
    moving = page.locator(".board-card", has_text="远方咨询年度服务")
    with page.expect_navigation():
        moving.drag_to(page.locator(".board-column[data-stage=needs]"), source_position=GRIP)
    assert page.locator(".board-column[data-stage=needs] .board-card",
                        has_text="远方咨询年度服务").count() == 1


def test_dashboard_chart_is_drawn(page):
    page.goto("/")
    chart = page.locator("figure.chart svg").first
    assert chart.is_visible()
    assert page.locator("figure.chart svg rect.bar").count() >= 3
    box = page.locator("figure.chart svg rect.bar").first.bounding_box()
    assert box and box["width"] > 0


def test_switching_to_chinese(page):
    page.goto("/profile")
    page.select_option("select[name=language]", "zh")
    page.locator("form:has(select[name=language]) button[type=submit]").click()
    page.wait_for_url(re.compile(r"/profile$"))
    page.goto("/")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "销售漏斗" in page.content()
    page.goto("/profile")
    page.select_option("select[name=language]", "en")
    page.locator("form:has(select[name=language]) button[type=submit]").click()


def test_visible_if_applies_live(page):
    page.goto("/r/activity/new")
    location = page.locator("[data-field=location]")
    next_step = page.locator("[data-field=next_step]")
    outcome_required = page.locator("[data-field=outcome] .req")
    assert location.is_hidden() and next_step.is_hidden() and outcome_required.is_hidden()
    page.select_option("#f-kind", "visit")
    location.wait_for(state="visible")
    page.check("#f-done")
    next_step.wait_for(state="visible")  # visible_if: done
    outcome_required.wait_for(state="visible")  # required_if: done and a visit
    page.select_option("#f-kind", "call")
    location.wait_for(state="hidden")
    outcome_required.wait_for(state="hidden")


def test_quick_create_in_a_few_keystrokes(page):
    page.goto("/r/customer")
    page.keyboard.press("q")
    form = page.locator("form.quick-form[data-quick=visit]")
    search = form.locator("input.picker-input[role=combobox]")
    search.wait_for(state="visible")
    assert page.evaluate("() => document.activeElement.classList.contains('picker-input')")
    page.keyboard.type("Zero")
    form.locator(".picker-list:not([hidden])[aria-busy=false] [role=option]",
                 has_text="Zero Industries").wait_for()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")  # chooses the highlighted customer, does not send the form
    assert form.locator("select option:checked").inner_text().startswith("Zero Industries")
    form.locator("input[name$='-subject']").fill("Quick visit from the header")
    form.locator("textarea[name$='-outcome']").fill("Wants a quote")
    form.locator("input[name$='-subject']").press("Enter")
    page.wait_for_url(re.compile(r"/r/customer$"))
    assert "Quick visit from the header" in page.locator(".flash").inner_text()


def test_a_big_import_follows_its_progress_then_shows_its_report(page, served):
    """The run page polls its status while a worker imports, then shows the report by itself."""
    _, site = served
    data = "名称,电话\n" + "".join(f"Browser import {i},021 5555 {i:04d}\n"
                                   for i in range(BACKGROUND_ROWS))
    page.goto("/r/customer/import")
    page.set_input_files("input[type=file]", files=[{
        "name": "big.csv", "mimeType": "text/csv", "buffer": data.encode()}])
    page.click("button[value=check]")
    page.wait_for_url(re.compile(r"/r/customer/imports/\d+$"))
    assert page.locator("#import-bar").is_visible()
    assert "Waiting for a worker" in page.locator("#import-status").inner_text()
    NotificationWorker(site).run_imports()  # what `crm worker` does on its next poll
    report = page.locator(".import-report")
    report.wait_for()  # no reload by hand: the page's script saw the run finish
    assert f"{BACKGROUND_ROWS} to create" in report.inner_text()
    assert page.locator("#import-bar").count() == 0
    assert site.records.count(site.users.actor(LOGIN), "customer",
                              search="Browser import") == 0  # a check writes nothing
