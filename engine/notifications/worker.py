"""The worker: the reminder scan, scheduled jobs, queued imports, the digest and the outbox
delivery, in a loop or once.

``crm worker`` runs :meth:`NotificationWorker.run_forever`; ``crm worker
--once`` (cron, tests) runs each job once; ``crm serve --with-worker``
runs the loop in a thread of the web process for single-process sites.
Each job's run is recorded (``crm jobs``); a job that fails is recorded
with its error and the loop goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.context import Clock
from engine.jobs.runner import JobScheduler
from engine.notifications.channels import Channel
from engine.notifications.coordination import Coordinator, LocalCoordinator, RedisCoordinator
from engine.notifications.delivery import OutboxDelivery
from engine.notifications.digest import DigestJob
from engine.notifications.jobs import JobLog
from engine.notifications.reminders import ReminderScheduler, ScanFailed
from engine.notifications.settings import NotificationSettings, read_settings
from engine.services.dataio.importing.queue import ImportQueue
from engine.services.messaging.recipients import RecipientAccess
from engine.services.views.pipeline import PipelineService

if TYPE_CHECKING:
    from engine.site import Site

log = logging.getLogger(__name__)


class NotificationWorker:
    """One worker of a site; several may run at once (see coordination.py)."""

    def __init__(self, site: Site, *, settings: NotificationSettings | None = None,
                 channels: Mapping[str, Channel] | None = None,
                 coordinator: Coordinator | None = None, worker: str | None = None,
                 clock: Clock | None = None) -> None:
        clock = clock or site.clock
        self.settings = settings or read_settings(site.config.notifications)
        timezone = site.config.timezone
        # Reminders are decided on the primary: site.pipeline may read a replica, whose lag
        # could remind about a deal that has just left its stage.
        pipeline = (site.pipeline if site.report_records is site.records
                    else PipelineService(site.records, clock=site.clock, timezone=timezone))
        self.scheduler = ReminderScheduler(site.records, pipeline, clock=clock,
                                           locale=site.config.locale, timezone=timezone)
        # Who may still be told: checked again at delivery and when the digest is made.
        access = RecipientAccess(site.records, site.users)
        self.delivery = OutboxDelivery(site.schema, site.engine, clock, self.settings,
                                       access=access, channels=channels, worker=worker,
                                       timezone=timezone)
        self.digest = DigestJob(site.schema, site.engine, clock, self.settings, access=access,
                                timezone=timezone)
        self.jobs = JobLog(site.schema, site.engine, clock, self.delivery.worker)
        # Pack jobs and backups (engine/jobs): once per occurrence across all workers.
        self.scheduled = JobScheduler(site, clock, self.delivery.worker)
        # Imports queued by the web and the API (engine/services/dataio/importing/queue.py).
        self.imports = ImportQueue.for_site(site, clock=clock)
        if coordinator is None:
            coordinator = (RedisCoordinator(self.settings.redis_url,
                                            RedisCoordinator.namespace_for(site.config.database_url))
                           if self.settings.redis_url else LocalCoordinator())
        self.coordinator = coordinator

    @property
    def name(self) -> str:
        return self.delivery.worker

    def scan(self) -> dict[str, int]:
        with self.jobs.run("reminders") as summary:
            try:
                written = self.scheduler.scan()
            except ScanFailed as failed:
                summary.update({k: v for k, v in failed.written.items() if v})
                if any(failed.written.values()):
                    self.coordinator.wake(2)
                raise
            summary.update({k: v for k, v in written.items() if v})
            self.jobs.prune()
        if any(written.values()):
            self.coordinator.wake(2)
        return written

    def make_digests(self) -> int:
        with self.jobs.run("digest", keep_empty=False) as summary:
            made = self.digest.run()
            if made:
                summary["digests"] = made
        return made

    def deliver(self) -> dict[str, int]:
        with self.jobs.run("delivery", keep_empty=False) as summary:
            summary.update(self.delivery.run())
        return dict(summary)

    def run_scheduled(self) -> dict[str, str]:
        """The scheduled jobs (pack jobs, backups) whose occurrence has come; job → outcome."""
        return self.scheduled.run_due()

    def run_imports(self) -> dict[str, str]:
        """The queued imports (and any a dead worker left), one at a time; run → outcome."""
        return self.imports.run_queued(self.name)

    def _guarded(self, job: Callable[[], Any]) -> Any:
        try:
            return job()
        except Exception:  # noqa: BLE001 - recorded in crm_job_run; the loop goes on
            log.exception("job %s failed", getattr(job, "__name__", job))
            return None

    def run_once(self, *, scan: bool = True) -> dict[str, Any]:
        """Each job once, in order: scan, scheduled jobs, imports, digest, delivery."""
        return {
            "reminders": self._guarded(self.scan) if scan else None,
            "scheduled": self._guarded(self.run_scheduled),
            "imports": self._guarded(self.run_imports),
            "digests": self._guarded(self.make_digests),
            "delivery": self._guarded(self.deliver),
        }

    def run_forever(self, stop: threading.Event, *, poll: float = 5.0) -> None:
        """Until ``stop`` is set: scan when it is this worker's turn, deliver, wait."""
        while not stop.is_set():
            self.run_once(scan=self.coordinator.scan_turn(self.settings.scan_every))
            if stop.is_set():
                break
            self.coordinator.wait(poll)


def start_embedded(site: Site, *, poll: float = 5.0) -> tuple[threading.Thread, threading.Event]:
    """The worker in a daemon thread of this process (``crm serve --with-worker``)."""
    stop = threading.Event()
    worker = NotificationWorker(site, coordinator=None)
    if isinstance(worker.coordinator, LocalCoordinator):
        worker.coordinator.stop = stop
    thread = threading.Thread(target=worker.run_forever, args=(stop,), kwargs={"poll": poll},
                              name="crm-worker", daemon=True)
    thread.start()
    return thread, stop
