"""The membership figures (engine/services/views/figures.py contract), for dashboards.

Each reads through :mod:`packs.membership.figures` with the request's actor.
"""

from __future__ import annotations

import datetime as dt

from engine.pack_api import Figure, ReportRequest, Series
from packs.membership.figures import (
    expiries_between,
    member_activity,
    members_by_tier,
    points_by_kind,
    sales_by,
    sales_per_month,
)

AMOUNT = {"en": "Sales", "zh": "销售额"}
COUNT = {"en": "Purchases", "zh": "消费笔数"}




def _period(request: ReportRequest) -> tuple[dt.date, dt.date]:
    today = request.today()
    since = request.param("since") or (today - dt.timedelta(days=29)).isoformat()
    until = request.param("until") or today.isoformat()
    return dt.date.fromisoformat(str(since)), dt.date.fromisoformat(str(until))


def sales_by_store(request: ReportRequest) -> Figure:
    """Sales per store over the period (default: the last 30 days)."""
    since, until = _period(request)
    records, actor = request.records, request.actor
    figures = sales_by(records, actor, "store", since, until)
    names = {}
    if figures:
        stores = records.list(actor, "store", limit=1000, with_total=False).rows
        names = {s["id"]: s["name"] for s in stores}
    keys = sorted(figures, key=lambda k: -figures[k][1])
    return Figure(title={"en": "Sales per store", "zh": "各门店销售统计"}, kind="bar", unit="money",
                  categories=tuple(names.get(k, str(k)) for k in keys),
                  series=(Series(AMOUNT, tuple(figures[k][1] for k in keys)),
                          Series(COUNT, tuple(figures[k][0] for k in keys), unit="count")),
                  note={"en": f"{since} – {until}", "zh": f"{since} 至 {until}"})


def sales_by_clerk(request: ReportRequest) -> Figure:
    """Sales per clerk (whoever recorded the purchase) over the period."""
    since, until = _period(request)
    figures = sales_by(request.records, request.actor, "owner", since, until)
    users = {u["id"]: u.get("display_name") or u["login"] for u in request.site.users.list()}
    keys = sorted(figures, key=lambda k: -figures[k][1])
    return Figure(title={"en": "Sales per clerk", "zh": "各店员销售统计"}, kind="bar", unit="money",
                  categories=tuple(users.get(k, "—") for k in keys),
                  series=(Series(AMOUNT, tuple(figures[k][1] for k in keys)),
                          Series(COUNT, tuple(figures[k][0] for k in keys), unit="count")),
                  note={"en": f"{since} – {until}", "zh": f"{since} 至 {until}"})


def sales_by_month(request: ReportRequest) -> Figure:
    """Sales in each of the last twelve months."""
    months = sales_per_month(request.records, request.actor, request.today())
    return Figure(title={"en": "Sales per month", "zh": "月度销售"}, kind="line", unit="money",
                  categories=tuple(m for m, _ in months),
                  series=(Series(AMOUNT, tuple(v for _, v in months)),))


def member_status(request: ReportRequest) -> Figure:
    """New, active and lapsed members."""
    found = member_activity(request.records, request.actor, request.today())
    return Figure(title={"en": "Members", "zh": "会员概况"}, kind="column", unit="count",
                  categories=("new 新会员", "active 活跃", "lapsed 流失"),
                  series=(Series({"en": "Members", "zh": "会员数"},
                                 (found.new, found.active, found.lapsed)),),
                  note={"en": "New: joined in the last 30 days. Active: not expired, bought in "
                              "the last 365 days. Lapsed: the others.",
                        "zh": "新会员:近30天入会;活跃:未过期且近365天有消费;流失:其余会员。"})


def points_liability(request: ReportRequest) -> Figure:
    """Points issued, redeemed, expired, adjusted, and the outstanding balance."""
    totals = points_by_kind(request.records, request.actor)
    keys = ("earn", "redeem", "expire", "adjust", "outstanding")
    names = ("issued 发放", "redeemed 兑换", "expired 过期", "adjusted 调整", "outstanding 未兑余额")
    return Figure(title={"en": "Points issued vs redeemed", "zh": "积分发放与兑换"}, kind="column",
                  unit="number", categories=names,
                  series=(Series({"en": "Points", "zh": "积分"}, tuple(totals[k] for k in keys)),),
                  note={"en": "Outstanding is the liability: points members may still redeem.",
                        "zh": "未兑余额即积分负债:会员仍可兑换的积分。"})


def tiers(request: ReportRequest) -> Figure:
    """Members per tier."""
    counts = members_by_tier(request.records, request.actor)
    field = request.site.registry.entities["member"].fields["tier"]
    language = request.actor.language
    return Figure(title={"en": "Members by tier", "zh": "会员等级分布"}, kind="bar", unit="count",
                  categories=tuple(label.get(language) for label in field.choices.values()),
                  series=(Series({"en": "Members", "zh": "会员数"},
                                 tuple(counts.get(k, 0) for k in field.choices)),))


def expiries(request: ReportRequest) -> Figure:
    """Memberships expiring in the next 7, 30, 60 and 90 days."""
    today = request.today()
    spans = (7, 30, 60, 90)
    return Figure(title={"en": "Expiries coming up", "zh": "即将到期会员"}, kind="column", unit="count",
                  categories=tuple(f"≤{d}d" for d in spans),
                  series=(Series({"en": "Members", "zh": "会员数"}, tuple(
                      expiries_between(request.records, request.actor, today,
                                       today + dt.timedelta(days=d)) for d in spans)),))
