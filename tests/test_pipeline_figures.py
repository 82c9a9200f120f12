"""The figures stage flows give: weighted pipeline, SLA, stale records, time in stage, win rate."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import update

from engine.context import FixedClock
from engine.errors import PermissionDenied
from engine.services.access.policy import AllowAll
from engine.storage.database import write_transaction
from tests.workflow_pack import NOW, open_flow_site

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run


@pytest.fixture
def clock():
    return FixedClock(NOW)


@pytest.fixture
def site(tmp_path, db_url, clock):
    opened = open_flow_site(tmp_path, db_url, clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def li(site):
    return site.users.actor("li")


@pytest.fixture
def customer(site, li):
    return site.records.create(li, "customer", {"name": "Jinding"})


def deal(site, actor, customer, name, amount, *, to=(), close_on=None, team=None, **values):
    created = site.records.create(actor, "deal", {
        "name": name, "customer": customer["id"], "amount": amount, "close_on": close_on,
        "team": team, **values})
    for stage, given in to:
        site.workflows.transition(actor, "deal", created["id"], stage, given)
    return site.records.get(actor, "deal", created["id"])


NEGOTIATION = (("proposal", {}), ("negotiation", {}))


def test_value_times_probability_orders_the_pipeline(site, li, customer):
    """Two projects both at 80%: 800,000 and 240,000 weigh 640,000 and 192,000, in that order."""
    small = deal(site, li, customer, "金鼎办公室装修", "240000", to=NEGOTIATION)
    big = deal(site, li, customer, "华信机房改造项目", "800000", to=NEGOTIATION)
    early = deal(site, li, customer, "Northwind", "150000", to=(("proposal", {}),))
    assert small["probability"] == big["probability"] == 80
    records = site.pipeline.weighted_records(li, "deal")
    assert [(r.record_id, r.probability, r.weighted) for r in records] == [
        (big["id"], Decimal(80), Decimal("640000.00")),
        (small["id"], Decimal(80), Decimal("192000.00")),
        (early["id"], Decimal(50), Decimal("75000.00")),
    ]
    by_stage = site.pipeline.weighted_pipeline(li, "deal", by="stage")
    assert [(g.key, g.label, g.count, g.value, g.weighted) for g in by_stage] == [
        ("proposal", "Proposal", 1, Decimal("150000.00"), Decimal("75000.00")),
        ("negotiation", "Negotiation", 2, Decimal("1040000.00"), Decimal("832000.00")),
    ]


def test_weighted_pipeline_by_owner_period_and_a_field(site, li, customer):
    wang = site.users.actor("wang")
    deal(site, li, customer, "A", "100000", to=NEGOTIATION, close_on="2026-04-10", team="north")
    deal(site, li, customer, "B", "50000", close_on="2026-06-30", team="south")
    deal(site, wang, customer, "C", "200000", to=NEGOTIATION, close_on="2026-07-01",
         team="north")
    deal(site, li, customer, "D", "70000", to=(("lost", {"lost_reason": "price"}),))
    by_owner = site.pipeline.weighted_pipeline(li, "deal", by="owner")
    assert [(g.label, g.count, g.weighted) for g in by_owner] == [
        ("li", 2, Decimal("85000.00")), ("wang", 1, Decimal("160000.00"))]
    by_quarter = site.pipeline.weighted_pipeline(li, "deal", by="period", period="quarter")
    assert [(g.key, g.count, g.value) for g in by_quarter] == [
        ("2026-Q2", 2, Decimal("150000.00")), ("2026-Q3", 1, Decimal("200000.00"))]
    by_month = site.pipeline.weighted_pipeline(li, "deal", by="period")
    assert [g.key for g in by_month] == ["2026-04", "2026-06", "2026-07"]
    by_team = site.pipeline.weighted_pipeline(li, "deal", by="team")
    assert [(g.label, g.weighted) for g in by_team] == [
        ("North", Decimal("240000.00")), ("South", Decimal("5000.00"))]
    services = site.pipeline.weighted_pipeline(li, "deal", pipeline="services")
    assert services == []


def test_sla_24h_is_overdue_one_minute_after_a_day_and_not_before(site, li, clock):
    clock.current = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    complaint = site.records.create(li, "complaint", {"subject": "回复太慢"})
    clock.current = dt.datetime(2026, 3, 11, 9, 0, tzinfo=dt.UTC)
    status = site.pipeline.sla(li, "complaint")
    assert [(s.record_id, s.due_at, s.overdue) for s in status] == [
        (complaint["id"], dt.datetime(2026, 3, 11, 9, 0, tzinfo=dt.UTC), False)]
    assert site.pipeline.overdue(li, "complaint") == []
    clock.current = dt.datetime(2026, 3, 11, 9, 1, tzinfo=dt.UTC)
    late = site.pipeline.overdue(li, "complaint")
    assert [(s.record_id, s.overdue, s.overdue_seconds) for s in late] == [
        (complaint["id"], True, 60)]


def test_business_hours_sla_counts_working_time_only(site, li, clock):
    complaint = site.records.create(li, "complaint", {"subject": "发票错误"})
    clock.current = dt.datetime(2026, 3, 10, 9, 1, tzinfo=dt.UTC)  # Tuesday 17:01 in Shanghai
    site.workflows.transition(li, "complaint", complaint["id"], "answered")
    status = site.pipeline.sla(li, "complaint")
    # 59 minutes on Tuesday, 7 h 01 on Wednesday from 09:00: 16:01 in Shanghai
    assert status[0].due_at == dt.datetime(2026, 3, 11, 8, 1, tzinfo=dt.UTC)
    site.workflows.transition(li, "complaint", complaint["id"], "closed")
    assert site.pipeline.sla(li, "complaint") == []  # closed records have no deadline


def test_time_in_stages_averages_and_cycle_times(site, li, customer, clock):
    lost = deal(site, li, customer, "Lost one", "1000")
    won = deal(site, li, customer, "Won one", "2000", close_on="2026-04-01")
    clock.advance(hours=5)
    site.workflows.transition(li, "deal", lost["id"], "proposal")
    clock.advance(hours=1)
    site.workflows.transition(li, "deal", won["id"], "proposal")
    clock.advance(days=2)
    site.workflows.transition(li, "deal", lost["id"], "lost", {"lost_reason": "competitor"})
    clock.advance(days=2)
    site.workflows.transition(li, "deal", won["id"], "negotiation")
    clock.advance(days=1)
    site.workflows.transition(li, "deal", won["id"], "won")
    clock.advance(hours=3)
    stays = site.pipeline.time_in_stages(li, "deal", won["id"])
    assert [(s.stage, s.seconds, s.left_at is None) for s in stays] == [
        ("lead", 6 * 3600, False), ("proposal", 4 * 86400, False),
        ("negotiation", 86400, False), ("won", 3 * 3600, True)]
    averages = {a.stage: (a.stays, a.average_seconds)
                for a in site.pipeline.average_time_in_stage(li, "deal")}
    assert averages["lead"] == (2, 5.5 * 3600)
    assert averages["proposal"] == (2, 3 * 86400 + 1800)  # 2 d 1 h and 4 d
    assert averages["won"] == (0, None)
    cycles = site.pipeline.cycle_times(li, "deal")
    assert (cycles.won, cycles.lost) == (1, 1)
    assert cycles.average_won_seconds == 5 * 86400 + 6 * 3600
    assert cycles.average_lost_seconds == 2 * 86400 + 6 * 3600


def test_stale_records_count_activity_on_the_record_and_its_tasks(site, li, customer, clock):
    quiet = deal(site, li, customer, "Quiet", "1000")
    busy = deal(site, li, customer, "Busy", "1000")
    clock.advance(days=6)
    site.records.create(li, "task", {"subject": "Call back", "deal": busy["id"]})
    clock.advance(days=2)
    stale = site.pipeline.stale(li, "deal")
    assert [(s.record_id, s.idle_seconds, s.stale_after_seconds) for s in stale] == [
        (quiet["id"], 8 * 86400, 7 * 86400)]
    site.records.update(li, "deal", quiet["id"], {"note": "called"})
    assert site.pipeline.stale(li, "deal") == []
    site.workflows.transition(li, "deal", busy["id"], "proposal")
    site.workflows.transition(li, "deal", busy["id"], "negotiation")  # rots after 3 days
    clock.advance(days=3, minutes=1)
    assert [s.record_id for s in site.pipeline.stale(li, "deal")] == [busy["id"]]


def test_win_rate_and_lost_reasons(site, li, customer, clock):
    for name, amount, reason in (("A", "100", "price"), ("B", "300", "price"),
                                 ("C", "50", "competitor")):
        deal(site, li, customer, name, amount, to=(("lost", {"lost_reason": reason}),))
    deal(site, li, customer, "W", "600", close_on="2026-04-01",
         to=(*NEGOTIATION, ("won", {})))
    deal(site, li, customer, "Open", "999")
    rate = site.pipeline.win_rate(li, "deal")
    assert (rate.won, rate.lost, rate.rate) == (1, 3, Decimal("25.00"))
    assert (rate.won_value, rate.lost_value, rate.value_rate) == (
        Decimal("600.00"), Decimal("450.00"), Decimal("57.14"))
    reasons = site.pipeline.lost_reasons(li, "deal")
    assert [(r.reason, r.label, r.count, r.value, r.share) for r in reasons] == [
        ("price", "Price", 2, Decimal("400.00"), Decimal("66.67")),
        ("competitor", "Competitor", 1, Decimal("50.00"), Decimal("33.33"))]
    later = NOW + dt.timedelta(days=1)
    assert site.pipeline.win_rate(li, "deal", since=later).won == 0
    wang = site.users.actor("wang")
    assert site.pipeline.lost_reasons(wang, "deal")[0].label == "价格"


class OwnRecords(AllowAll):
    """A row scope: each actor sees only the records they own."""

    def row_filter(self, actor, entity, table):
        return table.c.owner == actor.user_id


def test_figures_respect_the_row_scope(site, li, customer):
    wang = site.users.actor("wang")
    deal(site, li, customer, "Mine", "100000", to=NEGOTIATION)
    deal(site, wang, customer, "His", "900000", to=NEGOTIATION)
    site.records.policy = OwnRecords()
    assert [r.title for r in site.pipeline.weighted_records(li, "deal")] == ["Mine"]
    assert [g.count for g in site.pipeline.weighted_pipeline(li, "deal")] == [1]
    assert site.pipeline.win_rate(wang, "deal").won == 0
    assert [a.stays for a in site.pipeline.average_time_in_stage(li, "deal")][:2] == [1, 1]


class HiddenAmounts(AllowAll):
    """A field rule: amounts (and names) are hidden from everyone but admins."""

    def hidden_fields(self, actor, entity):
        return frozenset() if actor.is_admin else frozenset({"amount", "name"})


def test_figures_do_not_reveal_hidden_fields(site, li, customer, clock):
    deal(site, li, customer, "Secret", "500000", to=NEGOTIATION)
    site.records.policy = HiddenAmounts()
    with pytest.raises(PermissionDenied) as caught:
        site.pipeline.weighted_records(li, "deal")
    assert caught.value.message == "These figures are built on Amount, which you may not see."
    with pytest.raises(PermissionDenied):
        site.pipeline.win_rate(li, "deal")
    clock.advance(days=4)
    assert [(s.title, s.stage) for s in site.pipeline.stale(li, "deal")] == [(None, "negotiation")]
    admin = site.users.actor("admin")
    assert [r.title for r in site.pipeline.weighted_records(admin, "deal")] == ["Secret"]


def test_group_totals_round_once_and_rows_without_a_stage_count_as_the_first(site, li, customer):
    """A group's weighted value is its records' exact products summed, rounded once: three
    deals of 0.05 at 10% weigh 0.005 each (0.00 and 0.01 rounded alone), 0.015 together, which
    rounds to 0.02.  A row with no stage (older than the flow) is in the initial stage, as
    everywhere else, even though the database groups it."""
    made = [deal(site, li, customer, f"Tiny {n}", "0.05") for n in range(3)]
    table = site.schema.table("deal")
    with write_transaction(site.engine) as conn:
        conn.execute(update(table).where(table.c.id == made[0]["id"]).values(stage=None))
    assert [r.weighted for r in site.pipeline.weighted_records(li, "deal")] == [
        Decimal("0.00")] * 3  # half to even, alone
    (lead,) = site.pipeline.weighted_pipeline(li, "deal", by="stage")
    assert (lead.key, lead.count, lead.value, lead.weighted) == (
        "lead", 3, Decimal("0.15"), Decimal("0.02"))
    (mine,) = site.pipeline.weighted_pipeline(li, "deal", by="owner")
    assert (mine.count, mine.weighted) == (3, Decimal("0.02"))
