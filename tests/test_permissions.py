"""Roles enforced by the record service: a permission matrix generated from a roles YAML.

The expectations are computed from the YAML text itself by a deliberately
small reading of it (entity entry, else '*', else nothing) — not from the
engine's resolved roles — so the matrix checks the engine against what a
consultant wrote: every role × entity × action, on records owned by the
actor, by a teammate and by an outsider, allowed and refused cases alike,
aggregates and exports included.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal

import pytest
import yaml

from engine.context import Actor, FixedClock
from engine.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from engine.metadata.roles import ACTIONS
from engine.storage.queries import Filter, Sort
from tests.support import open_migrated, write_pack, write_site

ROLES_YAML = """
roles:
  owner:
    label: {en: Owner, zh: 老板}
    entities:
      "*": {rights: all, scope: all}
  manager:
    label: {en: Manager, zh: 经理}
    entities:
      "*": {rights: [read, create, update, delete, export], scope: team, write_scope: own}
  sales:
    label: {en: Sales, zh: 销售}
    entities:
      "*": {rights: [read, create, update], scope: own}
      deal:
        rights: [read, create, update, export]
        fields: {secret: hidden, discount: readonly}
      note: {rights: [read, create, update, delete]}
  auditor:
    label: {en: Auditor, zh: 审计}
    entities:
      "*": {rights: [read, export], scope: all}
      note: {rights: none}
  clerk:
    label: {en: Store clerk, zh: 店员}
    entities:
      member:
        rights: [read, create]
        scope: {lookup: [name, number]}
        fields: {credit_note: hidden}
      purchase:
        rights: [read, create]
        scope: [own, {through: member}]
  dealer_staff:
    label: {en: Dealer staff, zh: 经销商员工}
    entities:
      deal: {rights: [read, update], scope: {via: dealer}}
      dealer: {rights: [read], scope: linked}
      note: {rights: [read], scope: {via: deal.dealer}}
