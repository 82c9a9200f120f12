"""Reminders end to end: a controlled clock, a real SMTP server and a local SMS gateway.

The club pack (tests/notification_support.py) reminds members 30 and 7
days before their membership ends (owner in-app and e-mail, the member by
e-mail and SMS), wishes them happy birthday every year, and chases
invoices three days after they fall due.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import uuid

import pytest
from sqlalchemy import func, select

from engine.context import Actor, FixedClock
from engine.notifications.channels import SmsGatewayChannel, SmtpChannel
from engine.notifications.coordination import RedisCoordinator
from engine.notifications.inbox import InboxService, OutboxAdmin
from engine.notifications.settings import read_settings
from engine.notifications.worker import NotificationWorker
from engine.site import Site
from tests.notification_support import (
    CLUB_FILES,
    START,
    SmsGateway,
    SmtpSink,
    free_port,
    notification_settings,
    open_club_site,
)

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run


class WorkerKilled(BaseException):
    """Stands for the process dying: no ``except Exception`` in the engine catches it."""


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def smtp():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def sms(monkeypatch):
    monkeypatch.setenv("CLUB_SMS_TOKEN", "secret-token")
    with SmsGateway() as gateway:
        yield gateway


def club(tmp_path, db_url, clock, smtp, gateway, **settings):
    site = open_club_site(tmp_path, db_url, clock, notification_settings(smtp, gateway, **settings))
    site.users.create("li", password=None, roles=["manager"], email="li@example.com")
    site.users.create("wang", password=None, roles=["staff"], email="wang@example.com", language="zh")
    return site


@pytest.fixture
def site(tmp_path, db_url, clock, smtp, sms):
    opened = club(tmp_path, db_url, clock, smtp, sms)
    yield opened
    opened.close()


def member(site, login="li", **values):
    actor = site.users.actor(login)
    data = {"name": "Zhang Wei", "email": "zhang@example.com", "mobile": "+86 138 0000 0001",
            "expiry_date": "2026-06-30", **values}
    return site.records.create(actor, "member", data)


def outbox(site, **where):
    table = site.schema.system("crm_outbox")
    query = select(table).order_by(table.c.id)
    for key, value in where.items():
        query = query.where(table.c[key] == value)
    with site.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def run_days(site, clock, days, *, workers=1):
    """Run the worker(s) once a day (twice when workers=2); what arrived on which day."""
    runners = [NotificationWorker(site) for _ in range(workers)]
    for _ in range(days):
        for runner in runners:
            runner.run_once()
        clock.advance(days=1)


# -- firing on the right days, once ------------------------------------------------------


def test_the_30_and_7_day_reminders_fire_once_each_on_their_days(site, clock, smtp, sms):
    zhang = member(site)
    member(site, login="wang", name="Wang Fang", email="fang@example.com", mobile="139",
           expiry_date="2026-06-30")
    member(site, name="Lapsed", email="lapsed@example.com", status="lapsed")  # condition fails
    arrivals: dict[str, list[dt.date]] = {}
    seen = 0
    for _ in range(45):  # 25 May to 8 July, twice a day, by two workers
        for _run in range(2):
            for runner in (NotificationWorker(site), NotificationWorker(site)):
                runner.run_once()
        for message in smtp.messages[seen:]:
            arrivals.setdefault(message["To"], []).append(clock.now().date())
        seen = len(smtp.messages)
        clock.advance(days=1)
    days = [dt.date(2026, 5, 31), dt.date(2026, 6, 23)]
    assert arrivals["zhang@example.com"] == days
    assert arrivals["fang@example.com"] == days
    assert arrivals["li@example.com"] == days  # the owner of Zhang's membership
    assert arrivals["wang@example.com"] == days
    assert "lapsed@example.com" not in arrivals
    assert sorted(m["to"] for m in sms.accepted) == ["+86 138 0000 0001"] * 2 + ["139"] * 2
    # every message sent, and each once (one row per rule, record, day, recipient, channel)
    rows = outbox(site, source="membership_expiry")
    assert {r["status"] for r in rows} == {"sent"} and len(rows) == 2 * 2 * 4
    assert len({r["key"] for r in rows}) == len(rows)
    assert {r["occurrence"] for r in rows if r["record_id"] == zhang["id"]} == {
        "2026-06-30-30d", "2026-06-30-7d"}
    # the texts: the member's e-mail in the site's language, wang's inbox in Chinese
    first = smtp.to("zhang@example.com")[0]
    assert first["Subject"] == "Your membership ends on 2026-06-30"
    assert "Dear Zhang Wei, your membership (Active) ends on 2026-06-30." in first.get_payload()
    inbox = InboxService(site.schema, site.engine, site.clock)
    wang_inbox = inbox.messages(site.users.actor("wang"))
    assert [m["subject"] for m in wang_inbox] == ["您的会员将于 2026-06-30 到期"] * 2
    assert inbox.unread_count(site.users.actor("li")) == 2


def test_a_reminder_missed_by_more_than_catch_up_is_let_go(site, clock, smtp, sms):
    member(site)
    clock.current = dt.datetime(2026, 6, 2, 2, 0, tzinfo=dt.UTC)  # 30-day moment 2 days ago
    NotificationWorker(site).run_once()
    assert outbox(site) == [] and smtp.messages == []


def test_opted_out_members_are_skipped_with_the_reason(site, clock, smtp, sms):
    member(site, email_opt_in=False, sms_opt_in=False)
    clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
    NotificationWorker(site).run_once()
    rows = {r["channel"] + ":" + r["recipient"].split(":")[0]: r for r in outbox(site)}
    assert rows["email:email"]["status"] == "skipped"
    assert rows["email:email"]["reason"] == "opted out (email_opt_in is not set)"
    assert rows["sms:phone"]["status"] == "skipped"
    assert rows["sms:phone"]["reason"] == "opted out (sms_opt_in is not set)"
    assert rows["email:user"]["status"] == rows["in_app:user"]["status"] == "sent"
    assert [m["To"] for m in smtp.messages] == ["li@example.com"]
    assert sms.accepted == [] and sms.requests == 0


def test_birthdays_come_every_year_once(site, clock, smtp, sms):
    member(site, birthday="1990-06-02", expiry_date=None)
    for year in (2026, 2027):
        for hour in range(0, 72, 6):  # 1 to 3 June, every six hours
            clock.current = dt.datetime(year, 6, 1, 0, 0, tzinfo=dt.UTC) + dt.timedelta(hours=hour)
            NotificationWorker(site).run_once()
    assert [m["Subject"] for m in smtp.messages] == ["Happy birthday, Zhang Wei!"] * 2
    assert [r["occurrence"] for r in outbox(site)] == ["2026-06-02", "2027-06-02"]


def test_unpaid_invoices_are_chased_three_days_after_they_fall_due(site, clock, smtp, sms):
    li = site.users.actor("li")
    zhang = member(site, expiry_date=None)
    site.records.create(li, "invoice", {"number": "INV-1", "member": zhang["id"],
                                        "due_date": "2026-05-26"})
    site.records.create(li, "invoice", {"number": "INV-2", "member": zhang["id"],
                                        "due_date": "2026-05-26", "paid": True})
    run_days(site, clock, 7)
    assert sorted((m["To"], m["Subject"]) for m in smtp.messages) == [
        ("li@example.com", "Invoice INV-1 is overdue"),
        ("zhang@example.com", "Invoice INV-1 is overdue")]
    sent = outbox(site, source="invoice_overdue")
    # owner li also holds the manager role: one message per channel, not two
    assert sorted((r["recipient"], r["channel"]) for r in sent) == [
        ("email:zhang@example.com", "email"), (f"user:{li.user_id}", "email"),
        (f"user:{li.user_id}", "in_app")]
    assert {r["created_at"].date() for r in sent} == {dt.date(2026, 5, 29)}


# -- crashes: never twice -------------------------------------------------------------


VICTIM = "zhang@example.com"


class CrashAfterSending(SmtpChannel):
    """The server accepted Zhang's e-mail; the worker dies before recording it."""

    def send(self, row, handoff):
        super().send(row, handoff)
        if row["address"] == VICTIM:
            raise WorkerKilled()


