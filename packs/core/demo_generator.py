"""A believable small company, generated: the core pack's demo at any size.

``demo/data.yaml`` holds a handful of curated records (the ones in the
screenshots); :func:`generate` adds, on top of them, a company with a few
sales teams, a dozen users (an owner, a manager per team, salespeople) and
``size`` customers — Chinese and English companies and persons, with their
contacts, company relations, opportunities in every stage, thousands of
visits, calls and follow-up tasks, complaints (some of them overdue),
products, monthly sales targets and expenses.

Why it is built this way:

- **Deterministic**: one ``random.Random`` and one Faker (``zh_CN`` and
  ``en_US``) seeded with ``seed`` drive every choice, and every date is
  computed from ``today``; the same seed and day give the same records, so
  a screenshot, a benchmark or a bug report can be reproduced.
- **Valid**: every record goes through the record service and every stage
  through the workflow service's transitions (won deals with their amount,
  lost ones with a reason, resolved complaints with their resolution), as
  the system actor with the salesperson as ``owner`` — so the data passes
  the same checks as data typed in the UI.
- **History that reads like one**: when the site's clock can be set (a
  :class:`~engine.context.FixedClock` in tests, a :class:`engine.demo.TravelClock` in
  ``crm demo``), it is moved to the moment of each write, so customers are
  created over the past year, deals spend days in their stages (cycle
  times, time in stage) and complaints received days ago are overdue.  The
  clock is given back as it was found.
- **Fast enough for benchmarks**: writes are grouped in transactions of
  ``batch`` customers with everything that belongs to them, and each
  customer's activities (most of the rows) are written with the record
  service's ``create_many`` — the same checks, far fewer queries — stamped
  with the latest of their creation moments.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from faker import Faker

from engine.pack_api import Actor, Filter, NotFound, ValidationFailed, transaction

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from engine.pack_api import Site

DEFAULT_SEED = 2026
#: The password of every generated user (printed by ``crm demo``).
DEMO_PASSWORD = "visioncrm-demo"

# name pieces with their pinyin, so a login reads like its person's name
SURNAMES = (("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
            ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("周", "zhou"), ("吴", "wu"),
            ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
            ("郭", "guo"), ("何", "he"), ("林", "lin"), ("罗", "luo"), ("高", "gao"))
GIVEN_NAMES = (("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"),
               ("磊", "lei"), ("强", "qiang"), ("洋", "yang"), ("艳", "yan"), ("勇", "yong"),
               ("军", "jun"), ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"),
               ("秀英", "xiuying"), ("建华", "jianhua"), ("晓东", "xiaodong"), ("丽华", "lihua"),
               ("志强", "zhiqiang"), ("海燕", "haiyan"), ("俊杰", "junjie"), ("雪梅", "xuemei"))
TEAMS = (("east", "华东销售部"), ("south", "华南销售部"), ("north", "华北销售部"))
SALES_PER_TEAM = (3, 3, 2)
CITIES = (("上海", "21"), ("北京", "10"), ("广州", "20"), ("深圳", "755"), ("杭州", "571"),
          ("南京", "25"), ("苏州", "512"), ("成都", "28"), ("武汉", "27"), ("天津", "22"),
          ("重庆", "23"), ("西安", "29"), ("厦门", "592"), ("宁波", "574"))
EN_REGIONS = ("Hong Kong", "Singapore", "Shenzhen", "Shanghai", "London", "Sydney",
              "San Francisco", "Tokyo")
INDUSTRIES = ("制造", "系统集成", "软件", "贸易", "装饰工程", "物流", "医疗器械", "教育",
              "餐饮连锁", "房地产", "新能源", "电子元器件", "咨询服务", "家居零售")
EN_INDUSTRIES = ("Manufacturing", "Software", "Trading", "Logistics", "Engineering",
                 "Retail", "Healthcare", "Consulting")
BUSINESS = ("数据中心建设与运维", "工业自动化设备", "办公家具批发", "冷链物流服务",
            "企业管理软件", "建筑装饰设计与施工", "光伏组件生产", "医疗设备代理")
TITLES = ("总经理", "采购经理", "技术总监", "财务总监", "行政主管", "项目经理", "IT经理", "董事长")
EN_TITLES = ("Director", "Purchasing Manager", "CTO", "Office Manager", "Project Lead", "CFO")
PRODUCTS = (("机柜", "台", ("42U 标准机柜", "32U 网络机柜", "壁挂机柜")),
            ("配电", "个", ("智能 PDU 16A", "智能 PDU 32A", "UPS 10kVA", "UPS 20kVA")),
            ("网络", "台", ("千兆交换机 24口", "万兆核心交换机", "无线 AP", "防火墙")),
            ("服务", "人天", ("实施服务", "驻场运维", "培训服务", "巡检服务")),
            ("软件", "套", ("机房监控软件", "资产管理软件", "工单系统")))
DEAL_NAMES = ("机房改造", "网络升级", "年度运维服务", "办公室装修", "监控系统", "设备采购",
              "数据中心扩容", "安防项目", "ERP 集成", "培训项目")
EN_DEALS = ("network upgrade", "annual support", "site survey", "data centre fit-out",
            "ERP integration", "security audit")
VISIT_PURPOSES = ("了解需求", "方案讲解", "商务洽谈", "催收回款", "技术交流", "合同签订", "售后回访")
OUTCOMES = ("客户认可方案，等待内部评审", "需求已确认，需补充报价", "客户对价格有顾虑",
            "见到了决策人，进展顺利", "客户暂时没有预算", "技术问题已解答", "约定下周再谈")
NEXT_STEPS = ("发送报价单", "安排技术交流", "提交修改后的方案", "邀请参观样板间",
              "电话跟进决策进度", "准备合同草稿")
CALL_SUBJECTS = ("电话跟进", "确认需求细节", "报价沟通", "回款提醒", "售后回访")
TASK_SUBJECTS = ("发送报价单", "准备投标文件", "整理会议纪要", "寄送样品", "催收回款", "更新方案")
COMPLAINTS = (("设备噪音过大", "complaint"), ("交货延迟", "complaint"), ("发票信息有误", "complaint"),
              ("咨询保修政策", "inquiry"), ("询问扩容方案", "inquiry"), ("建议增加培训", "suggestion"),
              ("表扬实施团队", "praise"), ("安装人员迟到", "complaint"))
RESOLUTIONS = ("已更换设备，客户确认", "已补发货物", "已重新开具发票", "已电话说明并邮件确认")
EXPENSES = (("travel", "高铁往返"), ("transport", "出租车"), ("meals", "工作餐"),
            ("entertainment", "客户招待"), ("gifts", "节日礼品"), ("communication", "话费"))
LOST_REASONS = ("price", "competitor", "no_budget", "no_decision", "timing", "requirements")
#: Where a generated opportunity ends up, with its weight.
STAGE_MIX = (("initial", 15), ("needs", 15), ("proposal", 15), ("negotiation", 10),
             ("won", 25), ("lost", 20))
#: The transitions' target stages that lead to each final stage.
STAGE_PATHS = {"initial": (), "needs": ("needs",), "proposal": ("needs", "proposal"),
               "negotiation": ("needs", "proposal", "negotiation"),
               "won": ("needs", "proposal", "negotiation", "won"), "lost": ("needs", "lost")}


@dataclass(frozen=True)
class DemoUser:
    """A generated user, as ``crm demo`` prints them for logging in."""

    login: str
    display_name: str
    role: str
    team: str | None
    password: str = DEMO_PASSWORD


@dataclass
class GeneratedDemo:
    """What :func:`generate` made: its users and how many records of each entity."""

    users: list[DemoUser]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class _Writer:
    """Creates and moves records through the services, counting them, on the given clock."""

    def __init__(self, site: Site, today: dt.datetime) -> None:
        self.site = site
        self.actor = Actor.system()
        self.today = today
        self.counts: dict[str, int] = {}
        self.conn: Connection | None = None

    def at(self, when: dt.datetime) -> None:
        clock = self.site.clock
        if hasattr(clock, "current"):
            clock.current = min(when, self.today)

    def create(self, entity: str, values: dict[str, Any], when: dt.datetime) -> dict[str, Any]:
        self.at(when)
        record = self.site.records.create(self.actor, entity, values, conn=self.conn)
        self.counts[entity] = self.counts.get(entity, 0) + 1
        return record

    def create_many(self, entity: str, rows: list[dict[str, Any]], when: dt.datetime) -> None:
        """Rows written together (one query per step for them all), at the moment ``when``."""
        if not rows:
            return
        self.at(when)
        outcome = self.site.records.create_many(self.actor, entity, rows, conn=self.conn)
        if not outcome.ok:  # generated data is meant to be valid: say which row is not
            raise ValidationFailed({f"{entity}.{i + 1}.{key}": texts
                                    for i, found in enumerate(outcome.errors) if found
                                    for key, texts in found.items()})
        self.counts[entity] = self.counts.get(entity, 0) + len(rows)

    def move(self, entity: str, record_id: int, stage: str, when: dt.datetime,
             values: dict[str, Any] | None = None, comment: str | None = None) -> None:
        self.at(when)
        self.site.workflows.transition(self.actor, entity, record_id, stage, values or {},
                                       comment=comment, conn=self.conn)


def _person(rng: random.Random, taken: set[str]) -> tuple[str, str]:
    """A Chinese name and a login made of its pinyin, unique among ``taken``."""
    while True:
        (surname, s_py), (given, g_py) = rng.choice(SURNAMES), rng.choice(GIVEN_NAMES)
        login = f"{g_py}.{s_py}"
        if login not in taken:
            taken.add(login)
            return surname + given, login


def _staff(site: Site, rng: random.Random) -> tuple[list[DemoUser], dict[str, int]]:
    """Teams and users (reused when a site already has them); login → user id."""
    users: list[DemoUser] = []
    taken: set[str] = {"admin"}
    name, login = _person(rng, taken)
    users.append(DemoUser(login, name, "owner", None))
    for (team, _label), sales in zip(TEAMS, SALES_PER_TEAM, strict=True):
        name, login = _person(rng, taken)
        users.append(DemoUser(login, name, "manager", team))
        for _ in range(sales):
            name, login = _person(rng, taken)
            users.append(DemoUser(login, name, "sales", team))
    ids: dict[str, int] = {}
    for user in users:
        try:
            found = site.users.get(user.login)
        except NotFound:
            found = site.users.create(user.login, password=user.password,
                                      display_name=user.display_name, language="zh",
                                      roles=[user.role])
        ids[user.login] = found["id"]
    for team, label in TEAMS:
        manager = next(u.login for u in users if u.role == "manager" and u.team == team)
        try:
            site.users.teams.get(team)
        except NotFound:
            site.users.teams.create(team, label=label, manager=manager)
        for user in users:
            if user.role == "sales" and user.team == team:
                site.users.teams.add_member(team, user.login)
    return users, ids


def _when(rng: random.Random, today: dt.datetime, days_ago: float, spread: float = 0) -> dt.datetime:
    """A working-hours moment ``days_ago`` (± ``spread``) days before today."""
    days = days_ago + rng.uniform(-spread, spread)
    day = (today - dt.timedelta(days=days)).date()
    hour = rng.choice((1, 2, 3, 5, 6, 7, 8))  # 09:00–16:00 in Shanghai, in UTC
    return dt.datetime.combine(day, dt.time(hour, rng.choice((0, 15, 30, 45))), dt.UTC)


def _money(rng: random.Random, low: int, high: int, step: int = 1000) -> str:
    return str(Decimal(rng.randrange(low // step, high // step + 1) * step))


class _Company:
    """Draws one company's (or person's) records."""

    def __init__(self, writer: _Writer, rng: random.Random, fake: Faker,
                 sales: list[tuple[DemoUser, int]], products: list[dict[str, Any]]) -> None:
        self.w, self.rng, self.fake = writer, rng, fake
        self.sales = sales
        self.products = products

    def customer(self, index: int) -> tuple[dict[str, Any], list[dict[str, Any]], int, bool]:
        rng, zh, en = self.rng, self.fake["zh_CN"], self.fake["en_US"]
        owner, owner_id = rng.choice(self.sales)
        english = rng.random() < 0.2
        company = rng.random() < 0.85
        created = _when(rng, self.w.today, rng.uniform(5, 365))
        city, area = rng.choice(CITIES)
        values: dict[str, Any] = {
            "owner": owner_id, "is_company": company,
            "kind": rng.choices(("client", "prospect", "supplier", "partner", "dealer"),
                                (45, 35, 8, 7, 5))[0],
            "source": rng.choice(("referral", "visit", "phone", "web", "campaign", "other")),
            "value_tier": rng.choices(("a", "b", "c", "d"), (10, 35, 40, 15))[0],
            "credit_rating": rng.choice(("excellent", "good", "good", "fair", "poor")),
        }
        if company:
            name = en.company() + rng.choice((" Ltd.", " Co., Ltd.", "", " Inc.")) if english \
                else zh.company()
            values.update(
                name=name, region=rng.choice(EN_REGIONS) if english else city,
                industry=rng.choice(EN_INDUSTRIES if english else INDUSTRIES),
                company_size=rng.choice(("micro", "small", "medium", "large")),
                main_business=rng.choice(BUSINESS),
                phone=f"+852 {rng.randrange(2000, 3999)} {rng.randrange(1000, 9999)}" if english
                else f"+86 {area} {rng.randrange(5000, 8999)} {rng.randrange(1000, 9999)}",
                email=f"info@{en.domain_word()}{index}.example.com")
        else:
            values.update(
                name=en.name() if english else zh.name(), region=city,
                gender=rng.choice(("female", "male")),
                birthday=(self.w.today.date() - dt.timedelta(days=rng.randrange(9000, 22000))
                          ).isoformat(),
                phone=f"+86 1{rng.choice((3, 5, 8))}{rng.randrange(0, 9)} "
                      f"{rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}")
        values["vip"] = values["value_tier"] == "a" and rng.random() < 0.5
        if rng.random() < 0.02:
            values.update(blacklisted=True, credit_rating="poor",
                          blacklist_reason=rng.choice(("连续三个月拖欠货款", "合同欺诈嫌疑")))
        record = self.w.create("customer", values, created)
        return record, [], owner_id, english

    def contacts(self, customer: dict[str, Any], english: bool, others: list[int]
                 ) -> list[dict[str, Any]]:
        rng = self.rng
        count = rng.choice((1, 1, 2, 2, 3)) if customer["is_company"] else rng.choice((0, 1))
        made = []
        for _ in range(count):
            fake = self.fake["en_US"] if english else self.fake["zh_CN"]
            values: dict[str, Any] = {
                "name": fake.name(), "customer": customer["id"], "owner": customer["owner"],
                "title": rng.choice(EN_TITLES if english else TITLES),
                "phone": f"+86 1{rng.choice((3, 5, 8))}{rng.randrange(0, 9)} "
                         f"{rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}"}
            if rng.random() < 0.6:
                values["email"] = f"{fake.user_name()}{rng.randrange(10, 99)}@example.com"
            if not english and rng.random() < 0.5:
                values["wechat"] = f"wx_{rng.randrange(10**6, 10**7)}"
            if others and rng.random() < 0.04:
                values["other_companies"] = [rng.choice(others)]
            made.append(self.w.create("contact", values, customer["created_at"]
                                      + dt.timedelta(hours=1)))
        return made

    def opportunities(self, customer: dict[str, Any], english: bool) -> list[dict[str, Any]]:
        rng, today = self.rng, self.w.today
        if customer["kind"] not in ("client", "prospect", "dealer") or rng.random() < 0.25:
            return []
        made = []
        for _ in range(rng.choice((1, 1, 1, 2))):
            final = rng.choices([s for s, _ in STAGE_MIX], [w for _, w in STAGE_MIX])[0]
            age = (today - customer["created_at"]).days
            start = _when(rng, today, rng.uniform(1, max(2, age)))
            name = (f"{customer['name']} {rng.choice(EN_DEALS)}" if english
                    else f"{customer['name'][:8]}{rng.choice(DEAL_NAMES)}")
            amount = _money(rng, 20000, 1500000)
            values: dict[str, Any] = {"name": name, "customer": customer["id"],
                                      "owner": customer["owner"], "amount": amount}
            if rng.random() < 0.3 and self.products:
                product = rng.choice(self.products)
                quantity = rng.randrange(1, 20)
                values["lines"] = [{"item": product["name"], "quantity": quantity,
                                    "unit_price": str(product["list_price"])}]
            record = self.w.create("opportunity", values, start)
            moment = start
            path = STAGE_PATHS[final]
            for step, stage in enumerate(path):
                moment = moment + dt.timedelta(days=rng.uniform(2, 20))
                if moment >= today:
                    break
                extra: dict[str, Any] = {}
                if stage == "negotiation":
                    extra["expected_close"] = (moment + dt.timedelta(days=rng.randrange(10, 60))
                                               ).date().isoformat()
                if stage == "lost":
                    extra["lost_reason"] = rng.choice(LOST_REASONS)
                    extra["lost_note"] = rng.choice(("客户选择了竞争对手", "预算被砍", "项目推迟到明年"))
                self.w.move("opportunity", record["id"], stage, moment, extra,
                            comment=rng.choice(OUTCOMES) if step == len(path) - 1 else None)
            made.append(record)
        return made

    def activities(self, customer: dict[str, Any], contacts: list[dict[str, Any]],
                   deals: list[dict[str, Any]], count: int) -> None:
        rng, today = self.rng, self.w.today
        rows, latest = [], customer["created_at"]
        for _ in range(count):
            kind = rng.choices(("visit", "call", "meeting", "email", "task"), (35, 30, 10, 10, 15))[0]
            future = rng.random() < 0.12
            created = _when(rng, today, rng.uniform(0, max(1, (today - customer["created_at"]).days)))
            due = created + dt.timedelta(days=rng.uniform(0, 5)) if not future \
                else _when(rng, today, -rng.uniform(1, 14))
            done = due < today and (kind != "task" or rng.random() < 0.8)
            values: dict[str, Any] = {"kind": kind, "customer": customer["id"],
                                      "owner": customer["owner"], "due_at": due.isoformat(),
                                      "done": done}
            if contacts:
                values["contact"] = rng.choice(contacts)["id"]
            if deals and rng.random() < 0.6:
                values["opportunity"] = rng.choice(deals)["id"]
            if kind in ("visit", "meeting"):
                purpose = rng.choice(VISIT_PURPOSES)
                values.update(subject=f"{'拜访' if kind == 'visit' else '会议'}：{purpose}",
                              purpose=purpose, location=customer.get("region") or "客户现场")
            elif kind == "task":
                values["subject"] = rng.choice(TASK_SUBJECTS)
            else:
                values["subject"] = rng.choice(CALL_SUBJECTS) if kind == "call" else "邮件沟通"
            if done and kind != "task":
                values["outcome"] = rng.choice(OUTCOMES)
                if rng.random() < 0.6:
                    values["next_step"] = rng.choice(NEXT_STEPS)
            rows.append(values)
            latest = max(latest, min(created, due))
        # one customer's activities are written together, stamped with the latest of them
        self.w.create_many("activity", rows, latest)

    def complaint(self, customer: dict[str, Any], contacts: list[dict[str, Any]],
                  late: bool = False) -> None:
        """A case moved through its workflow; ``late`` leaves it unacknowledged for days."""
        rng, today = self.rng, self.w.today
        subject, category = rng.choice(COMPLAINTS)
        path = () if late else rng.choices(
            ((), ("acknowledged",), ("acknowledged", "in_progress"), ("escalated",),
             ("acknowledged", "resolved"), ("acknowledged", "in_progress", "resolved", "closed")),
            (10, 10, 15, 5, 15, 45))[0]
        # closed cases go back months; open ones are recent, the late ones days old
        received = _when(rng, today, rng.uniform(1.5, 5) if late
                         else rng.uniform(3, 90) if path and path[-1] == "closed"
                         else rng.uniform(0.1, 3))
        values: dict[str, Any] = {
            "subject": subject, "category": category, "customer": customer["id"],
            "owner": customer["owner"], "channel": rng.choice(("phone", "email", "wechat", "visit")),
            "priority": rng.choice(("low", "normal", "normal", "high", "urgent")),
            "description": f"客户反映：{subject}"}
        if contacts:
            values["contact"] = rng.choice(contacts)["id"]
        record = self.w.create("complaint", values, received)
        moment = received
        for stage in path:
            moment = moment + dt.timedelta(hours=rng.uniform(2, 40))
            if moment >= today:
                break
            extra = {"resolution": rng.choice(RESOLUTIONS)} if stage == "resolved" else {}
            self.w.move("complaint", record["id"], stage, moment, extra)

    def expense(self, customer: dict[str, Any], deals: list[dict[str, Any]]) -> None:
        rng = self.rng
        category, summary = rng.choice(EXPENSES)
        spent = _when(rng, self.w.today, rng.uniform(1, 120))
        values: dict[str, Any] = {
            "summary": f"{summary}（{customer['name'][:10]}）", "category": category,
            "spent_on": spent.date().isoformat(), "amount": str(Decimal(rng.randrange(30, 3000))),
            "customer": customer["id"], "owner": customer["owner"],
            "reimbursed": rng.random() < 0.6}
        if deals:
            values["opportunity"] = rng.choice(deals)["id"]
        self.w.create("expense", values, spent)


def _products(writer: _Writer, rng: random.Random, owner_id: int) -> list[dict[str, Any]]:
    """The catalogue; products already there (a second run on the same site) are reused."""
    made: list[dict[str, Any]] = []
    for category, unit, names in PRODUCTS:
        for name in names:
            cost = rng.randrange(5, 400) * 100
            values = {"code": f"P-{len(made) + 1:04d}", "name": name, "category": category,
                      "unit": unit, "cost": str(cost), "owner": owner_id,
                      "list_price": str(int(cost * rng.uniform(1.2, 1.8)) // 10 * 10),
                      "active": rng.random() < 0.9}
            found = writer.site.records.list(writer.actor, "product", limit=1, conn=writer.conn,
                                             filters=[Filter("code", "eq", values["code"])]).rows
            made.append(found[0] if found else writer.create(
                "product", values, writer.today - dt.timedelta(days=400)))
    return made


def _targets(writer: _Writer, rng: random.Random, sales: list[tuple[DemoUser, int]]) -> None:
    month = writer.today.date().replace(day=1)
    starts = []
    for _ in range(4):
        starts.append(month)
        month = (month - dt.timedelta(days=1)).replace(day=1)
    for start in reversed(starts):
        end = (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        for user, user_id in sales:
            writer.create("sales_target", {
                "name": f"{user.display_name} {start:%Y-%m}", "period": "month",
                "period_start": start.isoformat(), "period_end": end.isoformat(),
                "amount": _money(rng, 200000, 800000, 10000), "owner": user_id,
                "new_customers": rng.randrange(3, 12), "visits": rng.randrange(15, 40)},
                dt.datetime.combine(start, dt.time(1), dt.UTC) - dt.timedelta(days=3))


def generate(
    site: Site,
    size: int = 200,
    *,
    seed: int = DEFAULT_SEED,
    today: dt.datetime | None = None,
    batch: int = 25,
    progress: Callable[[int, int], None] | None = None,
) -> GeneratedDemo:
    """Add a generated company with ``size`` customers to ``site`` (see the module docstring).

    ``progress(done, size)`` is called after each customer and its records.
    Returns the users (for printing their logins) and counts per entity.
    """
    today = today or site.clock.now()
    rng = random.Random(seed)
    fake = Faker(["zh_CN", "en_US"])
    fake.seed_instance(seed)
    writer = _Writer(site, today)
    previous = getattr(site.clock, "current", None)
    users, ids = _staff(site, rng)
    sales = [(u, ids[u.login]) for u in users if u.role == "sales"]
    sales += [(u, ids[u.login]) for u in users if u.role == "manager"][:1]  # a manager sells too
    with transaction(site.records) as conn:
        writer.conn = conn
        products = _products(writer, rng, ids[users[0].login])
        _targets(writer, rng, sales)
    drawer = _Company(writer, rng, fake, sales, products)
    customers: list[int] = []
    done = 0
    while done < size:
        with transaction(site.records) as conn:
            writer.conn = conn
            for _ in range(min(batch, size - done)):
                customer, _, _, english = drawer.customer(done)
                contacts = drawer.contacts(customer, english, customers[-50:])
                deals = drawer.opportunities(customer, english)
                drawer.activities(customer, contacts, deals,
                                  rng.randrange(4, 16) if customer["kind"] != "supplier" else 2)
                if done % 8 == 3:  # one customer in eight has a case, one case in four late
                    drawer.complaint(customer, contacts, late=done % 32 == 3)
                if rng.random() < 0.3:
                    drawer.expense(customer, deals)
                if customers and rng.random() < 0.08:
                    kind = rng.choice(("client_of", "supplier_to", "partner_of"))
                    writer.create("customer_relation", {
                        "from_customer": customer["id"], "kind": kind,
                        "to_customer": rng.choice(customers), "owner": customer["owner"]},
                        customer["created_at"] + dt.timedelta(days=1))
                customers.append(customer["id"])
                done += 1
                if progress:
                    progress(done, size)
    writer.conn = None
    if hasattr(site.clock, "current"):
        site.clock.current = previous
    return GeneratedDemo(users, dict(sorted(writer.counts.items())))
