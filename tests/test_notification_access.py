"""Notifications reach only users who may read the record, and show them only what they see.

A small help-desk pack: managers see their team's cases, agents their own
and never the ``margin`` field.  Escalating a case notifies
``role:manager``, the owner and the creator (inbox and e-mail); a
reminder names the same people and texts the customer's phone (users have
no phone on file: SMS only reaches addresses read from the record).  Each test is written as the manager of
another team (or a user who lost the record) would hope to read what they
should not, against a real SMTP server and a local SMS gateway.
"""

from __future__ import annotations

import datetime as dt
import logging
from email.header import decode_header, make_header

import pytest
from sqlalchemy import select

from engine.context import FixedClock
from engine.errors import NotFound
from engine.notifications.inbox import InboxService
from engine.notifications.reminders import ReminderScheduler
from engine.notifications.worker import NotificationWorker
from tests.notification_support import (
    START,
    SmsGateway,
    SmtpSink,
    notification_settings,
    open_club_site,
)

SECRET = "CONFIDENTIAL-42"

DESK_FILES = {
    "entities/case.yaml": """
        entity: case
        label: {en: Case, zh: 工单}
        title_field: subject
        fields:
          subject: {type: string, required: true, label: {en: Subject, zh: 主题}}
          margin: {type: string, label: {en: Margin, zh: 毛利}}
          due_on: {type: date, label: {en: Due on, zh: 到期日}}
          review_on: {type: date, label: {en: Review on, zh: 复核日}}
          phone: {type: phone, label: {en: Customer phone, zh: 客户电话}}
    """,
    "roles.yaml": """
        roles:
          manager:
            label: {en: Manager, zh: 经理}
            entities:
              "*": {rights: all, scope: team}
          agent:
            label: {en: Agent, zh: 坐席}
            entities:
              "*":
                rights: [read, create, update, transition]
                scope: own
                fields: {margin: hidden}
    """,
    "workflows/case.yaml": """
        workflow: case_flow
        entity: case
        stages:
          open: {label: {en: Open, zh: 处理中}}
          escalated:
            label: {en: Escalated, zh: 已升级}
            on_enter:
              - notify:
                  to: ["role:manager", owner, creator]
                  channels: [in_app, email]
                  subject: {en: "Escalated: {subject}", zh: "升级:{subject}"}
                  message: {en: "{subject} was escalated. Margin: {margin}.",
                            zh: "{subject} 已升级。毛利:{margin}。"}
          submitted:
            label: {en: Submitted, zh: 已提交}
            on_enter:
              - notify:
                  to: ["role:manager"]
                  channels: [in_app, email]
                  message: {en: "{subject} waits for review.", zh: "{subject} 等待审阅。"}
        transitions:
          escalate: {from: open, to: escalated}
          submit: {from: open, to: submitted}
          reopen: {from: [escalated, submitted], to: open}
    """,
    "reminders/case_due.yaml": """
        reminder: case_due
        entity: case
        schedule:
          date: {field: due_on, before: [1d]}
        to: [owner, creator, role:manager, phone:phone]
        channels: [in_app, email, sms]
        subject: {en: "Due tomorrow: {{ record.subject }}", zh: "明天到期:{{ record.subject }}"}
        message:
          en: "{{ record.subject }} is due on {{ record.due_on }}. Margin: {{ record.margin }}."
          zh: "{{ record.subject }} 将于 {{ record.due_on }} 到期。毛利:{{ record.margin }}。"
    """,
    "reminders/case_review.yaml": """
        reminder: case_review
        entity: case
        schedule:
          date: {field: review_on}
        to: [role:manager]
        message: {en: "Review {{ record.subject }}.", zh: "复核 {{ record.subject }}。"}
    """,
}


@pytest.fixture
def clock():
    return FixedClock(START)  # 2026-05-25 10:00 in Shanghai, after the digest hour


@pytest.fixture
def smtp():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def sms(monkeypatch):
    monkeypatch.setenv("CLUB_SMS_TOKEN", "secret-token")
    with SmsGateway() as gateway:
        yield gateway