class CrashBeforeHandover(SmtpChannel):
    """The worker dies after claiming Zhang's e-mail, before handing it over."""

    def send(self, row, handoff):
        def dying():
            raise WorkerKilled()

        super().send(row, dying if row["address"] == VICTIM else handoff)


def _one_email_due(site, clock):
    member(site, email="zhang@example.com")
    clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
    NotificationWorker(site).scan()
    return outbox(site, channel="email", address="zhang@example.com")[0]


def test_a_worker_killed_between_sent_and_recorded_does_not_send_twice(site, clock, smtp, sms):
    row = _one_email_due(site, clock)
    settings = read_settings(site.config.notifications)
    dying = NotificationWorker(site, channels={"email": CrashAfterSending(settings)})
    with pytest.raises(WorkerKilled):
        dying.delivery.run()
    assert len(smtp.to("zhang@example.com")) == 1
    assert outbox(site, id=row["id"])[0]["status"] == "sending"
    restarted = NotificationWorker(site)
    restarted.run_once()  # the lease still runs: nobody touches the message
    assert outbox(site, id=row["id"])[0]["status"] == "sending"
    clock.advance(minutes=6)
    restarted.run_once()
    restarted.run_once()
    after = outbox(site, id=row["id"])[0]
    assert after["status"] == "uncertain"
    assert "it may have arrived, so it was not sent again" in after["reason"]
    assert len(smtp.to("zhang@example.com")) == 1
    # sending it again is a person's decision
    OutboxAdmin(site.schema, site.engine, site.clock).retry(Actor.system(), row["id"])
    restarted.run_once()
    assert len(smtp.to("zhang@example.com")) == 2
    assert outbox(site, id=row["id"])[0]["status"] == "sent"


