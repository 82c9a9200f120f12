"""``crm worker`` follows a migration made by another process instead of failing every job.

A worker built from the old definitions has every write refused after
``crm migrate`` elsewhere (tests/test_definitions_guard.py); it must reopen
the site and go on under the new definitions, by itself.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from engine.context import Actor
from engine.notifications.follow import definitions_moved, run_following_definitions
from engine.notifications.worker import NotificationWorker
from engine.site import Site
from engine.storage.migration import apply_migration
from tests.support import open_migrated, write_pack, write_site

V1 = """
    entity: note
    label: {en: Note, zh: 笔记}
    fields:
      title: {type: string, required: true}
    """
V2 = V1 + """  body: {type: text, label: {en: Body, zh: 正文}}
    """


class RecordingWorker:
    """Runs until its generation stops, noting the definitions it was built from."""

    def __init__(self, site: Site, seen: list[str]) -> None:
        self.site = site
        seen.append(site.registry.definitions_hash)

    def run_forever(self, stop: threading.Event, *, poll: float = 1.0) -> None:
        stop.wait()


def test_the_worker_reopens_the_site_after_another_process_migrates(tmp_path: Path, db_url: str):
    write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": V1})
    root = write_site(tmp_path / "site", db_url, ["notes"], pack_paths=["../packs"])
    site = open_migrated(root)
    old_hash = site.registry.definitions_hash
    seen: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=run_following_definitions,
                              args=(site, stop, lambda s, _g: RecordingWorker(s, seen)),
                              kwargs={"poll": 0.1, "check_every": 0.1}, daemon=True)
    thread.start()
    try:
        write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": V2})
        with Site.open(root) as newer:
            apply_migration(newer.engine, newer.registry, newer.schema)
            new_hash = newer.registry.definitions_hash
        assert definitions_moved(site)
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen == [old_hash, new_hash]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    site.close()


def test_a_reloaded_worker_writes_under_the_new_definitions(tmp_path: Path, db_url: str):
    """The real worker's jobs succeed again once it follows the migration."""
    write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": V1})
    root = write_site(tmp_path / "site", db_url, ["notes"], pack_paths=["../packs"])
    site = open_migrated(root)
    write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": V2})
    with Site.open(root) as newer:
        apply_migration(newer.engine, newer.registry, newer.schema)
    outcomes: list[dict] = []
    stop = threading.Event()

    class OnceWorker(NotificationWorker):
        def run_forever(self, generation: threading.Event, *, poll: float = 1.0) -> None:
            outcomes.append(self.run_once())
            if len(outcomes) >= 2:
                stop.set()
            generation.wait()

    thread = threading.Thread(target=run_following_definitions,
                              args=(site, stop, lambda s, _g: OnceWorker(s)),
                              kwargs={"poll": 0.1, "check_every": 0.1}, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    stale, reloaded = outcomes
    assert stale["delivery"] is None  # refused: the stale worker wrote nothing
    assert reloaded["delivery"] is not None
    with Site.open(root) as newer:
        newer.records.create(Actor.system(), "note", {"title": "after", "body": "new field"})
    site.close()
