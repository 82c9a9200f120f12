"""A small consultancy, generated: the service-sales pack's demo (``crm demo --size N``).

``demo/data.yaml`` only holds records the demo's administrator may bring
about alone (a contract's author cannot approve it, and the demo loader
acts as one user). This generator adds a consultancy with its people —
an owner, a delivery manager, four consultants and a finance clerk — and
``max(8, min(size // 10, 40))`` contracts in every status: drafted and
submitted by consultants, approved by the manager (or by the owner above
the threshold), signed, delivered week by week, invoiced on a 30/40/30
schedule with collections on time, late or still owed, some completed with
the customer's sign-off, one terminated.

Deterministic: one ``random.Random(seed)`` drives every choice and every
date is computed from the site's clock, so the same seed and day give the
same data. Every write goes through the record and workflow services as
the person who would make it.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from engine.pack_api import Filter, NotFound
from packs.core.demo_generator import DemoUser, GeneratedDemo

if TYPE_CHECKING:
    from engine.pack_api import Actor, Site

TEAM = ("consulting", "咨询交付部")
STAFF = (
    ("svc_owner", "周总", "owner"),
    ("svc_manager", "吴经理", "manager"),
    ("zheng_hua", "郑华", "consultant"),
    ("wang_lei", "王磊", "consultant"),
    ("chen_jing", "陈静", "consultant"),
    ("liu_yang", "刘洋", "consultant"),
    ("sun_fin", "孙会计", "finance"),
)
SERVICES = (
    ("ERP 实施顾问 ERP consulting", "hour", 1500, (60, 200)),
    ("数据迁移 Data migration", "day", 6000, (5, 20)),
    ("流程梳理工作坊 Process workshop", "day", 8000, (2, 8)),
    ("系统运维 Managed service", "unit", 12000, (3, 12)),
    ("培训 Training", "day", 5000, (2, 6)),
)
CLIENTS = ("瑞和医药", "东方精工", "Pacific Logistics", "海川食品", "联创电子", "Greenfield Retail",
           "中远建材", "明德教育", "Sino Auto Parts", "天成物业", "华泰纺织", "北辰软件")
#: Status mix: most contracts are being delivered.
STATUSES = ("active", "completed", "under_review", "active", "approved", "returned",
            "terminated", "draft", "signed", "active", "completed", "active")
THRESHOLD = Decimal("200000")  # the guard of 'approve' in workflows/contract.yaml


def _user(site: Site, login: str, name: str, role: str) -> DemoUser:
    user = DemoUser(login, name, role, TEAM[0] if role in ("manager", "consultant") else None)
    try:
        site.users.get(login)
    except NotFound:
        site.users.create(login, password=user.password, display_name=name, language="zh",
                          roles=[role])
    return user


def _staff(site: Site) -> list[DemoUser]:
    users = [_user(site, *spec) for spec in STAFF]
    try:
        site.users.teams.get(TEAM[0])
    except NotFound:
        site.users.teams.create(TEAM[0], label=TEAM[1], manager="svc_manager")
    for user in users:
        if user.role == "consultant":
            site.users.teams.add_member(TEAM[0], user.login)
    return users


class _Consultancy:
    """Writes one contract's life as the people who would live it."""

    def __init__(self, site: Site, rng: random.Random, today: dt.date) -> None:
        self.site, self.rng, self.today = site, rng, today
        self.actors: dict[str, Actor] = {login: site.users.actor(login) for login, _, _ in STAFF}
        self.counts: dict[str, int] = {}

    def create(self, who: str, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        self.counts[entity] = self.counts.get(entity, 0) + 1
        return self.site.records.create(self.actors[who], entity, values)

    def move(self, who: str, entity: str, record_id: int, stage: str,
             values: dict[str, Any] | None = None) -> None:
        self.site.workflows.transition(self.actors[who], entity, record_id, stage, values or {})

    def contract(self, index: int, consultant: str, status: str) -> None:
        rng, today = self.rng, self.today
        customer = self.create(consultant, "customer", {
            "name": f"{CLIENTS[index % len(CLIENTS)]}{'' if index < len(CLIENTS) else index}",
            "kind": "client", "source": rng.choice(["referral", "visit", "web", "campaign"]),
            "region": rng.choice(["上海", "北京", "深圳", "杭州", "苏州"])})
        lines = []
        for service, unit, rate, (low, high) in rng.sample(SERVICES, rng.randint(1, 3)):
            lines.append({"service": service, "unit": unit, "quantity": rng.randint(low, high),
                          "rate": rate})
        total = sum(Decimal(line["quantity"]) * line["rate"] for line in lines)
        deal = self.create(consultant, "opportunity", {
            "name": f"{customer['name']} 服务项目", "customer": customer["id"],
            "service_lines": lines, "amount": total})
        self.move(consultant, "opportunity", deal["id"], "proposal")
        self.move(consultant, "opportunity", deal["id"], "won")
        started = today - dt.timedelta(days=rng.randint(20, 200))
        if status in ("draft", "under_review", "returned", "approved"):
            started = today + dt.timedelta(days=rng.randint(10, 40))
        months = rng.choice((3, 6, 12))
        ends = started + dt.timedelta(days=30 * months)
        if status == "completed":
            ends = min(ends, today - dt.timedelta(days=rng.randint(5, 30)))
        # Winning drafted the contract from the service lines (hooks.py); fill it in.
        (drafted,) = self.site.records.list(self.actors[consultant], "contract", filters=[
            Filter("opportunity", "eq", deal["id"])]).rows
        self.counts["contract"] = self.counts.get("contract", 0) + 1
        contract = self.site.records.update(self.actors[consultant], "contract", drafted["id"], {
            "name": f"{customer['name']} 服务合同", "start_date": started, "end_date": ends,
            "payment_terms": "签约付30%,中期付40%,验收付30%,开票后30天内付款"})
        if status == "draft":
            return
        self.move(consultant, "contract", contract["id"], "under_review")
        if status == "under_review":
            return
        if status == "returned" or rng.random() < 0.3:
            self.move("svc_manager", "contract", contract["id"], "returned",
                      {"review_comment": "请补充验收标准和里程碑"})
            if status == "returned":
                return
            self.move(consultant, "contract", contract["id"], "under_review")
        approver = "svc_owner" if total > THRESHOLD else "svc_manager"
        self.move(approver, "contract", contract["id"], "approved")
        if status == "approved":
            return
        self.move(consultant, "contract", contract["id"], "signed",
                  {"signed_on": started - dt.timedelta(days=3)})
        if status == "signed":
            return
        self.move(consultant, "contract", contract["id"], "active")
        self.deliver(consultant, contract["id"], lines, started,
                     1.0 if status == "completed" else rng.uniform(0.2, 0.9))
        self.schedule(contract["id"], total, started, ends)
        if status == "completed":
            self.move(consultant, "contract", contract["id"], "completed",
                      {"customer_signoff_by": "客户项目经理", "customer_signoff_on": ends})
        elif status == "terminated":
            self.move("svc_manager", "contract", contract["id"], "terminated",
                      {"termination_reason": "客户预算冻结,双方协商终止"})

    def deliver(self, consultant: str, contract_id: int, lines: list[dict[str, Any]],
                started: dt.date, share: float) -> None:
        """Weekly deliveries up to ``share`` of each line, never after today."""
        for number, line in enumerate(lines, start=1):
            left = Decimal(line["quantity"]) * Decimal(str(round(share, 2)))
            day = started
            while left > 0 and day < self.today:
                step = min(left, Decimal(self.rng.choice((4, 8, 16))) if line["unit"] == "hour"
                           else Decimal(1))
                self.create(consultant, "delivery", {
                    "summary": f"{line['service'].split(' ')[0]} 第{number}项", "line": number,
                    "contract": contract_id, "quantity": step, "performed_on": day})
                left -= step
                day += dt.timedelta(days=7)

    def schedule(self, contract_id: int, total: Decimal, started: dt.date, ends: dt.date) -> None:
        """A 30/40/30 schedule; collections on time, late, partial or not yet."""
        middle = started + (ends - started) / 2
        for name, share, due in (("签约款 30%", "0.3", started + dt.timedelta(days=15)),
                                 ("中期款 40%", "0.4", middle), ("验收款 30%", "0.3", ends)):
            amount = (total * Decimal(share)).quantize(Decimal("0.01"))
            plan = self.create("sun_fin", "payment_plan", {
                "name": name, "contract": contract_id, "due_date": due, "amount": amount})
            if due > self.today:
                continue
            late = self.rng.choice((-5, 0, 3, 20, 45, None))
            if late is None:
                continue  # still owed: it shows in the ageing
            received = due + dt.timedelta(days=late)
            if received > self.today:
                continue
            paid = amount if self.rng.random() < 0.85 else (amount / 2).quantize(Decimal("0.01"))
            self.create("sun_fin", "collection", {
                "payment_plan": plan["id"], "received_on": received, "amount": paid,
                "method": self.rng.choice(["transfer", "transfer", "acceptance"])})


def generate(site: Site, size: int = 100, *, seed: int = 2026,
             progress: Callable[[int, int], None] | None = None) -> GeneratedDemo:
    """Add the consultancy (see the module docstring); ``progress(done, size)`` per contract."""
    users = _staff(site)
    rng = random.Random(seed)
    today = site.clock.now().astimezone(ZoneInfo(site.config.timezone)).date()
    consultancy = _Consultancy(site, rng, today)
    consultants = [u.login for u in users if u.role == "consultant"]
    total = max(8, min(size // 10, 40))
    for index in range(total):
        consultancy.contract(index, consultants[index % len(consultants)],
                             STATUSES[index % len(STATUSES)])
        if progress:  # counted in the caller's units (``size``), as crm demo's bar expects
            progress((index + 1) * size // total, size)
    return GeneratedDemo(users=users, counts=consultancy.counts)