def test_a_worker_killed_before_the_handover_is_replaced_and_sends_once(site, clock, smtp, sms):
    row = _one_email_due(site, clock)
    settings = read_settings(site.config.notifications)
    dying = NotificationWorker(site, channels={"email": CrashBeforeHandover(settings)})
    with pytest.raises(WorkerKilled):
        dying.delivery.run()
    assert smtp.to("zhang@example.com") == []
    clock.advance(minutes=6)
    NotificationWorker(site).run_once()
    NotificationWorker(site).run_once()
    assert len(smtp.to("zhang@example.com")) == 1
    done = outbox(site, id=row["id"])[0]
    assert (done["status"], done["attempts"]) == ("sent", 2)


def test_a_worker_whose_lease_ran_out_does_not_hand_over(site, clock, smtp, sms):
    row = _one_email_due(site, clock)
    slow = NotificationWorker(site)
    claimed = [r for r in slow.delivery.claim() if r["id"] == row["id"]]
    clock.advance(minutes=6)  # slow worker stalls past its lease; another takes over
    NotificationWorker(site).run_once()
    assert len(smtp.to("zhang@example.com")) == 1
    assert slow.delivery.deliver(claimed[0]) == "lost"
    assert len(smtp.to("zhang@example.com")) == 1


def test_an_sms_gateway_with_idempotency_keys_gets_the_message_again_but_keeps_one(
        tmp_path, db_url, clock, smtp, sms):
    site = club(tmp_path, db_url, clock, smtp, sms,
                sms={"url": sms.url, "auth_env": "CLUB_SMS_TOKEN",
                     "idempotency_header": "Idempotency-Key"})
    try:
        member(site, email=None)
        clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
        NotificationWorker(site).scan()
        settings = read_settings(site.config.notifications)

        class CrashAfterGateway(SmsGatewayChannel):
            def send(self, row, handoff):
                super().send(row, handoff)
                raise WorkerKilled()

        dying = NotificationWorker(site, channels={"sms": CrashAfterGateway(settings)})
        with pytest.raises(WorkerKilled):
            dying.delivery.run()
        clock.advance(minutes=6)
        NotificationWorker(site).run_once()
        assert sms.requests == 2 and len(sms.accepted) == 1
        assert outbox(site, channel="sms")[0]["status"] == "sent"
    finally:
        site.close()


