"""Scheduled pack jobs and backups: once per occurrence, recorded, switchable per site."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main
from engine.context import Actor, FixedClock
from engine.errors import DefinitionError
from engine.jobs.backups import last_backup, scheduled_archives
from engine.jobs.schedule import Schedule
from engine.notifications.worker import NotificationWorker
from engine.site import Site
from engine.web.app import create_app
from tests.support import open_migrated, write_pack, write_site
from tests.web_support import login

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run

# 2026-05-25 10:00 in Shanghai (the default time zone)
START = dt.datetime(2026, 5, 25, 2, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery"

CHORES = {
    "entities/note.yaml": """
        entity: note
        label: {en: Note, zh: 笔记}
        fields:
          title: {type: string, required: true}
        """,
    "jobs.py": """
        from engine.jobs.context import JobContext


        def tidy(context: JobContext) -> dict:
            context.records.create(context.actor, "note", {"title": f"tidy {context.today}"})
            return {"day": str(context.today)}


        def flaky(context: JobContext) -> dict:
            if context.today == context.occurrence.date().replace(day=25):
                raise RuntimeError("the ledger is locked")
            context.records.create(context.actor, "note", {"title": f"flaky {context.today}"})
            return {"ok": True}
        """,
}


def _chores(tmp_path: Path, db_url: str, jobs: dict, site_settings: dict | None = None,
            clock: FixedClock | None = None) -> Site:
    root = write_pack(tmp_path / "packs", "chores", CHORES)
    manifest = yaml.safe_load((root / "pack.yaml").read_text(encoding="utf-8"))
    manifest["jobs"] = jobs
    (root / "pack.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    site_root = write_site(tmp_path / "site", db_url, ["chores"], pack_paths=["../packs"])
    config = yaml.safe_load((site_root / "crm.yaml").read_text(encoding="utf-8"))
    config.update(site_settings or {})
    (site_root / "crm.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return open_migrated(site_root, clock=clock or FixedClock(START))


def _titles(site: Site) -> list[str]:
    rows = site.records.list(Actor.system(), "note", limit=100).rows
    return sorted(r["title"] for r in rows)


def _runs(site: Site, job: str) -> list[dict]:
    table = site.schema.system("crm_job_run")
    with site.engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(table).where(table.c.job == job).order_by(table.c.id)).mappings()]


def crm(site: Site, *args: str):
    return CliRunner().invoke(main, ["--site", str(site.config.root), *args],
                              catch_exceptions=False)


TIDY = {"tidy": {"function": "tidy", "every": "day", "at": "09:00",
                 "label": {"en": "Tidy up", "zh": "整理"}}}


def test_a_daily_job_runs_once_a_day_however_many_workers_run_it(tmp_path, db_url):
    clock = FixedClock(START)
    with _chores(tmp_path, db_url, TIDY, clock=clock) as site, \
            Site.open(site.config.root, clock=clock) as other:
        first = NotificationWorker(site, worker="w1", clock=clock)
        second = NotificationWorker(other, worker="w2", clock=clock)
        barrier = threading.Barrier(2)
        outcomes: list[dict] = []

        def work(worker: NotificationWorker) -> None:
            barrier.wait()
            for _ in range(2):
                outcomes.append(worker.run_scheduled())

        threads = [threading.Thread(target=work, args=(w,)) for w in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(str(o) for o in outcomes).count("{'chores.tidy': 'ok'}") == 1
        assert _titles(site) == ["tidy 2026-05-25"]
        runs = _runs(site, "chores.tidy")
        assert [(r["status"], r["occurrence"], r["summary"]) for r in runs] == [
            ("ok", "2026-05-25T01:00Z", {"day": "2026-05-25"})]
        assert runs[0]["finished_at"] is not None

        clock.advance(hours=12)  # 22:00 the same day: nothing new is due
        assert first.run_scheduled() == {} and second.run_scheduled() == {}
        clock.advance(hours=12)  # the next day, 10:00
        assert second.run_once()["scheduled"] == {"chores.tidy": "ok"}
        assert first.run_once()["scheduled"] == {}
        assert _titles(site) == ["tidy 2026-05-25", "tidy 2026-05-26"]


def test_the_unique_occurrence_lets_one_claim_win(tmp_path, db_url):
    """The race the look-up cannot see: two inserts of the same occurrence, one wins."""
    from engine.jobs.runner import JobScheduler

    with _chores(tmp_path, db_url, TIDY) as site:
        one = JobScheduler(site, site.clock, "w1")
        two = JobScheduler(site, site.clock, "w2")
        assert one.insert_claim("chores.tidy", "2026-05-25T01:00Z") is not None
        assert two.insert_claim("chores.tidy", "2026-05-25T01:00Z") is None
        assert two.insert_claim("chores.tidy", "2026-05-26T01:00Z") is not None
        assert [r["worker"] for r in _runs(site, "chores.tidy")] == ["w1", "w2"]


def test_a_run_left_by_a_dead_worker_is_taken_over_once_and_the_slow_one_records_nothing(
        tmp_path, db_url):
    """w1 claims today's run and dies (its row stays ``running``). Before TAKEOVER_AFTER the
    occurrence stays claimed; after it, exactly one of two workers takes it over and runs it;
    were w1 only slow, its late result would not overwrite the new run's."""
    from engine.jobs.runner import TAKEOVER_AFTER, JobScheduler, ScheduledJob

    clock = FixedClock(START)
    with _chores(tmp_path, db_url, TIDY, clock=clock) as site:
        dead = JobScheduler(site, clock, "w1")
        run_id = dead.insert_claim("chores.tidy", "2026-05-25T01:00Z")
        assert run_id is not None  # ...and w1 is killed before it runs the job
        two, three = JobScheduler(site, clock, "w2"), JobScheduler(site, clock, "w3")
        clock.advance(seconds=int(TAKEOVER_AFTER.total_seconds()) - 60)
        assert two.run_due() == {} and _titles(site) == []
        clock.advance(seconds=120)
        assert two.run_due() == {"chores.tidy": "ok"}
        assert three.run_due() == {}  # taken over once, not by every worker
        assert _titles(site) == ["tidy 2026-05-25"]
        (run,) = _runs(site, "chores.tidy")
        assert (run["id"], run["worker"], run["status"]) == (run_id, "w2", "ok")
        assert "taken over by w2" in run["error"] and "w1" in run["error"]

        # The next day w1 is only slow: w2 takes its run over meanwhile and records it;
        # w1's late end records nothing.
        clock.advance(hours=22)
        tidy = two.jobs["chores.tidy"]

        def slow(context):
            clock.advance(seconds=int(TAKEOVER_AFTER.total_seconds()) + 60)
            assert two.run_due() == {"chores.tidy": "ok"}
            return {"slow": True}

        slow_worker = JobScheduler(site, clock, "w1", jobs={"chores.tidy": ScheduledJob(
            tidy.name, tidy.schedule, tidy.description, slow)})
        assert slow_worker.run_due() == {}
        latest = _runs(site, "chores.tidy")[-1]
        assert (latest["worker"], latest["status"], latest["summary"]) == (
            "w2", "ok", {"day": "2026-05-26"})


