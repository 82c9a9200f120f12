"""Backup and restore: one archive, the same site again — or a refusal that changes nothing."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.backup import back_up, restore
from engine.backup.archive import MANIFEST
from engine.backup.rows import decode, encode
from engine.cli import main
from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.errors import RestoreRefused
from engine.site import Site
from tests.support import open_migrated, write_pack, write_site

NOW = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system()


def table_contents(site: Site) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order: what 'identical' means for a restore."""
    contents = {}
    with site.engine.connect() as conn:
        for table in site.schema.metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            contents[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    return contents


@pytest.fixture
def demo_site(tmp_path: Path, db_url: str):
    site = open_migrated(write_site(tmp_path / "source", db_url, ["core"],
                                    overlays={"customer.yaml": """
                                        extend: customer
                                        fields:
                                          wechat_group: {type: string, label: {en: WeChat group, zh: 微信群}}
                                        """}),
                         clock=FixedClock(NOW))
    site.users.create("wang", password="password-1", roles=["sales"])
    load_demo(site.records, SYSTEM, [Path(p.path) for p in site.registry.packs.values()],
              workflows=site.workflows)
    files = site.config.root / "files" / "customer" / "1"
    files.mkdir(parents=True)
    (files / "合同扫描.pdf").write_bytes(b"%PDF-1.4 scanned contract\x00\xff")
    yield site
    site.close()


def test_rows_keep_their_types_through_json():
    values = [dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), dt.date(2026, 2, 28),
              __import__("decimal").Decimal("12345678.90"), b"\x00\xffbytes", {"$d": "not a tag"},
              ["a", "b"], None, True, 7, "中文"]
    assert [decode(encode(v)) for v in values] == values


def test_backup_then_restore_gives_the_same_site(demo_site: Site, tmp_path: Path,
                                                  other_db_url: str):
    archive = tmp_path / "backup.zip"
    result = back_up(demo_site, archive)
    assert result.manifest.tables["crm_audit"] > 0
    assert result.manifest.packs == {"core": demo_site.registry.packs["core"].version}

    restored = restore(archive, tmp_path / "copy", database_url=other_db_url)
    assert not restored.needs_migration
    assert restored.rows == sum(result.manifest.tables.values())
    with Site.open(tmp_path / "copy") as copy:
        assert table_contents(copy) == table_contents(demo_site)
        assert copy.registry.definitions_hash == demo_site.registry.definitions_hash
        # the overlay and the attachment came along, byte for byte
        assert "wechat_group" in copy.registry.entities["customer"].fields
        copied = copy.config.root / "files" / "customer" / "1" / "合同扫描.pdf"
        assert copied.read_bytes() == b"%PDF-1.4 scanned contract\x00\xff"
        # new records continue after the restored ids (PostgreSQL sequences reset)
        before = max(r["id"] for r in copy.records.list(SYSTEM, "customer", limit=1000).rows)
        created = copy.records.create(SYSTEM, "customer", {"name": "Restored Co", "kind": "client"})
        assert created["id"] > before
        assert copy.users.authenticate("wang", "password-1")["login"] == "wang"