# -- several workers -------------------------------------------------------------------


def _many_members(site, count):
    for index in range(count):
        member(site, name=f"Member {index}", email=f"m{index}@example.com",
               mobile=f"+86 100 {index:04d}")


def _deliver_concurrently(workers):
    errors = []

    def work(runner):
        try:
            runner.delivery.run()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []


def test_two_workers_on_the_same_database_deliver_each_message_once(site, clock, smtp, sms):
    _many_members(site, 20)
    clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
    NotificationWorker(site).scan()
    other = Site.open(site.config.root, clock=clock)  # a second process's connections
    try:
        settings = read_settings(site.config.notifications)
        small = dataclasses.replace(settings, batch=3)
        workers = [NotificationWorker(site, settings=small), NotificationWorker(other, settings=small)]
        _deliver_concurrently(workers)
    finally:
        other.close()
    rows = outbox(site)
    assert len(rows) == 20 * 4  # per member: its e-mail and SMS, li's in-app and e-mail
    assert {r["status"] for r in rows} == {"sent"}
    ids = [m["Message-ID"] for m in smtp.messages]
    assert len(ids) == len(set(ids)) == 20 + 20  # members' and li's e-mails
    assert len(sms.accepted) == 20
    inbox = site.schema.system("crm_notification")
    with site.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(inbox)).scalar_one() == 20


def test_an_idle_wait_on_redis_as_long_as_the_default_poll_ends_quietly():
    """`crm worker` polls every 5 s by default, as long as redis-py 8's default socket timeout."""
    url = "redis://127.0.0.1:6379/0"
    coordinator = RedisCoordinator(url, f"visioncrm-test:{uuid.uuid4().hex}")
    try:
        coordinator.redis.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    coordinator.wait(5.0)  # nothing arrives: the wait ends, it does not raise
    coordinator.wake()
    coordinator.wait(5.0)  # a token: taken
    assert coordinator.redis.llen(coordinator.wake_key) == 0


def test_two_workers_on_redis_scan_once_and_deliver_each_message_once(site, clock, smtp, sms):
    _many_members(site, 10)
    clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
    namespace = f"visioncrm-test:{uuid.uuid4().hex}"
    url = "redis://127.0.0.1:6379/0"
    try:
        RedisCoordinator(url, namespace).redis.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    other = Site.open(site.config.root, clock=clock)
    stop = threading.Event()
    workers = [NotificationWorker(s, coordinator=RedisCoordinator(url, namespace))
               for s in (site, other)]
    threads = [threading.Thread(target=w.run_forever, args=(stop,), kwargs={"poll": 1})
               for w in workers]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = outbox(site)
            if rows and all(r["status"] == "sent" for r in rows):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        workers[0].coordinator.redis.delete(f"{namespace}:scan", f"{namespace}:wake")
        other.close()
    rows = outbox(site)
    assert len(rows) == 10 * 4 and {r["status"] for r in rows} == {"sent"}
    assert len(smtp.messages) == len({m["Message-ID"] for m in smtp.messages}) == 20
    assert len(sms.accepted) == 10
    runs = site.schema.system("crm_job_run")
    with site.engine.connect() as conn:
        scans = conn.execute(select(func.count()).select_from(runs).where(
            runs.c.job == "reminders")).scalar_one()
    assert scans == 1  # one scan for both workers in the interval


# -- failures: retried, then recorded --------------------------------------------------


