"""No row is ever written under definitions the database has moved on from.

Several processes serve one site; ``crm migrate`` runs in one of them (or
on another machine).  The others refuse writes with a 503 until they have
reloaded — and the web app reloads by itself.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from engine.context import Actor
from engine.errors import SchemaOutOfDate
from engine.site import Site
from engine.storage.database import write_transaction
from engine.storage.migration import apply_migration
from engine.web import create_app
from tests.api_support import Api
from tests.support import open_migrated, write_pack, write_site

SYSTEM = Actor.system()
V1 = """
    entity: note
    label: {en: Note, zh: 笔记}
    fields:
      title: {type: string, required: true}
    """
V2 = V1 + """  body: {type: text, label: {en: Body, zh: 正文}}
    """


def _site(tmp_path: Path, db_url: str) -> Site:
    write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": V1})
    root = write_site(tmp_path / "site", db_url, ["notes"], pack_paths=["../packs"])
    return open_migrated(root)


def _upgrade(tmp_path: Path) -> Site:
    """Another process: the pack files change and it migrates the database."""
    write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": V2})
    newer = Site.open(tmp_path / "site")
    apply_migration(newer.engine, newer.registry, newer.schema)
    return newer


def test_a_stale_process_refuses_writes_until_it_reopens(tmp_path: Path, db_url: str):
    old = _site(tmp_path, db_url)
    old.records.create(SYSTEM, "note", {"title": "before"})
    newer = _upgrade(tmp_path)
    with pytest.raises(SchemaOutOfDate) as refused:
        old.records.create(SYSTEM, "note", {"title": "stale"})
    assert refused.value.status == 503
    assert [r["title"] for r in newer.records.list(SYSTEM, "note").rows] == ["before"]
    newer.records.create(SYSTEM, "note", {"title": "after", "body": "new field"})
    old.close()
    newer.close()


def test_the_web_app_answers_503_then_reloads_by_itself(tmp_path: Path, db_url: str):
    site = _site(tmp_path, db_url)
    site.users.create("admin", password="password-1", roles=["admin"], is_admin=True)
    token, _ = site.users.tokens.create("admin", "tests")
    app = create_app(site, testing=True)
    api = Api(app, token)
    assert api.post("/note", json={"title": "one"}).status_code == 201

    _upgrade(tmp_path).close()
    app.extensions["visioncrm_definitions_watch"].interval = 3600  # no periodic look: only a refusal
    refused = api.post("/note", json={"title": "two", "body": "x"})
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert refused.get_json()["code"] == "definitions_changed"

    accepted = api.post("/note", json={"title": "two", "body": "with the new field"})
    assert accepted.status_code == 201, accepted.get_json()
    assert accepted.get_json()["body"] == "with the new field"


def test_a_migration_waits_for_writes_in_flight_on_postgresql(tmp_path: Path, pg_url: str):
    """The lock order that makes 'never a row between the two' hold on PostgreSQL."""
    old = _site(tmp_path, pg_url)
    table = old.schema.table("note")
    migrated = threading.Event()
    with write_transaction(old.engine) as conn:
        # The write has checked the definitions but not touched its table yet.
        def migrate() -> None:
            _upgrade(tmp_path).close()
            migrated.set()

        worker = threading.Thread(target=migrate)
        worker.start()
        time.sleep(1.0)
        assert not migrated.is_set(), "the migration must wait for the write in flight"
        conn.execute(table.insert().values(title="in flight", version=1,
                                           created_at=old.clock.now(), updated_at=old.clock.now()))
    worker.join(timeout=30)
    assert migrated.is_set()
    with pytest.raises(SchemaOutOfDate):
        old.records.create(SYSTEM, "note", {"title": "late"})
    old.close()


def test_a_newer_engine_table_makes_the_site_migrate_first(tmp_path: Path, db_url: str):
    """Same definitions, but this VisionCRM keeps a table the database lacks yet."""
    from sqlalchemy import text

    from engine.storage.migration import is_up_to_date

    site = _site(tmp_path, db_url)
    assert is_up_to_date(site.engine, site.registry)
    with site.engine.begin() as conn:
        conn.execute(text("DROP TABLE crm_import_mapping"))
    assert not is_up_to_date(site.engine, site.registry)
    plan = apply_migration(site.engine, site.registry, site.schema)
    assert plan.describe() == ['Create system table "crm_import_mapping"']
    assert is_up_to_date(site.engine, site.registry)
    site.close()


def test_pool_and_statement_timeout_from_crm_yaml(tmp_path: Path, pg_url: str):
    """database: in crm.yaml sizes each process's pool and bounds every statement."""
    from sqlalchemy import text

    from engine.errors import DefinitionError

    write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": V1})
    root = write_site(tmp_path / "site", pg_url, ["notes"], pack_paths=["../packs"])
    config = root / "crm.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "database: {pool_size: 3, "
                      "max_overflow: 1, statement_timeout_ms: 1500}\n", encoding="utf-8")
    with open_migrated(root) as site:
        assert site.engine.pool.size() == 3
        with site.engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1500ms"
            assert conn.execute(text("SHOW search_path")).scalar().startswith("t_")
            with pytest.raises(Exception, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(3)"))
    config.write_text(config.read_text(encoding="utf-8").replace("pool_size: 3", "pool_size: 0"),
                      encoding="utf-8")
    with pytest.raises(DefinitionError, match="crm.yaml"):
        Site.open(root)