def open_desk(tmp_path, db_url, clock, smtp, sms, files=DESK_FILES, **settings):
    site = open_club_site(tmp_path, db_url, clock, notification_settings(smtp, sms, **settings),
                          files=files)
    users = site.users
    users.create("boss", password=None, is_admin=True, email="boss@example.com")
    users.create("east_mgr", password=None, roles=["manager"], email="east@example.com")
    users.create("west_mgr", password=None, roles=["manager"], email="west@example.com")
    users.create("wang", password=None, roles=["agent"], email="wang@example.com")
    users.create("zhao", password=None, roles=["agent"], email="zhao@example.com")
    users.teams.create("east", manager="east_mgr")
    users.teams.add_member("east", "wang")
    users.teams.create("west", manager="west_mgr")
    users.teams.add_member("west", "zhao")
    return site


@pytest.fixture
def site(tmp_path, db_url, clock, smtp, sms):
    opened = open_desk(tmp_path, db_url, clock, smtp, sms)
    yield opened
    opened.close()


def actor(site, login):
    return site.users.actor(login)


def new_case(site, owner="wang", **values):
    """A case an agent opens; the administrator fills in the margin the agent may not see."""
    case = site.records.create(actor(site, owner), "case", {
        "subject": "Leak at dock 3", "phone": "+86 138 0000 0001", **values})
    site.records.update(actor(site, "boss"), "case", case["id"], {"margin": SECRET})
    return case


def outbox(site, **where):
    table = site.schema.system("crm_outbox")
    query = select(table).order_by(table.c.id)
    for key, value in where.items():
        query = query.where(table.c[key] == value)
    with site.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def inbox(site, login):
    return [(m["subject"], m["body"]) for m in
            InboxService(site.schema, site.engine, site.clock).messages(actor(site, login))]


def mail(smtp, address):
    return [(str(make_header(decode_header(m["Subject"]))),
             m.get_payload(decode=True).decode().strip()) for m in smtp.to(address)]


def uid(site, login):
    return actor(site, login).user_id


def test_an_escalation_reaches_the_managers_who_read_the_case_and_nobody_else(
        site, smtp, sms):
    case = new_case(site)
    site.workflows.transition(actor(site, "wang"), "case", case["id"], "escalated")
    # the written messages: the east manager and the owner (also the creator), no one else
    rows = outbox(site, kind="notify")
    assert sorted((r["recipient"], r["channel"]) for r in rows) == sorted([
        (f"user:{uid(site, 'east_mgr')}", "in_app"), (f"user:{uid(site, 'east_mgr')}", "email"),
        (f"user:{uid(site, 'wang')}", "in_app"), (f"user:{uid(site, 'wang')}", "email")])
    assert NotificationWorker(site).run_once()["delivery"] == {"sent": 4}

    # the manager of another team: the case is not found, and nothing about it arrived
    with pytest.raises(NotFound):
        site.records.get(actor(site, "west_mgr"), "case", case["id"])
    assert inbox(site, "west_mgr") == []
    assert mail(smtp, "west@example.com") == []
    assert sms.accepted == []  # nothing was texted about it either
    assert outbox(site, user_id=uid(site, "west_mgr")) == []

    # the right manager gets it all; the agent gets it without the margin hidden from them
    told = ("Escalated: Leak at dock 3", f"Leak at dock 3 was escalated. Margin: {SECRET}.")
    assert inbox(site, "east_mgr") == [told]
    assert mail(smtp, "east@example.com") == [told]
    without_margin = ("Escalated: Leak at dock 3", "Leak at dock 3 was escalated. Margin: .")
    assert inbox(site, "wang") == [without_margin]
    assert mail(smtp, "wang@example.com") == [without_margin]
    assert len(smtp.messages) == 2


def test_a_reminder_and_the_digest_reach_only_those_who_read_the_record(
        tmp_path, db_url, clock, smtp, sms):
    site = open_desk(tmp_path, db_url, clock, smtp, sms)
    try:
        for login in ("east_mgr", "west_mgr"):
            InboxService(site.schema, site.engine, site.clock).set_digest(actor(site, login),
                                                                          True)
        case = new_case(site, due_on=dt.date(2026, 5, 26))
        done = NotificationWorker(site).run_once()
        assert done["reminders"] == {"case_due": 5, "case_review": 0}
        assert done["digests"] == 1
        # the customer's own phone (an address on the record, not a user) is texted
        assert [m["to"] for m in sms.accepted] == ["+86 138 0000 0001"]
        west = [r for r in outbox(site) if r["user_id"] == uid(site, "west_mgr")]
        assert west == [] and inbox(site, "west_mgr") == []
        assert mail(smtp, "west@example.com") == []
        # the east manager's e-mail came in the digest, with the margin; wang's without
        [(subject, body)] = mail(smtp, "east@example.com")
        assert subject == "Your reminders of 2026-05-25"
        assert body == (f"- Due tomorrow: Leak at dock 3: Leak at dock 3 is due on 2026-05-26. "
                        f"Margin: {SECRET}.")
        assert mail(smtp, "wang@example.com") == [
            ("Due tomorrow: Leak at dock 3", "Leak at dock 3 is due on 2026-05-26. Margin: .")]
        assert [r["record_id"] for r in outbox(site, source="case_due")] == [case["id"]] * 5
    finally:
        site.close()