def test_a_refusing_smtp_server_leads_to_retries_with_backoff_then_a_recorded_failure(
        site, clock, smtp, sms):
    row = _one_email_due(site, clock)
    smtp.refuse = "451 4.3.0 Mailbox busy, try again later"
    worker = NotificationWorker(site)
    waits = []
    for _ in range(3):
        before = clock.now()
        worker.run_once()
        current = outbox(site, id=row["id"])[0]
        if current["status"] == "pending":
            waits.append(current["not_before"] - before)
            clock.current = current["not_before"]
    assert waits == [dt.timedelta(minutes=1), dt.timedelta(minutes=2)]  # doubling
    final = outbox(site, id=row["id"])[0]
    assert final["status"] == "failed" and final["attempts"] == 3
    assert final["reason"].startswith("gave up after 3 attempts: the SMTP server answered 451")
    tries = smtp.attempts
    clock.advance(hours=1)
    worker.run_once()
    assert smtp.attempts == tries and smtp.messages == []
    # the in-app message of the same reminder was not held up
    assert {r["status"] for r in outbox(site, channel="in_app")} == {"sent"}


def test_a_permanent_smtp_refusal_fails_at_once(site, clock, smtp, sms):
    row = _one_email_due(site, clock)
    smtp.refuse = "550 5.1.1 No such user"
    NotificationWorker(site).run_once()
    final = outbox(site, id=row["id"])[0]
    assert (final["status"], final["attempts"]) == ("failed", 1)
    assert "550 5.1.1 No such user" in final["reason"]


def test_an_unreachable_smtp_server_is_retried(site, clock, smtp, sms):
    row = _one_email_due(site, clock)
    settings = read_settings(site.config.notifications)
    nowhere = dataclasses.replace(settings, smtp=dataclasses.replace(settings.smtp,
                                                                     port=free_port()))
    NotificationWorker(site, settings=nowhere).run_once()
    current = outbox(site, id=row["id"])[0]
    assert current["status"] == "pending" and "cannot reach the SMTP server" in current["reason"]
    clock.advance(minutes=1)
    NotificationWorker(site).run_once()
    assert outbox(site, id=row["id"])[0]["status"] == "sent"
    assert len(smtp.to("zhang@example.com")) == 1


def test_the_sms_gateway_failing_is_retried_and_its_refusal_recorded(site, clock, smtp, sms):
    member(site, email=None)
    clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
    sms.fail_with = 503
    NotificationWorker(site).run_once()
    row = outbox(site, channel="sms")[0]
    assert row["status"] == "pending" and "503" in row["reason"]
    sms.fail_with = None
    clock.advance(minutes=1)
    NotificationWorker(site).run_once()
    assert outbox(site, channel="sms")[0]["status"] == "sent"
    assert sms.accepted[0]["to"] == "+86 138 0000 0001"


def test_a_wrong_sms_token_fails_without_retrying(tmp_path, db_url, clock, smtp, sms, monkeypatch):
    monkeypatch.setenv("CLUB_SMS_TOKEN", "wrong")
    site = club(tmp_path, db_url, clock, smtp, sms)
    try:
        member(site, email=None)
        clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
        NotificationWorker(site).run_once()
        row = outbox(site, channel="sms")[0]
        assert (row["status"], row["attempts"]) == ("failed", 1)
        assert "401" in row["reason"]
    finally:
        site.close()


# -- quiet hours and the digest --------------------------------------------------------


def test_quiet_hours_hold_email_and_sms_but_not_the_inbox(tmp_path, db_url, clock, smtp, sms):
    site = club(tmp_path, db_url, clock, smtp, sms,
                quiet_hours={"start": "21:00", "end": "08:00"})
    try:
        member(site)
        clock.current = dt.datetime(2026, 5, 31, 14, 0, tzinfo=dt.UTC)  # 22:00 in Shanghai
        NotificationWorker(site).run_once()
        assert {r["status"] for r in outbox(site, channel="in_app")} == {"sent"}
        assert {r["status"] for r in outbox(site, channel="email")} == {"pending"}
        assert smtp.messages == [] and sms.accepted == []
        clock.current = dt.datetime(2026, 6, 1, 0, 0, tzinfo=dt.UTC)  # 08:00
        NotificationWorker(site).run_once()
        assert len(smtp.messages) == 2 and len(sms.accepted) == 1
    finally:
        site.close()


