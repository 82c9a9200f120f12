"""Reports of project sales: the weighted pipeline, delivery, receivables and margins.

Each report is a function taking a :class:`ReportRequest` and returning a
:class:`Figure` (``engine/services/views/figures.py``), declared as a widget of the
pack's dashboard (``dashboards/projects.yaml``). Every number is read through
the record service or the pipeline service with ``request.actor``, so a
salesperson's figures cover only the projects they reach (their own and
those whose team they are on) and a finance user's cover every project.

Definitions, shared by the reports:

- a project's **weighted value** is its estimated value × its probability
  (the stage's, unless the record says otherwise) for open projects;
- an instalment's **collected** amount is the sum of the collections
  recorded against it, its **outstanding** amount what remains; it is
  **overdue** when its due date is before today (in the site's time zone)
  and something remains outstanding;
- a milestone is **overdue** when it is not done and its due date is before
  today;
- a project's **actual cost** is the total of its purchase orders placed
  (ordered, shipped or received — not drafts, not cancelled ones) plus the
  expenses charged to it; its **margin** is the contract value minus the
  actual cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from engine.pack_api import Actor, Figure, Filter, Records, ReportRequest, Series

ZERO = Decimal(0)
#: Project stages after which a project is being delivered.
SIGNED = "signed"
#: Purchase-order stages that commit money (drafts and cancelled orders do not).
PLACED = ("ordered", "shipped", "received")
#: Delivery stages of a contract that is not yet paid in full.
IN_DELIVERY = ("procurement", "implementation", "delivered", "accepted")


def _label(en: str, zh: str) -> dict[str, str]:
    return {"en": en, "zh": zh}


def _all(records: Records, actor: Actor, entity: str,
         filters: Iterable[Filter] = ()) -> list[dict[str, Any]]:
    """Every record of ``entity`` the actor reads (lists are paged by the service)."""
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = records.list(actor, entity, filters=list(filters), sort=(), limit=1000,
                            offset=offset, with_total=False)
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        offset += 1000


def _money(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else ZERO




def _stage_labels(request: ReportRequest, entity: str) -> dict[str, str]:
    workflow = next(w for w in request.site.registry.workflows.values() if w.entity == entity)
    language = request.actor.language
    return {key: stage.label.get(language)
            for key, stage in workflow.pipeline(None).stages.items()}


# -- pre-sale: the weighted pipeline ------------------------------------------------------


def _pipeline(request: ReportRequest, by: str, title: dict[str, str]) -> Figure:
    groups = request.site.pipeline.weighted_pipeline(request.actor, "project", by=by)
    return Figure(
        title=title,
        kind="bar",
        unit="money",
        categories=tuple(g.label for g in groups),
        series=(
            Series(_label("Estimated value", "预计金额"), tuple(g.value for g in groups)),
            Series(_label("Weighted value", "加权金额"), tuple(g.weighted for g in groups)),
        ),
        note=_label("Open projects; weighted value = estimated value × probability.",
                    "进行中的项目;加权金额 = 预计金额 × 成交概率。"),
    )


def weighted_pipeline_by_stage(request: ReportRequest) -> Figure:
    """Open projects' value and weighted value per pre-sale stage."""
    return _pipeline(request, "stage", _label("Weighted pipeline by stage", "各阶段加权项目金额"))


def weighted_pipeline_by_salesperson(request: ReportRequest) -> Figure:
    """Open projects' value and weighted value per salesperson (the project's owner)."""
    return _pipeline(request, "owner",
                     _label("Weighted pipeline by salesperson", "各销售员加权项目金额"))


def weighted_projects(request: ReportRequest) -> Figure:
    """Open projects, largest weighted value first: where the effort should go."""
    found = request.site.pipeline.weighted_records(request.actor, "project")
    limit = int(request.param("limit", 10))
    found = found[:limit]
    return Figure(
        title=_label("Projects by weighted value", "项目加权金额排名"),
        kind="bar",
        unit="money",
        categories=tuple(str(r.title) for r in found),
        series=(
            Series(_label("Estimated value", "预计金额"), tuple(r.value for r in found)),
            Series(_label("Weighted value", "加权金额"), tuple(r.weighted for r in found)),
        ),
        note=_label("Two projects at the same probability weigh by their value.",
                    "成交概率相同的项目,按金额区分轻重。"),
    )


# -- post-sale: delivery, receivables, margins ------------------------------------------


