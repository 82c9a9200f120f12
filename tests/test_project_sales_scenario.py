"""A project sold and delivered end to end through the service layer, with its figures.

A salesperson wins a hospital's machine-room project delivered with a rack
supplier and a builder: proposal and quotation versions, the guards on the
way, signing (which creates the contract), procurement, implementation to
acceptance, a payment plan of two instalments and its collections. Every
figure of the dashboard is then checked against numbers worked out by hand
below — never against the code that computes them.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.errors import TransitionRefused, ValidationFailed
from engine.services.views.dashboards import DashboardService
from tests.project_sales_support import SYSTEM, open_project_site, project_in_negotiation


@pytest.fixture
def ps(tmp_path, db_url):
    opened = open_project_site(tmp_path, db_url)
    yield opened
    opened.site.close()


def refused(call) -> list[tuple[str, str]]:
    with pytest.raises(TransitionRefused) as caught:
        call()
    return [(r.code, r.message) for r in caught.value.reasons]


def figures_of(ps, login: str) -> dict[str, object]:
    """The project dashboard as ``login`` sees it: report function name → figure."""
    service = DashboardService(ps.site)
    actor = ps.actors[login]
    shown = service.figures(actor, service.get(actor, "projects"))
    assert all(w.error is None for w in shown), [w.error for w in shown]
    return {w.widget.target.split(".", 1)[1]: w.figure for w in shown}


def table(figure) -> dict[str, tuple]:
    """category → its values across the series."""
    return {c: tuple(s.values[i] for s in figure.series) for i, c in enumerate(figure.categories)}


def test_a_project_from_lead_to_payment_in_full(ps):
    records, flows = ps.records, ps.workflows
    ann, pm, fin = (ps.actors[k] for k in ("ann", "pm", "fin"))

    # Companies: the client, a rack supplier and a builder, with their contacts (the
    # salesperson's own: customers belong to whoever brought them in).
    client = records.create(ann, "customer", {"name": "Eastern Hospital", "kind": "client"})
    racks = records.create(ann, "customer", {"name": "Rack Supply Co", "kind": "supplier"})
    builder = records.create(ann, "customer", {"name": "Solid Build Ltd", "kind": "builder"})
    doctor = records.create(ann, "contact", {"name": "Dr Xu", "customer": client["id"]})
    rack_man = records.create(ann, "contact", {"name": "Mr Qian", "customer": racks["id"]})
    foreman = records.create(ann, "contact", {"name": "Mr Sun", "customer": builder["id"]})

    project = records.create(ann, "project", {
        "name": "Hospital machine room", "client": client["id"], "client_contact": doctor["id"],
        "estimated_value": 800000, "expected_signing": "2026-12-20", "budget_cost": 500000,
        "partners": [
            {"company": racks["id"], "role": "supplier", "contact": rack_man["id"]},
            {"company": builder["id"], "role": "builder", "contact": foreman["id"]},
        ],
        "team": [{"member": ps.employees["ann"], "project_role": "sales_lead"},
                 {"member": ps.employees["pm"], "project_role": "project_manager"}],
    })
    pid = project["id"]
    assert project["stage"] == "lead" and project["probability"] == 10

    # Requirements are needed to confirm them.
    reasons = refused(lambda: flows.transition(ann, "project", pid, "requirements"))
    assert reasons[0][0] == "missing_fields"
    flows.transition(ann, "project", pid, "requirements", {"requirements": "120 m² room"})
    flows.transition(ann, "project", pid, "proposal")

    # Proposal v1 is rejected; quoting without an approved proposal is refused.
    v1 = records.create(ann, "proposal", {"project": pid, "version_no": 1, "title": "Room v1"})
    flows.transition(ann, "proposal", v1["id"], "submitted")
    flows.transition(ann, "proposal", v1["id"], "rejected", {"review_note": "Needs N+1 cooling"})
    reasons = refused(lambda: flows.transition(ann, "project", pid, "quotation"))
    assert reasons == [("hook", "A quotation needs an approved proposal of this project.")]
    assert records.get(ann, "project", pid)["stage"] == "proposal"  # nothing was written

    v2 = records.create(ann, "proposal", {"project": pid, "version_no": 2, "title": "Room v2"})
    flows.transition(ann, "proposal", v2["id"], "submitted")
    flows.transition(ann, "proposal", v2["id"], "approved")
    assert flows.transition(ann, "project", pid, "quotation")["probability"] == 60

    # Quotation v1: 10 racks at 50,000 less 10 % = 450,000, installation 150,000 → 600,000.
    q1 = records.create(ann, "quotation", {"project": pid, "version_no": 1, "title": "Q v1", "lines": [
        {"item": "Rack", "quantity": 10, "unit_price": 50000, "discount": 10, "unit_cost": 35000},
        {"item": "Installation", "quantity": 1, "unit_price": 150000, "unit_cost": 80000},
    ]})
    assert (q1["total"], q1["cost_total"], q1["margin"]) == (Decimal("600000"),
                                                             Decimal("430000"), Decimal("170000"))
    flows.transition(ann, "quotation", q1["id"], "sent")
    flows.transition(ann, "quotation", q1["id"], "rejected")
    # v2: 12 % off the racks = 440,000, installation 140,000 → 580,000; cost still 430,000.
    q2 = records.create(ann, "quotation", {"project": pid, "version_no": 2, "title": "Q v2", "lines": [
        {"item": "Rack", "quantity": 10, "unit_price": 50000, "discount": 12, "unit_cost": 35000},
        {"item": "Installation", "quantity": 1, "unit_price": 140000, "unit_cost": 80000},
    ]})
    assert q2["total"] == Decimal("580000")
    flows.transition(ann, "quotation", q2["id"], "sent")
    flows.transition(ann, "project", pid, "negotiation")

    # Signing before the client accepted a version: the guard refuses.
    reasons = refused(lambda: flows.transition(ann, "project", pid, "signed", {
        "contract_value": 580000, "signed_on": "2026-11-24"}))
    assert [code for code, _ in reasons] == ["guard"]
    assert "accepted" in reasons[0][1]

    # The client accepts v2: it is frozen and recorded on the project with its value.
    flows.transition(ann, "quotation", q2["id"], "accepted")
    project = records.get(ann, "project", pid)
    assert (project["accepted_version"], project["contract_value"]) == (2, Decimal("580000"))
    with pytest.raises(ValidationFailed) as caught:
        records.update(ann, "quotation", q2["id"], {"lines": [
            {"item": "Rack", "quantity": 10, "unit_price": 50000, "discount": 30}]})
    assert "lines" in caught.value.errors
    with pytest.raises(ValidationFailed):
        records.update(ps.actors["boss"], "quotation", q2["id"], {"title": "Cheaper"})
    assert flows.available(ann, "quotation", q2["id"]) == []  # and no way out of it
    # The accepted version is read-only to the salesperson on the project too.
    with pytest.raises(ValidationFailed):
        records.update(ann, "project", pid, {"accepted_version": 1})

    # Signing creates the contract, which starts in procurement.
    signed = flows.transition(ann, "project", pid, "signed", {"signed_on": "2026-11-24"})
    assert signed["stage"] == "signed" and signed["probability"] == 100
    contracts = records.list(SYSTEM, "project_contract").rows
    assert len(contracts) == 1
    contract = contracts[0]
    assert (contract["project"], contract["contract_value"], contract["stage"]) == (
        pid, Decimal("580000"), "procurement")
    assert contract["name"] == "Contract: Hospital machine room"

    # Procurement: only a participating supplier may be ordered from.
    wrong = records.create(pm, "purchase_order", {"project": pid, "supplier": builder["id"],
                                                  "lines": [{"item": "Racks", "quantity": 1,
                                                             "unit_cost": 1}]})
    reasons = refused(lambda: flows.transition(pm, "purchase_order", wrong["id"], "ordered",
                                               {"ordered_on": "2026-11-25"}))
    assert reasons[0][0] == "hook" and "supplier" in reasons[0][1]
    flows.transition(pm, "purchase_order", wrong["id"], "cancelled")
    order = records.create(pm, "purchase_order", {"project": pid, "supplier": racks["id"],
                                                  "lines": [{"item": "Racks", "quantity": 10,
                                                             "unit_cost": 34000}]})
    assert order["total"] == Decimal("340000")
    flows.transition(pm, "purchase_order", order["id"], "ordered", {"ordered_on": "2026-11-25"})
    flows.transition(pm, "purchase_order", order["id"], "shipped")
    flows.transition(pm, "purchase_order", order["id"], "received", {"received_on": "2026-11-28"})
    records.create(ann, "expense", {"summary": "Site visits", "spent_on": "2026-11-20",
                                    "category": "travel", "amount": 2500, "project": pid})

    # Implementation: a milestone late since 20 November, one due in December.
    late = records.create(pm, "milestone", {"project": pid, "name": "Cabling", "due_date": "2026-11-20",
                                            "assignee": ps.employees["pm"], "builder": builder["id"],
                                            "status": "in_progress"})
    later = records.create(pm, "milestone", {"project": pid, "name": "Commissioning",
                                             "due_date": "2026-12-10",
                                             "assignee": ps.employees["pm"]})
    assert records.get(pm, "milestone", late["id"])["overdue"] is True
    flows.transition(pm, "project_contract", contract["id"], "implementation")
    assert table(figures_of(ps, "pm")["overdue_milestones"]) == {
        "Hospital machine room · Cabling": (4,)}
    reasons = refused(lambda: flows.transition(pm, "project_contract", contract["id"], "delivered",
                                               {"delivered_on": "2026-12-01"}))
    assert "Cabling" in reasons[0][1] and "Commissioning" in reasons[0][1]
    for milestone in (late, later):
        records.update(pm, "milestone", milestone["id"], {"status": "done",
                                                          "completed_on": "2026-11-30"})
    flows.transition(pm, "project_contract", contract["id"], "delivered",
                     {"delivered_on": "2026-12-01"})
    reasons = refused(lambda: flows.transition(pm, "project_contract", contract["id"], "accepted",
                                               {"accepted_on": "2026-12-05"}))
    assert reasons[0][0] == "missing_fields"
    accepted = flows.transition(pm, "project_contract", contract["id"], "accepted", {
        "accepted_on": "2026-12-05", "accepted_by": doctor["id"], "acceptance_result": "passed",
        "acceptance_report": "Cooling and UPS switch-over tested with the supervisor."})
    assert accepted["stage"] == "accepted"

    # The payment plan: 30 % advance due 10 November, 70 % on 15 December; two collections
    # against the advance leave 24,000 of it overdue.
    advance = records.create(fin, "instalment", {"project": pid, "name": "Advance 30%",
                                                 "due_date": "2026-11-10", "amount": 174000})
    balance = records.create(fin, "instalment", {"project": pid, "name": "Balance 70%",
                                                 "due_date": "2026-12-15", "amount": 406000})
    records.create(fin, "collection", {"project": pid, "instalment": advance["id"],
                                       "received_on": "2026-11-12", "amount": 100000})
    # Given the instalment alone, a collection takes its project from it.
    second = records.create(fin, "collection", {"instalment": advance["id"],
                                                "received_on": "2026-11-20", "amount": 50000})
    assert second["project"] == pid

    # Two other projects at 80 %, worth 800,000 (ann) and 240,000 (bob), and a lead of bob's.
    bob = ps.actors["bob"]
    bank = records.create(ann, "customer", {"name": "Bank"})
    school = records.create(bob, "customer", {"name": "School"})
    project_in_negotiation(ps.site, ann, "Data centre", 800000, bank["id"])
    project_in_negotiation(ps.site, bob, "Office fit-out", 240000, school["id"])
    records.create(bob, "project", {"name": "Campus", "client": school["id"],
                                    "estimated_value": 100000})

    shown = figures_of(ps, "boss")
    # Weighted by stage: negotiation 800,000 × 80 % + 240,000 × 80 % = 640,000 + 192,000;
    # the lead 100,000 × 10 % = 10,000; the signed project is no longer in the pipeline.
    assert table(shown["weighted_pipeline_by_stage"]) == {
        "Lead": (Decimal("100000"), Decimal("10000.00")),
        "Negotiation": (Decimal("1040000"), Decimal("832000.00")),
    }
    # By salesperson: ann 640,000; bob 192,000 + 10,000 = 202,000.
    assert table(shown["weighted_pipeline_by_salesperson"]) == {
        "ann": (Decimal("800000"), Decimal("640000.00")),
        "bob": (Decimal("340000"), Decimal("202000.00")),
    }
    # Same probability, different weight: the 800,000 project comes first.
    assert shown["weighted_projects"].categories == ("Data centre", "Office fit-out", "Campus")
    # In delivery: accepted; 150,000 collected; the advance's 24,000 overdue; no late milestone.
    assert table(shown["projects_in_delivery"]) == {
        "Hospital machine room — Accepted": (Decimal("580000"), Decimal("150000"),
                                             Decimal("24000"), 0)}
    # Overdue: 174,000 due on 10 November, 150,000 collected, 24,000 late by 14 days.
    assert table(shown["overdue_instalments"]) == {
        "Hospital machine room · Advance 30%": (Decimal("174000"), Decimal("150000"),
                                                Decimal("24000"), 14)}
    assert figures_of(ps, "pm")["overdue_milestones"].categories == ()
    # Collections vs plan: November plans 174,000 and collects 150,000; December plans 406,000.
    assert table(shown["collections_vs_plan"]) == {
        "2026-11": (Decimal("174000"), Decimal("150000")),
        "2026-12": (Decimal("406000"), Decimal("0")),
    }
    assert table(shown["receivables"]) == {
        "Hospital machine room": (Decimal("580000"), Decimal("150000"), Decimal("430000"),
                                  Decimal("24000"))}
    # Margin: 580,000 − (340,000 received order + 2,500 expense; the cancelled order counts
    # nothing) = 237,500, against a budget of 500,000.
    assert table(shown["margin_per_project"]) == {
        "Hospital machine room": (Decimal("580000"), Decimal("500000"), Decimal("342500"),
                                  Decimal("237500"))}

    # Paid in full only once the collections reach the contract value.
    reasons = refused(lambda: flows.transition(fin, "project_contract", contract["id"], "paid",
                                               {"paid_on": "2026-12-20"}))
    assert reasons == [("hook", "Collected 150,000.00 of 580,000.00: 430,000.00 is still to be paid.")]
    records.create(fin, "collection", {"project": pid, "instalment": advance["id"],
                                       "received_on": "2026-12-18", "amount": 24000})
    records.create(fin, "collection", {"project": pid, "instalment": balance["id"],
                                       "received_on": "2026-12-18", "amount": 406000})
    paid = flows.transition(fin, "project_contract", contract["id"], "paid",
                            {"paid_on": "2026-12-20"})
    assert paid["stage"] == "paid"
    shown = figures_of(ps, "boss")
    assert shown["projects_in_delivery"].categories == ()
    assert table(shown["receivables"])["Hospital machine room"][2:] == (Decimal("0"),
                                                                        Decimal("0"))
