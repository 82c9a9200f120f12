"""A salesperson's phone and an owner's desktop, measured in a real browser on the demo.

The generated demo company (300 customers, an owner, managers and salespeople in
teams) is served once for the module; Chromium opens it on a 390×844 phone in
Chinese as a salesperson and on a 1440×900 desktop in English as an owner.  On
home, the lists, a record, the new form, the kanban board, the calendar (week
and month) and the dashboard it measures what a person notices: nothing wider
than the window, no console or Content Security Policy error, header controls of
at least 40 px, badges readable (WCAG contrast ≥ 4.5:1), phone numbers and
e-mails as ``tel:``/``mailto:`` links.  Then the paths the issue found broken:
marking a deal lost from the board (a sheet with nothing chosen, field-level
errors, the server still deciding), the calendar coloured and filtered by
person, and the keyboard's way to New.  Screenshots go to /tmp for a person to
look at.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from engine.context import SetClock
from engine.storage.queries import Filter
from packs.core.demo_generator import DEMO_PASSWORD, generate
from tests.browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    demo_site,
    require_chromium,
    serve,
    with_contrast,
)

pytestmark = pytest.mark.browser
OWNER, SALES, MANAGER = "owner-en", "na.li", "haiyan.ma"  # the generator's east team
SIZES = [pytest.param(PHONE, SALES, id="phone-zh"),
         pytest.param(DESKTOP, OWNER, id="desktop-en")]

#: WCAG 2 contrast of every visible badge against the first opaque background behind it.
BADGES_JS = with_contrast("""
  return [...document.querySelectorAll('.badge')]
    .filter((el) => el.getClientRects().length)
    .map((el) => ({text: el.textContent.trim().slice(0, 20), ratio: contrast(el)}));