"""

SHOP = {
    "entities/dealer.yaml": """
        entity: dealer
        fields:
          name: {type: string, required: true, searchable: true}
    """,
    "entities/deal.yaml": """
        entity: deal
        fields:
          title: {type: string, required: true, searchable: true}
          amount: {type: decimal, precision: 12, scale: 2}
          secret: {type: string, searchable: true}
          discount: {type: integer, default: 0}
          dealer: {type: reference, to: dealer, on_delete: set_null}
    """,
    "entities/note.yaml": """
        entity: note
        fields:
          text: {type: string, required: true}
          deal: {type: reference, to: deal, on_delete: cascade}
    """,
    "entities/member.yaml": """
        entity: member
        fields:
          name: {type: string, required: true, searchable: true}
          number: {type: string, unique: true, searchable: true}
          points: {type: integer, default: 0}
          credit_note: {type: text}
    """,
    "entities/purchase.yaml": """
        entity: purchase
        fields:
          member: {type: reference, to: member, required: true, on_delete: restrict}
          amount: {type: decimal, precision: 12, scale: 2}
    """,
    "roles.yaml": ROLES_YAML,
}
ENTITIES = ["dealer", "deal", "note", "member", "purchase"]
NOW = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system()


# -- the expectations, read straight from the YAML --------------------------------------------

_DATA = yaml.safe_load(textwrap.dedent(ROLES_YAML))["roles"]


def expected(role: str, entity: str) -> tuple[set[str], object, object]:
    """(rights, read scope, write scope) the YAML gives ``role`` on ``entity``."""
    entries = _DATA[role]["entities"]
    entry = {**entries.get("*", {}), **entries.get(entity, {})} if (
        entity in entries or "*" in entries) else {}
    rights = entry.get("rights", [])
    rights = set(ACTIONS) if rights == "all" else set() if rights == "none" else set(rights)
    scope = entry.get("scope", "own")
    return rights, scope, entry.get("write_scope", scope)


OWNERS = {"own": {"me"}, "team": {"me", "mate"}, "all": {"me", "mate", "other"}}


@pytest.fixture
def shop(tmp_path, db_url):
    write_pack(tmp_path / "packs", "shop", SHOP)
    root = write_site(tmp_path / "site", db_url, ["shop"], pack_paths=["../packs"])
    site = open_migrated(root, clock=FixedClock(NOW))
    yield site
    site.close()


def people(site, role: str) -> dict[str, Actor]:
    """me (the role), mate (same team, no role), other (outside the team)."""
    users = site.users
    users.create("me", password="password-1", roles=[role])
    users.create("mate", password="password-1")
    users.create("other", password="password-1")
    users.teams.create("team", manager="me")
    users.teams.add_member("team", "mate")
    return {login: users.actor(login) for login in ("me", "mate", "other")}


def seed(site, actors: dict[str, Actor]) -> dict[str, dict[str, dict[str, int]]]:
    """For each entity and owner: a record to read, one to update and one to delete."""
    ids: dict[str, dict[str, dict[str, int]]] = {e: {} for e in ENTITIES}
    n = 0
    for who, actor in actors.items():
        for use in ("read", "update", "delete"):
            n += 1
            owner = {"owner": actor.user_id}
            dealer = site.records.create(SYSTEM, "dealer", {"name": f"D{n}", **owner})
            deal = site.records.create(SYSTEM, "deal", {"title": f"Deal {n}", "amount": "10",
                                                        "dealer": dealer["id"], **owner})
            note = site.records.create(SYSTEM, "note", {"text": f"N{n}", "deal": deal["id"],
                                                        **owner})
            member = site.records.create(SYSTEM, "member", {"name": f"M{n}", "number": f"{n}",
                                                            **owner})
            purchase = site.records.create(SYSTEM, "purchase", {"member": member["id"],
                                                                "amount": "5", **owner})
            for key, record in zip(ENTITIES, (dealer, deal, note, member, purchase), strict=True):
                ids[key].setdefault(who, {})[use] = record["id"]
    return ids


NEW_VALUES = {
    "dealer": {"name": "New"},
    "deal": {"title": "New"},
    "note": {"text": "New"},
    "member": {"name": "New", "number": "new-1"},
    "purchase": {"amount": "1"},
}
CHANGE = {"dealer": {"name": "X"}, "deal": {"title": "X"}, "note": {"text": "X"},
          "member": {"points": 3}, "purchase": {"amount": "2"}}


@pytest.mark.parametrize("role", sorted(_DATA))
def test_permission_matrix(shop, role):
    actors = people(shop, role)
    ids = seed(shop, actors)
    me = actors["me"]
    records = shop.records
    for entity in reversed(ENTITIES):  # dependents first: deleting a deal cascades to notes
        rights, scope, write_scope = expected(role, entity)
        definition = shop.registry.entity(entity)
        for action in ACTIONS:
            assert shop.policy.can(me, definition, action) == (action in rights), (
                role, entity, action)
        simple = all(isinstance(s, str) and s in OWNERS for s in (scope, write_scope))
        where = f"{role} × {entity}"
        # read: get, list, count, aggregate
        if "read" not in rights:
            for call in (lambda e=entity: records.get(me, e, ids[e]["me"]["read"]),
                         lambda e=entity: records.list(me, e),
                         lambda e=entity: records.count(me, e),
                         lambda e=entity: records.aggregate(me, e, {"n": "count"})):
                with pytest.raises(PermissionDenied):
                    call()
        elif simple:
            visible = OWNERS[scope]
            for who in ("me", "mate", "other"):
                record_id = ids[entity][who]["read"]
                if who in visible:
                    assert records.get(me, entity, record_id)["id"] == record_id, where
                else:
                    with pytest.raises(NotFound):
                        records.get(me, entity, record_id)
            expected_count = 3 * len(visible)
            page = records.list(me, entity, limit=100)
            assert page.total == len(page.rows) == expected_count, where
            assert records.count(me, entity) == expected_count, where
            assert records.aggregate(me, entity, {"n": "count"}) == [{"n": expected_count}]
        # export
        if "export" in rights and "read" in rights and simple:
            assert len(list(records.export(me, entity))) == 3 * len(OWNERS[scope]), where
        elif "export" not in rights:
            with pytest.raises(PermissionDenied):
                list(records.export(me, entity))
        # create
        values = dict(NEW_VALUES[entity])
        if entity == "purchase":
            values["member"] = ids["member"]["me"]["read"]
        if "create" in rights:
            if entity != "purchase" or (simple and "read" in rights):
                assert records.create(me, entity, values)["owner"] == me.user_id, where
        else:
            with pytest.raises(PermissionDenied):
                records.create(me, entity, values)
        # update and delete, against the write scope
        for action, use in (("update", "update"), ("delete", "delete")):
            for who in ("me", "mate", "other"):
                record_id = ids[entity][who][use]

                def attempt(action=action, record_id=record_id, entity=entity):
                    if action == "update":
                        return records.update(me, entity, record_id, CHANGE[entity])
                    return records.delete(me, entity, record_id)

                if action not in rights:
                    with pytest.raises(PermissionDenied):
                        attempt()
                    continue
                if not simple:
                    continue
                if who in OWNERS[write_scope]:
                    if action == "delete" and entity == "member":
                        continue  # purchases still point at it: restricted
                    attempt()
                elif who in OWNERS[scope]:
                    with pytest.raises(PermissionDenied):  # sees it, may not change it
                        attempt()
                else:
                    with pytest.raises(NotFound):
                        attempt()


def test_owner_role_sees_everything_and_admin_flag_bypasses_roles(shop):
    actors = people(shop, "sales")
    seed(shop, actors)
    shop.users.create("boss", password="password-1", is_admin=True)
    boss = shop.users.actor("boss")
    assert shop.records.count(boss, "deal") == 9
    assert shop.records.count(actors["me"], "deal") == 3
    nobody = shop.users.create("nobody", password="password-1")
    assert nobody["roles"] == []
    with pytest.raises(PermissionDenied):
        shop.records.list(shop.users.actor("nobody"), "deal")


# -- aggregates -----------------------------------------------------------------------------


def test_pipeline_total_counts_only_own_records(shop):
    actors = people(shop, "sales")
    for who, amounts in (("me", ["100", "50.50"]), ("mate", ["1000"]), ("other", ["7"])):
        for amount in amounts:
            shop.records.create(SYSTEM, "deal", {"title": "D", "amount": amount,
                                                 "owner": actors[who].user_id})
    mine = shop.records.aggregate(actors["me"], "deal", {"total": "sum:amount", "n": "count"})
    assert mine == [{"total": Decimal("150.50"), "n": 2}]
    everyone = shop.records.aggregate(SYSTEM, "deal", {"total": "sum:amount"},
                                      group_by=["owner"])
    assert sum(r["total"] for r in everyone) == Decimal("1157.50")
    by_owner = shop.records.aggregate(actors["me"], "deal", {"n": "count"}, group_by=["owner"])
    assert by_owner == [{"owner": actors["me"].user_id, "n": 2}]
    # A hidden field can be neither summed nor grouped by.
    with pytest.raises(ValidationFailed) as caught:
        shop.records.aggregate(actors["me"], "deal", {"x": "max:secret"}, group_by=["secret"])
    assert set(caught.value.errors) == {"x", "secret"}
    # Services that write their own queries get the same conditions.
    table, conditions = shop.records.scope_conditions(actors["me"], "deal")
    with shop.engine.connect() as conn:
        from sqlalchemy import func, select
        assert conn.execute(select(func.count()).select_from(table).where(*conditions)
                            ).scalar_one() == 2


# -- field rules: hidden and read-only -------------------------------------------------------


@pytest.fixture
def sales(shop):
    actors = people(shop, "sales")
    return actors


def test_hidden_field_never_leaves_the_service(shop, sales):
    me = sales["me"]
    deal = shop.records.create(SYSTEM, "deal", {"title": "Big", "secret": "floor price 42",
                                                "owner": me.user_id})
    shop.records.update(SYSTEM, "deal", deal["id"], {"secret": "floor price 40"})
    assert "secret" not in shop.records.get(me, "deal", deal["id"])
    assert all("secret" not in r for r in shop.records.list(me, "deal").rows)
    assert all("secret" not in r for r in shop.records.export(me, "deal"))
    updated = shop.records.update(me, "deal", deal["id"], {"title": "Bigger"})
    assert "secret" not in updated and updated["title"] == "Bigger"
    created = shop.records.create(me, "deal", {"title": "Mine"})
    assert "secret" not in created
    history = shop.records.history(me, "deal", deal["id"])
    assert history and all(r["field"] != "secret" for r in history)
    assert all("secret" not in (r["new_value"] or {}) for r in history if r["field"] == "*")
    text = repr(history)
    assert "floor price" not in text
    # Conflicts carry the current record: without the hidden field.
    with pytest.raises(Conflict) as caught:
        shop.records.update(me, "deal", deal["id"], {"title": "Old view"}, version=1)
    assert "secret" not in caught.value.current
    # Search, filters and sorting cannot probe it.
    assert shop.records.count(me, "deal", search="floor") == 0
    for bad in (lambda: shop.records.list(me, "deal", filters=[Filter("secret", "eq", "x")]),
                lambda: shop.records.list(me, "deal", sort=[Sort("secret")])):
        with pytest.raises(ValidationFailed) as refused:
            bad()
        assert "secret" in refused.value.errors  # named by the caller, told it does not exist
    with pytest.raises(ValidationFailed) as refused:
        shop.records.update(me, "deal", deal["id"], {"secret": "guess"})
    assert refused.value.errors == {"secret": ["There is no such field."]}
    # The owner role sees it.
    assert shop.records.get(SYSTEM, "deal", deal["id"])["secret"] == "floor price 40"


def test_readonly_field_is_shown_but_refused_on_input(shop, sales):
    me = sales["me"]
    deal = shop.records.create(me, "deal", {"title": "D"})
    assert deal["discount"] == 0
    with pytest.raises(ValidationFailed) as caught:
        shop.records.update(me, "deal", deal["id"], {"discount": 30})
    assert caught.value.errors == {"discount": ["This field is read-only."]}
    with pytest.raises(ValidationFailed):
        shop.records.create(me, "deal", {"title": "D", "discount": 30})
    # Sending back what was shown is fine.
    same = shop.records.update(me, "deal", deal["id"], {"title": "E", "discount": 0})
    assert same["title"] == "E"


def test_validation_of_hidden_fields_does_not_name_them(tmp_path, db_url):
    files = dict(SHOP)
    files["entities/deal.yaml"] = """
        entity: deal
        fields:
          title: {type: string, required: true}
          secret: {type: string, pattern: "^S-"}
          dealer: {type: reference, to: dealer}
          amount: {type: decimal}
          discount: {type: integer}
    """
    write_pack(tmp_path / "packs", "shop", files)
    root = write_site(tmp_path / "site", db_url, ["shop"], pack_paths=["../packs"])
    site = open_migrated(root)
    try:
        site.users.create("me", password="password-1", roles=["sales"])
        me = site.users.actor("me")
        deal = site.records.create(me, "deal", {"title": "T"})
        table = site.schema.table("deal")
        with site.engine.begin() as conn:  # a value the rules no longer accept
            conn.execute(table.update().values(secret="no prefix"))
        with pytest.raises(ValidationFailed) as caught:
            site.records.update(me, "deal", deal["id"], {"title": "U"})
        assert "secret" not in str(caught.value.to_dict())
        assert list(caught.value.errors) == ["record"]
    finally:
        site.close()


# -- references, deletes, messages ------------------------------------------------------------


def test_reference_outside_scope_is_not_found_like_a_missing_one(shop, sales):
    me, other = sales["me"], sales["other"]
    theirs = shop.records.create(SYSTEM, "dealer", {"name": "Theirs", "owner": other.user_id})
    with pytest.raises(ValidationFailed) as outside:
        shop.records.create(me, "deal", {"title": "D", "dealer": theirs["id"]})
    with pytest.raises(ValidationFailed) as missing:
        shop.records.create(me, "deal", {"title": "D", "dealer": 99999})
    assert outside.value.errors["dealer"][0].replace(str(theirs["id"]), "N") == \
        missing.value.errors["dealer"][0].replace("99999", "N")


def test_not_found_messages_are_the_same_inside_and_outside_scope(shop, sales):
    me, other = sales["me"], sales["other"]
    theirs = shop.records.create(SYSTEM, "deal", {"title": "T", "owner": other.user_id})
    with pytest.raises(NotFound) as outside:
        shop.records.get(me, "deal", theirs["id"])
    with pytest.raises(NotFound) as missing:
        shop.records.get(me, "deal", 99999)
    assert outside.value.message.replace(str(theirs["id"]), "N") == \
        missing.value.message.replace("99999", "N")
    for call in (shop.records.history, shop.records.archive):
        with pytest.raises(NotFound):
            call(me, "deal", theirs["id"])


def test_creating_outside_ones_own_scope_is_refused(shop):
    actors = people(shop, "manager")
    with pytest.raises(ValidationFailed) as caught:
        shop.records.create(actors["me"], "deal", {"title": "For other",
                                                   "owner": actors["other"].user_id})
    assert list(caught.value.errors) == ["owner"]
    assert shop.records.count(SYSTEM, "deal") == 0
    made = shop.records.create(actors["me"], "deal", {"title": "For mate",
                                                      "owner": actors["mate"].user_id})
    assert made["owner"] == actors["mate"].user_id


def test_restricted_delete_does_not_count_records_outside_scope(shop):
    actors = people(shop, "manager")
    me, other = actors["me"], actors["other"]
    member = shop.records.create(me, "member", {"name": "M", "number": "1"})
    for _ in range(2):
        shop.records.create(SYSTEM, "purchase", {"member": member["id"], "owner": other.user_id})
    with pytest.raises(Conflict) as hidden:
        shop.records.delete(me, "member", member["id"])
    assert "2" not in hidden.value.message and "other records" in hidden.value.message
    with pytest.raises(Conflict) as told:
        shop.records.delete(SYSTEM, "member", member["id"])
    assert "2 Purchase" in told.value.message


def test_cascade_reaches_dependents_outside_scope(shop, sales):
    me, other = sales["me"], sales["other"]
    deal = shop.records.create(me, "deal", {"title": "D"})
    shop.records.create(SYSTEM, "note", {"text": "Theirs", "deal": deal["id"],
                                         "owner": other.user_id})
    shop.users.set_roles("me", ["sales", "manager"])
    both = shop.users.actor("me")
    shop.records.delete(both, "deal", deal["id"])
    assert shop.records.count(SYSTEM, "note") == 0


# -- lookup scope: a store clerk -------------------------------------------------------------


@pytest.fixture
def till(shop):
    shop.users.create("clerk", password="password-1", roles=["clerk"])
    shop.users.create("clerk2", password="password-1", roles=["clerk"])
    zhang = shop.records.create(SYSTEM, "member", {"name": "张三", "number": "M0001",
                                                   "points": 120, "credit_note": "slow payer"})
    shop.records.create(SYSTEM, "member", {"name": "张三丰", "number": "M0002"})
    shop.records.create(SYSTEM, "member", {"name": "李四", "number": "M0003"})
    shop.records.create(SYSTEM, "purchase", {"member": zhang["id"], "amount": "80"})
    return shop.users.actor("clerk"), zhang


def test_clerk_cannot_browse_members(shop, till):
    clerk, zhang = till
    records = shop.records
    assert records.list(clerk, "member").rows == []
    assert records.list(clerk, "member").total == 0
    assert records.count(clerk, "member") == 0
    assert records.count(clerk, "member", search="张三") == 0
    assert records.list(clerk, "member", search="M0001").rows == []
    assert records.list(clerk, "member", filters=[Filter("number", "eq", "M0001")]).rows == []
    assert records.aggregate(clerk, "member", {"n": "count", "p": "sum:points"}) == \
        [{"n": 0, "p": None}]
    with pytest.raises(NotFound):
        records.get(clerk, "member", zhang["id"])
    with pytest.raises(NotFound):
        records.history(clerk, "member", zhang["id"])


@pytest.mark.parametrize("keys", [
    {"name": "张", "number": "M0001"},          # partial name
    {"name": "张三", "number": "M000"},          # partial number
    {"name": "张三", "number": "M0002"},         # a pair that does not belong together
    {"name": "张三 ", "number": "m0001"},        # other case
])
def test_lookup_answers_only_an_exact_pair(shop, till, keys):
    clerk, _ = till
    with pytest.raises(NotFound):
        shop.records.lookup(clerk, "member", keys)


@pytest.mark.parametrize("keys", [{"name": "张三"}, {"number": "M0001"}, {},
                                  {"name": "张三", "number": "M0001", "points": 120},
                                  {"name": "", "number": "M0001"}])
def test_lookup_needs_every_key_and_nothing_else(shop, till, keys):
    clerk, _ = till
    with pytest.raises(ValidationFailed):
        shop.records.lookup(clerk, "member", keys)


def test_exact_pair_finds_the_member_then_history_and_purchase(shop, till):
    clerk, zhang = till
    found = shop.records.lookup(clerk, "member", {"name": "张三", "number": "M0001"})
    assert found["id"] == zhang["id"] and found["points"] == 120
    assert "credit_note" not in found
    keys = {"name": "张三", "number": "M0001"}
    history = shop.records.lookup_related(clerk, "member", keys, "purchase", "member")
    assert [r["amount"] for r in history.rows] == [Decimal("80.00")] and history.total == 1
    # Recording a purchase: the member is given by the same keys, not by an id.
    bought = shop.records.create(clerk, "purchase", {"member": keys, "amount": "35"})
    assert bought["member"] == zhang["id"]
    with pytest.raises(ValidationFailed) as caught:
        shop.records.create(clerk, "purchase", {"member": zhang["id"], "amount": "1"})
    assert "member" in caught.value.errors  # an id alone proves nothing
    with pytest.raises(ValidationFailed):
        shop.records.create(clerk, "purchase", {"member": {"name": "张三"}, "amount": "1"})
    # Their own purchases are listed; through the member, the member's whole history.
    assert shop.records.count(clerk, "purchase") == 1
    other_clerk = shop.users.actor("clerk2")
    assert shop.records.count(other_clerk, "purchase") == 0
    assert shop.records.lookup_related(other_clerk, "member", keys, "purchase",
                                       "member").total == 2
    with pytest.raises(NotFound):
        shop.records.lookup_related(other_clerk, "member", {"name": "张三", "number": "M0002"},
                                    "purchase", "member")
    # A clerk registers a new member, and can only look them up afterwards.
    new = shop.records.create(clerk, "member", {"name": "王五", "number": "M0009"})
    assert "credit_note" not in new
    assert shop.records.count(clerk, "member") == 0


def test_lookup_for_ordinary_scopes_stays_inside_them(shop, sales):
    me, other = sales["me"], sales["other"]
    shop.records.create(SYSTEM, "member", {"name": "A", "number": "1", "owner": other.user_id})
    with pytest.raises(NotFound):
        shop.records.lookup(me, "member", {"number": "1"})
    shop.records.create(SYSTEM, "member", {"name": "B", "number": "2", "owner": me.user_id})
    assert shop.records.lookup(me, "member", {"number": "2"})["name"] == "B"


# -- reference-following scopes: a dealer's staff ---------------------------------------------


def test_dealer_staff_see_their_dealers_records_only(shop):
    shop.users.create("staff", password="password-1", roles=["dealer_staff"])
    ours = shop.records.create(SYSTEM, "dealer", {"name": "Ours"})
    theirs = shop.records.create(SYSTEM, "dealer", {"name": "Theirs"})
    d1 = shop.records.create(SYSTEM, "deal", {"title": "A", "dealer": ours["id"]})
    d2 = shop.records.create(SYSTEM, "deal", {"title": "B", "dealer": theirs["id"]})
    shop.records.create(SYSTEM, "note", {"text": "on A", "deal": d1["id"]})
    shop.records.create(SYSTEM, "note", {"text": "on B", "deal": d2["id"]})
    staff = shop.users.actor("staff")
    assert shop.records.count(staff, "deal") == 0  # not linked yet
    shop.users.link("staff", "dealer", ours["id"])
    assert [r["title"] for r in shop.records.list(staff, "deal").rows] == ["A"]
    assert [r["name"] for r in shop.records.list(staff, "dealer").rows] == ["Ours"]
    assert [r["text"] for r in shop.records.list(staff, "note").rows] == ["on A"]  # two hops
    shop.records.update(staff, "deal", d1["id"], {"title": "A2"})
    with pytest.raises(NotFound):
        shop.records.update(staff, "deal", d2["id"], {"title": "B2"})
    # Moving a deal to another dealer is refused: that dealer is out of reach.
    with pytest.raises(ValidationFailed):
        shop.records.update(staff, "deal", d1["id"], {"dealer": theirs["id"]})
    shop.users.unlink("staff", "dealer", ours["id"])
    assert shop.records.count(staff, "deal") == 0


# -- teams --------------------------------------------------------------------------------------


def test_team_scope_covers_sub_teams_resolved_when_the_actor_is_built(shop):
    users = shop.users
    for login in ("director", "lead", "rep", "stranger"):
        users.create(login, password="password-1", roles=["manager"])
    users.teams.create("sales", manager="director")
    users.teams.create("east", parent="sales", manager="lead")
    users.teams.add_member("east", "rep")
    for login in ("director", "lead", "rep", "stranger"):
        shop.records.create(SYSTEM, "deal", {"title": login,
                                             "owner": users.get(login)["id"]})

    def seen(login):
        return sorted(r["title"] for r in shop.records.list(users.actor(login), "deal").rows)

    assert seen("director") == ["director", "lead", "rep"]
    assert seen("lead") == ["lead", "rep"]
    assert seen("rep") == ["lead", "rep"]
    assert seen("stranger") == ["stranger"]
    users.teams.set_parent("east", None)
    assert seen("director") == ["director"]
    with pytest.raises(ValidationFailed):
        users.teams.set_parent("sales", "sales")
    users.teams.set_parent("east", "sales")
    with pytest.raises(ValidationFailed):
        users.teams.set_parent("sales", "east")  # would make a loop
