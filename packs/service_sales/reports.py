"""The service-sales figures (see engine/services/views/figures.py for the contract).

Each function takes a :class:`ReportRequest` and returns a :class:`Figure`,
reading with the request's actor so every number stays inside their scope.
Dashboards name them ``service_sales.<function>``; tests and scripts may
call the functions of ``receivables``, ``delivery`` and ``renewals``
directly for the raw numbers.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from engine.pack_api import Figure, ReportRequest, Series
from packs.service_sales.delivery import delivery_progress, utilisation
from packs.service_sales.receivables import BUCKETS, CURRENT, ageing
from packs.service_sales.records_io import all_rows
from packs.service_sales.renewals import notice_date, renewals_due


def _user_names(request: ReportRequest) -> dict[int, str]:
    return {u["id"]: u.get("display_name") or u["login"] for u in request.site.users.list()}


def contracts_by_status(request: ReportRequest) -> Figure:
    """Count and value of contracts per status, in the flow's order."""
    workflow = request.site.registry.workflows["contract_review"]
    pipeline = next(iter(workflow.pipelines.values()))
    count: dict[str, int] = defaultdict(int)
    value: dict[str, Decimal] = defaultdict(Decimal)
    for row in all_rows(request.records, request.actor, "contract"):
        count[row["stage"]] += 1
        value[row["stage"]] += Decimal(row.get("total") or 0)
    stages = sorted(pipeline.stages.values(), key=lambda s: s.order)
    language = request.actor.language
    return Figure(
        title={"en": "Contracts by status", "zh": "合同状态分布"},
        kind="bar", unit="money",
        categories=tuple(s.label.get(language) for s in stages),
        series=(Series({"en": "Value", "zh": "金额"}, tuple(value[s.key] for s in stages)),
                Series({"en": "Contracts", "zh": "合同数"}, tuple(count[s.key] for s in stages),
                       unit="count")),
    )


def receivables_ageing(request: ReportRequest) -> Figure:
    """Outstanding receivables per ageing bucket (days past the due date)."""
    totals = ageing(request.records, request.actor, request.today())
    keys = (CURRENT, *(key for key, _, _ in BUCKETS))
    names = {CURRENT: "未到期 not due", "0-30": "0-30", "31-60": "31-60", "61-90": "61-90",
             "90+": "90+"}
    return Figure(
        title={"en": "Receivables ageing", "zh": "应收账龄"},
        kind="column", unit="money",
        categories=tuple(names[k] for k in keys),
        series=(Series({"en": "Outstanding", "zh": "未收金额"}, tuple(totals[k] for k in keys)),),
        note={"en": "Days past each instalment's due date; 'not due' is owed later.",
              "zh": "按付款计划应收日期起算的逾期天数;“未到期”为尚未到期的应收款。"},
    )


def delivery_by_contract(request: ReportRequest) -> Figure:
    """Completion of each signed, active or completed contract (value-weighted %)."""
    progress = delivery_progress(request.records, request.actor)
    progress.sort(key=lambda p: (p.completion, p.number))
    return Figure(
        title={"en": "Delivery progress per contract", "zh": "合同交付进度"},
        kind="bar", unit="percent",
        categories=tuple(f"{p.number} {p.name}" for p in progress),
        series=(Series({"en": "Completion", "zh": "完成率"},
                       tuple(p.completion for p in progress)),),
        note={"en": "Delivered value (capped at each line's contracted quantity) over the "
                    "contract's value.",
              "zh": "已交付价值(每行以合同数量为上限)占合同金额的比例。"},
    )


def consultant_utilisation(request: ReportRequest) -> Figure:
    """Delivered hours over working hours per consultant, this month (or params since/until)."""
    today = request.today()
    since = request.param("since") or today.replace(day=1)
    until = request.param("until") or today
    if isinstance(since, str):
        since = dt.date.fromisoformat(since)
    if isinstance(until, str):
        until = dt.date.fromisoformat(until)
    rows = utilisation(request.records, request.actor, since, until,
                       hours_per_day=Decimal(str(request.param("hours_per_day", 8))))
    names = _user_names(request)
    return Figure(
        title={"en": "Utilisation per consultant", "zh": "顾问利用率"},
        kind="bar", unit="percent",
        categories=tuple(names.get(r.user_id or 0, "—") for r in rows),
        series=(Series({"en": "Utilisation", "zh": "利用率"}, tuple(r.percent for r in rows)),
                Series({"en": "Hours", "zh": "工时"}, tuple(r.hours for r in rows), unit="hours")),
        note={"en": f"{since} – {until}, Monday to Friday.",
              "zh": f"{since} 至 {until},按周一至周五计。"},
    )


def renewals_coming(request: ReportRequest) -> Figure:
    """Active contracts whose renewal notice date has come, with their value."""
    due = renewals_due(request.records, request.actor, request.today(),
                       include_raised=True)
    return Figure(
        title={"en": "Renewals due", "zh": "待续约合同"},
        kind="table", unit="money",
        categories=tuple(f"{r['number']} {r['name']} ({r['end_date']})" for r in due),
        series=(Series({"en": "Value", "zh": "金额"},
                       tuple(Decimal(r.get("total") or 0) for r in due)),
                Series({"en": "Days to end", "zh": "距到期天数"},
                       tuple((r["end_date"] - request.today()).days for r in due), unit="days")),
        note={"en": "Notice from each contract's renewal notice days "
                    f"(first due: {min((notice_date(r) for r in due), default='—')}).",
              "zh": "按各合同的续约提前天数计算。"},
    )
