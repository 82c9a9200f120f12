"""The core pack's reports: the sales report's pre-fill and the dashboard figures.

Pre-filling a salesperson's daily or weekly report (日报/周报) from the period's work:

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
from collections import defaultdict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from engine.pack_api import Actor, Figure, Filter, Records, ReportRequest, Series, ValidationFailed


def report_period(period: str, day: dt.date) -> tuple[dt.date, dt.date]:
    """The day itself, or the Monday–Sunday week holding it."""
    if period == "day":
        return day, day
    if period == "week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=6)
    raise ValueError(f"period must be 'day' or 'week', not {period!r}")


def _all(records: Records, actor: Actor, entity: str, filters: list[Filter]) -> list[dict]:
    rows, offset = [], 0
    while True:
        page = records.list(actor, entity, filters=filters, sort=(), limit=1000, offset=offset,
                            with_total=False)
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        offset += 1000


def prefill_sales_report(records: Records, actor: Actor, period: str, day: dt.date, *,
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


# -- dashboard reports ------------------------------------------------------------------
#
# Each report below follows engine/services/views/figures.py: ``report(request) -> Figure``,
# reading through ``request.records`` and ``request.site`` services with ``request.actor``
# (the records from the read-only replica when the site has one) so its numbers stay
# inside the actor's scope (a salesperson's figures are theirs, a manager's their team's).

DAY = 86400


def _label(en: str, zh: str) -> dict[str, str]:
    return {"en": en, "zh": zh}


def _names(request: ReportRequest, ids: Any) -> dict[Any, str]:
    """Owners' display names (or logins), '—' for none."""
    wanted = {i for i in ids if i is not None}
    names = {u["id"]: u.get("display_name") or u["login"] for u in request.site.users.list()
             if u["id"] in wanted}
    return {i: names.get(i, "—") if i is not None else "—" for i in ids}


def _zone(request: ReportRequest) -> ZoneInfo:
    return ZoneInfo(request.site.config.timezone)


def _pipeline_figure(request: ReportRequest, weighted: bool) -> Figure:
    by = str(request.param("by", "stage"))
    groups = request.site.pipeline.weighted_pipeline(request.actor, "opportunity", by=by,
                                                     period=str(request.param("period", "month")))
    if by == "owner":
        names = _names(request, [g.key for g in groups])
        categories = tuple(names[g.key] for g in groups)
    else:
        categories = tuple(g.label for g in groups)
    series = [Series(_label("Open value", "在途金额"), tuple(g.value for g in groups))]
    if weighted:
        series.append(Series(_label("Weighted value", "加权金额"),
                             tuple(g.weighted for g in groups)))
    title = (_label("Weighted pipeline", "加权销售漏斗") if weighted
             else _label("Pipeline", "销售漏斗"))
    note = (_label("Open opportunities; weighted = amount × the stage's (or the deal's own) "
                   "probability.", "未关闭的销售机会;加权金额 = 金额 × 阶段(或机会自身)的赢单概率。")
            if weighted else _label("Amount of the open opportunities in each stage.",
                                    "各阶段未关闭销售机会的金额。"))
    return Figure(title, "column" if weighted or by != "stage" else "funnel", "money",
                  categories, tuple(series), note)


def pipeline(request: ReportRequest) -> Figure:
    """Open opportunity value per stage (``by``: stage, owner, period or a field)."""
    return _pipeline_figure(request, weighted=False)


def weighted_pipeline(request: ReportRequest) -> Figure:
    """Open and weighted value per stage (``by`` as for :func:`pipeline`)."""
    return _pipeline_figure(request, weighted=True)


