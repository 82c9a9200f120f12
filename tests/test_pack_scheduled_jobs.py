"""The packs' declared jobs run through the worker: membership points expiry, renewals."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from engine.context import Actor, FixedClock
from engine.jobs.runner import scheduled_jobs
from engine.notifications.worker import NotificationWorker
from tests.support import open_migrated, write_site

pytestmark = pytest.mark.dates  # records in fixed weeks: see .ci/run

# 09:00 in Shanghai, 10 March 2026
START = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system()


def _runs(site, job: str) -> list[tuple]:
    table = site.schema.system("crm_job_run")
    with site.engine.connect() as conn:
        return [(r.status, r.occurrence, r.summary) for r in conn.execute(
            select(table).where(table.c.job == job).order_by(table.c.id))]


def test_membership_expires_points_and_reviews_tiers_daily(tmp_path, db_url):
    clock = FixedClock(START)
    with open_migrated(write_site(tmp_path / "site", db_url, ["membership"]),
                       clock=clock) as site:
        planned = scheduled_jobs(site)
        assert {name: job.schedule.describe() for name, job in planned.items()} == {
            "membership.points_expiry": "daily at 01:30",
            "membership.tier_review": "daily at 01:45"}
        store = site.records.create(SYSTEM, "store", {"code": "SH01", "name": "上海南京路店"})
        member = site.records.create(SYSTEM, "member", {
            "name": "张伟", "phone": "13800001111", "home_store": store["id"],
            "join_date": "2023-03-10", "expiry_date": "2027-03-09"})
        site.records.create(SYSTEM, "points_entry", {
            "member": member["id"], "kind": "earn", "points": 100, "occurred_on": "2024-01-05"})
        worker = NotificationWorker(site, clock=clock)
        assert worker.run_scheduled() == {"membership.points_expiry": "ok",
                                          "membership.tier_review": "ok"}
        assert worker.run_scheduled() == {}
        assert _runs(site, "membership.points_expiry") == [
            ("ok", "2026-03-09T17:30Z", {"members": 1, "points": 100})]
        assert _runs(site, "membership.tier_review") == [
            ("ok", "2026-03-09T17:45Z", {"members": 0})]
        assert site.ledgers.balance(SYSTEM, "points_entry", member=member["id"]).quantity == 0


def test_service_sales_raises_renewals_daily(tmp_path, db_url):
    clock = FixedClock(START)
    with open_migrated(write_site(tmp_path / "site", db_url, ["service_sales"]),
                       clock=clock) as site:
        planned = scheduled_jobs(site)
        assert planned["service_sales.renewals"].schedule.describe() == "daily at 02:00"
        for login, role in (("boss", "owner"), ("zhang", "consultant")):
            site.users.create(login, password="password-1", roles=[role])
        boss, zhang = site.users.actor("boss"), site.users.actor("zhang")
        customer = site.records.create(zhang, "customer", {"name": "华信科技", "kind": "client"})
        # Ends on 30 April: the renewal starts 60 days before, on 1 March — already due.
        contract = site.records.create(zhang, "contract", {
            "name": "运维服务合同", "customer": customer["id"], "payment_terms": "月结",
            "start_date": "2025-05-01", "end_date": "2026-04-30",
            "lines": [{"service": "运维", "quantity": "20", "rate": "1000"}]})
        for who, stage in ((zhang, "under_review"), (boss, "approved"), (zhang, "signed"),
                           (zhang, "active")):
            site.workflows.transition(who, "contract", contract["id"], stage,
                                      {"signed_on": "2025-04-28"} if stage == "signed" else {})
        worker = NotificationWorker(site, clock=clock)
        assert worker.run_scheduled() == {"service_sales.renewals": "ok"}
        ((status, occurrence, summary),) = _runs(site, "service_sales.renewals")
        assert (status, occurrence, summary["opportunities"]) == ("ok", "2026-03-09T18:00Z", 1)
        renewal = site.records.get(boss, "opportunity", summary["ids"][0])
        assert renewal["customer"] == customer["id"]
        assert renewal["expected_close"] == dt.date(2026, 4, 30)
        clock.advance(days=1)  # the next day: the contract is renewed once
        assert worker.run_scheduled() == {"service_sales.renewals": "ok"}
        assert _runs(site, "service_sales.renewals")[-1][2] == {"opportunities": 0, "ids": []}
