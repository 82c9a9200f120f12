"""Scheduled backups with retention (``backups:`` in crm.yaml) and the last one made.

The worker calls :func:`make_backup` at each occurrence: one archive by
:func:`engine.backup.back_up`, named ``<site>-scheduled-YYYYmmdd-HHMMSS.crm-backup.zip``
in the folder, then the oldest archives *matching that name* beyond
``keep`` are deleted — a hand-made backup (``crm backup``) or any other file
in the folder is never touched.  The run (file, size, deleted archives) is a
``crm_job_run`` row of the job ``backup``, which is where the admin page,
``crm jobs`` and ``/metrics`` read the last backup from.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from engine.jobs.schedule import Schedule

if TYPE_CHECKING:
    from engine.site import Site

JOB = "backup"
SUFFIX = ".crm-backup.zip"


@dataclass(frozen=True)
class BackupSettings:
    schedule: Schedule
    keep: int
    folder: Path


@dataclass(frozen=True)
class LastBackup:
    finished_at: dt.datetime
    file: str
    size: int
    exists: bool


def read_backup_settings(site: Site) -> BackupSettings | None:
    """The ``backups:`` section, or None when the site has none (or switched it off)."""
    data: Mapping[str, Any] = site.config.backups
    if not data or not data.get("enabled", True):
        return None
    folder = Path(data.get("folder", "backups"))
    return BackupSettings(schedule=Schedule.read(data, default_at="03:00"),
                          keep=int(data.get("keep", 14)),
                          folder=folder if folder.is_absolute() else site.config.root / folder)


def _prefix(site: Site) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in site.config.root.name)
    return f"{safe}-scheduled-"


def scheduled_archives(site: Site, folder: Path) -> list[Path]:
    """The archives the schedule made in ``folder``, oldest first."""
    pattern = re.compile(re.escape(_prefix(site)) + r"\d{8}-\d{6}" + re.escape(SUFFIX))
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and pattern.fullmatch(p.name))


def make_backup(site: Site, settings: BackupSettings) -> dict[str, Any]:
    """One archive, then retention; the run's summary."""
    from engine.backup import back_up

    stamp = site.clock.now().astimezone(dt.UTC).strftime("%Y%m%d-%H%M%S")
    result = back_up(site, settings.folder / f"{_prefix(site)}{stamp}{SUFFIX}")
    archives = scheduled_archives(site, settings.folder)
    deleted = []
    for old in archives[:max(0, len(archives) - settings.keep)]:
        old.unlink(missing_ok=True)
        deleted.append(old.name)
    return {"file": str(result.path), "size": result.size, "deleted": deleted}


def last_backup(site: Site, conn: Connection | None = None) -> LastBackup | None:
    """The newest successful scheduled backup recorded, or None."""
    table = site.schema.system("crm_job_run")
    query = (select(table.c.finished_at, table.c.summary)
             .where(table.c.job == JOB, table.c.status == "ok")
             .order_by(table.c.finished_at.desc(), table.c.id.desc()).limit(1))
    if conn is None:
        with site.engine.connect() as own:
            row = own.execute(query).first()
    else:
        row = conn.execute(query).first()
    if row is None or not row.summary:
        return None
    file = str(row.summary.get("file", ""))
    return LastBackup(finished_at=row.finished_at, file=file,
                      size=int(row.summary.get("size") or 0), exists=Path(file).is_file())