class _Ledger:
    """What the reports need about signed projects, read once per report."""

    def __init__(self, request: ReportRequest) -> None:
        records, actor = request.records, request.actor
        self.today = request.today()
        self.projects = {p["id"]: p for p in _all(records, actor, "project",
                                                   [Filter("stage", "eq", SIGNED)])}
        self.contracts = {c["project"]: c for c in _all(records, actor, "project_contract")}
        self.instalments = _all(records, actor, "instalment")
        self.collections = _all(records, actor, "collection")
        self._records, self._actor = records, actor

    def collected_on(self) -> dict[int, Decimal]:
        """Instalment id → collected against it."""
        found: dict[int, Decimal] = defaultdict(Decimal)
        for collection in self.collections:
            if collection.get("instalment") is not None:
                found[collection["instalment"]] += _money(collection["amount"])
        return found

    def collected_by_project(self) -> dict[int, Decimal]:
        found: dict[int, Decimal] = defaultdict(Decimal)
        for collection in self.collections:
            found[collection["project"]] += _money(collection["amount"])
        return found

    def overdue_instalments(self) -> list[tuple[dict[str, Any], Decimal, Decimal, int]]:
        """(instalment, collected, outstanding, days overdue), the longest overdue first."""
        collected = self.collected_on()
        found = []
        for instalment in self.instalments:
            got = collected.get(instalment["id"], ZERO)
            outstanding = _money(instalment["amount"]) - got
            if instalment["due_date"] < self.today and outstanding > 0:
                found.append((instalment, got, outstanding,
                              (self.today - instalment["due_date"]).days))
        found.sort(key=lambda item: (-item[3], item[0]["id"]))
        return found

    def overdue_milestones(self) -> list[tuple[dict[str, Any], int]]:
        found = [(m, (self.today - m["due_date"]).days)
                 for m in _all(self._records, self._actor, "milestone")
                 if m.get("status") != "done" and m["due_date"] < self.today]
        found.sort(key=lambda item: (-item[1], item[0]["id"]))
        return found

    def actual_costs(self) -> dict[int, Decimal]:
        """Project id → purchase orders placed + expenses charged to it."""
        costs: dict[int, Decimal] = defaultdict(Decimal)
        for order in _all(self._records, self._actor, "purchase_order"):
            if order.get("stage") in PLACED:
                costs[order["project"]] += _money(order.get("total"))
        for expense in _all(self._records, self._actor, "expense",
                            [Filter("project", "isnull", False)]):
            costs[expense["project"]] += _money(expense.get("amount"))
        return costs

    def project_name(self, project_id: int) -> str:
        project = self.projects.get(project_id)
        return str(project["name"]) if project else f"#{project_id}"


def projects_in_delivery(request: ReportRequest) -> Figure:
    """Signed projects not yet paid in full, with their delivery stage and what is late."""
    ledger = _Ledger(request)
    labels = _stage_labels(request, "project_contract")
    collected = ledger.collected_by_project()
    late_milestones: dict[int, int] = defaultdict(int)
    for milestone, _days in ledger.overdue_milestones():
        late_milestones[milestone["project"]] += 1
    late_money: dict[int, Decimal] = defaultdict(Decimal)
    for instalment, _got, outstanding, _days in ledger.overdue_instalments():
        late_money[instalment["project"]] += outstanding
    rows = sorted((c for c in ledger.contracts.values() if c.get("stage") in IN_DELIVERY),
                  key=lambda c: (IN_DELIVERY.index(c["stage"]), c["id"]))
    return Figure(
        title=_label("Projects in delivery", "交付中的项目"),
        kind="table",
        unit="money",
        categories=tuple(f"{ledger.project_name(c['project'])} — {labels[c['stage']]}"
                         for c in rows),
        series=(
            Series(_label("Contract value", "合同金额"),
                   tuple(_money(c["contract_value"]) for c in rows)),
            Series(_label("Collected", "已回款"),
                   tuple(collected.get(c["project"], ZERO) for c in rows)),
            Series(_label("Overdue instalments", "逾期应收"),
                   tuple(late_money.get(c["project"], ZERO) for c in rows)),
            Series(_label("Overdue milestones", "逾期里程碑数"),
                   tuple(late_milestones.get(c["project"], 0) for c in rows), unit="count"),
        ),
        note=_label("Delivery stage after the project's name.", "项目名称后为当前交付阶段。"),
    )


def _project_names(request: ReportRequest) -> dict[Any, str]:
    """The names of the projects the actor sees, by id (for rows that point at one)."""
    return {p["id"]: p["name"] for p in _all(request.records, request.actor, "project")}


def overdue_milestones(request: ReportRequest) -> Figure:
    """Milestones not done past their due date, with the days they are late."""
    ledger = _Ledger(request)
    names = _project_names(request)
    found = ledger.overdue_milestones()
    return Figure(
        title=_label("Overdue milestones", "逾期里程碑"),
        kind="table",
        unit="days",
        categories=tuple(f"{names.get(m['project'], '#' + str(m['project']))} · {m['name']}"
                         for m, _ in found),
        series=(Series(_label("Days overdue", "逾期天数"), tuple(d for _, d in found)),),
    )


