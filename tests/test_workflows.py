"""Running stage flows on the database under test: moves, refusals, no bypass, actions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from engine.context import FixedClock
from engine.errors import (
    ActionFailed,
    Conflict,
    PermissionDenied,
    TransitionRefused,
    ValidationFailed,
)
from engine.services.access.policy import AllowAll
from engine.services.workflows.service import WorkflowService
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
def admin(site):
    return site.users.actor("admin")


@pytest.fixture
def li(site):
    return site.users.actor("li")


@pytest.fixture
def customer(site, admin):
    return site.records.create(admin, "customer", {"name": "Huaxin"})


def new_deal(site, actor, customer, **values):
    return site.records.create(actor, "deal", {"name": "Server room", "customer": customer["id"],
                                               **values})


def footprint(site, entity, record_id):
    """Everything a transition writes about a record: the row, its history, audit, outbox.

    A refused move adds an audit row of action ``refused`` (it changes nothing): not counted.
    """
    history = site.schema.system("crm_stage_history")
    audit = site.schema.system("crm_audit")
    outbox = site.schema.system("crm_outbox")
    table = site.schema.table(entity)
    with site.engine.connect() as conn:
        return {
            "row": dict(conn.execute(select(table).where(table.c.id == record_id)).mappings().one()),
            "history": conn.execute(select(func.count()).select_from(history).where(
                history.c.record_id == record_id)).scalar_one(),
            "audit": conn.execute(select(func.count()).select_from(audit).where(
                audit.c.entity == entity, audit.c.record_id == record_id,
                audit.c.action != "refused")).scalar_one(),
            "outbox": conn.execute(select(func.count()).select_from(outbox)).scalar_one(),
            "contracts": conn.execute(select(func.count()).select_from(
                site.schema.table("contract"))).scalar_one(),
        }


def to_negotiation(site, actor, deal, **values):
    site.workflows.transition(actor, "deal", deal["id"], "proposal", {"amount": "800000"})
    return site.workflows.transition(actor, "deal", deal["id"], "negotiation", values)


# -- where records start, and no way around the flow -------------------------------------


def test_a_new_record_starts_in_the_initial_stage_of_its_pipeline(site, li, customer):
    project = new_deal(site, li, customer)
    assert (project["stage"], project["pipeline"], project["probability"]) == ("lead", "projects",
                                                                              10)
    service = new_deal(site, li, customer, pipeline="services")
    assert (service["stage"], service["pipeline"], service["probability"]) == ("call", "services",
                                                                              20)
    echoed = new_deal(site, li, customer, stage="lead")  # the initial stage itself is fine
    assert echoed["stage"] == "lead"


def test_create_in_another_stage_is_refused(site, li, customer):
    with pytest.raises(ValidationFailed) as caught:
        new_deal(site, li, customer, stage="won")
    assert caught.value.errors == {"stage": [
        "A new Deal starts in the stage 'Lead'; once it is created, move it on with a "
        "transition."]}


def test_update_of_the_stage_is_refused_and_says_which_transition(site, li, customer):
    deal = new_deal(site, li, customer)
    before = footprint(site, "deal", deal["id"])
    with pytest.raises(ValidationFailed) as caught:
        site.records.update(li, "deal", deal["id"], {"stage": "proposal"})
    assert caught.value.errors == {"stage": [
        "The stage changes only through a transition: take 'Send proposal' to move to "
        "'Proposal'."]}
    with pytest.raises(ValidationFailed) as caught:
        site.records.update(li, "deal", deal["id"], {"stage": "won", "note": "done"})
    assert caught.value.errors == {"stage": [
        "The stage changes only through a transition, and none leads from 'Lead' to 'Won'."]}
    assert footprint(site, "deal", deal["id"]) == before
    # sending the record back as it was read is not a change
    same = site.records.update(li, "deal", deal["id"], {"stage": "lead", "note": "called"})
    assert same["note"] == "called"


def test_the_pipeline_of_a_record_is_fixed(site, li, customer):
    deal = new_deal(site, li, customer)
    with pytest.raises(ValidationFailed) as caught:
        site.records.update(li, "deal", deal["id"], {"pipeline": "services"})
    assert caught.value.errors == {"pipeline": [
        "A record stays in the pipeline it was created in."]}


# -- moving ------------------------------------------------------------------------------


def test_a_transition_moves_and_writes_history_and_audit(site, li, customer, clock):
    deal = new_deal(site, li, customer)
    clock.advance(hours=5)
    moved = site.workflows.transition(li, "deal", deal["id"], "proposal", {"amount": "120000"},
                                      comment="sent the offer")
    assert (moved["stage"], moved["probability"], moved["amount"]) == ("proposal", 50,
                                                                      Decimal("120000.00"))
    assert moved["version"] == deal["version"] + 1
    clock.advance(days=2)
    site.workflows.transition(li, "deal", deal["id"], "negotiation", {"probability": 70})
    history = site.workflows.history(li, "deal", deal["id"])
    assert [(h["transition"], h["from_stage"], h["to_stage"], h["seconds_in_previous"],
             h["comment"], h["actor_id"], h["pipeline"]) for h in history] == [
        ("propose", "lead", "proposal", 5 * 3600, "sent the offer", li.user_id, "projects"),
        ("negotiate", "proposal", "negotiation", 2 * 86400, None, li.user_id, "projects"),
    ]
    assert site.records.get(li, "deal", deal["id"])["probability"] == 70  # given beats the stage
    audit = site.records.history(li, "deal", deal["id"])
    moves = [(a["field"], a["old_value"], a["new_value"]) for a in audit
             if a["action"] == "transition"]
    assert ("stage", "lead", "proposal") in moves and ("amount", None, "120000.00") in moves
    assert ("stage", "proposal", "negotiation") in moves


def test_guard_refusal_has_its_own_message_and_writes_nothing(site, li, customer):
    deal = site.records.create(li, "deal", {"name": "No customer"})
    site.workflows.transition(li, "deal", deal["id"], "proposal", {"amount": "10"})
    site.workflows.transition(li, "deal", deal["id"], "negotiation")
    before = footprint(site, "deal", deal["id"])
    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(li, "deal", deal["id"], "won", {"close_on": "2026-04-01"})
    assert [(r.code, r.message) for r in caught.value.reasons] == [
        ("guard", "A won deal needs an amount and a customer.")]
    assert caught.value.status == 409
    assert footprint(site, "deal", deal["id"]) == before
    wang = site.users.actor("wang")  # reads Chinese
    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(wang, "deal", deal["id"], "won", {"close_on": "2026-04-01"})
    assert caught.value.reasons[0].message == "赢单需要金额和客户。"
    assert caught.value.summary == "商机 1 不能从“谈判”进入“赢单”:"


def test_missing_fields_are_named_and_can_be_given_on_the_way(site, li, customer):
    deal = new_deal(site, li, customer)
    before = footprint(site, "deal", deal["id"])
    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(li, "deal", deal["id"], "proposal")
    assert [(r.code, r.fields) for r in caught.value.reasons] == [("missing_fields", ("amount",))]
    assert caught.value.reasons[0].message == "Fill in before moving to 'Proposal': Amount."
    assert caught.value.errors == {"amount": ["This field is required."]}
    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(li, "deal", deal["id"], "lost")
    assert caught.value.reasons[0].message == "Fill in before moving to 'Lost': Lost reason."
    assert footprint(site, "deal", deal["id"]) == before
    lost = site.workflows.transition(li, "deal", deal["id"], "lost", {"lost_reason": "price"})
    assert (lost["stage"], lost["lost_reason"], lost["probability"]) == ("lost", "price", 0)


def test_values_that_do_not_fit_are_field_errors(site, li, customer):
    deal = new_deal(site, li, customer)
    with pytest.raises(ValidationFailed) as caught:
        site.workflows.transition(li, "deal", deal["id"], "lost", {"lost_reason": "weather",
                                                                   "stage": "won"})
    assert caught.value.errors == {
        "lost_reason": ["'weather' is not one of the choices: price, competitor."],
        "stage": ["The transition sets this field itself."],
    }


def test_every_reason_is_given_at_once(site, customer):
    intern = site.users.actor("intern")
    deal = site.records.create(intern, "deal", {"name": "Quiet"})
    site.workflows.transition(intern, "deal", deal["id"], "proposal", {"amount": "0"})
    site.workflows.transition(intern, "deal", deal["id"], "negotiation")
    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(intern, "deal", deal["id"], "won")
    assert [r.code for r in caught.value.reasons] == ["role", "guard", "missing_fields"]
    assert caught.value.reasons[0].message == (
        "Only Salesperson, Sales manager may take 'Mark as won'.")
    assert caught.value.reasons[2].fields == ("close_on",)


def test_not_a_transition_from_this_stage(site, li, customer):
    deal = new_deal(site, li, customer)
    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(li, "deal", deal["id"], "won")
    assert [(r.code, r.message) for r in caught.value.reasons] == [(
        "no_transition",
        "No transition leads from 'Lead' to 'Won'; from here: 'Proposal', 'Lost'.")]
    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(li, "deal", deal["id"], "wonn")
    assert caught.value.reasons[0].code == "unknown_stage"
    assert "(won?)" in caught.value.reasons[0].message
    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(li, "deal", deal["id"], "lead")
    assert caught.value.reasons[0].code == "already_in_stage"


def test_closed_records_reopen_only_through_a_declared_transition(site, li, customer):
    deal = new_deal(site, li, customer)
    site.workflows.transition(li, "deal", deal["id"], "lost", {"lost_reason": "price"})
    with pytest.raises(TransitionRefused) as caught:  # "*" leaves open stages only
        site.workflows.transition(li, "deal", deal["id"], "lead")
    assert caught.value.reasons[0].message == (
        "'Lost' is a closed stage (lost) and no transition reopens it to 'Lead'; from here: "
        "'Proposal'.")
    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(li, "deal", deal["id"], "proposal", {"amount": "5"})
    assert [r.code for r in caught.value.reasons] == ["role"]
    reopened = site.workflows.transition(site.users.actor("wang"), "deal", deal["id"],
                                         "proposal", {"amount": "5"})
    assert (reopened["stage"], reopened["probability"]) == ("proposal", 50)


def test_fields_read_only_in_a_stage(site, li, admin, customer):
    deal = new_deal(site, li, customer)
    to_negotiation(site, li, deal)
    site.workflows.transition(li, "deal", deal["id"], "won", {"close_on": "2026-04-01"})
    with pytest.raises(ValidationFailed) as caught:
        site.records.update(li, "deal", deal["id"], {"amount": "1"})
    assert caught.value.errors == {"amount": [
        "This field cannot be changed while the record is in the stage 'Won'."]}
    assert site.records.update(li, "deal", deal["id"], {"note": "thanks"})["note"] == "thanks"


def test_a_stale_version_is_a_conflict(site, li, customer):
    deal = new_deal(site, li, customer)
    site.records.update(li, "deal", deal["id"], {"note": "changed meanwhile"})
    with pytest.raises(Conflict):
        site.workflows.transition(li, "deal", deal["id"], "lost", {"lost_reason": "price"},
                                  version=deal["version"])
    moved = site.workflows.transition(li, "deal", deal["id"], "lost", {"lost_reason": "price"},
                                      version=deal["version"] + 1)
    assert moved["stage"] == "lost"


# -- actions -------------------------------------------------------------------------------


def test_winning_runs_every_action(site, li, customer, clock):
    deal = new_deal(site, li, customer)
    to_negotiation(site, li, deal)
    won = site.workflows.transition(li, "deal", deal["id"], "won", {"close_on": "2026-04-01"})
    # set_expression and the hook's changes land on the record
    assert won["won_on"] == NOW.date() and won["note"] == "won by li from negotiation"
    assert (won["stage"], won["probability"]) == ("won", 100)
    # create with a mapping, stored back on the deal
    contract = site.records.get(li, "contract", won["contract"])
    assert (contract["title"], contract["customer"], contract["amount"], contract["owner"],
            contract["created_by"]) == ("Contract: Server room", customer["id"],
                                        Decimal("800000.00"), li.user_id, li.user_id)
    # follow-up due two days later, linked to the deal
    tasks = site.records.list(li, "task").rows
    assert [(t["subject"], t["deal"], t["due_at"]) for t in tasks] == [
        ("Kick-off Server room", deal["id"], NOW + dt.timedelta(days=2))]
    # notify: one outbox message per recipient (the owner li, the manager wang) in their
    # language, for the inbox; delivered later by the worker
    outbox = site.schema.system("crm_outbox")
    with site.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(outbox).order_by(outbox.c.id)).mappings()]
    wang = site.users.actor("wang")
    assert [(r["user_id"], r["channel"], r["language"]) for r in rows] == [
        (li.user_id, "in_app", "en"), (wang.user_id, "in_app", "zh")]
    assert [(r["title"], r["body"]) for r in rows] == [
        ("Won: Server room", "Server room was won at 800000.00."),
        ("赢单:Server room", "Server room 以 800000.00 赢单。")]
    assert {(r["status"], r["kind"], r["source"], r["record_id"]) for r in rows} == {
        ("pending", "notify", "deal_flow.win", deal["id"])}


def test_a_failing_action_undoes_the_whole_transition(site, li, customer):
    deal = new_deal(site, li, customer)
    site.workflows.transition(li, "deal", deal["id"], "proposal", {"amount": "2000000"})
    site.workflows.transition(li, "deal", deal["id"], "negotiation")
    before = footprint(site, "deal", deal["id"])
    with pytest.raises(TransitionRefused) as caught:  # the hook refuses big deals
        site.workflows.transition(li, "deal", deal["id"], "won", {"close_on": "2026-04-01"})
    assert caught.value.reasons[0].message == "Deals above 1,000,000 need the board."
    assert footprint(site, "deal", deal["id"]) == before
    assert site.records.count(li, "task") == 0


def test_an_action_that_cannot_create_its_record_fails_clearly(site, li, customer):
    deal = new_deal(site, li, customer, name="x" * 250)  # too long for "Contract: " + name
    to_negotiation(site, li, deal)
    before = footprint(site, "deal", deal["id"])
    with pytest.raises(ActionFailed) as caught:
        site.workflows.transition(li, "deal", deal["id"], "won", {"close_on": "2026-04-01"})
    assert caught.value.message.startswith("The transition could not create the Contract: ")
    assert "title: At most 255 characters (got 260)" in caught.value.message
    assert footprint(site, "deal", deal["id"]) == before


def test_notify_messages_reach_the_inbox_through_the_worker(site, li, customer):
    from engine.notifications.inbox import InboxService
    from engine.notifications.worker import NotificationWorker

    deal = new_deal(site, li, customer)
    to_negotiation(site, li, deal)
    site.workflows.transition(li, "deal", deal["id"], "won", {"close_on": "2026-04-01"})
    inbox = InboxService(site.schema, site.engine, site.clock)
    assert inbox.unread_count(li) == 0  # written with the move, delivered by the worker
    assert NotificationWorker(site).run_once()["delivery"] == {"sent": 2}
    assert [m["body"] for m in inbox.messages(li)] == ["Server room was won at 800000.00."]
    assert NotificationWorker(site).run_once()["delivery"] == {}  # once only


def test_a_rolled_back_transition_notifies_nobody(site, li, customer):
    deal = new_deal(site, li, customer)
    site.workflows.transition(li, "deal", deal["id"], "proposal", {"amount": "2000000"})
    site.workflows.transition(li, "deal", deal["id"], "negotiation")
    with pytest.raises(TransitionRefused):  # the hook refuses big deals after notify ran
        site.workflows.transition(li, "deal", deal["id"], "won", {"close_on": "2026-04-01"})
    outbox = site.schema.system("crm_outbox")
    with site.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0


def test_a_hook_that_crashes_is_reported_and_undone(site, li, customer, tmp_path):
    hooks = tmp_path / "packs" / "sales" / "hooks.py"
    hooks.write_text("def on_won(context):\n    return 1 / 0\n", encoding="utf-8")
    workflows = WorkflowService(site.records, clock=site.clock)
    deal = new_deal(site, li, customer)
    to_negotiation(site, li, deal)
    before = footprint(site, "deal", deal["id"])
    with pytest.raises(ActionFailed) as caught:
        workflows.transition(li, "deal", deal["id"], "won", {"close_on": "2026-04-01"})
    assert "The hook 'on_won' failed: ZeroDivisionError" in caught.value.message
    assert footprint(site, "deal", deal["id"]) == before


# -- more than one pipeline, many records, what is available ---------------------------------


def test_each_pipeline_has_its_own_stages(site, li, customer):
    service = new_deal(site, li, customer, pipeline="services")
    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(li, "deal", service["id"], "proposal")
    assert caught.value.reasons[0].code == "unknown_stage"
    won = site.workflows.transition(li, "deal", service["id"], "won")
    assert (won["stage"], won["probability"], won["contract"]) == ("won", 100, None)
    history = site.workflows.history(li, "deal", service["id"])
    assert [(h["pipeline"], h["transition"]) for h in history] == [("services", "win")]


def test_bulk_transition_answers_per_record(site, li, customer):
    ready = new_deal(site, li, customer, amount="100")
    empty = new_deal(site, li, customer)
    other = new_deal(site, li, customer, amount="200")
    results = site.workflows.bulk_transition(li, "deal", [ready["id"], empty["id"], 999,
                                                          other["id"]], "proposal")
    assert [(r.record_id, r.ok) for r in results] == [
        (ready["id"], True), (empty["id"], False), (999, False), (other["id"], True)]
    assert isinstance(results[1].error, TransitionRefused)
    assert results[1].to_dict()["error"]["reasons"][0]["fields"] == ["amount"]
    assert results[2].error.status == 404
    assert site.records.get(li, "deal", other["id"])["stage"] == "proposal"
    assert site.records.get(li, "deal", empty["id"])["stage"] == "lead"


def test_available_transitions_say_why_not(site, customer):
    intern = site.users.actor("intern")
    deal = site.records.create(intern, "deal", {"name": "Quiet", "customer": customer["id"]})
    site.workflows.transition(intern, "deal", deal["id"], "proposal", {"amount": "10"})
    site.workflows.transition(intern, "deal", deal["id"], "negotiation")
    options = {o.key: o for o in site.workflows.available(intern, "deal", deal["id"])}
    assert list(options) == ["win", "lose"]
    assert not options["win"].allowed
    assert [r.code for r in options["win"].reasons] == ["role"]
    assert options["win"].fields == ("close_on",) and options["win"].confirm == "Win it?"
    assert options["lose"].allowed and options["lose"].fields == ("lost_reason",)


def test_transition_in_the_callers_transaction_undoes_only_itself(site, li, customer):
    from engine.storage.database import write_transaction

    deal = new_deal(site, li, customer)
    with write_transaction(site.engine) as conn:
        site.records.update(li, "deal", deal["id"], {"note": "kept"}, conn=conn)
        with pytest.raises(TransitionRefused):
            site.workflows.transition(li, "deal", deal["id"], "proposal", conn=conn)
        site.workflows.transition(li, "deal", deal["id"], "lost", {"lost_reason": "price"},
                                  conn=conn)
    after = site.records.get(li, "deal", deal["id"])
    assert (after["note"], after["stage"]) == ("kept", "lost")


class NoTransitions(AllowAll):
    def can(self, actor, entity, action):
        return action != "transition"


def test_the_access_policy_decides_who_may_move_records(site, li, customer):
    deal = new_deal(site, li, customer)
    site.records.policy = NoTransitions()
    with pytest.raises(PermissionDenied) as caught:
        site.workflows.transition(li, "deal", deal["id"], "lost", {"lost_reason": "price"})
    assert caught.value.message == "You may not move Deal records from stage to stage."
    options = site.workflows.available(li, "deal", deal["id"])
    assert all(not o.allowed and o.reasons[0].code == "forbidden" for o in options)


class HiddenAmounts(AllowAll):
    """A field rule: amounts are hidden from everyone but admins."""

    def hidden_fields(self, actor, entity):
        return frozenset() if actor.is_admin else frozenset({"amount"})


def test_guards_and_actions_see_fields_hidden_from_the_actor(site, li, customer):
    deal = new_deal(site, li, customer)
    to_negotiation(site, li, deal)
    site.records.policy = HiddenAmounts()
    options = {o.key: o for o in site.workflows.available(li, "deal", deal["id"])}
    assert options["win"].allowed  # the guard reads the real amount
    won = site.workflows.transition(li, "deal", deal["id"], "won", {"close_on": "2026-04-01"})
    assert won["stage"] == "won" and won.get("amount") is None  # still hidden from li
    admin = site.users.actor("admin")
    contract = site.records.get(admin, "contract", site.records.get(admin, "deal",
                                                                    deal["id"])["contract"])
    assert contract["amount"] == Decimal("800000.00")
