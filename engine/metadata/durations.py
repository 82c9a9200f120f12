"""Durations written in definitions (``90m``, ``24h``, ``3d``) and working hours.

Service promises ("reply to a complaint within 24 hours") and rotting rules
("no activity for 14 days") are written as short durations.  Most are
measured in calendar time; a stage may instead count only working hours
(``sla: {within: 8h, business_hours: true}``), for which
:class:`BusinessHours` adds time across the working windows of each day in
the workflow's time zone.  Everything here is pure and clock-free, so the
services decide what "now" is.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: The written form: one or more ``<number><unit>`` parts, e.g. ``1d12h``.
DURATION_PATTERN = r"^([0-9]+[wdhm])+$"
_PART = re.compile(r"([0-9]+)([wdhm])")
_UNITS = {"w": dt.timedelta(weeks=1), "d": dt.timedelta(days=1), "h": dt.timedelta(hours=1),
          "m": dt.timedelta(minutes=1)}
#: Weekday keys in ``business_hours.days``, Monday first (``date.weekday()`` order).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_duration(text: str) -> dt.timedelta:
    """``"1d12h"`` → 36 hours.  Raises ValueError for anything else (the schema says why)."""
    if not isinstance(text, str) or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"not a duration: {text!r}")
    total = dt.timedelta()
    for number, unit in _PART.findall(text):
        total += int(number) * _UNITS[unit]
    return total


def format_duration(delta: dt.timedelta) -> str:
    """The shortest written form of a whole number of minutes (``36h`` → ``1d12h``)."""
    minutes = int(delta.total_seconds() // 60)
    if minutes <= 0:
        return "0m"
    parts = []
    for unit, size in (("d", 1440), ("h", 60), ("m", 1)):
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_clock_time(text: str) -> dt.time:
    """``"09:00"`` → 09:00; ``"24:00"`` means the end of the day (stored as 23:59:59.999999)."""
    match = re.fullmatch(r"([01][0-9]|2[0-4]):([0-5][0-9])", text or "")
    if not match:
        raise ValueError(f"not a time of day: {text!r}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour == 24:
        if minute:
            raise ValueError(f"not a time of day: {text!r}")
        return dt.time.max
    return dt.time(hour, minute)


def zone(name: str) -> ZoneInfo:
    """The time zone called ``name``; ValueError when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


@dataclass(frozen=True)
class BusinessHours:
    """The working week a business-hours SLA counts in: days, one daily window, a time zone.

    Public holidays are not modelled: a promise due on a holiday falls due
    on that day as on any working day.
    """

    timezone: str = "Asia/Shanghai"
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(18, 0)

    def add(self, moment: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """``moment`` plus ``duration`` of working time (UTC in, UTC out)."""
        tz = zone(self.timezone)
        current = moment.astimezone(tz)
        remaining = duration
        working = {WEEKDAYS.index(d) for d in self.days}
        for _ in range(366 * 8):  # a bounded walk: at most some years of days
            day = current.date()
            if day.weekday() in working:
                opens = dt.datetime.combine(day, self.start, tz)
                closes = dt.datetime.combine(day, self.end, tz)
                if current < opens:
                    current = opens
                if current < closes:
                    # Differences in UTC: wall-clock arithmetic would be off across DST changes.
                    available = closes.astimezone(dt.UTC) - current.astimezone(dt.UTC)
                    if remaining <= available:
                        return current.astimezone(dt.UTC) + remaining
                    remaining -= available
            current = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tz)
        raise ValueError("the working week has no working time")

    def to_data(self) -> dict[str, object]:
        return {
            "timezone": self.timezone,
            "days": list(self.days),
            "start": self.start.strftime("%H:%M"),
            "end": "24:00" if self.end == dt.time.max else self.end.strftime("%H:%M"),
        }


@dataclass(frozen=True)
class Sla:
    """The longest time a record may stay in a stage, in calendar or working time."""

    within: dt.timedelta
    text: str
    business_hours: bool = False

    def due(self, entered_at: dt.datetime, hours: BusinessHours | None) -> dt.datetime:
        """When a record that entered the stage at ``entered_at`` falls overdue."""
        if self.business_hours and hours is not None:
            return hours.add(entered_at, self.within)
        return entered_at + self.within

    def to_data(self) -> object:
        if self.business_hours:
            return {"within": self.text, "business_hours": True}
        return self.text