def test_the_daily_digest_gathers_a_users_emails_into_one(site, clock, smtp, sms):
    li = site.users.actor("li")
    InboxService(site.schema, site.engine, site.clock).set_digest(li, True)
    member(site, name="Zhang Wei")
    member(site, name="Liu Yang", email="liu@example.com")
    clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)  # 10:00, after digest_at 08:00
    NotificationWorker(site).run_once()
    # the members' own e-mails go one by one; li's two are gathered into one digest
    assert sorted(m["To"] for m in smtp.messages) == [
        "li@example.com", "liu@example.com", "zhang@example.com"]
    held = outbox(site, user_id=li.user_id, channel="email", kind="reminder")
    assert [r["status"] for r in held] == ["digested", "digested"]
    digests = smtp.to("li@example.com")
    assert len(digests) == 1
    assert digests[0]["Subject"] == "Your reminders of 2026-05-31"
    body = digests[0].get_payload()
    assert "Dear Zhang Wei" in body and "Dear Liu Yang" in body
    NotificationWorker(site).run_once()
    assert len(smtp.to("li@example.com")) == 1


def test_a_rule_failing_on_a_record_is_recorded_and_holds_up_nothing_else(
        tmp_path, db_url, clock, smtp, sms):
    broken = """
        reminder: broken
        entity: member
        schedule:
          date: {field: expiry_date, before: [30d]}
        to: [owner]
        message: {en: "{{ record.name.__class__.__mro__ }}"}
    """
    site = open_club_site(tmp_path, db_url, clock, notification_settings(smtp, sms),
                          files={**CLUB_FILES, "reminders/broken.yaml": broken})
    try:
        site.users.create("li", password=None, roles=["manager"], email="li@example.com")
        member(site)
        clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
        worker = NotificationWorker(site)
        worker.run_once()
        assert {r["source"] for r in outbox(site)} == {"membership_expiry"}
        assert len(smtp.messages) == 2  # the good rule's e-mails went out
        [scan] = [s for s in worker.jobs.overview() if s.job == "reminders"]
        assert scan.last_status == "failed" and scan.failures_24h == 1
        assert "broken on member 1: SecurityError" in scan.last_error
        assert scan.last_summary == {"membership_expiry": 4}
    finally:
        site.close()


KILLER = '''
import os, sys
from engine.site import Site
from engine.notifications.channels import SmtpChannel
from engine.notifications.settings import read_settings
from engine.notifications.worker import NotificationWorker

class DieAfterSending(SmtpChannel):
    def send(self, row, handoff):
        super().send(row, handoff)
        if row["address"] == "zhang@example.com":
            os._exit(9)  # the process dies on the spot: no cleanup, no commit

site = Site.open(sys.argv[1])
settings = read_settings(site.config.notifications)
NotificationWorker(site, channels={"email": DieAfterSending(settings)}).delivery.run()
'''


def test_a_worker_process_killed_after_the_server_accepted_does_not_send_twice(
        site, clock, smtp, sms, tmp_path):
    import subprocess
    import sys

    row = _one_email_due(site, clock)
    script = tmp_path / "bin" / "killer.py"  # not beside the test's packs/ folder
    script.parent.mkdir()
    script.write_text(KILLER, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(site.config.root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    assert len(smtp.to("zhang@example.com")) == 1
    killed = outbox(site, id=row["id"])[0]
    assert killed["status"] == "sending" and killed["handed_at"] is not None
    # a new worker, once the dead one's lease (on the real clock it used) has run out
    clock.current = killed["lease_until"] + dt.timedelta(seconds=1)
    NotificationWorker(site).run_once()
    NotificationWorker(site).run_once()
    assert outbox(site, id=row["id"])[0]["status"] == "uncertain"
    assert len(smtp.to("zhang@example.com")) == 1
