"""The clock of the CLI and the web app: the one given, else the system's or ``CRM_CLOCK``'s.

Records written in one week are read back by ``crm`` and by the web app in
that same week, whatever day the suite runs on: a command reads the clock
its caller gives it (``main(obj={"clock": ...})``), a process given none reads
``CRM_CLOCK`` when set, and a bad ``CRM_CLOCK`` is refused with a message.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.context import CLOCK_SETTING, FixedClock, SetClock, SystemClock, default_clock
from engine.errors import BadSetting
from engine.http.context import EXTENSION
from engine.web.sites import HostedSite, SiteDispatcher
from tests.support import open_migrated, write_site

pytestmark = pytest.mark.dates

TUESDAY = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai, week of 23 Nov


@pytest.fixture
def clock():
    return FixedClock(TUESDAY)


@pytest.fixture
def site(tmp_path, db_url, clock):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["core"]), clock=clock)
    opened.users.create("wang", password="password-1", roles=["sales"], display_name="Wang")
    wang = opened.users.actor("wang")
    customer = opened.records.create(wang, "customer", {"name": "华信科技有限公司"})
    opened.records.create(wang, "activity", {
        "subject": "拜访华信", "kind": "visit", "customer": customer["id"], "done": True,
        "outcome": "需求确认", "due_at": TUESDAY.isoformat()})
    yield opened
    opened.close()


def _visits(tmp_path, *, obj=None, env=None):
    """Wang's visits this week by ``crm report`` (this week: the one its clock reads)."""
    result = CliRunner().invoke(main, ["--site", str(tmp_path / "site"), "report",
                                       "core.visits_per_week", "--as", "wang", "--json",
                                       "--param", "weeks=1"], obj=obj, env=env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    return answer["categories"], [s["values"] for s in answer["series"]]


def test_the_report_command_reads_the_clock_it_is_given(site, clock, tmp_path):
    assert _visits(tmp_path, obj={"clock": clock}) == (["2026-11-23"], [[1]])
    # A week later by the same clock: the visit has left "this week".
    assert _visits(tmp_path, obj={"clock": FixedClock(TUESDAY + dt.timedelta(days=7))}) == (
        ["2026-11-30"], [])
    # Given a clock, the command ignores CRM_CLOCK.
    assert _visits(tmp_path, obj={"clock": clock},
                   env={CLOCK_SETTING: "2030-01-01T00:00:00+00:00"}) == (["2026-11-23"], [[1]])


def test_a_command_given_no_clock_runs_on_crm_clock(site, tmp_path):
    assert _visits(tmp_path, env={CLOCK_SETTING: "2026-11-27T12:00:00+08:00"}) == (
        ["2026-11-23"], [[1]])
    assert _visits(tmp_path, env={CLOCK_SETTING: "2027-11-24T10:00:00"}) == (["2027-11-22"], [])


def test_a_bad_crm_clock_is_refused_with_a_message_and_nothing_is_written(site, tmp_path):
    result = CliRunner().invoke(main, ["--site", str(tmp_path / "site"), "record", "create",
                                       "customer", "name=远方咨询", "--as", "wang"],
                                env={CLOCK_SETTING: "next tuesday"})
    assert result.exit_code == 1
    assert result.output.startswith("Error: CRM_CLOCK='next tuesday' is not a moment")
    assert "Traceback" not in result.output
    assert site.records.count(site.users.actor("wang"), "customer") == 1


def test_crm_init_dates_the_first_admin_and_the_migration_by_the_given_clock(tmp_path, db_url):
    given = FixedClock(dt.datetime(2031, 2, 3, 4, 5, tzinfo=dt.UTC))
    result = CliRunner().invoke(main, ["init", str(tmp_path / "s"), "--pack", "core",
                                       "--database-url", db_url, "--admin-password", "pw-123456"],
                                obj={"clock": given}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    opened = open_migrated(tmp_path / "s")
    try:
        with opened.engine.connect() as conn:
            admin = conn.execute(opened.schema.system("crm_user").select()).one()
        created = admin.created_at if admin.created_at.tzinfo else admin.created_at.replace(
            tzinfo=dt.UTC)
        assert created == given.now()
    finally:
        opened.close()


def test_the_web_apps_of_an_installation_run_on_the_clock_given(site, clock, tmp_path):
    dispatcher = SiteDispatcher([HostedSite(root=tmp_path / "site", hosts=("acme.test",))],
                                clock=clock)
    try:
        app = dispatcher.app_for(dispatcher.by_host["acme.test"])
        assert app.extensions[EXTENSION].site.clock is clock
    finally:
        dispatcher.close()


def test_default_clock_is_the_systems_unless_crm_clock_sets_it():
    assert isinstance(default_clock({}), SystemClock)
    assert isinstance(default_clock({CLOCK_SETTING: " "}), SystemClock)
    before = dt.datetime.now(dt.UTC)
    set_clock = default_clock({CLOCK_SETTING: "2027-12-07T10:00:00+00:00"})
    assert isinstance(set_clock, SetClock)
    first = set_clock.now()
    assert dt.timedelta(0) <= first - dt.datetime(2027, 12, 7, 10, tzinfo=dt.UTC) \
        <= dt.datetime.now(dt.UTC) - before
    assert set_clock.now() >= first  # it runs on
    naive = default_clock({CLOCK_SETTING: "2027-12-07T10:00:00"}).now()
    assert naive.tzinfo is not None and naive.replace(microsecond=0, second=0) == dt.datetime(
        2027, 12, 7, 10, tzinfo=dt.UTC)
    with pytest.raises(BadSetting, match="CRM_CLOCK='2027-13-01' is not a moment"):
        default_clock({CLOCK_SETTING: "2027-13-01"})
