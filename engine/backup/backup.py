"""Writing a site's backup archive while the site is in use."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, MetaData, Table, exc, select

from engine import __version__
from engine.backup.archive import DATA_PREFIX, PACKS_PREFIX, SITE_PREFIX, ArchiveWriter, Manifest
from engine.backup.rows import header_line, row_line
from engine.site import OVERLAY_DIR, SITE_FILE, Site

#: Site folders that travel with a backup besides ``custom/``: attachments live here.
FILE_DIRS = ("files",)
#: Rows fetched per round trip while streaming a table out.
BATCH = 2000

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    manifest: Manifest


def dependency_order(metadata: MetaData) -> list[Table]:
    """Tables with parents before children (cycles are resolved on restore)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", exc.SAWarning)
        return list(metadata.sorted_tables)


def ordered_tables(site: Site) -> list[Table]:
    """Every table of the site, in dependency order."""
    return dependency_order(site.schema.metadata)


def _files(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield path


def _snapshot(conn: Connection) -> Connection:
    """One consistent read of every table, even while others write."""
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return conn


def default_backup_name(site: Site, now: dt.datetime) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in site.config.root.name)
    return f"{safe}-{now.strftime('%Y%m%d-%H%M%S')}.crm-backup.zip"


def back_up(site: Site, out: Path, *, progress: Progress | None = None) -> BackupResult:
    """Write the whole site into ``out``; a failure leaves no partial archive behind."""
    now = site.clock.now()
    manifest = Manifest(
        site_name=site.config.name,
        created_at=now.isoformat(),
        dialect=site.engine.dialect.name,
        definitions_hash=site.registry.definitions_hash,
        packs={name: info.version for name, info in sorted(site.registry.packs.items())},
        engine_version=__version__,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = ArchiveWriter(out)
    try:
        root = site.config.root
        writer.add_file(SITE_PREFIX + SITE_FILE, root / SITE_FILE)
        for folder in (OVERLAY_DIR, *FILE_DIRS):
            for path in _files(root / folder):
                writer.add_file(SITE_PREFIX + path.relative_to(root).as_posix(), path)
        for name, info in sorted(site.registry.packs.items()):
            pack_root = Path(info.path)
            for path in _files(pack_root):
                writer.add_file(f"{PACKS_PREFIX}{name}/{path.relative_to(pack_root).as_posix()}",
                                path)
        with site.engine.connect() as plain:
            conn = _snapshot(plain)
            with conn.begin():
                for table in ordered_tables(site):
                    manifest.tables[table.name] = _dump_table(conn, table, writer)
                    if progress:
                        progress(table.name, manifest.tables[table.name])
        writer.finish(manifest)
    except BaseException:
        writer.abandon()
        raise
    return BackupResult(path=out, size=out.stat().st_size, manifest=manifest)


def _dump_table(conn: Connection, table: Table, writer: ArchiveWriter) -> int:
    columns = [c.name for c in table.columns]
    order = list(table.primary_key.columns) or list(table.columns)
    count = 0
    with writer.open_member(f"{DATA_PREFIX}{table.name}.jsonl") as out:
        out.write(header_line(columns))
        result = conn.execution_options(yield_per=BATCH).execute(select(table).order_by(*order))
        for row in result:
            out.write(row_line(tuple(row)))
            count += 1
    return count