def test_a_creator_who_lost_the_case_is_not_told_about_it(site, smtp, sms):
    case = new_case(site, owner="zhao")  # zhao opened it, in the west team...
    boss = actor(site, "boss")
    site.records.update(boss, "case", case["id"], {"owner": uid(site, "wang")})  # ...wang has it
    with pytest.raises(NotFound):
        site.records.get(actor(site, "zhao"), "case", case["id"])
    site.workflows.transition(actor(site, "wang"), "case", case["id"], "escalated")
    NotificationWorker(site).run_once()
    recipients = {r["recipient"] for r in outbox(site, kind="notify")}
    assert recipients == {f"user:{uid(site, 'wang')}", f"user:{uid(site, 'east_mgr')}"}
    assert inbox(site, "zhao") == [] and mail(smtp, "zhao@example.com") == []
    assert inbox(site, "west_mgr") == [] and mail(smtp, "west@example.com") == []
    assert [s for s, _ in inbox(site, "wang")] == ["Escalated: Leak at dock 3"]


def test_access_ended_between_queueing_and_delivery_stops_the_message(
        tmp_path, db_url, clock, smtp, sms):
    # quiet hours hold e-mail now, so the e-mails wait
    site = open_desk(tmp_path, db_url, clock, smtp, sms,
                     quiet_hours={"start": "09:00", "end": "11:00", "channels": ["email"]})
    try:
        east = uid(site, "east_mgr")
        case = new_case(site, due_on="2026-05-26")
        mine = new_case(site, owner="east_mgr", subject="Own case", due_on="2026-05-26")
        site.workflows.transition(actor(site, "wang"), "case", case["id"], "escalated")
        InboxService(site.schema, site.engine, site.clock).set_digest(actor(site, "east_mgr"),
                                                                      True)
        worker = NotificationWorker(site)
        worker.scan()
        assert worker.make_digests() == 1  # written now, held by the quiet hours
        [digest] = outbox(site, kind="digest")
        assert "Leak at dock 3" in digest["body"] and "Own case" in digest["body"]

        # the east manager no longer manages the team that owns wang's case
        site.users.teams.set_manager("east", None)
        with pytest.raises(NotFound):
            site.records.get(actor(site, "east_mgr"), "case", case["id"])
        clock.advance(hours=1)  # quiet hours over
        worker.run_once()

        withheld = f"user:{east} may not read case {case['id']}"
        assert [(r["channel"], r["status"], r["reason"])
                for r in outbox(site, kind="notify", user_id=east)] == [
            ("in_app", "skipped", f"withheld at delivery: {withheld}"),
            ("email", "skipped", f"withheld at delivery: {withheld}")]
        assert sorted((r["record_id"], r["channel"], r["status"], r["reason"])
                      for r in outbox(site, source="case_due", user_id=east)) == sorted([
            (case["id"], "in_app", "skipped", f"withheld at delivery: {withheld}"),
            (case["id"], "email", "skipped",
             f"left out of digest {digest['id']} at delivery: {withheld}"),
            (mine["id"], "in_app", "sent", None),
            (mine["id"], "email", "digested", f"sent in digest {digest['id']}")])
        # what arrived: only what is about their own case, in the inbox and the digest
        own = ("Due tomorrow: Own case", f"Own case is due on 2026-05-26. Margin: {SECRET}.")
        assert inbox(site, "east_mgr") == [own]
        body = f"- {own[0]}: {own[1]}"
        assert mail(smtp, "east@example.com") == [("Your reminders of 2026-05-25", body)]
        assert outbox(site, kind="digest")[0]["body"] == body  # the row says what was sent
        # wang, whose case it is, got the escalation and the reminder
        assert sorted(s for s, _ in inbox(site, "wang")) == [
            "Due tomorrow: Leak at dock 3", "Escalated: Leak at dock 3"]
    finally:
        site.close()