def test_a_damaged_archive_is_refused_and_nothing_is_created(demo_site: Site, tmp_path: Path,
                                                             other_db_url: str):
    archive = tmp_path / "backup.zip"
    back_up(demo_site, archive)
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(damaged, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "data/customer.jsonl":
                data = data.replace("华信".encode(), "华新".encode())
            out.writestr(item, data)
    with pytest.raises(RestoreRefused, match="checksum"):
        restore(damaged, tmp_path / "copy", database_url=other_db_url)
    assert not (tmp_path / "copy").exists()

    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(RestoreRefused):
        restore(truncated, tmp_path / "copy", database_url=other_db_url)
    assert not (tmp_path / "copy").exists()

    no_manifest = tmp_path / "plain.zip"
    with zipfile.ZipFile(no_manifest, "w") as out:
        out.writestr("hello.txt", "hi")
    with pytest.raises(RestoreRefused, match=MANIFEST):
        restore(no_manifest, tmp_path / "copy", database_url=other_db_url)


def test_a_database_that_holds_data_is_not_overwritten_unless_told(demo_site: Site,
                                                                   tmp_path: Path,
                                                                   other_db_url: str):
    archive = tmp_path / "backup.zip"
    back_up(demo_site, archive)
    occupied = open_migrated(write_site(tmp_path / "occupied", other_db_url, ["core"]))
    occupied.records.create(SYSTEM, "customer", {"name": "Keep me", "kind": "client"})
    before = table_contents(occupied)
    occupied.close()

    with pytest.raises(RestoreRefused, match="already holds data"):
        restore(archive, tmp_path / "copy", database_url=other_db_url)
    with Site.open(tmp_path / "occupied") as again:
        assert table_contents(again) == before

    restore(archive, tmp_path / "copy", database_url=other_db_url, force=True)
    with Site.open(tmp_path / "copy") as copy:
        assert table_contents(copy) == table_contents(demo_site)


def _pack_site(base: Path, db_url: str, version: str) -> Path:
    write_pack(base / "packs", "shop", {"entities/item.yaml": """
        entity: item
        label: {en: Item, zh: 物品}
        fields:
          name: {type: string, required: true}
        """}, version=version)
    return write_site(base / "site", db_url, ["shop"], pack_paths=["../packs"])


def test_an_archive_from_a_newer_pack_is_refused(tmp_path: Path, db_url: str,
                                                 other_db_url: str):
    with open_migrated(_pack_site(tmp_path / "new", db_url, "2.0.0")) as site:
        site.records.create(SYSTEM, "item", {"name": "widget"})
        back_up(site, tmp_path / "backup.zip")
    _pack_site(tmp_path / "old", other_db_url, "1.0.0")  # the installation restoring it
    with pytest.raises(RestoreRefused, match="cannot be migrated back"):
        restore(tmp_path / "backup.zip", tmp_path / "old" / "copy", database_url=other_db_url)
    assert not (tmp_path / "old" / "copy").exists()


def test_an_archive_from_an_older_pack_restores_then_migrates(tmp_path: Path, db_url: str,
                                                              other_db_url: str):
    with open_migrated(_pack_site(tmp_path / "old", db_url, "1.0.0")) as site:
        site.records.create(SYSTEM, "item", {"name": "widget"})
        back_up(site, tmp_path / "backup.zip")
    # The installation restoring it runs version 1.1.0, which adds a field.
    write_pack(tmp_path / "new" / "packs", "shop", {"entities/item.yaml": """
        entity: item
        label: {en: Item, zh: 物品}
        fields:
          name: {type: string, required: true}
          colour: {type: string}
        """}, version="1.1.0")
    result = restore(tmp_path / "backup.zip", tmp_path / "new" / "site",
                     database_url=other_db_url)
    assert result.needs_migration
    with open_migrated(tmp_path / "new" / "site") as copy:
        (item,) = copy.records.list(SYSTEM, "item").rows
        assert item["name"] == "widget" and item["colour"] is None


def test_backup_and_restore_commands(demo_site: Site, tmp_path: Path, other_db_url: str):
    runner = CliRunner()
    out = tmp_path / "b.zip"
    result = runner.invoke(main, ["--site", str(demo_site.config.root), "backup", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Backup written to" in result.output and out.is_file()
    result = runner.invoke(main, ["restore", str(out), str(tmp_path / "copy"),
                                  "--database-url", other_db_url])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["restore", str(out), str(tmp_path / "copy"),
                                  "--database-url", other_db_url])
    assert result.exit_code == 1
    assert "already holds a site" in result.output


def test_an_archive_that_cannot_be_written_is_a_message(tmp_path: Path, db_url: str):
    """A backup folder the site's user may not create: a message, not a traceback."""
    root = write_site(tmp_path / "site", db_url, ["core"])
    open_migrated(root).close()
    (tmp_path / "taken").write_text("a file where the folder should be", encoding="utf-8")
    out = tmp_path / "taken" / "acme.zip"
    result = CliRunner().invoke(main, ["--site", str(root), "backup", "--out", str(out)])
    assert result.exit_code == 1
    assert "No backup was written" in result.output and str(tmp_path / "taken") in result.output
    assert isinstance(result.exception, SystemExit)  # handled, not raised through
    assert not out.exists()


def test_a_sqlite_site_moves_to_postgresql(tmp_path: Path, sqlite_url: str, pg_url: str):
    """The way a client who outgrew SQLite moves: back up, restore into PostgreSQL."""
    with open_migrated(write_site(tmp_path / "small", sqlite_url, ["core"]),
                       clock=FixedClock(NOW)) as site:
        load_demo(site.records, SYSTEM, [Path(p.path) for p in site.registry.packs.values()],
                  workflows=site.workflows)
        back_up(site, tmp_path / "b.zip")
        expected = table_contents(site)
    restore(tmp_path / "b.zip", tmp_path / "big", database_url=pg_url)
    with Site.open(tmp_path / "big") as moved:
        assert moved.engine.dialect.name == "postgresql"
        assert table_contents(moved) == expected
