"""The receivables block: partial payments, no collection above what is due, ageing.

The figures are hand-computed from the service-sales case that showed the
problem: a 96,000 instalment took a 110,000 collection, and the ageing then
kept the next instalment fully outstanding although the customer had paid
14,000 of it — the excess was counted nowhere.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from engine.context import FixedClock
from engine.errors import ValidationFailed
from engine.metadata.loader import load_registry
from packs.receivables.ageing import ageing, instalments
from tests.support import open_migrated, write_site

START = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # 09:00 in Shanghai


@pytest.fixture
def site(tmp_path, db_url):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["service_sales"]),
                           clock=FixedClock(START))
    opened.users.create("zhang", password="password-1", roles=["consultant"])
    opened.users.create("fin", password="password-1", roles=["finance"])
    yield opened
    opened.close()


def _contract_with_plan(site, *amounts_and_dues):
    zhang, fin = site.users.actor("zhang"), site.users.actor("fin")
    customer = site.records.create(zhang, "customer", {"name": "恒泰咨询"})
    contract = site.records.create(zhang, "contract", {
        "name": "年度顾问", "customer": customer["id"], "payment_terms": "两期",
        "lines": [{"service": "顾问", "rate": "192000"}]})
    return [site.records.create(fin, "payment_plan", {
        "name": f"第{i + 1}期", "contract": contract["id"], "due_date": due, "amount": amount})
        for i, (amount, due) in enumerate(amounts_and_dues)]


def test_the_block_is_a_pack_the_sales_models_depend_on():
    registry = load_registry(["service_sales"])
    assert {"receivables", "service_sales"} <= set(registry.packs)
    assert registry.entities["collection"].pack == "receivables"
    assert registry.entities["payment_plan"].pack == "receivables"
    assert "service_sales" in registry.entities["payment_plan"].extended_by
    assert "finance" in registry.roles


def test_a_collection_above_what_is_due_is_refused(site):
    fin = site.users.actor("fin")
    first, second = _contract_with_plan(site, ("96000", "2026-02-15"), ("96000", "2026-05-15"))
    with pytest.raises(ValidationFailed) as refused:
        site.records.create(fin, "collection", {"payment_plan": first["id"],
                                                "received_on": "2026-02-20", "amount": "110000"})
    assert list(refused.value.errors) == ["amount"]
    assert "96,000.00" in refused.value.errors["amount"][0]
    assert site.records.count(fin, "collection") == 0  # nothing half written
    assert site.records.get(fin, "payment_plan", first["id"])["collected"] == 0
    # What is owed stays what it is: 96,000 overdue 15 days, 96,000 not due yet.
    assert ageing(site.records, fin, dt.date(2026, 3, 2)) == {
        "current": Decimal("96000"), "0-30": Decimal("96000"), "31-60": 0, "61-90": 0, "90+": 0}


def test_partial_payments_up_to_the_amount_due(site):
    fin = site.users.actor("fin")
    (plan,) = _contract_with_plan(site, ("96000", "2026-02-15"))
    part = site.records.create(fin, "collection", {"payment_plan": plan["id"],
                                                   "received_on": "2026-02-20", "amount": "50000"})
    assert part["reference_no"].startswith("HK-2026-")
    with pytest.raises(ValidationFailed) as refused:  # 46,000 is left, not 46,000.01
        site.records.create(fin, "collection", {"payment_plan": plan["id"],
                                                "received_on": "2026-02-25", "amount": "46000.01"})
    assert "46,000.00" in refused.value.errors["amount"][0]
    with pytest.raises(ValidationFailed):  # raising the first one above what is due
        site.records.update(fin, "collection", part["id"], {"amount": "96000.01"})
    site.records.update(fin, "collection", part["id"], {"amount": "60000"})  # its own 50,000 freed
    assert ageing(site.records, fin, dt.date(2026, 3, 2))["0-30"] == Decimal("36000")
    site.records.create(fin, "collection", {"payment_plan": plan["id"],
                                            "received_on": "2026-03-01", "amount": "36000"})
    settled = site.records.get(fin, "payment_plan", plan["id"])
    assert (settled["collected"], settled["settled"]) == (Decimal("96000"), True)
    assert ageing(site.records, fin, dt.date(2026, 3, 2)) == {
        "current": 0, "0-30": 0, "31-60": 0, "61-90": 0, "90+": 0}
    (done,) = instalments(site.records, fin)
    assert done.paid_late_by == 14 and done.record["contract"] is not None
    with pytest.raises(ValidationFailed) as lowered:  # the plan cannot fall below what came in
        site.records.update(fin, "payment_plan", plan["id"], {"amount": "90000"})
    assert list(lowered.value.errors) == ["amount"]


def test_not_yet_due_money_stays_out_of_the_overdue_buckets(site):
    fin = site.users.actor("fin")
    _contract_with_plan(site, ("30000", "2026-03-02"), ("40000", "2026-03-03"),
                        ("50000", "2025-12-01"))
    # due today: 0 days late (0-30); due tomorrow: current; 1 Dec: 91 days late (90+)
    assert ageing(site.records, fin, dt.date(2026, 3, 2)) == {
        "current": Decimal("40000"), "0-30": Decimal("30000"), "31-60": 0, "61-90": 0,
        "90+": Decimal("50000")}


def test_the_api_and_an_import_are_refused_the_same_way(site):
    from engine.services.dataio.importing import Importer
    from tests.api_support import api_for

    fin = site.users.actor("fin")
    (plan,) = _contract_with_plan(site, ("96000", "2026-02-15"))
    api = api_for(site, "fin")
    refused = api.post("/collection", {"payment_plan": plan["id"], "received_on": "2026-02-20",
                                       "amount": "110000"})
    assert refused.status_code == 422
    assert "96,000.00" in refused.get_json()["errors"]["amount"][0]
    # Two rows of one file: the second would take the instalment above 96,000.
    data = ("payment_plan,received_on,amount\n"
            "第1期,2026-02-20,60000\n"
            "第1期,2026-02-25,40000\n").encode()
    report = Importer(site.records, timezone="Asia/Shanghai").run(fin, "collection", data,
                                                                  "collections.csv")
    assert not report.written
    errors = {e.line: e.errors for e in report.row_errors}
    assert list(errors) == [3] and "36,000.00" in errors[3]["amount"][0]
    assert site.records.count(fin, "collection") == 0  # all or nothing
    assert site.records.get(fin, "payment_plan", plan["id"])["collected"] == 0
