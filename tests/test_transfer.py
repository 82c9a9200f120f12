"""Customer resource transfer with the core pack's rules: all of it moves, or none of it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from engine.context import Actor, FixedClock
from engine.errors import NotFound, PermissionDenied, ValidationFailed
from engine.services.records.transfer import TransferService
from tests.support import open_migrated, write_site

NOW = dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system()


@pytest.fixture
def site(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    for login in ("alice", "bob", "carol", "dave"):
        opened.users.create(login, password="password-1", roles=["sales"])
    opened.users.create("root", password="password-1", roles=["admin"])
    yield opened
    opened.close()


def uid(site, login):
    return site.users.get(login)["id"]


def book(site, owner: str, name: str, region: str = "上海") -> dict[str, int]:
    """A customer with a contact, an open and a won opportunity, an open and a done activity."""
    who = {"owner": uid(site, owner)}
    rec = site.records
    customer = rec.create(SYSTEM, "customer", {"name": name, "region": region, **who})
    ids = {"customer": customer["id"]}
    ids["contact"] = rec.create(SYSTEM, "contact", {"name": f"{name} contact",
                                                    "customer": customer["id"], **who})["id"]
    ids["open_opp"] = rec.create(SYSTEM, "opportunity", {"name": f"{name} open",
                                                         "customer": customer["id"], **who})["id"]
    won = rec.create(SYSTEM, "opportunity", {"name": f"{name} won", "customer": customer["id"],
                                             **who})
    table = site.schema.table("opportunity")
    with site.engine.begin() as conn:  # closed long ago, through the stage flow
        conn.execute(update(table).where(table.c.id == won["id"]).values(stage="won"))
    ids["won_opp"] = won["id"]
    ids["open_act"] = rec.create(SYSTEM, "activity", {"subject": f"Call {name}",
                                                      "customer": customer["id"], **who})["id"]
    ids["done_act"] = rec.create(SYSTEM, "activity", {"subject": f"Called {name}", "done": True,
                                                      "customer": customer["id"], **who})["id"]
    return ids


ENTITY_OF = {"customer": "customer", "contact": "contact", "open_opp": "opportunity",
             "won_opp": "opportunity", "open_act": "activity", "done_act": "activity"}


def owner_of(site, entity: str, record_id: int) -> int:
    return site.records.get(SYSTEM, entity, record_id)["owner"]


def everything(site) -> dict:
    """Every row of every entity, to compare before and after."""
    out = {}
    with site.engine.connect() as conn:
        for key in site.registry.entities:
            table = site.schema.table(key)
            out[key] = [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]
    return out


def test_transfer_moves_what_the_rules_name_and_nothing_else(site):
    root = site.users.actor("root")
    first = book(site, "alice", "华信")
    second = book(site, "alice", "金鼎")
    bobs = book(site, "bob", "Bob's")
    # Alice's open opportunity on Bob's customer moves (she owns it); Bob's contact on
    # Alice's customer stays with Bob (only what Alice owns moves).
    stray = site.records.create(SYSTEM, "opportunity", {"name": "Side deal", "owner":
                                                        uid(site, "alice"),
                                                        "customer": bobs["customer"]})
    bob_contact = site.records.create(SYSTEM, "contact", {"name": "Bob's friend", "owner":
                                                          uid(site, "bob"),
                                                          "customer": first["customer"]})
    plan = site.transfers.preview(root, "alice", ["carol"])
    assert plan.counts() == {"customer": 2, "contact": 2, "opportunity": 3, "activity": 2}
    assert dict(plan.kept) == {"opportunity": 2, "activity": 2}
    moved_ids = {(m.entity, m.record_id) for m in plan.moves}
    assert ("opportunity", stray["id"]) in moved_ids
    before = everything(site)
    done = site.transfers.run(root, "alice", ["carol"], note="Alice left")
    assert done["total"] == 9 and done["from"] == "alice" and done["to"] == ["carol"]
    assert done["counts"] == plan.counts() and done["by"] == "root"
    carol, alice = uid(site, "carol"), uid(site, "alice")
    for ids in (first, second):
        for key, record_id in ids.items():
            want = alice if key in ("won_opp", "done_act") else carol
            assert owner_of(site, ENTITY_OF[key], record_id) == want, key
    assert owner_of(site, "opportunity", stray["id"]) == carol
    assert owner_of(site, "contact", bob_contact["id"]) == uid(site, "bob")
    # Nothing else changed: only the moved rows' owner, version and update stamp.
    after = everything(site)
    for key, rows in before.items():
        for old, new in zip(rows, after[key], strict=True):
            if (key, old["id"]) in moved_ids:
                assert new["owner"] == carol and new["version"] == old["version"] + 1
                assert new["updated_by"] == root.user_id
                old = {k: v for k, v in old.items() if k not in ("owner", "version",
                                                                 "updated_at", "updated_by")}
                new = {k: v for k, v in new.items() if k in old}
            assert old == new, (key, old["id"])
    # Audit rows, one per moved record, sharing the transfer's change id.
    audit = site.schema.system("crm_audit")
    with site.engine.connect() as conn:
        rows = conn.execute(select(audit).where(audit.c.action == "transfer")).mappings().all()
    assert {(r["entity"], r["record_id"]) for r in rows} == moved_ids
    assert {r["change_id"] for r in rows} == {done["change_id"]}
    assert all(r["old_value"] == alice and r["new_value"] == carol for r in rows)
    history = site.records.history(root, "customer", first["customer"])
    assert history[-1]["action"] == "transfer"
    # The transfer record can be reported on.
    listed = site.transfers.list(root)
    assert [(t["id"], t["from"], t["note"]) for t in listed] == [(done["id"], "alice",
                                                                  "Alice left")]
    assert site.transfers.list(root, login="dave") == []
    # Carol now works with them through her own scope.
    assert site.records.count(site.users.actor("carol"), "customer") == 2


def test_spreading_keeps_each_customer_with_its_records(site):
    root = site.users.actor("root")
    books = [book(site, "alice", f"C{n}") for n in range(4)]
    done = site.transfers.run(root, "alice", ["bob", "carol"], rule="round_robin")
    per = done["plan"].per_user()
    assert per["bob"]["customer"] == per["carol"]["customer"] == 2
    for ids in books:
        receiver = owner_of(site, "customer", ids["customer"])
        for key in ("contact", "open_opp", "open_act"):
            assert owner_of(site, ENTITY_OF[key], ids[key]) == receiver


def test_spreading_by_region_and_balanced(site):
    root = site.users.actor("root")
    sh = book(site, "alice", "A", region="上海")
    hz = book(site, "alice", "B", region="杭州")
    bj = book(site, "alice", "C", region="北京")
    plan = site.transfers.preview(root, "alice", ["dave"], rule="by_field", by_field="region",
                                  mapping={"上海": "bob", "杭州": "carol"})
    to = {m.record_id: plan.logins[m.to_user] for m in plan.moves if m.entity == "customer"}
    assert to == {sh["customer"]: "bob", hz["customer"]: "carol", bj["customer"]: "dave"}
    with pytest.raises(ValidationFailed):  # 北京 has no mapping and no --to
        site.transfers.preview(root, "alice", [], rule="by_field", by_field="region",
                               mapping={"上海": "bob"})
    with pytest.raises(ValidationFailed):
        site.transfers.preview(root, "alice", ["bob"], rule="by_field", by_field="colour")
    book(site, "bob", "Bob has one")
    balanced = site.transfers.preview(root, "alice", ["bob", "carol"], rule="balanced")
    counts = balanced.per_user()
    assert counts["carol"]["customer"] == 2 and counts["bob"]["customer"] == 1


def test_a_failure_midway_leaves_everything_as_it_was(site, monkeypatch):
    root = site.users.actor("root")
    book(site, "alice", "A")
    book(site, "alice", "B")
    before = everything(site)
    real = TransferService._move
    calls = []

    def failing(self, conn, actor, entity_key, *args, **kwargs):
        calls.append(entity_key)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(self, conn, actor, entity_key, *args, **kwargs)

    monkeypatch.setattr(TransferService, "_move", failing)
    with pytest.raises(RuntimeError):
        site.transfers.run(root, "alice", ["bob"], deactivate=True)
    assert len(calls) == 3
    assert everything(site) == before
    audit = site.schema.system("crm_audit")
    with site.engine.connect() as conn:
        assert conn.execute(select(audit).where(audit.c.action == "transfer")).first() is None
        assert conn.execute(select(site.schema.system("crm_transfer"))).first() is None
    assert site.users.get("alice")["active"]


def test_who_may_transfer_and_to_whom(site):
    book(site, "alice", "A")
    with pytest.raises(PermissionDenied):
        site.transfers.preview(site.users.actor("bob"), "alice", ["bob"])
    root = site.users.actor("root")
    with pytest.raises(ValidationFailed):
        site.transfers.run(root, "alice", ["alice"])
    with pytest.raises(ValidationFailed):
        site.transfers.run(root, "alice", [])
    with pytest.raises(NotFound):
        site.transfers.run(root, "alice", ["nobody"])
    site.users.deactivate("dave")
    with pytest.raises(ValidationFailed):
        site.transfers.run(root, "alice", ["dave"])
    done = site.transfers.run(root, "alice", ["bob"], deactivate=True)
    assert done["deactivated"] and not site.users.get("alice")["active"]
    # A deactivated user can still be transferred from (they left before the move).
    book(site, "alice", "Found later")
    assert site.transfers.run(root, "alice", ["carol"])["total"] == 4