def test_a_failing_job_records_its_error_and_the_next_day_still_runs(tmp_path, db_url):
    clock = FixedClock(START)
    jobs = {"flaky": {"function": "flaky", "at": "08:00"}, **TIDY}
    with _chores(tmp_path, db_url, jobs, clock=clock) as site:
        worker = NotificationWorker(site, clock=clock)
        assert worker.run_scheduled() == {"chores.flaky": "failed", "chores.tidy": "ok"}
        failed = _runs(site, "chores.flaky")
        assert failed[0]["status"] == "failed"
        assert failed[0]["error"] == "RuntimeError: the ledger is locked"
        assert worker.run_scheduled() == {}  # a failed occurrence is not run again
        clock.advance(days=1)
        assert worker.run_scheduled() == {"chores.flaky": "ok", "chores.tidy": "ok"}
        assert "flaky 2026-05-26" in _titles(site)
        listing = crm(site, "jobs")
        assert listing.exit_code == 0, listing.output
        line = next(x for x in listing.output.splitlines() if x.startswith("chores.flaky"))
        assert "daily at 08:00" in line and " ok " in line
        assert "Last error of chores.flaky: RuntimeError: the ledger is locked" in listing.output


def test_a_site_switches_a_job_off_or_moves_it(tmp_path, db_url):
    clock = FixedClock(START)
    off = {"jobs": {"chores.tidy": {"enabled": False}}}
    with _chores(tmp_path, db_url, TIDY, off, clock=clock) as site:
        worker = NotificationWorker(site, clock=clock)
        assert worker.run_scheduled() == {}
        clock.advance(days=1)
        worker.run_once()
        assert _runs(site, "chores.tidy") == [] and _titles(site) == []
    later = {"jobs": {"chores.tidy": {"at": "11:00"}}}
    clock = FixedClock(START)  # 10:00: the latest 11:00 was yesterday's
    with _chores(tmp_path / "moved", db_url, TIDY, later, clock=clock) as site:
        worker = NotificationWorker(site, clock=clock)
        assert worker.run_scheduled() == {"chores.tidy": "ok"}
        clock.advance(hours=1)
        assert worker.run_scheduled() == {"chores.tidy": "ok"}
        assert _titles(site) == ["tidy 2026-05-24", "tidy 2026-05-25"]