def overdue_instalments(request: ReportRequest) -> Figure:
    """Instalments past their due date with money outstanding."""
    ledger = _Ledger(request)
    names = _project_names(request)
    found = ledger.overdue_instalments()
    return Figure(
        title=_label("Overdue instalments", "逾期付款节点"),
        kind="table",
        unit="money",
        categories=tuple(f"{names.get(i['project'], '#' + str(i['project']))} · {i['name']}"
                         for i, *_ in found),
        series=(
            Series(_label("Due", "应收"), tuple(_money(i["amount"]) for i, *_ in found)),
            Series(_label("Collected", "已回款"), tuple(got for _, got, _, _ in found)),
            Series(_label("Outstanding", "未回款"), tuple(out for _, _, out, _ in found)),
            Series(_label("Days overdue", "逾期天数"), tuple(days for *_, days in found),
                   unit="days"),
        ),
    )


def receivables(request: ReportRequest) -> Figure:
    """Per signed project: contract value, collected, still receivable and overdue."""
    ledger = _Ledger(request)
    collected = ledger.collected_by_project()
    overdue: dict[int, Decimal] = defaultdict(Decimal)
    for instalment, _got, outstanding, _days in ledger.overdue_instalments():
        overdue[instalment["project"]] += outstanding
    ids = sorted(ledger.projects)
    values = {i: _money(ledger.projects[i].get("contract_value")) for i in ids}
    return Figure(
        title=_label("Receivables", "应收账款"),
        kind="table",
        unit="money",
        categories=tuple(ledger.project_name(i) for i in ids),
        series=(
            Series(_label("Contract value", "合同金额"), tuple(values[i] for i in ids)),
            Series(_label("Collected", "已回款"), tuple(collected.get(i, ZERO) for i in ids)),
            Series(_label("Receivable", "应收余额"),
                   tuple(values[i] - collected.get(i, ZERO) for i in ids)),
            Series(_label("Overdue", "逾期金额"), tuple(overdue.get(i, ZERO) for i in ids)),
        ),
    )


def collections_vs_plan(request: ReportRequest) -> Figure:
    """Per month: the instalments falling due (the plan) and the collections received."""
    ledger = _Ledger(request)
    planned: dict[str, Decimal] = defaultdict(Decimal)
    received: dict[str, Decimal] = defaultdict(Decimal)
    for instalment in ledger.instalments:
        planned[instalment["due_date"].strftime("%Y-%m")] += _money(instalment["amount"])
    for collection in ledger.collections:
        received[collection["received_on"].strftime("%Y-%m")] += _money(collection["amount"])
    months = sorted(set(planned) | set(received))
    since, until = request.param("since"), request.param("until")
    months = [m for m in months if (since is None or m >= since) and (until is None or m <= until)]
    return Figure(
        title=_label("Collections against the payment plan", "回款与付款计划对比"),
        kind="column",
        unit="money",
        categories=tuple(months),
        series=(
            Series(_label("Planned", "计划应收"), tuple(planned.get(m, ZERO) for m in months)),
            Series(_label("Collected", "实际回款"), tuple(received.get(m, ZERO) for m in months)),
        ),
        note=_label("Plan: instalments by due month; collected: collections by month received.",
                    "计划:付款节点按应收月份;实际:回款按到账月份。"),
    )


def margin_per_project(request: ReportRequest) -> Figure:
    """Per signed project: contract value, cost budget, actual cost and margin."""
    ledger = _Ledger(request)
    costs = ledger.actual_costs()
    ids = sorted(ledger.projects)
    values = {i: _money(ledger.projects[i].get("contract_value")) for i in ids}
    return Figure(
        title=_label("Margin per project", "项目毛利"),
        kind="table",
        unit="money",
        categories=tuple(ledger.project_name(i) for i in ids),
        series=(
            Series(_label("Contract value", "合同金额"), tuple(values[i] for i in ids)),
            Series(_label("Cost budget", "成本预算"),
                   tuple(_money(ledger.projects[i].get("budget_cost")) for i in ids)),
            Series(_label("Actual cost", "实际成本"), tuple(costs.get(i, ZERO) for i in ids)),
            Series(_label("Margin", "毛利"),
                   tuple(values[i] - costs.get(i, ZERO) for i in ids)),
        ),
        note=_label("Actual cost: purchase orders placed (not drafts or cancelled ones) plus "
                    "expenses charged to the project.", "实际成本:已下单的采购单(不含草稿和已取消的)加计入项目的费用。"),
    )
