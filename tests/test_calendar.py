"""The calendar and the phone feed: only what the actor may see, moved only as an update."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import icalendar
import pytest
import vobject

from engine.context import FixedClock
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.web.app import create_app
from tests.support import open_migrated, write_site
from tests.web_support import login, post

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run

NOW = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in Shanghai


@pytest.fixture
def site(tmp_path: Path, db_url: str):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["core"]), clock=FixedClock(NOW))
    for name in ("wang", "li"):
        opened.users.create(name, password="password-1", roles=["sales"])
    opened.users.create("mgr", password="password-1", roles=["manager"])
    opened.users.teams.create("east", manager="mgr")
    opened.users.teams.add_member("east", "wang")
    yield opened
    opened.close()


def _visit(site, login_name: str, subject: str, when: dt.datetime) -> dict:
    actor = site.users.actor(login_name)
    customer = site.records.create(actor, "customer", {"name": f"{subject} Co", "kind": "client"})
    return site.records.create(actor, "activity", {
        "subject": subject, "kind": "visit", "customer": customer["id"],
        "due_at": when.isoformat()})


def test_events_hold_only_what_the_actor_may_see(site):
    mine = _visit(site, "wang", "拜访华信", NOW + dt.timedelta(days=1))
    _visit(site, "li", "Li's visit", NOW + dt.timedelta(days=2))
    _visit(site, "wang", "Next month", NOW + dt.timedelta(days=40))
    week = site.calendar.events(site.users.actor("wang"), NOW, NOW + dt.timedelta(days=7))
    assert [(e.entity, e.title) for e in week if e.entity == "activity"] == [("activity", "拜访华信")]
    event = next(e for e in week if e.entity == "activity")
    assert event.record_id == mine["id"] and event.color == "visit"
    assert event.end - event.start == dt.timedelta(hours=1) and not event.all_day
    manager = site.calendar.events(site.users.actor("mgr"), NOW, NOW + dt.timedelta(days=7))
    assert {e.title for e in manager if e.entity == "activity"} == {"拜访华信"}  # not li's


def test_moving_an_event_is_an_update_with_every_check(site):
    visit = _visit(site, "wang", "Move me", NOW + dt.timedelta(days=1))
    wang = site.users.actor("wang")
    moved = site.calendar.reschedule(wang, "activity", visit["id"], "2026-11-26T15:00:00+08:00",
                                     version=visit["version"])
    assert moved["due_at"] == dt.datetime(2026, 11, 26, 7, 0, tzinfo=dt.UTC)
    with pytest.raises(Conflict):  # the page showed an older version
        site.calendar.reschedule(wang, "activity", visit["id"], "2026-11-27T15:00:00+08:00",
                                 version=visit["version"])
    with pytest.raises(ValidationFailed):
        site.calendar.reschedule(wang, "activity", visit["id"], "not a date",
                                 version=moved["version"])
    with pytest.raises(NotFound):
        site.calendar.reschedule(site.users.actor("li"), "activity", visit["id"],
                                 "2026-11-27T15:00:00+08:00")
    again = site.records.get(wang, "activity", visit["id"])
    assert again["due_at"] == moved["due_at"] and again["version"] == moved["version"]


def test_the_feed_parses_with_two_libraries_and_holds_only_the_users_events(site):
    _visit(site, "wang", "拜访金鼎", NOW + dt.timedelta(days=3))
    _visit(site, "li", "Li's secret visit", NOW + dt.timedelta(days=3))
    token = site.calendar.create_feed(site.users.actor("wang"))
    owner = site.calendar.feed_owner(token)
    data = site.calendar.feed(site.users.actor(owner), site_name="Acme")

    parsed = icalendar.Calendar.from_ical(data)
    summaries = [str(e["summary"]) for e in parsed.walk("VEVENT")]
    assert summaries == ["拜访金鼎"]
    (event,) = parsed.walk("VEVENT")
    assert event["dtstart"].dt == NOW + dt.timedelta(days=3)

    other = vobject.readOne(data.decode("utf-8"))
    assert [e.summary.value for e in other.vevent_list] == ["拜访金鼎"]
    assert other.vevent.dtend.value - other.vevent.dtstart.value == dt.timedelta(hours=1)

    site.calendar.create_feed(site.users.actor("wang"))  # a new address retires the old one
    with pytest.raises(NotFound):
        site.calendar.feed_owner(token)


def test_the_web_calendar_feed_and_moves(site):
    visit = _visit(site, "wang", "Web visit", NOW + dt.timedelta(days=1))
    app = create_app(site, testing=True)
    wang = app.test_client()
    assert login(wang, "wang", "password-1").status_code == 302
    page = wang.get("/calendar?start=2026-11-23")
    assert page.status_code == 200 and "Web visit" in page.get_data(as_text=True)
    answer = post(wang, f"/calendar/move/activity/{visit['id']}",
                  {"start": "2026-11-25T10:00", "version": str(visit["version"])})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["start"].startswith("2026-11-25T02:00")
    stale = post(wang, f"/calendar/move/activity/{visit['id']}",
                 {"start": "2026-11-26T10:00", "version": str(visit["version"])})
    assert stale.status_code == 409

    made = post(wang, "/calendar/feed")
    assert made.status_code == 200
    url = made.get_data(as_text=True).split('id="feed-url" value="')[1].split('"')[0]
    anonymous = app.test_client()
    feed = anonymous.get(url.split("localhost")[-1])
    assert feed.status_code == 200 and feed.headers["Content-Type"].startswith("text/calendar")
    assert b"Web visit" in feed.data
    assert anonymous.get("/calendar/feed/not-a-real-token.ics").status_code == 404