def test_a_job_naming_a_missing_function_or_an_unknown_job_is_refused(tmp_path, db_url):
    with pytest.raises(DefinitionError) as caught:
        _chores(tmp_path, db_url, {"tidy": {"function": "tidy_up"}})
    text = str(caught.value)
    assert "packs/chores/pack.yaml:" in text
    assert "packs/chores/jobs.py has no function 'tidy_up' (did you mean 'tidy'?)" in text
    with _chores(tmp_path / "other", db_url, TIDY,
                 {"jobs": {"chores.tidyy": {"enabled": False}}}) as site, \
            pytest.raises(DefinitionError) as caught:
        NotificationWorker(site)  # the worker refuses to start on a misspelt job
    checked = crm(site, "check")
    assert checked.exit_code != 0
    assert "no pack declares the job 'chores.tidyy'" in checked.output
    assert "crm.yaml:" in str(caught.value)
    assert "no pack declares the job 'chores.tidyy'" in str(caught.value)


def test_a_site_moves_a_weekly_job_keeping_its_weekday(tmp_path, db_url):
    from engine.jobs.definitions import pack_jobs

    weekly = {"tidy": {"function": "tidy", "every": "week", "on": "sunday", "at": "06:00"}}
    with _chores(tmp_path, db_url, weekly, {"jobs": {"chores.tidy": {"at": "23:00"}}}) as site:
        assert pack_jobs(site)["chores.tidy"].schedule.describe() == "weekly on sunday at 23:00"
    with _chores(tmp_path / "hourly", db_url, weekly,
                 {"jobs": {"chores.tidy": {"every": "hour", "minute": 5}}}) as site:
        assert pack_jobs(site)["chores.tidy"].schedule.describe() == "hourly at :05"


def test_schedules_hourly_daily_weekly_in_site_time():
    now = dt.datetime(2026, 5, 27, 2, 40, tzinfo=dt.UTC)  # Wednesday 10:40 in Shanghai
    zone = "Asia/Shanghai"
    assert Schedule(every="hour", minute=15).latest(now, zone) == now.replace(minute=15)
    assert Schedule(every="hour", minute=50).latest(now, zone) == now.replace(hour=1, minute=50)
    assert Schedule(every="day", at=dt.time(10, 40)).latest(now, zone) == now
    assert Schedule(every="day", at=dt.time(11, 0)).latest(now, zone) == \
        dt.datetime(2026, 5, 26, 3, 0, tzinfo=dt.UTC)
    assert Schedule(every="week", on=0, at=dt.time(6, 0)).latest(now, zone) == \
        dt.datetime(2026, 5, 24, 22, 0, tzinfo=dt.UTC)  # Monday 25 May, 06:00 site time
    assert Schedule(every="week", on=2, at=dt.time(11, 0)).latest(now, zone) == \
        dt.datetime(2026, 5, 20, 3, 0, tzinfo=dt.UTC)  # not yet today: last Wednesday


