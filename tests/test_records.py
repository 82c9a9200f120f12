"""The record service on the database under test: every write path and rule."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from engine.context import Actor, FixedClock
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.storage.queries import Filter, Sort
from tests.support import open_migrated, write_pack, write_site

SALES = {
    "entities/account.yaml": """
        entity: account
        label: {en: Account, zh: 客户}
        fields:
          code: {type: sequence, sequence_pattern: "A-{YYYY}-{####}"}
          name: {type: string, max_length: 20, required: true, searchable: true}
          tax_id: {type: string, max_length: 30, unique: true}
          kind: {type: choice, default: prospect, choices: {prospect: {en: Prospect, zh: 潜在}, client: {en: Client, zh: 客户}}}
          tags: {type: choice, multiple: true, choices: {a: A, b: B, c: C}}
          blacklisted: {type: boolean, default: false}
          reason: {type: text, required_if: "blacklisted", visible_if: "blacklisted"}
          email: {type: email}
          rating: {type: integer, min: 1, max: 5}
          since: {type: date}
          website: {type: url}
          notes: {type: text, tracked: false}
    """,
    "entities/deal.yaml": """
        entity: deal
        fields:
          name: {type: string, required: true}
          account: {type: reference, to: account, required: true, on_delete: restrict}
          amount: {type: decimal, precision: 12, scale: 2}
          probability: {type: integer, default: 10}
          weighted: {type: computed, returns: decimal, expression: "amount * probability / 100"}
          due: {type: date, default_expression: "today() + days(30)"}
          items:
            type: lines
            fields:
              item: {type: string, required: true}
              qty: {type: decimal, precision: 10, scale: 2, default: 1}
              price: {type: decimal, precision: 12, scale: 2}
              total: {type: computed, returns: decimal, expression: "qty * price"}
          items_total: {type: computed, returns: decimal, expression: "sum(items.total)"}
          days_left: {type: computed, returns: integer, stored: false, expression: "days_between(today(), due)"}
    """,
    "entities/note.yaml": """
        entity: note
        fields:
          text: {type: text, required: true}
          account: {type: reference, to: account, on_delete: cascade}
          deal: {type: reference, to: deal, on_delete: set_null}
          about: {type: many_to_many, to: account}
          extra: {type: json}
    """,
}

NOW = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "sales", SALES)
    root = write_site(tmp_path / "site", db_url, ["sales"], pack_paths=["../packs"])
    clock = FixedClock(NOW)
    opened = open_migrated(root, clock=clock)
    opened.users.create("admin", password="secret-pass", is_admin=True)
    yield opened
    opened.close()


@pytest.fixture
def actor(site):
    return site.users.actor("admin")


def test_create_fills_defaults_sequences_and_computed(site, actor):
    account = site.records.create(actor, "account", {"name": "Acme"})
    assert account["code"] == "A-2026-0001"
    assert account["kind"] == "prospect"
    assert account["blacklisted"] is False
    assert account["version"] == 1
    assert account["owner"] == actor.user_id
    assert account["created_at"] == NOW

    deal = site.records.create(
        actor, "deal",
        {"name": "Big", "account": account["id"], "amount": "800000", "probability": 80,
         "items": [{"item": "Rack", "qty": 2, "price": "1500.50"}, {"item": "Setup", "price": 99}]},
    )
    assert deal["weighted"] == Decimal("640000.00")
    assert deal["due"] == dt.date(2026, 4, 9)
    assert [line["total"] for line in deal["items"]] == [Decimal("3001.00"), Decimal("99.00")]
    assert deal["items"][1]["qty"] == Decimal("1.00")
    assert deal["items_total"] == Decimal("3100.00")
    assert deal["days_left"] == 30
    again = site.records.get(actor, "deal", deal["id"])
    assert again == deal


def test_sequence_counts_up(site, actor):
    codes = [site.records.create(actor, "account", {"name": f"N{i}"})["code"] for i in range(3)]
    assert codes == ["A-2026-0001", "A-2026-0002", "A-2026-0003"]


def test_every_field_error_is_reported_at_once(site, actor):
    with pytest.raises(ValidationFailed) as caught:
        site.records.create(
            actor, "account",
            {"name": "x" * 21, "kind": "vip", "email": "not-an-email", "rating": 9,
             "since": "yesterday", "website": "ftp://x", "colour": "red", "id": 5},
        )
    errors = caught.value.errors
    assert set(errors) == {"name", "kind", "email", "rating", "since", "website", "colour", "id"}
    assert errors["name"] == ["At most 20 characters (got 21)."]
    assert errors["kind"] == ["'vip' is not one of the choices: prospect, client."]
    assert errors["rating"] == ["Must be at most 5."]
    assert errors["colour"] == ["There is no such field."]
    assert caught.value.status == 422


def test_messages_in_the_actors_language(site):
    zh = Actor(user_id=None, login="li", language="zh")
    with pytest.raises(ValidationFailed) as caught:
        site.records.create(zh, "account", {})
    assert caught.value.errors == {"name": ["此字段为必填项。"]}


def test_required_if_and_visible_if_are_enforced(site, actor):
    with pytest.raises(ValidationFailed) as caught:
        site.records.create(actor, "account", {"name": "Bad", "blacklisted": True})
    assert caught.value.errors == {"reason": ["This field is required."]}
    with pytest.raises(ValidationFailed) as caught:
        site.records.create(actor, "account", {"name": "Odd", "reason": "why?"})
    assert "does not apply" in caught.value.errors["reason"][0]
    record = site.records.create(actor, "account", {"name": "Bad", "blacklisted": True, "reason": "fraud"})
    cleared = site.records.update(actor, "account", record["id"], {"blacklisted": False})
    assert cleared["reason"] is None


def test_system_and_computed_fields_cannot_be_set(site, actor):
    account = site.records.create(actor, "account", {"name": "A"})
    with pytest.raises(ValidationFailed) as caught:
        site.records.create(
            actor, "deal",
            {"name": "D", "account": account["id"], "weighted": 5, "created_at": "2020-01-01"},
        )
    assert set(caught.value.errors) == {"weighted", "created_at"}


def test_references_must_exist(site, actor):
    with pytest.raises(ValidationFailed) as caught:
        site.records.create(actor, "deal", {"name": "D", "account": 999})
    assert caught.value.errors == {"account": ["There is no Account with id 999."]}


def test_unique_values(site, actor):
    site.records.create(actor, "account", {"name": "A", "tax_id": "T1"})
    with pytest.raises(ValidationFailed) as caught:
        site.records.create(actor, "account", {"name": "B", "tax_id": "T1"})
    assert caught.value.errors == {"tax_id": ["'T1' is already used by another record."]}


def test_lines_are_validated_per_line(site, actor):
    account = site.records.create(actor, "account", {"name": "A"})
    with pytest.raises(ValidationFailed) as caught:
        site.records.create(
            actor, "deal",
            {"name": "D", "account": account["id"], "items": [{"qty": 1}, {"item": "ok", "qty": "x"}]},
        )
    assert caught.value.errors == {
        "items[0].item": ["This field is required."],
        "items[1].qty": ["Expected a number."],
    }


def test_update_writes_audit_and_bumps_version(site, actor):
    record = site.records.create(actor, "account", {"name": "A", "rating": 3, "notes": "n"})
    site.records.update(actor, "account", record["id"], {"name": "B", "rating": 4, "notes": "m"},
                        version=1)
    updated = site.records.get(actor, "account", record["id"])
    assert (updated["name"], updated["rating"], updated["version"]) == ("B", 4, 2)
    history = site.records.history(actor, "account", record["id"])
    changes = {(h["action"], h["field"], str(h["old_value"]), str(h["new_value"])) for h in history[1:]}
    assert changes == {("update", "name", "A", "B"), ("update", "rating", "3", "4")}
    assert history[0]["action"] == "create"
    assert all(h["actor_id"] == actor.user_id for h in history)


def test_update_without_changes_keeps_version(site, actor):
    record = site.records.create(actor, "account", {"name": "A"})
    same = site.records.update(actor, "account", record["id"], {"name": "A"}, version=1)
    assert same["version"] == 1


def test_stale_version_is_a_conflict_and_writes_nothing(site, actor):
    record = site.records.create(actor, "account", {"name": "A"})
    site.records.update(actor, "account", record["id"], {"name": "B"}, version=1)
    with pytest.raises(Conflict) as caught:
        site.records.update(actor, "account", record["id"], {"name": "C"}, version=1)
    assert caught.value.status == 409
    assert caught.value.current["name"] == "B"
    assert site.records.get(actor, "account", record["id"])["name"] == "B"
    assert len(site.records.history(actor, "account", record["id"])) == 2


def test_lines_are_replaced_and_totals_follow(site, actor):
    account = site.records.create(actor, "account", {"name": "A"})
    deal = site.records.create(
        actor, "deal", {"name": "D", "account": account["id"], "items": [{"item": "a", "price": 10}]}
    )
    changed = site.records.update(
        actor, "deal", deal["id"],
        {"items": [{"item": "b", "qty": 3, "price": "2.50"}, {"item": "c", "price": 1}]},
    )
    assert [line["item"] for line in changed["items"]] == ["b", "c"]
    assert changed["items_total"] == Decimal("8.50")
    history = site.records.history(actor, "deal", deal["id"])
    assert {h["field"] for h in history if h["action"] == "update"} == {"items", "items_total"}


def test_archive_hides_from_lists_and_restore_brings_back(site, actor):
    record = site.records.create(actor, "account", {"name": "A"})
    site.records.archive(actor, "account", record["id"])
    assert site.records.count(actor, "account") == 0
    assert site.records.count(actor, "account", include_archived=True) == 1
    site.records.restore(actor, "account", record["id"])
    assert site.records.count(actor, "account") == 1


def test_delete_follows_on_delete_rules(site, actor):
    account = site.records.create(actor, "account", {"name": "A"})
    deal = site.records.create(actor, "deal", {"name": "D", "account": account["id"]})
    note = site.records.create(actor, "note", {"text": "t", "account": account["id"], "deal": deal["id"]})
    with pytest.raises(Conflict) as caught:
        site.records.delete(actor, "account", account["id"])
    assert "still used by 1" in caught.value.message
    site.records.delete(actor, "deal", deal["id"])
    assert site.records.get(actor, "note", note["id"])["deal"] is None
    site.records.delete(actor, "account", account["id"])
    with pytest.raises(NotFound):
        site.records.get(actor, "note", note["id"])
    audit = site.schema.system("crm_audit")
    with site.engine.connect() as conn:
        deletes = conn.execute(
            select(func.count()).where(audit.c.action == "delete")
        ).scalar_one()
    assert deletes == 3


def test_unknown_entity_and_record_are_not_found(site, actor):
    with pytest.raises(NotFound):
        site.records.get(actor, "nothing", 1)
    with pytest.raises(NotFound):
        site.records.get(actor, "account", 12345)
    with pytest.raises(NotFound):
        site.records.get(actor, "account", "abc")


@pytest.fixture
def accounts(site, actor):
    rows = [
        ("Alpha", "client", 5, "2020-01-01", ["a"]),
        ("Beta", "prospect", 3, "2021-06-01", ["a", "b"]),
        ("Gamma", "client", 1, None, []),
        ("delta 50%", "prospect", None, "2019-12-31", ["c"]),
    ]
    for name, kind, rating, since, tags in rows:
        site.records.create(
            actor, "account",
            {"name": name, "kind": kind, "rating": rating, "since": since, "tags": tags},
        )
    return rows


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filter("kind", "eq", "client"), ["Alpha", "Gamma"]),
        (Filter("kind", "ne", "client"), ["Beta", "delta 50%"]),
        (Filter("rating", "lt", "3"), ["Gamma"]),
        (Filter("rating", "le", "3"), ["Beta", "Gamma"]),
        (Filter("rating", "gt", 3), ["Alpha"]),
        (Filter("rating", "ge", 3), ["Alpha", "Beta"]),
        (Filter("rating", "in", "1,5"), ["Alpha", "Gamma"]),
        (Filter("rating", "between", "2,5"), ["Alpha", "Beta"]),
        (Filter("rating", "isnull", "true"), ["delta 50%"]),
        (Filter("since", "isnull", "false"), ["Alpha", "Beta", "delta 50%"]),
        (Filter("name", "contains", "ALP"), ["Alpha"]),
        (Filter("name", "contains", "50%"), ["delta 50%"]),
        (Filter("since", "gt", "2020-01-01"), ["Beta"]),
    ],
)
def test_list_filters(site, actor, accounts, flt, expected):
    page = site.records.list(actor, "account", filters=[flt], sort=[Sort("name")])
    assert sorted(r["name"] for r in page.rows) == sorted(expected)
    assert page.total == len(expected)


def test_list_sort_pagination_and_search(site, actor, accounts):
    page = site.records.list(actor, "account", sort=[Sort("rating", descending=True)])
    assert [r["name"] for r in page.rows] == ["Alpha", "Beta", "Gamma", "delta 50%"]
    page = site.records.list(actor, "account", sort=[Sort("rating")])
    assert [r["name"] for r in page.rows] == ["Gamma", "Beta", "Alpha", "delta 50%"]
    first = site.records.list(actor, "account", sort=[Sort("name")], limit=2)
    second = site.records.list(actor, "account", sort=[Sort("name")], limit=2, offset=2)
    assert first.has_more and not second.has_more
    assert len({r["id"] for r in first.rows + second.rows}) == 4
    assert [r["name"] for r in site.records.list(actor, "account", search="gam").rows] == ["Gamma"]
    assert site.records.count(actor, "account", filters=[Filter("kind", "eq", "client")]) == 2


def test_bad_filters_are_field_errors(site, actor):
    with pytest.raises(ValidationFailed) as caught:
        site.records.list(actor, "account", filters=[Filter("nope", "eq", 1)])
    assert "nope" in caught.value.errors
    with pytest.raises(ValidationFailed):
        site.records.list(actor, "account", filters=[Filter("rating", "like", 1)])
    with pytest.raises(ValidationFailed):
        site.records.list(actor, "account", filters=[Filter("rating", "eq", "many")])
    with pytest.raises(ValidationFailed):
        site.records.list(actor, "account", filters=[Filter("blacklisted", "gt", "true")])


def test_money_is_exact_in_sums(site, actor):
    account = site.records.create(actor, "account", {"name": "A"})
    for amount in ("0.10", "0.20", "1234567890.33"):
        site.records.create(actor, "deal", {"name": "D", "account": account["id"], "amount": amount})
    table = site.schema.table("deal")
    with site.engine.connect() as conn:
        total = conn.execute(select(func.sum(table.c.amount))).scalar_one()
    assert Decimal(total) == Decimal("1234567890.63")
    with pytest.raises(ValidationFailed) as caught:
        site.records.create(actor, "deal", {"name": "D", "account": account["id"], "amount": "1.234"})
    assert caught.value.errors == {"amount": ["At most 2 digits after the decimal point."]}


def test_many_to_many_and_json_values(site, actor):
    a = site.records.create(actor, "account", {"name": "A"})
    b = site.records.create(actor, "account", {"name": "B"})
    note = site.records.create(
        actor, "note", {"text": "t", "about": [b["id"], a["id"], b["id"]], "extra": {"k": [1, "二"]}}
    )
    assert note["about"] == sorted([a["id"], b["id"]])
    assert note["extra"] == {"k": [1, "二"]}
    changed = site.records.update(actor, "note", note["id"], {"about": [a["id"]]})
    assert changed["about"] == [a["id"]]
    with pytest.raises(ValidationFailed) as caught:
        site.records.update(actor, "note", note["id"], {"about": [a["id"], 777]})
    assert caught.value.errors == {"about": ["There is no Account with id 777."]}
    site.records.delete(actor, "account", a["id"])
    assert site.records.get(actor, "note", note["id"])["about"] == []
