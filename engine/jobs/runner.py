"""Running scheduled jobs once per occurrence, whichever worker gets there first.

Each poll, a worker works out every scheduled job's latest occurrence
(:meth:`Schedule.latest`) and tries to *claim* it: it inserts the run's
``crm_job_run`` row with ``occurrence`` set, and the unique index on
``(job, occurrence)`` lets exactly one insert succeed — on SQLite and
PostgreSQL alike, with or without Redis, on one machine or several.  The
winner runs the job and records ``ok`` with the summary, or ``failed`` with
the error; the others move on.  A failed occurrence is not retried (the
next occurrence runs as usual).

A worker killed mid-run leaves its row ``running``.  Once the run is older
than ``TAKEOVER_AFTER`` (no job of ours runs that long), the next worker to
poll takes the occurrence over — one conditional ``UPDATE``, so only one
worker can — and runs it again; the row says whose run it replaced.  A run
that was merely slow and ends after being taken over records nothing: the
row is no longer its own.  Jobs are written to be run again safely (each
works out what is still to do), so a second run of an occurrence does no
harm.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.context import Actor, Clock
from engine.jobs.backups import JOB as BACKUP_JOB
from engine.jobs.backups import make_backup, read_backup_settings
from engine.jobs.context import JobContext
from engine.jobs.definitions import pack_jobs
from engine.jobs.schedule import Schedule, occurrence_key
from engine.storage.database import write_transaction

if TYPE_CHECKING:
    from engine.site import Site

log = logging.getLogger(__name__)

#: A run still ``running`` after this long was left by a worker that died; it is run again.
TAKEOVER_AFTER = dt.timedelta(hours=2)


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    schedule: Schedule
    description: tuple[str, str]  # en, zh
    run: Callable[[JobContext], Any]


def _summary(value: Any) -> dict[str, Any]:
    """What a job returned, as a small JSON summary."""
    if value is None:
        return {}
    if isinstance(value, dict):
        if all(isinstance(v, int | float | str | bool | list | None) for v in value.values()) \
                and all(isinstance(k, str) for k in value):
            return value
        return {"count": len(value)}
    if isinstance(value, list | tuple | set):
        return {"count": len(value)}
    return {"result": value if isinstance(value, int | float | str | bool) else str(value)}


def scheduled_jobs(site: Site) -> dict[str, ScheduledJob]:
    """The site's scheduled jobs: its packs' enabled jobs and, if set up, the backup."""
    from engine.pack_code import site_pack_modules

    found: dict[str, ScheduledJob] = {}
    declared = pack_jobs(site)
    modules: dict[tuple[str, str], Any] = {}
    for job in declared.values():
        if (job.pack, job.module) not in modules:
            modules.update({(pack, job.module): module for pack, module
                            in site_pack_modules(site, job.module).items()})
        function = getattr(modules[(job.pack, job.module)], job.function)
        found[job.name] = ScheduledJob(job.name, job.schedule,
                                       (job.label.en, job.label.get("zh")), function)
    settings = read_backup_settings(site)
    if settings is not None:
        found[BACKUP_JOB] = ScheduledJob(
            BACKUP_JOB, settings.schedule,
            (f"Back up the site, keeping the newest {settings.keep}",
             f"备份站点,保留最近 {settings.keep} 份"),
            lambda context: make_backup(context.site, settings))
    return found


class JobScheduler:
    """Runs the due occurrences of a site's scheduled jobs (see the module docstring)."""

    def __init__(self, site: Site, clock: Clock, worker: str,
                 jobs: dict[str, ScheduledJob] | None = None, *,
                 takeover_after: dt.timedelta = TAKEOVER_AFTER) -> None:
        self.site = site
        self.clock = clock
        self.worker = worker
        self.jobs = scheduled_jobs(site) if jobs is None else jobs
        self.table = site.schema.system("crm_job_run")
        self.takeover_after = takeover_after

    def _claim(self, job: str, occurrence: str) -> int | None:
        t = self.table
        with self.site.engine.connect() as conn:  # the cheap look first: usually it is taken
            found = conn.execute(select(t.c.id, t.c.status, t.c.started_at, t.c.worker).where(
                t.c.job == job, t.c.occurrence == occurrence)).first()
        if found is None:
            return self.insert_claim(job, occurrence)
        if found.status == "running" and found.started_at < self.clock.now() - self.takeover_after:
            return self._take_over(found.id, found.worker, found.started_at)
        return None

    def _take_over(self, run_id: int, worker: str, started_at: dt.datetime) -> int | None:
        """The abandoned run's row, made ours — unless another worker was quicker."""
        t = self.table
        note = (f"taken over by {self.worker}: the run {worker} started at "
                f"{started_at.isoformat(timespec='seconds')} never ended")
        with write_transaction(self.site.engine) as conn:
            taken = conn.execute(update(t).where(
                t.c.id == run_id, t.c.status == "running", t.c.worker == worker,
                t.c.started_at == started_at,
            ).values(worker=self.worker, started_at=self.clock.now(), error=note[:4000]))
        if taken.rowcount != 1:
            return None
        log.warning("scheduled job run %s: %s", run_id, note)
        return run_id

    def insert_claim(self, job: str, occurrence: str) -> int | None:
        """The run's row, or None when another worker's row holds the occurrence."""
        t = self.table
        try:
            with write_transaction(self.site.engine) as conn:
                return conn.execute(insert(t).values(
                    job=job, occurrence=occurrence, worker=self.worker,
                    started_at=self.clock.now(), status="running")).inserted_primary_key[0]
        except IntegrityError:
            return None  # another worker claimed it a moment ago

    def run_due(self) -> dict[str, str]:
        """Each job whose latest occurrence nobody has claimed: claim, run, record."""
        done = {}
        timezone = self.site.config.timezone
        for job in self.jobs.values():
            moment = job.schedule.latest(self.clock.now(), timezone)
            run_id = self._claim(job.name, occurrence_key(moment))
            if run_id is None:
                continue
            context = JobContext(site=self.site, actor=Actor.system(self.site.config.locale),
                                 occurrence=moment,
                                 today=moment.astimezone(ZoneInfo(timezone)).date(),
                                 clock=self.clock)
            values: dict[str, Any]
            try:
                values = {"status": "ok", "summary": _summary(job.run(context))}
            except Exception as exc:  # noqa: BLE001 - recorded; the other jobs still run
                log.exception("scheduled job %s failed", job.name)
                values = {"status": "failed", "error": "".join(
                    traceback.format_exception_only(exc)).strip()[:4000]}
            with write_transaction(self.site.engine) as conn:
                mine = conn.execute(update(self.table).where(
                    self.table.c.id == run_id, self.table.c.worker == self.worker,
                ).values(finished_at=self.clock.now(), **values)).rowcount == 1
            if not mine:
                log.warning("scheduled job %s ended after another worker took its run over; "
                            "its result is not recorded", job.name)
                continue
            done[job.name] = values["status"]
        return done

