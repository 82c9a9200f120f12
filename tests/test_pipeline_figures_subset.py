"""Stale and SLA figures of chosen records only (a kanban board's cards), same answers."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.context import FixedClock
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


def test_stale_of_chosen_records_keeps_their_activity_and_leaves_the_rest(site, clock):
    li = site.users.actor("li")
    customer = site.records.create(li, "customer", {"name": "Jinding"})
    quiet, busy, other = (site.records.create(li, "deal", {
        "name": name, "customer": customer["id"], "amount": "1000"})
        for name in ("Quiet", "Busy", "Other"))
    clock.advance(days=6)
    site.records.create(li, "task", {"subject": "Call back", "deal": busy["id"]})
    clock.advance(days=2)
    everything = {s.record_id for s in site.pipeline.stale(li, "deal")}
    assert everything == {quiet["id"], other["id"]}
    chosen = site.pipeline.stale(li, "deal", ids=[quiet["id"], busy["id"]])
    assert [(s.record_id, s.idle_seconds) for s in chosen] == [(quiet["id"], 8 * 86400)]
    assert site.pipeline.stale(li, "deal", ids=[]) == []


def test_overdue_of_chosen_records(site, clock):
    li = site.users.actor("li")
    clock.current = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    first = site.records.create(li, "complaint", {"subject": "回复太慢"})
    second = site.records.create(li, "complaint", {"subject": "Late delivery"})
    clock.current = dt.datetime(2026, 3, 11, 9, 1, tzinfo=dt.UTC)
    assert {s.record_id for s in site.pipeline.overdue(li, "complaint")} == {
        first["id"], second["id"]}
    assert [s.record_id for s in site.pipeline.overdue(li, "complaint", ids=[second["id"]])] \
        == [second["id"]]