def test_scheduled_backups_keep_the_newest_and_the_admin_sees_the_last(tmp_path, db_url):
    clock = FixedClock(START)
    backups = {"backups": {"every": "day", "at": "03:00", "keep": 2, "folder": "backups"}}
    with _chores(tmp_path, db_url, {}, backups, clock=clock) as site:
        folder = site.config.root / "backups"
        folder.mkdir()
        (folder / "by-hand.crm-backup.zip").write_bytes(b"made by crm backup")
        worker = NotificationWorker(site, clock=clock)
        made = []
        for _ in range(4):
            assert worker.run_scheduled() == {"backup": "ok"}
            assert worker.run_scheduled() == {}
            made.append(_runs(site, "backup")[-1]["summary"]["file"])
            clock.advance(days=1)
        kept = scheduled_archives(site, folder)
        assert [str(p) for p in kept] == made[-2:]
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["by-hand.crm-backup.zip", *(p.name for p in kept)])
        runs = _runs(site, "backup")
        assert [r["occurrence"] for r in runs] == [
            "2026-05-24T19:00Z", "2026-05-25T19:00Z", "2026-05-26T19:00Z", "2026-05-27T19:00Z"]
        assert runs[-1]["summary"]["deleted"] == [Path(made[1]).name]
        last = last_backup(site)
        assert last is not None and last.file == made[-1] and last.exists
        assert last.size == Path(made[-1]).stat().st_size > 0

        listing = crm(site, "jobs")
        assert "Last backup: " in listing.output and made[-1] in listing.output
        assert any(x.startswith("backup") and "daily at 03:00" in x
                   for x in listing.output.splitlines())

        site.users.create("admin", password=PASSWORD, is_admin=True)
        site.users.create("clerk", password=PASSWORD)
        client = create_app(site, testing=True).test_client()
        login(client, "clerk", PASSWORD)
        assert client.get("/admin/jobs").status_code == 403
        client = create_app(site, testing=True).test_client()
        login(client, "admin", PASSWORD)
        page = client.get("/admin/jobs")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert Path(made[-1]).name in html and f'data-bytes="{last.size}"' in html
        assert "daily at 03:00" in html and 'data-job="backup"' in html
        site.users.create("wang", password=PASSWORD, is_admin=True, language="zh")
        chinese = create_app(site, testing=True).test_client()
        login(chinese, "wang", PASSWORD)
        html = chinese.get("/admin/jobs").get_data(as_text=True)
        assert "最近一次备份" in html and "每天 03:00" in html

        scraper, _ = site.users.tokens.create("admin", "prometheus")
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {scraper}"}
                             ).get_data(as_text=True)
        age = next(x for x in metrics.splitlines()
                   if x.startswith("visioncrm_last_backup_age_seconds "))
        assert float(age.split()[1]) == (clock.now() - last.finished_at).total_seconds()


def test_metrics_count_failed_job_runs(tmp_path, db_url):
    clock = FixedClock(START)
    with _chores(tmp_path, db_url, {"flaky": {"function": "flaky"}}, clock=clock) as site:
        NotificationWorker(site, clock=clock).run_scheduled()
        site.users.create("admin", password=PASSWORD, is_admin=True)
        scraper, _ = site.users.tokens.create("admin", "prometheus")
        client = create_app(site, testing=True).test_client()
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {scraper}"}
                             ).get_data(as_text=True)
        assert 'visioncrm_job_failures{job="chores.flaky"} 1.0' in metrics
        assert "visioncrm_outbox_messages" in metrics
        # no scheduled backup yet: the age is left out rather than made up
        assert not any(x.startswith("visioncrm_last_backup_age_seconds ")
                       for x in metrics.splitlines())


@pytest.mark.parametrize(("url", "ready"), [("redis://127.0.0.1:6379/0", True),
                                            ("redis://127.0.0.1:1/0", False)])
def test_readyz_checks_redis_when_the_site_uses_it(tmp_path, db_url, monkeypatch, url, ready):
    monkeypatch.delenv("CRM_REDIS_URL", raising=False)
    with _chores(tmp_path, db_url, {}, {"notifications": {"redis_url": url}}) as site:
        answer = create_app(site, testing=True).test_client().get("/readyz")
        checks = answer.get_json()["checks"]
        if ready:
            assert answer.status_code == 200 and checks["redis"] == "ok"
        else:
            assert answer.status_code == 503
            assert checks["redis"].startswith("unreachable: ")
            assert checks["database"] == "ok"
