"""A field hidden from a role does not leak through the outcome of a rule that reads it.

The case: ``opportunity.cost`` is hidden from salespeople, and the move to
'proposal' is guarded by "never sell below cost".  A salesperson who tries
amounts with a value that can never be saved learns nothing (the answer is
the same above and below the cost); a valid try is a refusal kept in the
audit trail and counted (429 after ten), or a real, audited move.  The
transition list does not evaluate the guard for them.  ``crm check`` names
the guard at its file and line, unless the pack declares it with
``reveals:``.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli.main import main
from engine.metadata.loader import load_registry
from tests.api_support import NOW, PASSWORD, api_for
from tests.support import open_migrated, write_site

COST = "1234.56"
OVERLAYS = {
    "cost.yaml": """
        extend: opportunity
        fields:
          cost: {type: decimal, precision: 14, scale: 2, label: {en: Cost, zh: 成本}}
    """,
    "flow.yaml": """
        extend_workflow: opportunity_sales
        change_transitions:
          propose:
            guard: "cost == null or amount >= cost"
            guard_message: {en: Never sell below cost., zh: 不得低于成本销售。}
    """,
    "roles.yaml": """
        roles:
          sales:
            entities:
              opportunity:
                fields: {cost: hidden}
    """,
}
REVEALS = """
    extend_workflow: opportunity_sales
    change_transitions:
      propose:
        guard: "cost == null or amount >= cost"
        reveals: [cost]  # salespeople may learn whether a price is below cost