def _closed_deals(request: ReportRequest) -> list[tuple[dict[str, Any], str, dt.datetime, int]]:
    """Won or lost opportunities: (record, outcome, closed at, seconds from creation)."""
    site, actor = request.site, request.actor
    cycles = {c.record_id: c for c in site.pipeline.cycle_times(actor, "opportunity").records}
    if not cycles:
        return []
    rows = _all(request.records, actor, "opportunity", [])
    deals = []
    for row in rows:
        cycle = cycles.get(row["id"])
        if cycle is not None:
            deals.append((row, cycle.outcome,
                          row["created_at"] + dt.timedelta(seconds=cycle.seconds), cycle.seconds))
    return deals


def _since_until(request: ReportRequest) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Optional ``since``/``until`` days (YYYY-MM-DD, in the site's time zone)."""
    bounds = []
    for name in ("since", "until"):
        raw = request.param(name)
        if raw in (None, ""):
            bounds.append(None)
            continue
        try:
            day = dt.date.fromisoformat(str(raw))
        except ValueError:
            raise ValidationFailed({name: [f"'{raw}' is not a date (YYYY-MM-DD)."]}) from None
        bounds.append(dt.datetime.combine(day, dt.time(), _zone(request)))
    return bounds[0], bounds[1]


def win_rate_by_owner(request: ReportRequest) -> Figure:
    """Won ÷ (won + lost) per salesperson, of deals closed in [since, until)."""
    since, until = _since_until(request)
    tally: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for row, outcome, closed, _ in _closed_deals(request):
        if (since and closed < since) or (until and closed >= until):
            continue
        tally[row.get("owner")][0 if outcome == "won" else 1] += 1
    owners = sorted(tally, key=lambda o: (o is None, o))
    names = _names(request, owners)
    rates = tuple((Decimal(tally[o][0] * 100) / (tally[o][0] + tally[o][1])).quantize(
        Decimal("0.01")) for o in owners)
    return Figure(_label("Win rate per salesperson", "销售员赢单率"), "bar", "percent",
                  tuple(names[o] for o in owners),
                  (Series(_label("Win rate", "赢单率"), rates),),
                  _label("Won ÷ (won + lost) opportunities, by count.",
                         "赢单数 ÷(赢单数 + 丢单数)。"))


def cycle_by_owner(request: ReportRequest) -> Figure:
    """Average days from creation to won (and to lost) per salesperson."""
    stays: dict[Any, dict[str, list[int]]] = defaultdict(lambda: {"won": [], "lost": []})
    for row, outcome, _, seconds in _closed_deals(request):
        stays[row.get("owner")][outcome].append(seconds)
    owners = sorted(stays, key=lambda o: (o is None, o))
    names = _names(request, owners)

    def average(values: list[int]) -> Decimal | None:
        if not values:
            return None
        return (Decimal(sum(values)) / len(values) / DAY).quantize(Decimal("0.1"))

    return Figure(_label("Average sales cycle per salesperson", "销售员平均销售周期"), "bar",
                  "days", tuple(names[o] for o in owners),
                  (Series(_label("To won", "至赢单"), tuple(average(stays[o]["won"])
                                                           for o in owners)),
                   Series(_label("To lost", "至丢单"), tuple(average(stays[o]["lost"])
                                                            for o in owners))),
                  _label("Days from an opportunity's creation to its move to won or lost.",
                         "从创建销售机会到赢单或丢单的天数。"))


def _week_start(moment: dt.datetime, zone: ZoneInfo) -> dt.date:
    day = moment.astimezone(zone).date()
    return day - dt.timedelta(days=day.weekday())


def visits_per_week(request: ReportRequest) -> Figure:
    """Visits done per salesperson per week, over the last ``weeks`` weeks (default 8)."""
    weeks = request.int_param("weeks", 8, 104)
    zone = _zone(request)
    this_week = _week_start(request.now, zone)
    starts = [this_week - dt.timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    since = dt.datetime.combine(starts[0], dt.time(), zone).astimezone(dt.UTC)
    until = dt.datetime.combine(this_week + dt.timedelta(days=7), dt.time(),
                                zone).astimezone(dt.UTC)
    visits = _all(request.records, request.actor, "activity", [
        Filter("kind", "eq", "visit"), Filter("done", "eq", True),
        Filter("due_at", "ge", since.isoformat()), Filter("due_at", "lt", until.isoformat())])
    counts: dict[Any, dict[dt.date, int]] = defaultdict(lambda: defaultdict(int))
    for visit in visits:
        counts[visit.get("owner")][_week_start(visit["due_at"], zone)] += 1
    owners = sorted(counts, key=lambda o: (o is None, o))
    names = _names(request, owners)
    return Figure(_label("Visits per salesperson per week", "销售员每周拜访次数"), "line", "count",
                  tuple(s.isoformat() for s in starts),
                  tuple(Series({"en": names[o], "zh": names[o]},
                               tuple(counts[o].get(s, 0) for s in starts)) for o in owners),
                  _label("Visits marked done, by the week (from Monday) of their date.",
                         "已完成的拜访,按拜访日期所在周(周一起)统计。"))


def _month_start(day: dt.date, back: int = 0) -> dt.date:
    month = day.year * 12 + day.month - 1 - back
    return dt.date(month // 12, month % 12 + 1, 1)


def new_customers(request: ReportRequest) -> Figure:
    """Customers created per ``period`` (month or week), over the last ``periods`` of them."""
    period = str(request.param("period", "month"))
    if period not in ("month", "week"):
        raise ValidationFailed({"period": ["Give month or week."]})
    count = request.int_param("periods", 6, 120)
    zone = _zone(request)
    today = request.today()
    if period == "month":
        starts = [_month_start(today, n) for n in range(count - 1, -1, -1)]
        end = _month_start(today, -1)
        labels = tuple(f"{s:%Y-%m}" for s in starts)
    else:
        this_week = today - dt.timedelta(days=today.weekday())
        starts = [this_week - dt.timedelta(weeks=n) for n in range(count - 1, -1, -1)]
        end = this_week + dt.timedelta(days=7)
        labels = tuple(s.isoformat() for s in starts)
    since = dt.datetime.combine(starts[0], dt.time(), zone).astimezone(dt.UTC)
    until = dt.datetime.combine(end, dt.time(), zone).astimezone(dt.UTC)
    created = _all(request.records, request.actor, "customer", [
        Filter("created_at", "ge", since.isoformat()), Filter("created_at", "lt", until.isoformat())])
    counts = [0] * len(starts)
    for row in created:
        day = row["created_at"].astimezone(zone).date()
        index = max(i for i, s in enumerate(starts) if s <= day)
        counts[index] += 1
    return Figure(_label("New customers", "新增客户"), "column", "count", labels,
                  (Series(_label("Customers", "客户"), tuple(counts)),),
                  _label(f"Customers created per {period}.",
                         "按月统计的新建客户数。" if period == "month" else "按周统计的新建客户数。"))


def _aware(value: Any) -> dt.datetime | None:
    """A datetime from an aggregate (some drivers answer text or a naive UTC time)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def customers_without_activity(request: ReportRequest) -> Figure:
    """Customers with no activity done in the last ``days`` days (default 30), idlest first.

    An activity counts on the date it was done (its ``due_at``); a customer never
    contacted counts from its creation.
    """
    days = request.int_param("days", 30, 3650)
    actor, now = request.actor, request.now
    last: dict[int, dt.datetime] = {}
    done = Filter("done", "eq", True)
    # dated activities in one grouped query; the few done without a date count by creation
    dated = [(row["customer"], _aware(row["last"])) for row in request.records.aggregate(
        actor, "activity", {"last": "max:due_at"}, group_by=["customer"],
        filters=[done, Filter("due_at", "isnull", False)])]
    undated = [(row.get("customer"), row["created_at"]) for row in _all(
        request.records, actor, "activity", [done, Filter("due_at", "isnull", True)])]
    for customer, when in dated + undated:
        if customer is not None and when is not None and (
                customer not in last or when > last[customer]):
            last[customer] = when
    idle = []
    for customer in _all(request.records, actor, "customer", []):
        since = last.get(customer["id"], customer["created_at"])
        waited = now - since
        if waited > dt.timedelta(days=days):
            idle.append((waited, customer))
    idle.sort(key=lambda item: (-item[0], item[1]["id"]))
    return Figure(_label(f"Customers with no activity in {days} days",
                         f"{days}天内无跟进的客户"), "table", "days",
                  tuple(c["name"] for _, c in idle),
                  (Series(_label("Days since the last activity", "距上次跟进天数"),
                          tuple(w.days for w, _ in idle)),),
                  _label("Last activity: the latest done visit, call, meeting, e-mail or task "
                         "on the customer (its creation if none).",
                         "上次跟进:该客户最近一次已完成的拜访、电话、会议、邮件或任务(没有则为建档时间)。"),
                  tuple(f"customer/{c['id']}" for _, c in idle))


def complaints_overdue(request: ReportRequest) -> Figure:
    """Complaints past their stage's response deadline (SLA), the longest overdue first."""
    late = sorted(request.site.pipeline.overdue(request.actor, "complaint"),
                  key=lambda s: (-s.overdue_seconds, s.record_id))
    return Figure(_label("Complaints overdue", "超时未处理的投诉"), "table", "hours",
                  tuple(str(s.title) for s in late),
                  (Series(_label("Hours overdue", "超时小时数"),
                          tuple((Decimal(s.overdue_seconds) / 3600).quantize(Decimal("0.1"))
                                for s in late)),),
                  _label("Open cases past the promise of their stage (acknowledge within 24h, ...).",
                         "超过所在阶段承诺时限的未关闭问题(如24小时内回复确认)。"),
                  tuple(f"complaint/{s.record_id}" for s in late))


def target_vs_actual(request: ReportRequest) -> Figure:
    """Each salesperson's monthly target against the value they won in that month.

    ``month`` is YYYY-MM (default: this month in the site's time zone); targets
    are the ``sales_target`` records of period ``month`` starting in it, the actual
    is the amount of the opportunities moved to won in it.
    """
    zone = _zone(request)
    raw = request.param("month")
    try:
        start = (dt.date.fromisoformat(f"{raw}-01") if raw
                 else _month_start(request.today()))
    except ValueError:
        raise ValidationFailed({"month": [f"'{raw}' is not a month (YYYY-MM)."]}) from None
    end = _month_start(start, -1)
    targets: dict[Any, Decimal] = defaultdict(Decimal)
    for row in _all(request.records, request.actor, "sales_target", [
            Filter("period", "eq", "month"), Filter("period_start", "ge", start.isoformat()),
            Filter("period_start", "lt", end.isoformat())]):
        targets[row.get("owner")] += Decimal(str(row["amount"] or 0))
    since = dt.datetime.combine(start, dt.time(), zone)
    until = dt.datetime.combine(end, dt.time(), zone)
    actual: dict[Any, Decimal] = defaultdict(Decimal)
    for row, outcome, closed, _ in _closed_deals(request):
        if outcome == "won" and since <= closed < until:
            actual[row.get("owner")] += Decimal(str(row["amount"] or 0))
    owners = sorted(set(targets) | set(actual), key=lambda o: (o is None, o))
    names = _names(request, owners)
    return Figure(_label(f"Target vs actual, {start:%Y-%m}", f"{start:%Y-%m} 目标与实际"),
                  "column", "money", tuple(names[o] for o in owners),
                  (Series(_label("Target", "目标"), tuple(targets.get(o, Decimal(0))
                                                         for o in owners)),
                   Series(_label("Won", "实际赢单"), tuple(actual.get(o, Decimal(0))
                                                          for o in owners))),
                  _label("Monthly sales targets against the amount of the deals won that month.",
                         "月度销售目标与当月赢单金额对比。"))
