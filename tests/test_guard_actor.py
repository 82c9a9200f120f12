"""Stage guards that compare the record with whoever takes the transition.

``current_user`` and ``current_roles`` (engine/expressions/actor.py) let a
guard refuse self-approval and reserve large values to a role; they exist in
guards only, so ``crm check`` refuses them anywhere else.
"""

from __future__ import annotations

import pytest

from engine.errors import DefinitionError, TransitionRefused
from engine.expressions import compile_expression
from engine.expressions.actor import ACTOR_NAMES, actor_values
from engine.metadata.loader import load_registry
from tests.support import open_migrated, write_pack, write_site

ENTITY = """
    entity: claim
    label: {en: Claim, zh: 报销}
    fields:
      name: {type: string, required: true, label: {en: Name, zh: 名称}}
      amount: {type: decimal, precision: 12, scale: 2, label: {en: Amount, zh: 金额}}
      current_user: {type: integer, label: {en: Fake user, zh: 伪造用户}}
"""
FLOW = """
    workflow: claim_flow
    entity: claim
    stages:
      open: {label: {en: Open, zh: 打开}}
      approved: {label: {en: Approved, zh: 已批准}, category: won}
    transitions:
      approve:
        from: open
        to: approved
        guard: "created_by != current_user and (amount <= 1000 or 'boss' in current_roles)"
        guard_message: {en: Not yours to approve., zh: 不能审批。}
"""
ROLES = """
    roles:
      clerk:
        label: {en: Clerk, zh: 职员}
        entities:
          claim: {rights: [read, create, update, transition], scope: all}
      boss:
        label: {en: Boss, zh: 老板}
        entities:
          claim: {rights: all, scope: all}
"""


@pytest.fixture
def site(tmp_path, db_url):
    packs = tmp_path / "packs"
    write_pack(packs, "claims", {"entities/claim.yaml": ENTITY, "workflows/claim.yaml": FLOW,
                                 "roles.yaml": ROLES})
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["claims"],
                                      pack_paths=[str(packs)]))
    for login, role in (("ann", "clerk"), ("bob", "clerk"), ("cat", "boss")):
        opened.users.create(login, password="password-1", roles=[role])
    yield opened
    opened.close()


def refusal_codes(call) -> list[str]:
    with pytest.raises(TransitionRefused) as caught:
        call()
    return [r.code for r in caught.value.reasons]


def test_actor_values_hold_the_id_and_sorted_roles():
    assert actor_values(7, {"b", "a"}) == {"current_user": 7, "current_roles": ["a", "b"]}
    guard = compile_expression("created_by != current_user and 'a' in current_roles")
    assert guard.evaluate({"created_by": 3, **actor_values(7, ["a"])}) is True
    assert guard.evaluate({"created_by": 7, **actor_values(7, ["a"])}) is False
    assert set(ACTOR_NAMES) == {"current_user", "current_roles"}


def test_the_author_cannot_approve_their_own_record(site):
    ann, bob = site.users.actor("ann"), site.users.actor("bob")
    claim = site.records.create(ann, "claim", {"name": "Taxi", "amount": "80"})
    assert refusal_codes(lambda: site.workflows.transition(ann, "claim", claim["id"],
                                                           "approved")) == ["guard"]
    options = {o.to: o for o in site.workflows.available(ann, "claim", claim["id"])}
    assert options["approved"].allowed is False
    moved = site.workflows.transition(bob, "claim", claim["id"], "approved")
    assert moved["stage"] == "approved"


def test_a_role_named_in_the_guard_lifts_the_threshold(site):
    ann, bob, cat = (site.users.actor(x) for x in ("ann", "bob", "cat"))
    claim = site.records.create(ann, "claim", {"name": "Laptop", "amount": "5000"})
    assert refusal_codes(lambda: site.workflows.transition(bob, "claim", claim["id"],
                                                           "approved")) == ["guard"]
    assert site.workflows.transition(cat, "claim", claim["id"], "approved")["stage"] == "approved"


def test_a_field_cannot_fake_the_acting_user(site):
    ann = site.users.actor("ann")
    claim = site.records.create(ann, "claim", {"name": "Hotel", "amount": "300",
                                               "current_user": -1})
    assert refusal_codes(lambda: site.workflows.transition(
        ann, "claim", claim["id"], "approved", {"current_user": -2})) == ["guard"]


def test_actor_names_are_known_in_guards_only(tmp_path):
    packs = tmp_path / "packs"
    flow = FLOW + """
        actions:
          - set_expression: {name: "text(current_user)"}
    """
    write_pack(packs, "claims", {"entities/claim.yaml": ENTITY.replace(
        "      current_user: {type: integer, label: {en: Fake user, zh: 伪造用户}}\n", ""),
        "workflows/claim.yaml": flow, "roles.yaml": ROLES})
    with pytest.raises(DefinitionError) as caught:
        load_registry(["claims"], search_paths=[packs])
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 1, problems  # the guard's use of current_user is accepted
    assert "current_user" in problems[0] and "actions" in problems[0]