def test_a_deactivated_user_gets_nothing_queued_for_them(site, smtp, sms):
    east = uid(site, "east_mgr")
    case = new_case(site)
    site.workflows.transition(actor(site, "wang"), "case", case["id"], "escalated")
    site.users.deactivate("east_mgr")
    NotificationWorker(site).run_once()
    assert [(r["channel"], r["status"], r["reason"])
            for r in outbox(site, kind="notify", user_id=east)] == [
        (channel, "skipped", f"withheld at delivery: user:{east} is no longer an active user")
        for channel in ("in_app", "email")]
    assert mail(smtp, "east@example.com") == []
    assert [s for s, _ in inbox(site, "wang")] == ["Escalated: Leak at dock 3"]


def test_a_notification_nobody_may_read_is_recorded_not_dropped(site, smtp, sms, caplog):
    site.users.create("lone", password=None, roles=["agent"], email="lone@example.com")
    case = site.records.create(actor(site, "lone"), "case", {"subject": "Orphan",
                                                             "review_on": "2026-05-25"})
    with caplog.at_level(logging.WARNING, logger="engine.services.messaging.recipients"):
        site.workflows.transition(actor(site, "lone"), "case", case["id"], "submitted")
    managers = f"user:{uid(site, 'east_mgr')}, user:{uid(site, 'west_mgr')}"
    reason = (f"nobody was told: role:manager gave {managers}, who may not read "
              f"case {case['id']}")
    [row] = outbox(site, kind="notify")
    assert (row["recipient"], row["channel"], row["status"], row["reason"], row["body"]) == (
        "nobody", "none", "skipped", reason, "")
    assert f"notify case_flow.submit: {reason}" in caplog.text
    # a reminder that reaches nobody is in the job's summary and the outbox, once
    worker = NotificationWorker(site)
    assert worker.scan() == {"case_due": 0, "case_review": 0, "nobody:case_review": 1}
    assert worker.scan() == {"case_due": 0, "case_review": 0}  # recorded once
    [skipped] = outbox(site, kind="reminder")
    assert (skipped["recipient"], skipped["status"], skipped["reason"]) == (
        "nobody", "skipped", reason)
    worker.run_once()
    assert inbox(site, "east_mgr") == inbox(site, "west_mgr") == inbox(site, "lone") == []
    assert smtp.messages == []


def test_a_text_that_needs_a_hidden_field_is_not_sent_to_whom_it_is_hidden(
        tmp_path, db_url, clock, smtp, sms):
    rule = DESK_FILES["reminders/case_due.yaml"].replace("{{ record.margin }}",
                                                         "{{ record.margin.lower() }}")
    site = open_desk(tmp_path, db_url, clock, smtp, sms,
                     files={**DESK_FILES, "reminders/case_due.yaml": rule})
    try:
        case = new_case(site, due_on="2026-05-26")
        NotificationWorker(site).run_once()
        assert inbox(site, "east_mgr") == [("Due tomorrow: Leak at dock 3",
                                            "Leak at dock 3 is due on 2026-05-26. "
                                            "Margin: confidential-42.")]
        rows = outbox(site, source="case_due", user_id=uid(site, "wang"))
        assert [(r["channel"], r["status"], r["title"], r["body"]) for r in rows] == [
            ("in_app", "skipped", None, ""), ("email", "skipped", None, "")]
        assert {r["reason"] for r in rows} == {
            "the text cannot be written without the fields hidden from this user (margin): "
            "'dict object' has no attribute 'margin'"}
        assert inbox(site, "wang") == [] and mail(smtp, "wang@example.com") == []
        assert [r["record_id"] for r in rows] == [case["id"]] * 2
    finally:
        site.close()


def test_the_preview_names_who_would_be_left_out(site):
    case = new_case(site, due_on="2026-05-26")
    found = site_preview(site, case["id"])
    west = f"user:{uid(site, 'west_mgr')}"
    assert [(m["channel"], m["refused"]) for m in found["messages"]
            if m["recipient"] == west] == [("in_app", "may not read this record"),
                                           ("email", "may not read this record")]
    assert {m["recipient"] for m in found["messages"] if m["refused"] is None} == {
        f"user:{uid(site, 'wang')}", f"user:{uid(site, 'east_mgr')}", "phone:+86 138 0000 0001"}


def site_preview(site, record_id):
    scheduler = ReminderScheduler(site.records, site.pipeline, clock=site.clock)
    return scheduler.preview(actor(site, "boss"), "case_due", record_id)
