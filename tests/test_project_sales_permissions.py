"""Who sees which project: owners, the project's team, project managers, finance.

A salesperson reaches the projects they own and those whose team lists
their employee record — with what hangs off them (proposals, quotations,
the contract, the payment plan) — and nothing else; every way of reading
agrees (lists, counts, get by id, references, the dashboard's figures).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.errors import NotFound, PermissionDenied, TransitionRefused, ValidationFailed
from engine.services.records.transfer import TransferService
from engine.services.views.figures import ReportRequest
from packs.project_sales import reports
from tests.project_sales_support import SYSTEM, open_project_site, project_in_negotiation


@pytest.fixture
def ps(tmp_path, db_url):
    opened = open_project_site(tmp_path, db_url)
    ann = opened.actors["ann"]
    client = opened.records.create(ann, "customer", {"name": "Harbour Authority"})
    team = [{"member": opened.employees["ann"], "project_role": "sales_lead"},
            {"member": opened.employees["carl"], "project_role": "presales"},
            {"member": opened.employees["pm"], "project_role": "project_manager"}]
    opened.on_team = project_in_negotiation(opened.site, ann, "Harbour CCTV", 300000,
                                            client["id"], team)
    opened.solo = project_in_negotiation(opened.site, ann, "Harbour Wi-Fi", 90000, client["id"])
    yield opened
    opened.site.close()


def names(ps, login: str, entity: str = "project") -> set[str]:
    return {r.get("name") or r.get("title") for r in ps.records.list(ps.actors[login], entity).rows}


def test_a_salesperson_on_the_team_sees_the_project_one_who_is_not_does_not(ps):
    records = ps.records
    carl, bob = ps.actors["carl"], ps.actors["bob"]
    # Carl is on the Harbour CCTV team (pre-sales), not on Harbour Wi-Fi; Bob on neither.
    assert names(ps, "carl") == {"Harbour CCTV"}
    assert records.count(carl, "project") == 1
    assert records.get(carl, "project", ps.on_team["id"])["name"] == "Harbour CCTV"
    with pytest.raises(NotFound):
        records.get(carl, "project", ps.solo["id"])
    assert names(ps, "bob") == set() and records.count(bob, "project") == 0
    with pytest.raises(NotFound):
        records.get(bob, "project", ps.on_team["id"])
    # What hangs off the project follows it: Carl sees its quotation, Bob none.
    assert names(ps, "carl", "quotation") == {"Harbour CCTV quotation"}
    assert names(ps, "bob", "quotation") == set()
    # A team member works on the project: a new proposal version, an update.
    records.create(carl, "proposal", {"project": ps.on_team["id"], "version_no": 2,
                                      "title": "Carl's revision"})
    records.update(carl, "project", ps.on_team["id"], {"requirements": "Add night vision"})
    # Bob cannot even name it in a record of his own.
    with pytest.raises(ValidationFailed):
        records.create(bob, "proposal", {"project": ps.on_team["id"], "version_no": 3,
                                         "title": "Bob's"})
    # The companies of a project are everyone's to read, their owner's to change.
    client = records.get(carl, "customer", ps.on_team["client"])
    assert client["name"] == "Harbour Authority"
    with pytest.raises(PermissionDenied):
        records.update(carl, "customer", client["id"], {"name": "Renamed"})
    # The owner sees both; so does her manager (team scope) and the owner role.
    assert names(ps, "ann") == {"Harbour CCTV", "Harbour Wi-Fi"}
    assert names(ps, "mgr") == {"Harbour CCTV", "Harbour Wi-Fi"}
    assert names(ps, "boss") == {"Harbour CCTV", "Harbour Wi-Fi"}


def test_taking_someone_off_the_team_takes_the_project_away(ps):
    ann = ps.actors["ann"]
    ps.records.update(ann, "project", ps.on_team["id"], {"team": [
        {"member": ps.employees["ann"], "project_role": "sales_lead"}]})
    assert names(ps, "carl") == set()
    assert names(ps, "carl", "quotation") == set()


def test_figures_count_only_the_projects_a_salesperson_reaches(ps):
    def weighted(login: str) -> dict[str, Decimal]:
        request = ReportRequest(site=ps.site, actor=ps.actors[login], now=ps.clock.now())
        figure = reports.weighted_projects(request)
        return dict(zip(figure.categories, figure.series[1].values, strict=True))

    # 300,000 and 90,000 at 80 %.
    assert weighted("ann") == {"Harbour CCTV": Decimal("240000.00"),
                               "Harbour Wi-Fi": Decimal("72000.00")}
    assert weighted("carl") == {"Harbour CCTV": Decimal("240000.00")}
    assert weighted("bob") == {}


def test_project_managers_deliver_their_projects_and_finance_reads_every_one(ps):
    records = ps.records
    pm, pat, fin = ps.actors["pm"], ps.actors["pat"], ps.actors["fin"]
    assert names(ps, "pm") == {"Harbour CCTV"} and names(ps, "pat") == set()
    # A project manager on the team changes the budget, not the value or the probability.
    records.update(pm, "project", ps.on_team["id"], {"budget_cost": 200000})
    with pytest.raises(ValidationFailed):
        records.update(pm, "project", ps.on_team["id"], {"estimated_value": 1})
    with pytest.raises(PermissionDenied):
        ps.workflows.transition(pm, "project", ps.on_team["id"], "lost",
                                {"lost_reason": "price"})
    # Finance reads every project and keeps the payment plan; it does not sell.
    assert names(ps, "fin") == {"Harbour CCTV", "Harbour Wi-Fi"}
    plan = records.create(fin, "instalment", {"project": ps.solo["id"], "name": "Advance",
                                       "due_date": "2027-01-10", "amount": 27000})
    # A collection against that instalment must name its project, not another one.
    with pytest.raises(ValidationFailed) as caught:
        records.create(fin, "collection", {"project": ps.on_team["id"],
                                           "instalment": plan["id"],
                                           "received_on": "2027-01-09", "amount": 27000})
    assert caught.value.errors["instalment"] == ["The instalment belongs to another project."]
    with pytest.raises(PermissionDenied):
        records.create(fin, "proposal", {"project": ps.solo["id"], "version_no": 9,
                                         "title": "No"})
    # The payment plan of Harbour Wi-Fi, entered by finance, reaches Ann (she owns the
    # project) to read, her manager, and not Carl nor Pat (on neither team).
    ann = ps.actors["ann"]
    assert [r["name"] for r in records.list(ann, "instalment").rows] == ["Advance"]
    with pytest.raises(PermissionDenied):
        records.update(ann, "instalment", plan["id"], {"amount": 1})
    assert records.count(ps.actors["mgr"], "instalment") == 1
    assert records.count(ps.actors["carl"], "instalment") == 0
    assert records.count(pat, "instalment") == 0


def test_the_accepted_quotation_is_frozen_for_everyone(ps):
    records, flows = ps.records, ps.workflows
    ann = ps.actors["ann"]
    quotation = records.list(ann, "quotation", search="Harbour Wi-Fi").rows[0]
    flows.transition(ann, "quotation", quotation["id"], "accepted")
    for login in ("ann", "mgr", "boss"):
        with pytest.raises(ValidationFailed) as caught:
            records.update(ps.actors[login], "quotation", quotation["id"], {"lines": [
                {"item": "Everything", "quantity": 1, "unit_price": 1}]})
        assert "lines" in caught.value.errors
        with pytest.raises(ValidationFailed):
            records.update(ps.actors[login], "quotation", quotation["id"], {"title": "Other"})
    # No transition leads out of it, and salespeople may not delete it.
    assert flows.available(ann, "quotation", quotation["id"]) == []
    with pytest.raises(PermissionDenied):
        records.delete(ann, "quotation", quotation["id"])
    assert records.get(SYSTEM, "quotation", quotation["id"])["total"] == Decimal("90000")
    # A second version of the same project cannot be accepted as well.
    second = records.create(ann, "quotation", {"project": ps.solo["id"], "version_no": 2,
                                               "title": "v2", "lines": [
                                                   {"item": "Less", "unit_price": 80000}]})
    flows.transition(ann, "quotation", second["id"], "sent")
    with pytest.raises(TransitionRefused) as caught:
        flows.transition(ann, "quotation", second["id"], "accepted")
    assert "Version 1" in str(caught.value)


def test_a_leaving_salespersons_open_projects_go_to_the_new_owner_of_the_client(ps):
    records, flows = ps.records, ps.workflows
    ann = ps.actors["ann"]
    flows.transition(ann, "project", ps.solo["id"], "lost", {"lost_reason": "price"})
    ps.users.create("root", password="password-1", roles=["admin"])
    TransferService(ps.registry, ps.schema, ps.engine, clock=ps.clock).run(
        ps.users.actor("root"), "ann", ["bob"])
    owners = {p["name"]: p["owner"] for p in records.list(SYSTEM, "project").rows}
    assert owners == {"Harbour CCTV": ps.actors["bob"].user_id,
                      "Harbour Wi-Fi": ann.user_id}  # lost: stays Ann's record
    # Bob takes the open project over with what Ann wrote for it.
    assert names(ps, "bob") == {"Harbour CCTV"}
    assert names(ps, "bob", "quotation") == {"Harbour CCTV quotation"}
    assert {q["owner"] for q in records.list(SYSTEM, "quotation").rows} == {ann.user_id}
