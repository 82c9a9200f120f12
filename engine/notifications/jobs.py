"""Recording the runs of background jobs, for ``crm jobs`` and for whoever is on call.

Each run of a job is a ``crm_job_run`` row: started (``running``), then
``ok`` with a summary or ``failed`` with the error.  A run that never
finished (the worker was killed) stays ``running`` and is shown as such.
Delivery and digest runs that found nothing to do are not recorded, so the
table holds what happened rather than a heartbeat every few seconds; runs
older than ``KEEP`` are pruned by the scheduler job.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from engine.context import Clock
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

#: The jobs a worker runs, with what they do (en, zh).
JOBS: dict[str, tuple[str, str]] = {
    "reminders": ("Write the messages of reminders falling due", "生成到期提醒的消息"),
    "delivery": ("Deliver the outbox (in-app, e-mail, SMS) with retries", "投递发件箱(站内、邮件、短信)并重试"),
    "digest": ("Send the daily e-mail digest to users who chose it", "向选择摘要的用户发送每日邮件摘要"),
}
KEEP = dt.timedelta(days=30)


@dataclass(frozen=True)
class JobStatus:
    job: str
    description: str
    last_started: dt.datetime | None
    last_status: str | None
    last_ok: dt.datetime | None
    failures_24h: int
    last_error: str | None
    last_summary: Any


class JobLog:
    """Writes and reads job runs."""

    def __init__(self, schema: Schema, engine: Engine, clock: Clock, worker: str) -> None:
        self.table = schema.system("crm_job_run")
        self.engine = engine
        self.clock = clock
        self.worker = worker

    @contextmanager
    def run(self, job: str, *, keep_empty: bool = True) -> Iterator[dict[str, Any]]:
        """Record one run; fill the yielded dict with the summary.  Errors are recorded and
        raised again; with ``keep_empty=False`` a run whose summary stays empty is dropped."""
        t = self.table
        with write_transaction(self.engine) as conn:
            run_id = conn.execute(insert(t).values(
                job=job, worker=self.worker, started_at=self.clock.now(), status="running",
            )).inserted_primary_key[0]
        summary: dict[str, Any] = {}
        try:
            yield summary
        except Exception as exc:
            with write_transaction(self.engine) as conn:
                conn.execute(update(t).where(t.c.id == run_id).values(
                    status="failed", finished_at=self.clock.now(), summary=summary or None,
                    error="".join(traceback.format_exception_only(exc)).strip()[:4000]))
            raise
        with write_transaction(self.engine) as conn:
            if not summary and not keep_empty:
                conn.execute(delete(t).where(t.c.id == run_id))
            else:
                conn.execute(update(t).where(t.c.id == run_id).values(
                    status="ok", finished_at=self.clock.now(), summary=summary))

    def prune(self) -> int:
        t = self.table
        with write_transaction(self.engine) as conn:
            return conn.execute(delete(t).where(t.c.started_at < self.clock.now() - KEEP)).rowcount

    def overview(self, language: str = "en",
                 scheduled: dict[str, tuple[str, str]] | None = None) -> list[JobStatus]:
        """Each job's last run; ``scheduled`` adds the site's scheduled jobs (engine/jobs)."""
        t = self.table
        since = self.clock.now() - dt.timedelta(hours=24)
        found = []
        with self.engine.connect() as conn:
            for job, words in {**JOBS, **(scheduled or {})}.items():
                last = conn.execute(select(t).where(t.c.job == job)
                                    .order_by(t.c.started_at.desc(), t.c.id.desc())
                                    .limit(1)).mappings().first()
                last_ok = conn.execute(select(func.max(t.c.finished_at)).where(
                    t.c.job == job, t.c.status == "ok")).scalar()
                failures = conn.execute(select(func.count()).select_from(t).where(
                    t.c.job == job, t.c.status == "failed", t.c.started_at >= since)).scalar_one()
                last_error = conn.execute(select(t.c.error).where(
                    t.c.job == job, t.c.status == "failed")
                    .order_by(t.c.started_at.desc()).limit(1)).scalar()
                found.append(JobStatus(
                    job, words[1] if language.startswith("zh") else words[0],
                    last["started_at"] if last else None, last["status"] if last else None,
                    last_ok, failures, last_error, last["summary"] if last else None))
        return found
