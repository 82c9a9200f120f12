"""A role's read-only rule and a declared ``readonly`` hold for lines as for any other field:
through create, update, a batch and an import alike."""

from __future__ import annotations

import pytest

from engine.context import Actor
from engine.errors import ValidationFailed
from engine.services.dataio.importing import Importer
from tests.support import open_migrated, write_pack, write_site

PACK = {
    "entities/order.yaml": """
        entity: order
        fields:
          name: {type: string, required: true}
          items:
            type: lines
            fields:
              item: {type: string, required: true}
              qty: {type: integer, default: 1}
              price: {type: decimal, precision: 12, scale: 2}
              total: {type: computed, returns: decimal, expression: "qty * price"}
          total: {type: computed, returns: decimal, expression: "sum(items.total)"}
          terms:
            type: lines
            readonly: true
            fields:
              text: {type: string}
    """,
    "roles.yaml": """
        roles:
          clerk:
            label: {en: Clerk, zh: 店员}
            entities:
              order:
                rights: [read, create, update, import]
                scope: all
                fields: {items: readonly}
    """,
}
READONLY = {"items": ["This field is read-only."]}


@pytest.fixture
def site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "orders", PACK)
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["orders"],
                                      pack_paths=["../packs"]))
    opened.users.create("clerk", password="clerk-password", roles=["clerk"])
    yield opened
    opened.close()


def test_a_role_may_not_give_or_change_lines_it_only_reads(site):
    clerk = site.users.actor("clerk")
    with pytest.raises(ValidationFailed) as refused:
        site.records.create(clerk, "order", {"name": "A", "items": [{"item": "x", "price": 2}]})
    assert refused.value.errors == READONLY
    order = site.records.create(Actor.system(), "order", {
        "name": "B", "items": [{"item": "x", "qty": 2, "price": "2.50"}]})
    with pytest.raises(ValidationFailed) as refused:
        site.records.update(clerk, "order", order["id"], {"items": [{"item": "x", "qty": 9,
                                                                     "price": "2.50"}]})
    assert refused.value.errors == READONLY
    # The lines as they were shown, sent back (with their ids), are no change.
    shown = [{k: line[k] for k in ("id", "item", "qty", "price")} for line in order["items"]]
    same = site.records.update(clerk, "order", order["id"], {"name": "B2", "items": shown})
    assert same["name"] == "B2" and same["total"] == order["total"]


def test_a_batch_and_an_import_refuse_them_too(site):
    clerk = site.users.actor("clerk")
    with pytest.raises(ValidationFailed) as refused:
        site.records.create_many(clerk, "order", [{"name": "C"},
                                                  {"name": "D", "items": [{"item": "y"}]}])
    assert refused.value.errors == {"2.items": ["This field is read-only."]}
    report = Importer(site.records).run(
        clerk, "order", b"name,items/item\nE,x\nF,\n", "orders.csv")
    assert not report.written and site.records.count(Actor.system(), "order") == 0
    assert [e.line for e in report.row_errors] == [2]


def test_declared_readonly_lines_are_closed_to_users(site):
    system = Actor.system()
    order = site.records.create(system, "order", {"name": "A", "terms": [{"text": "net 30"}]})
    with pytest.raises(ValidationFailed) as refused:
        site.records.update(system, "order", order["id"], {"terms": [{"text": "net 90"}]})
    assert refused.value.errors == {"terms": ["This field is read-only."]}
    kept = site.records.update(system, "order", order["id"], {"terms": [{"text": "net 30"}]})
    assert [t["text"] for t in kept["terms"]] == ["net 30"]
