"""Roles and transfer YAML: what is accepted, and every mistake reported at its file and line."""

from __future__ import annotations

import textwrap

import pytest

from engine.errors import DefinitionError
from engine.metadata.loader import load_registry
from engine.metadata.roles import Scope
from tests.support import write_pack

ENTITIES = {
    "entities/customer.yaml": """
        entity: customer
        fields:
          name: {type: string, required: true}
          number: {type: string, unique: true}
          region: {type: string}
          cost: {type: decimal}
          margin: {type: computed, returns: decimal, stored: false, expression: "100 - cost"}
          dealer: {type: reference, to: dealer}
    """,
    "entities/dealer.yaml": """
        entity: dealer
        fields:
          name: {type: string, required: true}
    """,
    "entities/order.yaml": """
        entity: order
        fields:
          customer: {type: reference, to: customer, required: true}
          done: {type: boolean}
          secret: {type: string, required: true}
    """,
}


def load(tmp_path, roles: str, *, overlay: dict[str, str] | None = None,
         extra: dict[str, str] | None = None):
    files = {**ENTITIES, "roles.yaml": roles, **(extra or {})}
    write_pack(tmp_path / "packs", "p", files)
    overlay_dir = None
    if overlay:
        overlay_dir = tmp_path / "custom"
        overlay_dir.mkdir()
        for name, text in overlay.items():
            (overlay_dir / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return load_registry(["p"], search_paths=[tmp_path / "packs"], overlay_dir=overlay_dir)


def problems(tmp_path, roles: str, **kwargs) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load(tmp_path, roles, **kwargs)
    return [str(p) for p in caught.value.problems if p.severity == "error"]


# -- what a good file gives --------------------------------------------------------------------


def test_roles_resolve_wildcards_inheritance_scopes_and_field_rules(tmp_path):
    registry = load(tmp_path, """
        roles:
          sales:
            label: {en: Sales, zh: 销售}
            entities:
              "*": {rights: [read, create, update], scope: own}
              customer:
                fields: {cost: hidden, margin: hidden, region: readonly}
          manager:
            extends: sales
            entities:
              "*": {scope: team, write_scope: own}
              order: {rights: all}
          dealer_staff:
            entities:
              customer: {rights: [read], scope: [own, {via: dealer}]}
              dealer: {rights: [read], scope: linked}
              order: {rights: [read], scope: {via: customer.dealer}}
          clerk:
            entities:
              customer: {rights: [read, create], scope: {lookup: [name, number]}}
              order: {rights: [read], scope: {through: customer}}
    """)
    roles = registry.roles
    sales = roles["sales"].for_entity("customer")
    assert sales.rights == {"read", "create", "update"} and sales.scope == (Scope("own"),)
    assert sales.hidden == {"cost", "margin"} and sales.readonly == {"region"}
    manager = roles["manager"]
    assert manager.for_entity("customer").scope == (Scope("team"),)
    assert manager.for_entity("customer").write_scope == (Scope("own"),)
    assert manager.for_entity("customer").hidden == {"cost", "margin"}  # inherited
    assert manager.for_entity("order").rights == {"read", "create", "update", "delete",
                                                  "transition", "import", "export"}
    staff = roles["dealer_staff"]
    assert staff.for_entity("order").scope == (Scope("via", ("customer", "dealer"),
                                                     target="dealer"),)
    assert staff.for_entity("dealer").scope == (Scope("linked", target="dealer"),)
    clerk = roles["clerk"].for_entity("customer")
    assert clerk.scope == (Scope("lookup", keys=("name", "number")),)
    assert roles["clerk"].for_entity("dealer").rights == frozenset()
    assert roles["sales"].label.get("zh") == "销售"
    snapshot = registry.snapshot()["roles"]
    assert snapshot["clerk"]["entities"]["customer"]["scope"] == [{"lookup": ["name", "number"]}]


def test_a_site_overlay_changes_a_role_without_copying_it(tmp_path):
    registry = load(tmp_path, """
        roles:
          sales:
            label: Sales
            entities:
              "*": {rights: [read, create, update, delete], scope: own}
    """, overlay={"roles.yaml": """
        roles:
          sales:
            entities:
              customer: {rights: [read, create, update]}
          auditor:
            label: {en: Auditor, zh: 审计}
            entities:
              "*": {rights: [read], scope: all}
    """})
    sales = registry.roles["sales"]
    assert sales.for_entity("customer").rights == {"read", "create", "update"}
    assert sales.for_entity("order").rights == {"read", "create", "update", "delete"}
    assert sales.label.en == "Sales" and sales.changed_by == ("(site)",)
    assert registry.roles["auditor"].for_entity("dealer").scope == (Scope("all"),)


def test_a_dependent_pack_adds_its_entities_to_a_role(tmp_path):
    write_pack(tmp_path / "packs", "base", {**ENTITIES, "roles.yaml": """
        roles:
          sales: {entities: {customer: {rights: [read]}}}
    """})
    write_pack(tmp_path / "packs", "shop", {
        "entities/member.yaml": "entity: member\nfields:\n  name: {type: string}\n",
        "roles/shop.yaml": "roles:\n  sales:\n    entities:\n      member: {rights: [read]}\n",
    }, depends=("base",))
    registry = load_registry(["shop"], search_paths=[tmp_path / "packs"])
    assert set(registry.roles["sales"].access) == {"customer", "member"}


def test_lookup_keys_that_are_not_unique_give_a_warning(tmp_path):
    registry = load(tmp_path, """
        roles:
          clerk:
            entities:
              customer: {rights: [read], scope: {lookup: [name, region]}}
    """)
    assert any("not unique together" in str(w) for w in registry.warnings)


def test_computed_field_from_a_hidden_one_gives_a_warning(tmp_path):
    registry = load(tmp_path, """
        roles:
          sales:
            entities:
              customer: {rights: [read], fields: {cost: hidden}}
    """)
    warning = next(str(w) for w in registry.warnings if "margin" in str(w))
    assert "packs/p/entities/customer.yaml:7:" in warning
    assert "role 'sales' cannot see customer.cost" in warning and "computes margin" in warning


# -- malformed roles: each reported at its file and line ---------------------------------------

MALFORMED = [
    ("unknown entity", """
        roles:
          sales:
            entities:
              custmer: {rights: [read]}
    """, "roles.yaml:4", "unknown entity 'custmer' (did you mean 'customer'?)"),
    ("unknown right", """
        roles:
          sales:
            entities:
              customer: {rights: [read, destroy]}
    """, "roles.yaml:4", "destroy"),
    ("unknown scope word", """
        roles:
          sales:
            entities:
              customer: {rights: [read], scope: mine}
    """, "roles.yaml:4", "'mine'"),
    ("unknown field in a field rule", """
        roles:
          sales:
            entities:
              customer:
                rights: [read]
                fields: {costs: hidden}
    """, "roles.yaml:6", "'costs' is not a field of customer (did you mean 'cost'?)"),
    ("unknown field rule", """
        roles:
          sales:
            entities:
              customer:
                fields: {cost: secret}
    """, "roles.yaml:5", "hidden, readonly, visible"),
    ("lookup key that is not a field", """
        roles:
          clerk:
            entities:
              customer:
                rights: [read]
                scope: {lookup: [name, membership_no]}
    """, "roles.yaml:6", "lookup key 'membership_no' is not a field of customer"),
    ("lookup without keys", """
        roles:
          clerk:
            entities:
              customer: {rights: [read], scope: {lookup: []}}
    """, "roles.yaml:4", "the list is empty"),
    ("lookup key on a computed field", """
        roles:
          clerk:
            entities:
              customer: {rights: [read], scope: {lookup: [name, margin]}}
    """, "roles.yaml:4", "'margin' is a computed field"),
    ("via through a field that is not a reference", """
        roles:
          dealer_staff:
            entities:
              order: {rights: [read], scope: {via: customer.region}}
    """, "roles.yaml:4", "'region' is a string field, not a reference"),
    ("through a field that is not a reference", """
        roles:
          clerk:
            entities:
              order: {rights: [read], scope: {through: done}}
    """, "roles.yaml:4", "through 'done' is a boolean field of order"),
    ("two kinds in one scope", """
        roles:
          clerk:
            entities:
              customer: {rights: [read], scope: {via: dealer, through: dealer}}
    """, "roles.yaml:4", "write one of via, lookup or through per scope"),
    ("entity-specific scope under '*'", """
        roles:
          clerk:
            entities:
              "*": {rights: [read], scope: {lookup: [name]}}
    """, "roles.yaml:4", "'*' applies to every entity"),
    ("write scope wider than read scope", """
        roles:
          sales:
            entities:
              customer: {rights: [read, update], scope: own, write_scope: all}
    """, "roles.yaml:4", "write_scope 'all' reaches records the role cannot read"),
    ("extends an unknown role", """
        roles:
          manager:
            extends: seles
    """, "roles.yaml:3", "extends an unknown role 'seles'"),
    ("roles extending each other", """
        roles:
          a: {extends: b}
          b: {extends: a}
    """, "roles.yaml:2", "roles extend each other in a circle: a → b → a"),
    ("required field hidden from a role that creates", """
        roles:
          sales:
            entities:
              order:
                rights: [read, create]
                fields: {secret: hidden}
    """, "roles.yaml:5", "'secret' is required and hidden for it"),
    ("a lookup key hidden from the role", """
        roles:
          clerk:
            entities:
              customer:
                rights: [read]
                scope: {lookup: [name, number]}
                fields: {number: hidden}
    """, "roles.yaml:5", "looks customer records up by 'number' but the field is hidden"),
    ("owner hidden", """
        roles:
          sales:
            entities:
              customer: {rights: [read], fields: {owner: hidden}}
    """, "roles.yaml:4", "'owner' can be readonly, not hidden"),
    ("unknown key in a role", """
        roles:
          sales:
            entitys: {}
    """, "roles.yaml:3", "unknown key 'entitys' (did you mean 'entities'?)"),
    ("bad role key", """
        roles:
          Sales-Team: {}
    """, "roles.yaml:2", "'Sales-Team' is not a valid role key"),
]


@pytest.mark.parametrize(("what", "text", "where", "words"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_roles(tmp_path, what, text, where, words):
    found = problems(tmp_path, text)
    assert any(where in p and words in p for p in found), found


def test_a_role_declared_twice_in_one_pack(tmp_path):
    found = problems(tmp_path, "roles:\n  sales: {}\n", extra={
        "roles/more.yaml": "roles:\n  sales:\n    label: Again\n"})
    assert any("roles/more.yaml:2" in p and "declared twice in pack 'p'" in p for p in found)


def test_a_role_of_another_pack_needs_a_dependency(tmp_path):
    write_pack(tmp_path / "packs", "a", {**ENTITIES, "roles.yaml": "roles:\n  sales: {}\n"})
    write_pack(tmp_path / "packs", "b", {"roles.yaml": "roles:\n  sales: {label: B}\n"})
    with pytest.raises(DefinitionError) as caught:
        load_registry(["a", "b"], search_paths=[tmp_path / "packs"])
    message = next(str(p) for p in caught.value.problems)
    assert "packs/b/roles.yaml:2" in message and "depends" in message


def test_every_role_a_workflow_names_must_be_declared(tmp_path):
    flow = """
        workflow: order_flow
        entity: order
        stages:
          open: {label: Open}
          shipped: {label: Shipped, category: won}
        transitions:
          ship: {from: open, to: shipped, roles: [shiper]}
    """
    found = problems(tmp_path, "roles:\n  shipper: {entities: {order: {rights: all}}}\n",
                     extra={"workflows/order.yaml": flow})
    assert any("workflows/order.yaml:7" in p and "no role 'shiper'" in p
               and "did you mean 'shipper'" in p for p in found), found


# -- transfer rules -----------------------------------------------------------------------------

GOOD_ROLES = "roles:\n  sales: {entities: {'*': {rights: all}}}\n"


def test_transfer_rules_are_ordered_parents_first(tmp_path):
    registry = load(tmp_path, GOOD_ROLES, extra={"roles/transfer.yaml": """
        transfer:
          order: {follow: customer, when: "not done"}
          customer: {}
    """})
    assert list(registry.transfer) == ["customer", "order"]
    assert registry.transfer["order"].parent == "customer"
    assert registry.snapshot()["transfer"]["order"] == {"follow": "customer", "when": "not done"}


def test_a_site_overlay_changes_the_transfer(tmp_path):
    registry = load(tmp_path, GOOD_ROLES, extra={"roles/transfer.yaml": """
        transfer:
          customer: {}
          order: {follow: customer, when: "not done"}
    """}, overlay={"transfer.yaml": """
        transfer:
          order: {move: false}
    """})
    assert list(registry.transfer) == ["customer"]


MALFORMED_TRANSFER = [
    ("unknown entity", "transfer:\n  custmer: {}\n", "transfer.yaml:2",
     "there is no entity 'custmer' (did you mean 'customer'?)"),
    ("follow a field that is not a reference", "transfer:\n  customer: {}\n  order: "
     "{follow: done}\n", "transfer.yaml:3", "follow 'done' is a boolean field of order"),
    ("follow an entity the transfer does not move", "transfer:\n  order: {follow: customer}\n",
     "transfer.yaml:2", "which the transfer does not move"),
    ("condition naming an unknown field", "transfer:\n  customer: {}\n  order: "
     "{follow: customer, when: \"not finished\"}\n", "transfer.yaml:3", "unknown field 'finished'"),
    ("condition that does not parse", "transfer:\n  customer: {when: \"region ==\"}\n",
     "transfer.yaml:2", "does not parse"),
    ("any_owner without follow", "transfer:\n  customer: {any_owner: true}\n",
     "transfer.yaml:2", "any_owner applies to records that follow"),
    ("unknown key", "transfer:\n  customer: {folow: dealer}\n", "transfer.yaml:2",
     "did you mean 'follow'"),
]


@pytest.mark.parametrize(("what", "text", "where", "words"), MALFORMED_TRANSFER,
                         ids=[m[0] for m in MALFORMED_TRANSFER])
def test_malformed_transfer(tmp_path, what, text, where, words):
    found = problems(tmp_path, GOOD_ROLES, extra={"roles/transfer.yaml": text})
    assert any(where in p and words in p for p in found), found


def test_core_pack_roles_and_transfer_load():
    registry = load_registry(["core"])
    assert set(registry.roles) >= {"admin", "owner", "manager", "sales"}
    for role in registry.roles.values():
        assert role.label.en and role.label.zh
    assert registry.roles["admin"].admin
    assert registry.roles["sales"].for_entity("customer").scope == (Scope("own"),)
    assert "delete" not in registry.roles["sales"].for_entity("customer").rights
    assert "export" not in registry.roles["sales"].for_entity("customer").rights
    assert registry.roles["manager"].for_entity("opportunity").scope == (Scope("team"),)
    assert list(registry.transfer)[0] == "customer"
    assert {"contact", "opportunity", "activity"} <= set(registry.transfer)