""")

#: The size of every visible control of the header a finger or a pointer aims at.
HEADER_TARGETS_JS = """
() => [...document.querySelectorAll(
    '.topbar .nav-button, .topbar .brand, .topbar summary, .topbar .user-menu a,'
    + ' .topbar .user-menu button')]
  .filter((el) => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden')
  .map((el) => {
    const box = el.getBoundingClientRect();
    return {what: el.className + ' ' + el.textContent.trim().slice(0, 12),
            width: box.width, height: box.height};
  })
"""

OVERFLOW_JS = """
() => ({scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth})
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    require_chromium()
    clock = SetClock(dt.datetime.now(dt.UTC))
    site = demo_site(tmp_path_factory.mktemp("phone") / "site", clock=clock)
    generate(site, 300, seed=7)
    site.users.create(OWNER, password=DEMO_PASSWORD, display_name="Olivia Owner",
                      language="en", roles=["owner"])
    yield site
    site.close()


@pytest.fixture(scope="module")
def base_url(demo):
    with serve(demo) as url:
        yield url


@pytest.fixture(scope="module")
def browser(base_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Console:
    """Console errors, uncaught exceptions and CSP refusals of one browser context."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def take(self) -> list[str]:
        found, self.errors = self.errors, []
        return found


def signed_in(browser, base_url, viewport, login, *, script=True):
    context = browser.new_context(base_url=base_url, viewport=viewport,
                                  java_script_enabled=script)
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = Console(page)
    page.goto("/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    return context, page, console


def first_record(demo, login, entity, **where):
    actor = demo.users.actor(login)
    filters = [Filter(k, "eq", v) for k, v in where.items()]
    return demo.records.list(actor, entity, filters=filters, limit=1, with_total=False).rows[0]


@pytest.mark.parametrize(("viewport", "login"), SIZES)
def test_every_page_fits_has_no_console_error_big_targets_and_readable_badges(
        browser, base_url, demo, viewport, login):
    customer = next(r for r in demo.records.list(demo.users.actor(login), "customer", limit=200,
                                                 with_total=False).rows if r.get("phone"))
    pages = {
        "home": "/", "customers": "/r/customer", "opportunities": "/r/opportunity",
        "activities": "/r/activity", "contacts": "/r/contact",
        "customer": f"/r/customer/{customer['id']}", "new-customer": "/r/customer/new",
        "kanban": "/r/opportunity/kanban", "calendar-week": "/calendar",
        "calendar-month": "/calendar?span=month", "dashboard": "/dashboards/sales",
    }
    context, page, console = signed_in(browser, base_url, viewport, login)
    problems: dict[str, list] = {}
    for name, path in pages.items():
        answer = page.goto(path)
        assert answer.status == 200, (name, answer.status)
        page.wait_for_load_state("load")
        page.screenshot(path=f"/tmp/page-{viewport['width']}-{name}.png", full_page=False)
        found = []
        size = page.evaluate(OVERFLOW_JS)
        if size["scroll"] > size["inner"]:
            found.append(("overflow", size))
        found += [("console", text) for text in console.take()]
        found += [("target", t) for t in page.evaluate(HEADER_TARGETS_JS)
                  if t["width"] < 40 or t["height"] < 40]
        found += [("badge", b) for b in page.evaluate(BADGES_JS) if b["ratio"] < 4.5]
        if found:
            problems[name] = found
    assert problems == {}
    # the header has its controls (the menu button only on a phone)
    targets = page.evaluate(HEADER_TARGETS_JS)
    assert len(targets) >= (5 if viewport is PHONE else 4)
    context.close()


@pytest.mark.parametrize(("viewport", "login"), SIZES)
def test_phone_numbers_and_emails_are_links_on_the_record_and_the_list(
        browser, base_url, demo, viewport, login):
    customer = first_record(demo, "demo", "customer", name="华信科技有限公司")
    context, page, _ = signed_in(browser, base_url, viewport, OWNER)
    page.goto(f"/r/customer/{customer['id']}")
    assert page.locator("a[href='tel:+862150801234']").count() >= 1
    assert page.locator("a[href='mailto:info@huaxin.example.cn']").count() >= 1
    page.goto("/r/contact")
    assert page.locator("main table.records a[href^='tel:']").count() >= 1
    link = page.locator("main table.records a[href^='tel:']").first
    box = link.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    context.close()


def test_the_phone_list_keeps_its_filters_behind_one_control(browser, base_url):
    context, page, console = signed_in(browser, base_url, PHONE, SALES)
    page.goto("/r/opportunity")
    panel = page.locator("#filter-panel")
    assert panel.get_attribute("open") is None
    assert page.locator("form.filters").is_visible() is False
    assert page.locator("form#bulk-form").is_visible() is False
    # the first screen shows records, not filters: the first card starts in its top third
    first_row = page.locator("table.records tbody tr").first
    assert first_row.bounding_box()["y"] < PHONE["height"] / 3
    page.screenshot(path="/tmp/phone-390-list-first-screen.png")
    panel.locator("summary").click()
    assert page.locator("form.filters").is_visible()
    size = page.evaluate(OVERFLOW_JS)
    assert size["scroll"] <= size["inner"]
    page.screenshot(path="/tmp/phone-390-filters-open.png")
    assert console.take() == []
    context.close()
    context, page, _ = signed_in(browser, base_url, DESKTOP, OWNER)
    page.goto("/r/opportunity")
    assert page.locator("form.filters").is_visible()  # a desktop has the room
    context.close()


def _board_card(page, title):
    return page.locator(".board-card", has=page.locator(".card-title", has_text=title))


def _open_deal(demo, login):
    """A deal of ``login``'s still in an open stage, to be lost on the board."""
    actor = demo.users.actor(login)
    rows = demo.records.list(actor, "opportunity", limit=500, with_total=False).rows
    return next(r for r in rows if r["stage"] in ("initial", "needs", "proposal", "negotiation")
                and r["owner"] == actor.user_id)


def test_a_phone_marks_a_deal_lost_from_the_board_in_a_sheet(browser, base_url, demo):
    deal = _open_deal(demo, SALES)
    context, page, console = signed_in(browser, base_url, PHONE, SALES)
    page.goto("/r/opportunity/kanban")
    card = page.locator(f".board-card[data-id='{deal['id']}']")
    card.locator("select[name=to]").select_option("lost")
    card.locator("form.card-move button[type=submit]").click()
    sheet = page.locator("#move-dialog")
    sheet.wait_for(state="visible")
    reason = sheet.locator("select[name=lost_reason]")
    assert reason.input_value() == ""  # nothing chosen for the user
    assert "丢单原因" in sheet.inner_text()
    box = sheet.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5
    assert box["y"] + box["height"] <= PHONE["height"] + 0.5
    page.screenshot(path="/tmp/phone-390-kanban-sheet.png")

    with page.expect_response(re.compile(r"/kanban/move$")) as refusal:
        sheet.locator("button[type=submit]").click()  # no reason: the server refuses
    assert refusal.value.status == 409
    errors = sheet.locator(".has-error:has(select[name=lost_reason]) .field-errors")
    errors.wait_for(state="visible")
    assert errors.inner_text().strip()  # the reason's own message, under the reason
    assert reason.get_attribute("aria-invalid") == "true"
    assert demo.records.get(demo.users.actor(SALES), "opportunity", deal["id"])["stage"] \
        == deal["stage"]
    page.screenshot(path="/tmp/phone-390-kanban-sheet-error.png")
    # the browser logs the refused request itself; nothing else may be logged
    assert {text.split(":")[0] for text in console.take()} <= {"Failed to load resource"}

    sheet.locator("select[name=lost_reason]").select_option("competitor")
    with page.expect_navigation():
        sheet.locator("button[type=submit]").click()
    moved = demo.records.get(demo.users.actor(SALES), "opportunity", deal["id"])
    assert (moved["stage"], moved["lost_reason"]) == ("lost", "competitor")
    assert page.locator(f".board-column[data-stage=lost] .board-card[data-id='{deal['id']}']") \
        .count() == 1
    assert console.take() == []
    context.close()


def test_a_desktop_drag_to_lost_asks_with_nothing_chosen_and_cancel_moves_nothing(
        browser, base_url, demo):
    deal = _open_deal(demo, "na.zhu")
    context, page, console = signed_in(browser, base_url, DESKTOP, OWNER)
    page.goto("/r/opportunity/kanban")
    card = page.locator(f".board-card[data-id='{deal['id']}']")
    dragged = page.evaluate_handle("() => new DataTransfer()")  # an HTML5 drag and drop
    card.dispatch_event("dragstart", {"dataTransfer": dragged})
    lost = page.locator(".board-column[data-stage=lost] .board-head")
    lost.dispatch_event("dragover", {"dataTransfer": dragged})
    lost.dispatch_event("drop", {"dataTransfer": dragged})
    sheet = page.locator("#move-dialog")
    sheet.wait_for(state="visible")
    assert sheet.locator("select[name=lost_reason]").input_value() == ""
    assert "Lost reason" in sheet.inner_text()
    page.screenshot(path="/tmp/desktop-1440-kanban-sheet.png")
    sheet.locator("#move-cancel").click()
    sheet.wait_for(state="hidden")
    assert demo.records.get(demo.users.actor(OWNER), "opportunity", deal["id"])["stage"] \
        == deal["stage"]
    assert console.take() == []
    context.close()


def test_without_script_the_board_asks_on_a_page_of_its_own(browser, base_url, demo):
    deal = _open_deal(demo, "min.lin")
    context, page, _ = signed_in(browser, base_url, PHONE, "min.lin", script=False)
    page.goto("/r/opportunity/kanban")
    card = page.locator(f".board-card[data-id='{deal['id']}']")
    card.locator("select[name=to]").select_option("lost")
    card.locator("form.card-move button[type=submit]").click()
    page.wait_for_load_state()
    form = page.locator("form.move-page")
    assert form.locator("select[name=lost_reason]").input_value() == ""
    assert page.locator(".flash-error").count() == 1
    form.locator("button[type=submit]").click()  # still no reason: its field says so
    page.wait_for_load_state()
    assert page.locator("form.move-page .has-error:has(select[name=lost_reason]) .field-errors") \
        .inner_text().strip()
    page.locator("form.move-page select[name=lost_reason]").select_option("price")
    page.locator("form.move-page button[type=submit]").click()
    page.wait_for_url(re.compile(r"/r/opportunity/kanban(\?|$)"))
    assert page.locator(".flash-success").count() == 1
    moved = demo.records.get(demo.users.actor("min.lin"), "opportunity", deal["id"])
    assert (moved["stage"], moved["lost_reason"]) == ("lost", "price")
    context.close()


def _event_colours(page):
    return page.evaluate("""() => [...document.querySelectorAll('.calendar-event')].map((el) => ({
        owner: Number(el.dataset.owner),
        colour: getComputedStyle(el).borderLeftColor}))""")


def test_the_owners_calendar_colours_events_by_person_with_a_legend_and_a_filter(
        browser, base_url, demo):
    context, page, console = signed_in(browser, base_url, DESKTOP, OWNER)
    for span in ("week", "month"):
        page.goto(f"/calendar?span={span}")
        assert console.take() == [], span
        events = _event_colours(page)
        assert len(events) >= 10, span
        owners = {e["owner"] for e in events}
        assert len(owners) >= 3, span
        colours = {e["owner"]: e["colour"] for e in events}
        assert all(e["colour"] == colours[e["owner"]] for e in events), span  # one per person
        # people apart in the palette (ids apart modulo its 12 colours) look apart
        assert len(set(colours.values())) == len({o % 12 for o in owners}), span
        assert page.locator(".calendar-legend .legend-item").count() == len(owners)
        page.screenshot(path=f"/tmp/desktop-1440-calendar-{span}.png")
    # one person: only their events, in their colour
    person = demo.users.get(SALES)
    page.goto("/calendar?span=month")
    page.locator(".calendar-filters select[name=owner]").select_option(str(person["id"]))
    page.locator(".calendar-filters button[type=submit]").click()
    page.wait_for_url(re.compile(r"owner="))
    shown = _event_colours(page)
    assert shown and {e["owner"] for e in shown} == {person["id"]}
    assert page.locator(".calendar-legend .legend-item").all_inner_texts() == [
        person["display_name"]]
    # a team: only its people
    page.goto("/calendar?span=month")
    page.locator(".calendar-filters select[name=team]").select_option(label="华东销售部")
    page.locator(".calendar-filters button[type=submit]").click()
    page.wait_for_url(re.compile(r"team="))
    east = {demo.users.get(login)["id"] for login in ("haiyan.ma", "na.li", "min.lin", "lihua.sun")}
    shown = {e["owner"] for e in _event_colours(page)}
    assert shown and shown <= east
    assert console.take() == []
    context.close()


def test_a_manager_filters_their_team_and_a_salesperson_has_no_filter(browser, base_url, demo):
    context, page, console = signed_in(browser, base_url, PHONE, MANAGER)
    page.goto("/calendar")
    names = page.locator(".calendar-filters select[name=owner] option").all_inner_texts()
    assert set(names[1:]) == {"马海燕", "李娜", "林敏", "孙丽华"}
    page.screenshot(path="/tmp/phone-390-calendar-manager.png", full_page=True)
    assert console.take() == []
    context.close()
    context, page, console = signed_in(browser, base_url, PHONE, SALES)
    page.goto("/calendar")
    assert page.locator(".calendar-filters select[name=owner]").count() == 0
    assert console.take() == []
    context.close()


def test_the_keyboard_skips_to_content_reaches_new_and_starts_in_the_first_field(
        browser, base_url):
    context, page, _ = signed_in(browser, base_url, DESKTOP, OWNER)
    page.goto("/r/customer")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    assert page.locator(".skip-link").is_visible()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.getAttribute('href')")
    assert focused == "/r/customer/new"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/r/customer/new$"))
    assert page.evaluate("() => document.activeElement.name") == "name"
    context.close()
    context, page, _ = signed_in(browser, base_url, PHONE, SALES)
    page.goto("/r/customer")
    page.keyboard.press("Tab")  # the skip link, then the menu button of the phone header
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "nav-toggle"
    page.keyboard.press("Space")
    assert page.locator(".sidebar").is_visible()
    context.close()
