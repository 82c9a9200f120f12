"""Pre-filling a salesperson's daily or weekly report (日报/周报) from the period's work.

The report form (or an API call) asks :func:`prefill_sales_report` for the
starting values of a new ``sales_report``: the period, a title, the counts
of the actor's visits and calls/meetings done in the period (by their
``due_at`` in the site's time zone), the opportunities they created in it
and their value, and a draft of "talks held" listing each activity done
with its outcome. The salesperson then edits and submits it. Everything is
read through the record service with the actor, and only the actor's own
records (their ``owner``) count, so a manager's report is not their team's.
Payments collected stay empty until a pack with payment collection fills them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from engine.context import Actor
from engine.services.records import RecordService
from engine.storage.queries import Filter


def report_period(period: str, day: dt.date) -> tuple[dt.date, dt.date]:
    """The day itself, or the Monday–Sunday week holding it."""
    if period == "day":
        return day, day
    if period == "week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=6)
    raise ValueError(f"period must be 'day' or 'week', not {period!r}")


def _all(records: RecordService, actor: Actor, entity: str, filters: list[Filter]) -> list[dict]:
    rows, offset = [], 0
    while True:
        page = records.list(actor, entity, filters=filters, sort=(), limit=1000, offset=offset,
                            with_total=False)
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        offset += 1000


def prefill_sales_report(records: RecordService, actor: Actor, period: str, day: dt.date, *,
                         timezone: str = "Asia/Shanghai") -> dict[str, Any]:
    """Starting values of the actor's report for the day or week holding ``day``."""
    start, end = report_period(period, day)
    zone = ZoneInfo(timezone)
    since = dt.datetime.combine(start, dt.time(), zone).astimezone(dt.UTC)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    mine = Filter("owner", "eq", actor.user_id)
    window = [Filter("due_at", "ge", since.isoformat()), Filter("due_at", "lt", until.isoformat())]
    done = _all(records, actor, "activity", [mine, Filter("done", "eq", True), *window])
    done.sort(key=lambda a: (a["due_at"], a["id"]))
    created = [Filter("created_at", "ge", since.isoformat()),
               Filter("created_at", "lt", until.isoformat())]
    opportunities = _all(records, actor, "opportunity", [mine, *created])
    talks = []
    for activity in done:
        when = activity["due_at"].astimezone(zone).strftime("%m-%d %H:%M")
        line = f"{when} {activity['subject']}"
        if activity.get("outcome"):
            line += f": {activity['outcome']}"
        if activity.get("next_step"):
            line += f" → {activity['next_step']}"
        talks.append(line)
    label = {"day": ("日报", start.isoformat()), "week": ("周报", f"{start} ~ {end}")}[period]
    return {
        "name": f"{label[0]} {label[1]} {actor.login}",
        "period": period,
        "period_start": start,
        "period_end": end,
        "visits": sum(1 for a in done if a["kind"] == "visit"),
        "calls": sum(1 for a in done if a["kind"] in ("call", "meeting")),
        "new_opportunities": len(opportunities),
        "new_opportunity_value": sum((Decimal(str(o["amount"] or 0)) for o in opportunities),
                                     Decimal(0)),
        "talks": "\n".join(talks) or None,
    }
