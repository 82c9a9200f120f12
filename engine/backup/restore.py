"""Restoring a backup archive into a new site — all of it, or nothing.

The order of a restore is chosen so that a refusal changes nothing: the
archive is verified member by member, the installed packs are compared
with the archived ones, the archived definitions are rebuilt and checked
against the archive's definitions hash, and the target database is found
empty — all before the first write.  The rows then go in inside one
transaction, and the site's files are moved into place only after it
commits.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    bindparam,
    func,
    inspect,
    select,
    update,
)

from engine.backup.archive import (
    DATA_PREFIX,
    PACKS_PREFIX,
    SITE_PREFIX,
    Manifest,
    members_under,
    open_checked,
    safe_relative,
)
from engine.backup.backup import dependency_order
from engine.backup.rows import parse_header, parse_row
from engine.errors import RestoreRefused
from engine.metadata.packs import find_pack_dirs, read_pack
from engine.site import OVERLAY_DIR, SITE_FILE, load_site_config, load_site_registry
from engine.storage.database import create_db_engine, write_transaction
from engine.storage.ids import continue_after, generates_ids, highest_id_used
from engine.storage.tables import build_schema

BATCH = 2000

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class RestoreResult:
    root: Path
    manifest: Manifest
    rows: int
    #: True when the installed packs are newer than the archived ones: run ``crm migrate``.
    needs_migration: bool


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.+-]", version))


def check_installed_packs(manifest: Manifest, search_paths: list[Path]) -> None:
    """Refuse when a pack of the archive is missing here or older than the archived one."""
    installed = find_pack_dirs(search_paths)
    problems = []
    for name, version in manifest.packs.items():
        folder = installed.get(name)
        source = read_pack(folder)[0] if folder else None
        if source is None:
            problems.append(f"pack '{name}' {version} is not installed here")
            continue
        here = source.info.version
        if _version_key(here) < _version_key(version):
            problems.append(f"pack '{name}' is {here} here but {version} in the archive; a pack "
                            "cannot be migrated back to an older version")
    if problems:
        raise RestoreRefused("The installed packs cannot take this archive: "
                             + "; ".join(problems) + ". Nothing was restored.")


def _extract(archive: zipfile.ZipFile, prefix: str, target: Path) -> None:
    for name, relative in members_under(archive, prefix):
        path = target / safe_relative(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(name) as src, path.open("wb") as out:
            shutil.copyfileobj(src, out)


def _with_database_url(text: str, url: str) -> str:
    line = f"database_url: {url!r}" if ":" in url else f"database_url: {url}"
    if re.search(r"(?m)^database_url\s*:", text):
        return re.sub(r"(?m)^database_url\s*:.*$", lambda _: line, text, count=1)
    return text.rstrip("\n") + "\n" + line + "\n"


def _holds_data(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        names = inspect(conn).get_table_names()
        if not names:
            return []
        metadata = MetaData()
        metadata.reflect(conn, only=names)
        return [t.name for t in metadata.sorted_tables
                if conn.execute(select(func.count()).select_from(t)).scalar()]


def _drop_everything(conn: Connection) -> None:
    metadata = MetaData()
    metadata.reflect(conn)
    metadata.drop_all(conn)


def restore(archive_path: Path, target: Path, *, database_url: str | None = None,
            force: bool = False, progress: Progress | None = None) -> RestoreResult:
    """Restore ``archive_path`` into the site folder ``target``; refuse without changing anything."""
    archive, manifest = open_checked(archive_path)
    with archive, tempfile.TemporaryDirectory(prefix="crm-restore-") as tmp:
        staging = Path(tmp) / "site"
        _extract(archive, SITE_PREFIX, staging)
        _extract(archive, PACKS_PREFIX, Path(tmp) / "packs")
        if not (staging / SITE_FILE).is_file():
            raise RestoreRefused(f"The archive holds no {SITE_FILE}.")
        if (target / SITE_FILE).is_file() and not force:
            raise RestoreRefused(f"{target} already holds a site; restore into a new folder, "
                                 "or pass --force to replace it.")
        url = database_url
        if url is None and (target / SITE_FILE).is_file():
            url = load_site_config(target).database_url
        url = url or "sqlite:///crm.db"
        site_text = (staging / SITE_FILE).read_text(encoding="utf-8")
        (staging / SITE_FILE).write_text(_with_database_url(site_text, url), encoding="utf-8")

        # The archive's own definitions, rebuilt from the packs it carries.
        archived_config = load_site_config(staging)
        archived_config = type(archived_config)(**{**archived_config.__dict__,
                                                   "pack_paths": (Path(tmp) / "packs",)})
        registry = load_site_registry(archived_config)
        if registry.definitions_hash != manifest.definitions_hash:
            raise RestoreRefused("The archive's definitions cannot be rebuilt exactly from the "
                                 "packs it carries; it may come from another VisionCRM version.")
        # pack_paths in crm.yaml are relative to the site: look beside the target.
        check_installed_packs(manifest, [(target / p).resolve() for p in
                                         (yaml.safe_load(site_text) or {}).get("pack_paths", [])])

        target.mkdir(parents=True, exist_ok=True)
        engine = create_db_engine(url, base_dir=target)
        try:
            occupied = _holds_data(engine)
            if occupied and not force:
                raise RestoreRefused(f"The target database already holds data (in {', '.join(occupied[:5])}"
                                     f"{'…' if len(occupied) > 5 else ''}); pass --force to replace it.")
            schema = build_schema(registry)
            rows = 0
            with write_transaction(engine) as conn:
                if occupied:
                    _drop_everything(conn)
                schema.metadata.create_all(conn)
                loader = _TableLoader(conn, archive, schema.metadata, set(registry.entities))
                for table in dependency_order(schema.metadata):
                    if table.name not in manifest.tables:
                        continue
                    count = loader.load(table)
                    rows += count
                    if progress:
                        progress(table.name, count)
                unknown = set(manifest.tables) - set(schema.metadata.tables)
                if unknown:
                    raise RestoreRefused(f"The archive holds tables this version does not know: "
                                         f"{sorted(unknown)}.")
                loader.finish()
        finally:
            engine.dispose()
        for name in (SITE_FILE, OVERLAY_DIR, "files"):
            source = staging / name
            if not source.exists():
                continue
            destination = target / name
            if destination.is_dir():
                shutil.rmtree(destination)
            shutil.move(str(source), str(destination))
    needs_migration = load_site_registry(load_site_config(target)).definitions_hash != \
        manifest.definitions_hash
    return RestoreResult(root=target, manifest=manifest, rows=rows, needs_migration=needs_migration)


class _TableLoader:
    """Inserts archived rows, postponing references to rows not yet inserted."""

    def __init__(self, conn: Connection, archive: zipfile.ZipFile, metadata: MetaData,
                 entities: set[str]) -> None:
        self.conn = conn
        self.archive = archive
        self.metadata = metadata
        self.entities = entities
        self.inserted: set[str] = set()
        self.tables: list[Table] = []
        self.postponed: list[tuple[Table, list[str], list[dict[str, Any]]]] = []

    def load(self, table: Table) -> int:
        with self.archive.open(f"{DATA_PREFIX}{table.name}.jsonl") as member:
            columns = parse_header(member.readline())
            unknown = [c for c in columns if c not in table.c]
            if unknown:
                raise RestoreRefused(f"Table {table.name} in the archive has columns this version "
                                     f"does not know: {unknown}.")
            later = {fk.parent.name for fk in table.foreign_keys
                     if fk.column.table.name not in self.inserted and fk.parent.name in columns}
            pk = [c.name for c in table.primary_key.columns]
            fixes: list[dict[str, Any]] = []
            batch: list[dict[str, Any]] = []
            count = 0
            for line in member:
                row = dict(zip(columns, parse_row(line), strict=True))
                if later and any(row[c] is not None for c in later):
                    fixes.append({**{f"_pk_{k}": row[k] for k in pk}, **{c: row[c] for c in later}})
                    row.update({c: None for c in later})
                batch.append(row)
                if len(batch) >= BATCH:
                    self.conn.execute(table.insert(), batch)
                    count += len(batch)
                    batch = []
            if batch:
                self.conn.execute(table.insert(), batch)
                count += len(batch)
        self.inserted.add(table.name)
        self.tables.append(table)
        if fixes:
            if not pk:
                raise RestoreRefused(f"Table {table.name} has circular references and no key.")
            self.postponed.append((table, sorted(later), fixes))
        return count

    def finish(self) -> None:
        for table, later, fixes in self.postponed:
            statement = update(table).where(
                *[table.c[k] == bindparam(f"_pk_{k}") for k in (c.name for c in table.primary_key.columns)]
            ).values({c: bindparam(c) for c in later})
            self.conn.execute(statement, fixes)
        self._continue_ids()

    def _continue_ids(self) -> None:
        """Each table's ids continue above every id it or its records' audit rows used.

        The archive holds no sequence counters; without this, a record deleted
        before the backup would have its id given to a new record after it.
        """
        for table in self.tables:
            if not generates_ids(table):
                continue
            entity = table.name if table.name in self.entities else None
            continue_after(self.conn, table,
                           highest_id_used(self.conn, self.metadata, table.name, entity))
