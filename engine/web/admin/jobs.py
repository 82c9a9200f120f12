"""The administrator's page of background work: scheduled jobs and the last backup.

``/admin/jobs`` shows, for an administrator only (403 for anyone else,
checked here on the actor, not in the template), each job with its
schedule, last run, state and failures — the same figures as ``crm jobs``
— and the last scheduled backup with its time, size and file.  Labels
live here in both languages, beside the only page that uses them.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, render_template

from engine.errors import PermissionDenied
from engine.http.context import actor, language, login_required, site
from engine.jobs.backups import last_backup, read_backup_settings
from engine.jobs.runner import scheduled_jobs
from engine.metadata.durations import format_duration
from engine.notifications.jobs import JobLog
from engine.notifications.settings import read_settings

bp = Blueprint("job_admin", __name__)

WORDS: dict[str, dict[str, str]] = {
    "title": {"en": "Background jobs and backups", "zh": "后台任务与备份"},
    "last_backup": {"en": "Last backup", "zh": "最近一次备份"},
    "no_backup": {"en": "No scheduled backup has been made yet.", "zh": "尚未进行过定时备份。"},
    "no_schedule": {"en": "Scheduled backups are off: set backups: in crm.yaml.",
                    "zh": "未启用定时备份:请在 crm.yaml 中设置 backups:。"},
    "schedule": {"en": "Schedule", "zh": "计划"},
    "keep": {"en": "Archives kept", "zh": "保留份数"},
    "folder": {"en": "Folder", "zh": "目录"},
    "when": {"en": "Finished", "zh": "完成时间"},
    "size": {"en": "Size", "zh": "大小"},
    "file": {"en": "File", "zh": "文件"},
    "missing": {"en": "the file is no longer there", "zh": "文件已不存在"},
    "job": {"en": "Job", "zh": "任务"},
    "what": {"en": "What it does", "zh": "说明"},
    "last_run": {"en": "Last run", "zh": "上次运行"},
    "state": {"en": "State", "zh": "状态"},
    "failures": {"en": "Failed (24 h)", "zh": "失败次数(24 小时)"},
    "never": {"en": "never run", "zh": "从未运行"},
    "last_error": {"en": "Last error", "zh": "最近错误"},
}


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


@bp.get("/admin/jobs")
@login_required
def jobs_page() -> str:
    if not actor().is_admin:
        raise PermissionDenied("Only an administrator sees the background jobs.")
    crm = site()
    lang = language()
    planned = scheduled_jobs(crm)
    notifications = read_settings(crm.config.notifications)
    zh = lang.startswith("zh")
    scan, digest = format_duration(notifications.scan_every), \
        notifications.digest_at.strftime("%H:%M")
    schedules = {"reminders": f"每 {scan}" if zh else f"every {scan}",
                 "delivery": "每次轮询" if zh else "every poll",
                 "digest": f"每天 {digest} 起" if zh else f"daily from {digest}",
                 **{name: job.schedule.describe(lang) for name, job in planned.items()}}
    found = JobLog(crm.schema, crm.engine, crm.clock, "web").overview(
        lang, {name: job.description for name, job in planned.items()})
    settings = read_backup_settings(crm)
    words = {key: text.get(lang) or text["en"] for key, text in WORDS.items()}
    zone = ZoneInfo(crm.config.timezone)

    def local(moment: dt.datetime) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return render_template("job_admin.html", jobs=found, schedules=schedules,
                           backup=last_backup(crm), settings=settings, words=words,
                           size=_size, local=local)
