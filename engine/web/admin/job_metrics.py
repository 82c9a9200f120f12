"""The operations figures of background work: Redis readiness, backup age, job failures.

Kept beside ``operations.py`` (which serves them): ``/readyz`` asks Redis
when the site's workers share one (``notifications.redis_url`` or
``CRM_REDIS_URL``), since a site whose Redis is gone has workers that no
longer coordinate; ``/metrics`` reads the last backup and the failed job
runs from ``crm_job_run`` at scrape time, so every process reports the same
figures whichever worker ran the jobs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from engine.jobs.backups import last_backup
from engine.notifications.settings import read_settings

if TYPE_CHECKING:
    from engine.site import Site

FAILURE_WINDOW = dt.timedelta(hours=24)


def redis_check(site: Site) -> tuple[bool, str | None]:
    """(ready, what to report); (True, None) when the site uses no Redis."""
    url = read_settings(site.config.notifications).redis_url
    if not url:
        return True, None
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - report, never raise, from a probe
        return False, f"unreachable: {exc.__class__.__name__}"
    return True, "ok"


def job_gauges(site: Site) -> Iterator[GaugeMetricFamily]:
    """``visioncrm_last_backup_age_seconds`` and ``visioncrm_job_failures``."""
    age = GaugeMetricFamily("visioncrm_last_backup_age_seconds",
                            "Seconds since the last successful scheduled backup finished.")
    failures = GaugeMetricFamily("visioncrm_job_failures",
                                 "Failed background job runs in the last 24 hours, by job.",
                                 labels=["job"])
    if "crm_job_run" in site.schema.metadata.tables:
        runs = site.schema.system("crm_job_run")
        now = site.clock.now()
        try:
            with site.engine.connect() as conn:
                backup = last_backup(site, conn)
                rows = conn.execute(select(runs.c.job, func.count()).where(
                    runs.c.status == "failed", runs.c.started_at >= now - FAILURE_WINDOW)
                    .group_by(runs.c.job)).all()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the DB blinked
            backup, rows = None, []
        if backup is not None:
            age.add_metric([], max(0.0, (now - backup.finished_at).total_seconds()))
        for job, count in rows:
            failures.add_metric([job], count)
    yield age
    yield failures
