"""Running scheduled jobs once per occurrence, whichever worker gets there first.

Each poll, a worker works out every scheduled job's latest occurrence
(:meth:`Schedule.latest`) and tries to *claim* it: it inserts the run's
``crm_job_run`` row with ``occurrence`` set, and the unique index on
``(job, occurrence)`` lets exactly one insert succeed — on SQLite and
PostgreSQL alike, with or without Redis, on one machine or several.  The
winner runs the job and records ``ok`` with the summary, or ``failed`` with
the error; the others move on.  A failed occurrence is not retried (the
next occurrence runs as usual); a worker killed mid-run leaves its row
``running``, shown so by ``crm jobs``.
"""

from __future__ import annotations

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
                 jobs: dict[str, ScheduledJob] | None = None) -> None:
        self.site = site
        self.clock = clock
        self.worker = worker
        self.jobs = scheduled_jobs(site) if jobs is None else jobs
        self.table = site.schema.system("crm_job_run")

    def _claim(self, job: str, occurrence: str) -> int | None:
        t = self.table
        with self.site.engine.connect() as conn:  # the cheap look first: usually it is taken
            if conn.execute(select(t.c.id).where(t.c.job == job, t.c.occurrence == occurrence)
                            ).first() is not None:
                return None
        return self.insert_claim(job, occurrence)

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
                conn.execute(update(self.table).where(self.table.c.id == run_id).values(
                    finished_at=self.clock.now(), **values))
            done[job.name] = values["status"]
        return done

