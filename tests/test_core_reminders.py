"""The core pack's reminders and notifications, and the inbox page with its unread count."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from sqlalchemy import select

from engine.context import FixedClock
from engine.notifications.inbox import InboxService
from engine.notifications.worker import NotificationWorker
from engine.web import create_app
from tests.support import open_migrated, write_site
from tests.web_support import login, post

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run

NINE = dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC)  # Monday 09:00 in Shanghai
PASSWORD = "password-1"


@pytest.fixture
def clock():
    return FixedClock(NINE)


@pytest.fixture
def site(tmp_path, db_url, clock):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["core"]), clock=clock)
    opened.users.create("mgr", password=PASSWORD, roles=["manager"], email="mgr@example.com")
    opened.users.create("wang", password=PASSWORD, roles=["sales"], language="zh")
    opened.users.create("li", password=PASSWORD, roles=["sales"], email="li@example.com")
    opened.users.teams.create("east", manager="mgr")
    opened.users.teams.add_member("east", "wang")
    yield opened
    opened.close()


def outbox(site, **where):
    table = site.schema.system("crm_outbox")
    query = select(table).order_by(table.c.id)
    for key, value in where.items():
        query = query.where(table.c[key] == value)
    with site.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def run(site):
    return NotificationWorker(site).run_once()


def test_a_complaint_close_to_its_deadline_reminds_its_owner_once_per_stage(site, clock):
    wang = site.users.actor("wang")
    customer = site.records.create(wang, "customer", {"name": "华信科技有限公司"})
    case = site.records.create(wang, "complaint", {"subject": "机柜交付延迟",
                                                   "customer": customer["id"]})
    clock.advance(hours=21, minutes=59)
    run(site)
    assert outbox(site) == []
    clock.advance(minutes=1)  # 22 hours in: two hours before the 24-hour promise
    run(site)
    run(site)
    rows = outbox(site, source="complaint_sla")
    assert [(r["channel"], r["status"], r["reason"]) for r in rows] == [
        ("in_app", "sent", None), ("email", "skipped", "no e-mail address")]
    [note] = InboxService(site.schema, site.engine, site.clock).messages(wang)
    assert note["subject"] == f"投诉 {case['number']} 须在 2026-03-10 09:00 前处理"
    assert note["body"] == "机柜交付延迟(已受理)须在 2026-03-10 09:00 前处理。"
    # acknowledged: a new promise (2 days), reminded 2 hours before it, once
    site.workflows.transition(wang, "complaint", case["id"], "acknowledged")
    clock.advance(days=2, hours=-2)
    run(site)
    run(site)
    assert len(outbox(site, source="complaint_sla", channel="in_app")) == 2


def test_a_follow_up_due_tomorrow_reminds_its_owner_unless_done(site, clock):
    li = site.users.actor("li")
    due = NINE + dt.timedelta(days=3, hours=5)
    site.records.create(li, "activity", {"subject": "Send the quote", "kind": "task",
                                         "due_at": due})
    done = site.records.create(li, "activity", {"subject": "Call back", "kind": "task",
                                                "due_at": due, "done": True})
    site.records.create(li, "activity", {"subject": "Visit", "kind": "call", "due_at": due})
    clock.current = due - dt.timedelta(days=1, minutes=1)
    run(site)
    assert outbox(site) == []
    clock.current = due - dt.timedelta(days=1)
    run(site)
    rows = outbox(site, source="follow_up_due")
    assert [(r["channel"], r["address"], r["status"]) for r in rows] == [
        ("in_app", None, "sent"), ("email", "li@example.com", "failed")]  # no SMTP set up
    assert rows[0]["title"] == "Due tomorrow: Send the quote"
    assert rows[0]["body"] == 'The follow-up "Send the quote" is due on 2026-03-12 14:00.'
    assert done["id"] not in {r["record_id"] for r in rows}


def test_an_idle_opportunity_reminds_its_owner_once_per_quiet_spell(site, clock):
    li = site.users.actor("li")
    customer = site.records.create(li, "customer", {"name": "Acme"})
    opp = site.records.create(li, "opportunity", {"name": "ERP", "customer": customer["id"],
                                                  "amount": "1000"})
    limit = site.registry.workflows["opportunity_sales"].stage_of(opp).stale_after
    assert limit == dt.timedelta(days=14)
    clock.advance(seconds=limit.total_seconds() - 60)
    run(site)
    assert outbox(site, source="opportunity_idle") == []
    clock.advance(minutes=2)
    run(site)
    run(site)
    assert len(outbox(site, source="opportunity_idle")) == 1
    site.records.update(li, "opportunity", opp["id"], {"amount": "2000"})  # activity
    clock.advance(seconds=limit.total_seconds() + 60)
    run(site)
    assert len(outbox(site, source="opportunity_idle")) == 2


# -- workflow notify: the same outbox, the inbox page ------------------------------------


def test_escalating_a_complaint_notifies_managers_and_the_owner_in_their_inbox(site, clock):
    wang = site.users.actor("wang")
    customer = site.records.create(wang, "customer", {"name": "金鼎装饰"})
    case = site.records.create(wang, "complaint", {"subject": "施工噪音",
                                                   "customer": customer["id"]})
    site.workflows.transition(wang, "complaint", case["id"], "escalated")
    rows = outbox(site, kind="notify")
    mgr = site.users.actor("mgr")
    assert sorted((r["user_id"], r["language"], r["title"]) for r in rows) == sorted([
        (mgr.user_id, "en", "Escalated: 施工噪音"), (wang.user_id, "zh", "投诉升级:施工噪音")])
    run(site)
    run(site)
    inbox = InboxService(site.schema, site.engine, site.clock)
    assert inbox.unread_count(mgr) == inbox.unread_count(wang) == 1

    app = create_app(site, testing=True)
    client = app.test_client()
    assert login(client, "mgr", PASSWORD).status_code == 302
    home = client.get("/").get_data(as_text=True)
    assert re.search(r'class="inbox-link">Inbox <span class="badge" data-unread="1">1</span>',
                     home)
    page = client.get("/inbox").get_data(as_text=True)
    assert "Escalated: 施工噪音" in page and "施工噪音 was escalated." in page
    assert f"/r/complaint/{case['id']}" in page
    # mgr cannot mark wang's notification; marking all marks only mgr's own
    [wangs] = inbox.messages(wang)
    post(client, "/inbox/read", {"id": str(wangs["id"])})
    assert inbox.unread_count(wang) == 1 and inbox.unread_count(mgr) == 1
    assert post(client, "/inbox/read").status_code == 302
    assert inbox.unread_count(mgr) == 0 and inbox.unread_count(wang) == 1
    assert "1 notification(s) marked as read." in client.get("/inbox").get_data(as_text=True)
    home = client.get("/").get_data(as_text=True)
    assert 'data-unread' not in home
    # the digest choice
    post(client, "/inbox/digest", {"digest": "on"})
    assert inbox.digest(mgr) is True
    assert "now come as a daily digest" in client.get("/inbox").get_data(as_text=True)
    post(client, "/inbox/digest", {})
    assert inbox.digest(mgr) is False
    # in Chinese for wang
    other = app.test_client()
    login(other, "wang", PASSWORD)
    page = other.get("/inbox").get_data(as_text=True)
    assert "消息" in page and "投诉升级:施工噪音" in page and "全部标为已读" in page


def test_the_inbox_needs_a_login_and_a_csrf_token(site):
    client = create_app(site, testing=True).test_client()
    assert client.get("/inbox").status_code == 302
    login(client, "li", PASSWORD)
    assert client.post("/inbox/read").status_code == 400


def test_the_embedded_worker_of_crm_serve_delivers_in_the_background(site):
    from engine.notifications.worker import start_embedded

    wang = site.users.actor("wang")
    customer = site.records.create(wang, "customer", {"name": "金鼎装饰"})
    case = site.records.create(wang, "complaint", {"subject": "施工噪音",
                                                   "customer": customer["id"]})
    inbox = InboxService(site.schema, site.engine, site.clock)
    thread, stop = start_embedded(site, poll=0.1)
    try:
        site.workflows.transition(wang, "complaint", case["id"], "escalated")
        deadline = time.monotonic() + 30
        while inbox.unread_count(wang) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert [m["subject"] for m in inbox.messages(wang)] == ["投诉升级:施工噪音"]


def test_the_manager_of_another_team_is_told_nothing_about_a_record_they_cannot_open(
        site, clock):
    site.users.create("mgr2", password=PASSWORD, roles=["manager"], email="mgr2@example.com")
    site.users.teams.create("west", manager="mgr2")
    site.users.teams.add_member("west", "li")
    wang, mgr, mgr2 = (site.users.actor(x) for x in ("wang", "mgr", "mgr2"))
    customer = site.records.create(wang, "customer", {"name": "金鼎装饰"})
    case = site.records.create(wang, "complaint", {"subject": "CONFIDENTIAL: 并购传闻",
                                                   "customer": customer["id"]})
    report = site.records.create(wang, "sales_report", {
        "name": "CONFIDENTIAL week 11", "period_start": "2026-03-09", "period_end": "2026-03-15"})
    site.workflows.transition(wang, "complaint", case["id"], "escalated")
    site.workflows.transition(wang, "sales_report", report["id"], "submitted")
    run(site)
    inbox = InboxService(site.schema, site.engine, site.clock)
    assert inbox.messages(mgr2) == []
    assert outbox(site, user_id=mgr2.user_id) == []
    assert sorted(m["subject"] for m in inbox.messages(mgr)) == [
        "Escalated: CONFIDENTIAL: 并购传闻", "Report submitted: CONFIDENTIAL week 11"]
    # what the other manager would have been shown is what they may not open
    client = create_app(site, testing=True).test_client()
    assert login(client, "mgr2", PASSWORD).status_code == 302
    assert client.get(f"/r/complaint/{case['id']}").status_code == 404
    assert client.get(f"/r/sales_report/{report['id']}").status_code == 404
    assert "CONFIDENTIAL" not in client.get("/inbox").get_data(as_text=True)
