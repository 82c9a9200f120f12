"""When a scheduled job falls due: hourly, daily at a time, or weekly on a weekday.

A schedule is read from YAML (``every: day, at: "02:00"``; ``every: hour,
minute: 15``; ``every: week, on: monday, at: "06:00"``) in the site's time
zone.  The worker asks for the *latest occurrence* at or before now: an
occurrence is a moment, and the job runs once for it — a worker that was
down at 02:00 runs the day's job when it comes back, once, and a job never
runs for occurrences older than the latest one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from engine.metadata.durations import parse_clock_time

WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                             "sunday")
EVERY: tuple[str, ...] = ("hour", "day", "week")
ZH_WEEKDAYS: tuple[str, ...] = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


@dataclass(frozen=True)
class Schedule:
    every: str = "day"
    at: dt.time = dt.time(2, 0)
    minute: int = 0
    on: int = 0  # weekday, Monday = 0

    @classmethod
    def read(cls, data: Mapping[str, Any], default_at: str = "02:00") -> Schedule:
        """From the (schema-checked) keys ``every``, ``at``, ``minute``, ``on``."""
        return cls(every=data.get("every", "day"),
                   at=parse_clock_time(str(data.get("at", default_at))),
                   minute=int(data.get("minute", 0)),
                   on=WEEKDAYS.index(data.get("on", "monday")))

    def describe(self, language: str = "en") -> str:
        """The schedule in words (``crm jobs``, the admin page), in English or Chinese."""
        if language.startswith("zh"):
            if self.every == "hour":
                return f"每小时第 {self.minute} 分"
            day = f"每{ZH_WEEKDAYS[self.on]}" if self.every == "week" else "每天"
            return f"{day} {self.at.strftime('%H:%M')}"
        if self.every == "hour":
            return f"hourly at :{self.minute:02d}"
        if self.every == "week":
            return f"weekly on {WEEKDAYS[self.on]} at {self.at.strftime('%H:%M')}"
        return f"daily at {self.at.strftime('%H:%M')}"

    def latest(self, now: dt.datetime, timezone: str) -> dt.datetime:
        """The latest occurrence at or before ``now`` (aware, UTC)."""
        zone = ZoneInfo(timezone)
        local = now.astimezone(zone)
        if self.every == "hour":
            moment = local.replace(minute=self.minute, second=0, microsecond=0)
            if moment > local:
                moment -= dt.timedelta(hours=1)
            return moment.astimezone(dt.UTC)
        day = local.date()
        if self.every == "week":
            day -= dt.timedelta(days=(day.weekday() - self.on) % 7)
        moment = dt.datetime.combine(day, self.at, tzinfo=zone)
        if moment > local:
            moment = dt.datetime.combine(
                day - dt.timedelta(days=7 if self.every == "week" else 1), self.at, tzinfo=zone)
        return moment.astimezone(dt.UTC)


def occurrence_key(moment: dt.datetime) -> str:
    """The occurrence as stored in ``crm_job_run.occurrence`` (UTC, to the minute)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