"""


def cost_site(tmp_path, db_url, overlays=OVERLAYS):
    from engine.context import FixedClock

    root = write_site(tmp_path / "site", db_url, ["core"], overlays=overlays)
    site = open_migrated(root, clock=FixedClock(NOW))
    site.users.create("admin", password=PASSWORD, roles=["admin"], is_admin=True)
    site.users.create("rep", password=PASSWORD, roles=["sales"])
    rep = site.users.actor("rep")
    customer = site.records.create(rep, "customer", {"name": "Acme"})
    deal = site.records.create(rep, "opportunity", {"name": "Big deal",
                                                    "customer": customer["id"]})
    site.records.update(site.users.actor("admin"), "opportunity", deal["id"], {"cost": COST})
    return site, deal


def audit_rows(site, record_id, action=None):
    audit = site.schema.system("crm_audit")
    query = select(audit).where(audit.c.entity == "opportunity", audit.c.record_id == record_id)
    if action:
        query = query.where(audit.c.action == action)
    with site.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query.order_by(audit.c.id)).mappings()]


def test_a_probe_with_values_that_cannot_be_saved_learns_nothing(tmp_path, db_url):
    site, deal = cost_site(tmp_path, db_url)
    api = api_for(site, "rep")
    path = f"/opportunity/{deal['id']}/transitions"
    answers = []
    for guess in ("1", "1234.55", "1234.56", "99999"):  # below, just below, equal, above
        reply = api.post(path, json={"to": "proposal",
                                     "values": {"amount": guess, "probability": 1000}})
        answers.append((reply.status_code, reply.get_json()))
    assert {status for status, _ in answers} == {422}
    assert all(body == answers[0][1] for _, body in answers)  # word for word the same
    assert "probability" in answers[0][1]["errors"]
    assert COST not in json.dumps(answers)
    # nothing written, nothing counted against the user
    assert site.records.get(site.users.actor("admin"), "opportunity", deal["id"])["stage"] \
        == "initial"
    assert audit_rows(site, deal["id"], "refused") == []


def test_the_transition_list_does_not_evaluate_a_guard_on_hidden_fields(tmp_path, db_url):
    site, deal = cost_site(tmp_path, db_url)
    rep_api, admin_api = api_for(site, "rep"), api_for(site, "admin")
    site.records.update(site.users.actor("rep"), "opportunity", deal["id"], {"amount": "10"})
    path = f"/opportunity/{deal['id']}/transitions"
    mine = {o["to"]: o for o in rep_api.get(path).get_json()["items"]}
    assert mine["proposal"]["allowed"] is True and mine["proposal"]["checked_on_save"] is True
    assert mine["proposal"]["reasons"] == []
    assert mine["needs"]["checked_on_save"] is False
    # the administrator sees the cost, so the guard is evaluated for them
    theirs = {o["to"]: o for o in admin_api.get(path).get_json()["items"]}
    assert theirs["proposal"]["allowed"] is False
    assert [r["code"] for r in theirs["proposal"]["reasons"]] == ["guard"]
    assert theirs["proposal"]["checked_on_save"] is False


def test_refused_moves_are_audited_and_throttled(tmp_path, db_url):
    site, deal = cost_site(tmp_path, db_url)
    api = api_for(site, "rep")
    path = f"/opportunity/{deal['id']}/transitions"
    for _ in range(10):
        reply = api.post(path, json={"to": "proposal", "values": {"amount": "5"}})
        assert reply.status_code == 409
        assert [r["code"] for r in reply.get_json()["reasons"]] == ["guard"]
    reply = api.post(path, json={"to": "proposal", "values": {"amount": "5"}})
    assert reply.status_code == 429
    assert reply.get_json()["code"] == "too_many_attempts"
    # even a right guess waits now
    assert api.post(path, json={"to": "proposal", "values": {"amount": "5000"}}).status_code \
        == 429
    refused = audit_rows(site, deal["id"], "refused")
    rep_id = site.users.actor("rep").user_id
    assert len(refused) == 10
    assert {(r["actor_id"], r["field"], r["old_value"]) for r in refused} == {
        (rep_id, "stage", "initial")}
    assert refused[0]["new_value"] == {"to": "proposal", "reasons": ["guard"]}
    assert COST not in json.dumps([r["new_value"] for r in refused])
    stored = site.records.get(site.users.actor("admin"), "opportunity", deal["id"])
    assert (stored["stage"], stored["amount"]) == ("initial", None)  # nothing half-written
    # the salesperson reads their own record's history: the refusals, not the cost
    history = site.records.history(site.users.actor("rep"), "opportunity", deal["id"])
    assert [h["action"] for h in history].count("refused") == 10
    assert all(h["field"] != "cost" for h in history)


def test_a_passing_guess_is_a_real_audited_move_and_not_counted(tmp_path, db_url):
    site, deal = cost_site(tmp_path, db_url)
    api = api_for(site, "rep")
    reply = api.post(f"/opportunity/{deal['id']}/transitions",
                     json={"to": "proposal", "values": {"amount": "2000"}})
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["stage"] == "proposal" and "cost" not in reply.get_json()
    moved = audit_rows(site, deal["id"], "transition")
    assert {r["field"] for r in moved} >= {"stage", "amount"}
    guard = site.schema.system("crm_login_guard")
    with site.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(guard)).mappings()
                if r["key"].startswith("transition:")]
    assert [r["failures"] for r in rows] == [0]


def test_a_guard_the_actor_may_see_still_gives_every_reason_at_once(tmp_path, db_url):
    site, deal = cost_site(tmp_path, db_url)
    admin = site.users.actor("admin")
    from engine.errors import TransitionRefused

    with pytest.raises(TransitionRefused) as caught:
        site.workflows.transition(admin, "opportunity", deal["id"], "proposal",
                                  {"amount": "5"})
    assert [r.code for r in caught.value.reasons] == ["guard"]
    assert audit_rows(site, deal["id"], "refused")[0]["actor_id"] == admin.user_id


# -- crm check ---------------------------------------------------------------------------------


def check(root):
    return CliRunner().invoke(main, ["--site", str(root), "check", "--json"])


def test_crm_check_names_the_guard_at_its_file_and_line(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"], overlays=OVERLAYS)
    result = check(root)
    assert result.exit_code == 0, result.output
    warnings = [w for w in json.loads(result.output)["warnings"] if "cost" in w["message"]]
    assert [(w["file"], w["line"], w["path"], w["severity"]) for w in warnings] == [
        ("custom/flow.yaml", 4, "change_transitions.propose.guard", "warning")]
    assert "role 'sales' may take transition 'propose'" in warnings[0]["message"]
    assert "reveals: [cost]" in warnings[0]["message"]


def test_reveals_declares_the_leak_intended(tmp_path, db_url):
    overlays = {**OVERLAYS, "flow.yaml": REVEALS}
    root = write_site(tmp_path / "site", db_url, ["core"], overlays=overlays)
    result = check(root)
    assert result.exit_code == 0, result.output
    assert [w for w in json.loads(result.output)["warnings"] if "cost" in w["message"]] == []
    # and the engine then evaluates the guard for salespeople as for anyone
    site, deal = cost_site(tmp_path / "declared", db_url, overlays)
    site.records.update(site.users.actor("rep"), "opportunity", deal["id"], {"amount": "10"})
    options = {o.to: o for o in site.workflows.available(site.users.actor("rep"), "opportunity",
                                                         deal["id"])}
    assert (options["proposal"].allowed, options["proposal"].checked_on_save) == (False, False)


def test_conditions_and_defaults_on_hidden_fields_are_reported(tmp_path):
    from tests.support import write_pack

    write_pack(tmp_path / "packs", "p", {
        "entities/item.yaml": """
            entity: item
            fields:
              name: {type: string}
              cost: {type: decimal}
              price: {type: decimal, required_if: "cost > 100"}
              warning: {type: string, visible_if: "cost > price"}
              margin: {type: decimal, default_expression: "cost * 2", reveals: [cost]}
        """,
        "roles.yaml": """
            roles:
              clerk:
                entities:
                  item: {rights: [read, create, update], fields: {cost: hidden}}
        """,
    })
    registry = load_registry(["p"], search_paths=[tmp_path / "packs"])
    found = sorted((w.file, w.line, w.path) for w in registry.warnings
                   if "role 'clerk' cannot see item.cost" in w.message)
    assert found == [("packs/p/entities/item.yaml", 5, "fields.price.required_if"),
                     ("packs/p/entities/item.yaml", 6, "fields.warning.visible_if")]


@pytest.mark.parametrize("pack", ["core", "project_sales", "service_sales", "trading",
                                  "membership", "distribution"])
def test_the_built_in_packs_leave_no_rule_outcome_undeclared(pack):
    registry = load_registry([pack])
    assert [str(w) for w in registry.warnings if "cannot see" in w.message] == []


def test_the_record_page_tells_refusals_and_the_wait_without_the_cost(tmp_path, db_url):
    from engine.web import create_app
    from tests.web_support import login, post

    site, deal = cost_site(tmp_path, db_url)
    client = create_app(site, testing=True).test_client()
    login(client, "rep", PASSWORD)
    path = f"/r/opportunity/{deal['id']}/transition"
    for _ in range(10):
        refused = post(client, path, {"to": "proposal", "amount": "5"})
        assert refused.status_code == 409
        assert "Never sell below cost." in refused.get_data(as_text=True)
    waiting = post(client, path, {"to": "proposal", "amount": "5"})
    assert waiting.status_code == 429
    assert "Too many refused attempts" in waiting.get_data(as_text=True)
    page = client.get(f"/r/opportunity/{deal['id']}").get_data(as_text=True)
    assert "tried to move the stage and was refused" in page
    assert COST not in page and "1,234.56" not in page
