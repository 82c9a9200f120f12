"""Declaring reminders: what loads, what is refused (with file and line), previews, the CLI."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from jinja2.exceptions import SecurityError

from engine.cli import main
from engine.context import FixedClock
from engine.errors import DefinitionError
from engine.metadata.loader import load_registry
from engine.metadata.message_templates import render_text
from tests.notification_support import CLUB_FILES, START, open_club_site
from tests.support import write_pack

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run

MEMBER = CLUB_FILES["entities/member.yaml"]
ROLES = CLUB_FILES["roles.yaml"]


def problems_of(tmp_path, reminder: str, *, overlay: str | None = None):
    write_pack(tmp_path, "p", {"entities/member.yaml": MEMBER, "roles.yaml": ROLES,
                               "reminders/rule.yaml": reminder})
    overlay_dir = None
    if overlay is not None:
        overlay_dir = tmp_path / "custom"
        overlay_dir.mkdir()
        (overlay_dir / "rule.yaml").write_text(overlay, encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_registry(["p"], search_paths=[tmp_path], overlay_dir=overlay_dir)
    return [str(p) for p in caught.value.problems if p.severity == "error"]


RULE = """\
reminder: expiry
entity: member
schedule:
  date: {field: expiry_date, before: [30d]}
to: [owner]
message: {en: "Ends {{ record.expiry_date }}", zh: "{{ record.expiry_date }} 到期"}
"""

CASES = [
    ("not a date field", RULE.replace("field: expiry_date", "field: name"), 4,
     "'name' is a string field of member; a date schedule needs a date or datetime field"),
    ("unknown entity", RULE.replace("entity: member", "entity: membr"), 2,
     "there is no entity 'membr' (did you mean 'member'?)"),
    ("unknown role", RULE.replace("to: [owner]", "to: [owner, role:manger]"), 5,
     "there is no role 'manger' (did you mean 'manager'?)"),
    ("email of a non-email field", RULE.replace("to: [owner]", "to: [email:mobile]"), 5,
     "'mobile' is a phone field of member; email: needs a email field"),
    ("unknown recipient", RULE.replace("to: [owner]", "to: [boss]"), 5,
     "'boss' is not someone to remind"),
    ("template syntax", RULE.replace("{{ record.expiry_date }}\"", "{{ record.expiry_date }\""),
     6, "the template does not parse"),
    ("template unknown field", RULE.replace("Ends {{ record.expiry_date }}",
                                            "Ends {{ record.expiry }}"),
     6, "unknown field 'record.expiry' (did you mean 'expiry_date'?)"),
    ("template reaching for internals", RULE.replace("Ends {{ record.expiry_date }}",
                                                     "{{ record.__class__ }}"),
     6, "unknown field 'record.__class__'"),
    ("condition names an unknown field", RULE + "when: \"staus == 'active'\"\n", 7,
     "the condition"),
    ("opt-in not boolean", RULE.replace("to: [owner]", "to: [email:email]")
     + "opt_in: {email: name}\n", 7, "'name' must be a boolean field of member"),
    ("sla without workflow", RULE.replace("date: {field: expiry_date, before: [30d]}",
                                          "sla: {before: 2h}"), 4,
     "member has no workflow, so it has no SLA deadlines"),
    ("two schedules", RULE.replace("  date:", "  sla: {before: 2h}\n  date:"), 4, ""),
    ("unknown channel", RULE + "channels: [fax]\n", 7, "'fax'"),
]


@pytest.mark.parametrize(("case", "text", "line", "words"), CASES, ids=[c[0] for c in CASES])
def test_wrong_rules_are_refused_with_file_and_line(tmp_path, case, text, line, words):
    found = problems_of(tmp_path, text)
    assert any(p.startswith(f"packs/p/reminders/rule.yaml:{line}") and words in p
               for p in found), found


def test_a_site_overlay_replaces_a_pack_rule(tmp_path):
    write_pack(tmp_path, "p", {"entities/member.yaml": MEMBER, "roles.yaml": ROLES,
                               "reminders/rule.yaml": RULE})
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "expiry.yaml").write_text(RULE.replace("before: [30d]", "before: [60d]")
                                        + "enabled: false\n", encoding="utf-8")
    registry = load_registry(["p"], search_paths=[tmp_path], overlay_dir=custom)
    rule = registry.reminders["expiry"]
    assert (rule.pack, rule.enabled, rule.offsets) == ("(site)", False,
                                                       (("-60d", -dt.timedelta(days=60)),))


def test_two_packs_may_not_declare_the_same_rule(tmp_path):
    write_pack(tmp_path, "p", {"entities/member.yaml": MEMBER, "roles.yaml": ROLES,
                               "reminders/rule.yaml": RULE})
    write_pack(tmp_path, "q", {"reminders/again.yaml": RULE}, depends=("p",))
    with pytest.raises(DefinitionError) as caught:
        load_registry(["q"], search_paths=[tmp_path])
    assert "the reminder 'expiry' is already declared in packs/p/reminders/rule.yaml" in str(
        caught.value)


def test_the_core_pack_declares_its_reminders():
    registry = load_registry(["core"])
    rules = registry.reminders
    assert rules["follow_up_due"].schedule == "date"
    assert rules["follow_up_due"].offsets == (("-1d", -dt.timedelta(days=1)),)
    assert rules["complaint_sla"].sla_offset == -dt.timedelta(hours=2)
    assert rules["opportunity_idle"].schedule == "stale"
    assert all(r.message["zh"] for r in rules.values())


def test_templates_run_in_a_sandbox():
    with pytest.raises(SecurityError):
        render_text("{{ record.__class__.__mro__ }}", {"record": {}})
    assert render_text("{{ record.name | upper }}", {"record": {"name": "li"}}) == "LI"


# -- the commands -----------------------------------------------------------------------


@pytest.fixture
def club_site(tmp_path, db_url):
    site = open_club_site(tmp_path, db_url, FixedClock(START))
    site.users.create("admin", password=None, roles=["manager"], email="admin@example.com",
                      is_admin=True)
    admin = site.users.actor("admin")
    member = site.records.create(admin, "member", {
        "name": "Zhang Wei", "email": "zhang@example.com", "email_opt_in": False,
        "mobile": "+86 138 0000 0001", "expiry_date": "2026-06-30"})
    yield site, member
    site.close()


def crm(site, *args):
    result = CliRunner().invoke(main, ["--site", str(site.config.root), *args],
                                catch_exceptions=False)
    return result


def test_preview_shows_both_languages_and_who_would_get_what(club_site):
    site, member = club_site
    result = crm(site, "reminders", "preview", "membership_expiry", str(member["id"]))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Condition: holds" in out
    assert "→ email:zhang@example.com by email  (skipped: opted out (email_opt_in is not set))" \
        in out
    assert "→ phone:+86 138 0000 0001 by sms" in out
    assert "Subject: Your membership ends on 2026-06-30" in out
    assert "Zhang Wei 您好,您的会员(有效)将于 2026-06-30 到期。" in out
    missing = crm(site, "reminders", "preview", "membership", str(member["id"]))
    assert missing.exit_code == 1
    assert "There is no reminder 'membership'" in missing.output


def test_worker_once_jobs_and_outbox_commands(club_site):
    from engine.notifications.worker import NotificationWorker

    site, member = club_site
    site.clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
    NotificationWorker(site).scan()  # the reminder's day, on the test's clock
    # the commands run on the real clock, later than the messages' time: they are due
    result = crm(site, "worker", "--once")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["delivery"] == {"sent": 1, "failed": 2}
    failed = crm(site, "outbox", "--status", "failed")
    assert "no SMTP server is configured" in failed.output
    assert "no SMS gateway is configured" in failed.output
    counts = json.loads(crm(site, "outbox", "--json").output)["counts"]
    assert counts == {"sent": 1, "failed": 2, "skipped": 1}
    message_id = json.loads(crm(site, "outbox", "--status", "failed", "--json").output)[
        "messages"][0]["id"]
    again = crm(site, "outbox", "retry", str(message_id))
    assert again.exit_code == 0 and f"Message {message_id} will be sent again" in again.output
    refused = crm(site, "outbox", "retry", str(message_id))  # pending now, not failed
    assert refused.exit_code == 1 and "only uncertain or failed" in refused.output
    jobs = crm(site, "jobs")
    assert jobs.exit_code == 0
    lines = jobs.output.splitlines()
    assert lines[0].split()[:4] == ["JOB", "SCHEDULE", "LAST", "RUN"]
    assert "every 1m" in lines[1] and "daily from 08:00" in lines[3]
    assert any(line.startswith("reminders") and " ok " in line for line in lines)
    assert any(line.startswith("delivery") and " ok " in line for line in lines)
    assert any(line.startswith("digest") and "never run" in line for line in lines)
    listed = crm(site, "reminders", "list")
    assert listed.output.splitlines()[3].split()[:3] == ["membership_expiry", "member", "date"]


def test_a_rule_without_schedule_says_what_is_missing(tmp_path):
    found = problems_of(tmp_path, RULE.replace(
        "schedule:\n  date: {field: expiry_date, before: [30d]}\n", ""))
    assert found == ["packs/p/reminders/rule.yaml:1:1: error: 'schedule' is missing: a reminder "
                     "needs a schedule: date, sla or stale"], found


def test_a_database_with_the_first_outbox_table_migrates(tmp_path, db_url):
    """Sites that wrote notify rows into the first, one-row-per-event outbox upgrade: the old
    texts go to the archive (a destructive change, asked for), new messages work."""
    from sqlalchemy import JSON, BigInteger, Column, Index, MetaData, String, Table, insert, text

    from engine.errors import MigrationRefused
    from engine.notifications.worker import NotificationWorker
    from engine.storage.migration import apply_migration
    from engine.storage.types import IdType, UTCDateTime

    site = open_club_site(tmp_path, db_url, FixedClock(START))
    try:
        with site.engine.begin() as conn:
            conn.execute(text("DROP TABLE crm_outbox"))
        first = Table(
            "crm_outbox", MetaData(), Column("id", IdType, primary_key=True, autoincrement=True),
            Column("created_at", UTCDateTime, nullable=False),
            Column("kind", String(40), nullable=False), Column("entity", String(80)),
            Column("record_id", BigInteger), Column("event", String(120)),
            Column("recipients", JSON, nullable=False), Column("subject", JSON),
            Column("message", JSON, nullable=False), Column("data", JSON),
            Column("status", String(20), nullable=False), Column("sent_at", UTCDateTime),
            Index("ix_crm_outbox_status", "status", "id"))
        first.create(site.engine)
        with site.engine.begin() as conn:
            conn.execute(insert(first).values(created_at=START, kind="notify", recipients=[],
                                              message={"en": "old"}, status="pending"))
        with pytest.raises(MigrationRefused):
            apply_migration(site.engine, site.registry, site.schema)
        apply_migration(site.engine, site.registry, site.schema, allow_destructive=True)
        assert apply_migration(site.engine, site.registry, site.schema).operations == ()
        site.users.create("li", password=None, roles=["manager"])
        site.records.create(site.users.actor("li"), "member", {
            "name": "Zhang", "expiry_date": "2026-06-30"})
        site.clock.current = dt.datetime(2026, 5, 31, 2, 0, tzinfo=dt.UTC)
        worker = NotificationWorker(site)
        worker.run_once()
        worker.run_once()
        table = site.schema.system("crm_outbox")
        with site.engine.connect() as conn:
            rows = conn.execute(table.select().order_by(table.c.id)).mappings().all()
        assert (rows[0]["kind"], rows[0]["status"], rows[0]["key"]) == ("notify", "pending", None)
        assert {(r["channel"], r["status"]) for r in rows[1:]} == {
            ("in_app", "sent"), ("email", "skipped"), ("sms", "skipped")}
    finally:
        site.close()
