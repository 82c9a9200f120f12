"""Concurrent writers on a real database: optimistic locking and sequence numbers.

These use real threads against PostgreSQL (the production database) and
also run against SQLite, whose single writer lock must give the same
guarantees.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.errors import ActionFailed, Conflict
from tests.support import open_migrated, write_pack, write_site

PACK = {
    "entities/ticket.yaml": """
        entity: ticket
        fields:
          number: {type: sequence, sequence_pattern: "T-{YYYY}-{#####}"}
          title: {type: string, required: true}
    """
}


@pytest.fixture(params=["postgresql", "sqlite"])
def site(request, tmp_path):
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    write_pack(tmp_path / "packs", "desk", PACK)
    root = write_site(tmp_path / "site", url, ["desk"], pack_paths=["../packs"])
    opened = open_migrated(root)
    opened.users.create("admin", password="secret-pass", is_admin=True)
    yield opened
    opened.close()


def test_two_updates_of_the_same_version_one_wins(site):
    actor = site.users.actor("admin")
    record = site.records.create(actor, "ticket", {"title": "start"})
    barrier = threading.Barrier(2)

    def edit(title: str) -> str:
        barrier.wait()
        try:
            site.records.update(actor, "ticket", record["id"], {"title": title}, version=1)
            return "ok"
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(edit, ["left", "right"]))
    assert outcomes == ["conflict", "ok"]
    final = site.records.get(actor, "ticket", record["id"])
    assert final["version"] == 2
    assert final["title"] in ("left", "right")
    updates = [h for h in site.records.history(actor, "ticket", record["id"]) if h["action"] == "update"]
    assert len(updates) == 1


def test_concurrent_creates_get_unique_sequence_numbers(site):
    actor = site.users.actor("admin")
    barrier = threading.Barrier(20)

    def create(i: int) -> str:
        barrier.wait()
        return site.records.create(actor, "ticket", {"title": f"t{i}"})["number"]

    with ThreadPoolExecutor(20) as pool:
        numbers = list(pool.map(create, range(20)))
    assert len(set(numbers)) == 20
    counters = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert counters == list(range(1, 21))


def test_updates_sent_without_a_version_all_apply(site):
    """Twenty saves at once that sent no version: none is "changed by someone else"."""
    actor = site.users.actor("admin")
    record = site.records.create(actor, "ticket", {"title": "start"})
    barrier = threading.Barrier(20)

    def edit(i: int) -> str:
        barrier.wait()
        try:
            return site.records.update(actor, "ticket", record["id"], {"title": f"t{i}"})["title"]
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(20) as pool:
        titles = list(pool.map(edit, range(20)))
    assert sorted(titles) == sorted(f"t{i}" for i in range(20))
    final = site.records.get(actor, "ticket", record["id"])
    assert final["version"] == 21
    updates = [h for h in site.records.history(actor, "ticket", record["id"])
               if h["action"] == "update"]
    assert len(updates) == 20


def test_a_lock_needs_the_writes_own_connection(site):
    actor = site.users.actor("admin")
    record = site.records.create(actor, "ticket", {"title": "start"})
    with pytest.raises(ActionFailed) as caught:
        site.records.locked(actor, "ticket", record["id"], conn=None)
    assert "conn=context.conn" in caught.value.message
    with site.records.engine.connect() as reading, pytest.raises(ActionFailed):
        site.records.update_with(actor, "ticket", record["id"], lambda r: {"title": "x"},
                                 conn=reading)
    assert site.records.get(actor, "ticket", record["id"])["version"] == 1
