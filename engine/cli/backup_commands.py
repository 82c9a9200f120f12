"""``crm backup`` and ``crm restore``: one archive per site, restorable anywhere."""

from __future__ import annotations

from pathlib import Path

import click

from engine.backup import back_up, restore
from engine.backup.archive import read_manifest
from engine.backup.backup import default_backup_name, ordered_tables
from engine.cli.main import report_errors
from engine.cli.site_commands import open_site


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@click.command()
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="The archive to write (default: backups/<site>-<time>.crm-backup.zip).")
@click.pass_context
@report_errors
def backup(ctx: click.Context, out: Path | None) -> None:
    """Back the site up — database, files, settings, overlays and packs — while it runs."""
    with open_site(ctx) as site:
        target = out or site.config.root / "backups" / default_backup_name(site, site.clock.now())
        tables = ordered_tables(site)
        try:
            with click.progressbar(length=len(tables), label="Backing up") as bar:
                result = back_up(site, target, progress=lambda _name, _rows: bar.update(1))
        except OSError as exc:  # a folder the site's user may not write, a full disk...
            raise click.ClickException(
                f"No backup was written: {exc.strerror or exc} ({exc.filename or target})."
            ) from None
    rows = sum(result.manifest.tables.values())
    click.echo(f"Backup written to {result.path} ({_size(result.size)}, {rows:,} rows in "
               f"{len(result.manifest.tables)} tables, {len(result.manifest.checksums)} members "
               "with checksums).")


@click.command(name="restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.option("--database-url", help="The new site's database (default: SQLite crm.db in TARGET).")
@click.option("--force", is_flag=True,
              help="Replace a site already in TARGET, and a database that already holds data.")
@report_errors
def restore_command(archive: Path, target: Path, database_url: str | None, force: bool) -> None:
    """Restore ARCHIVE into the site folder TARGET; nothing changes if it is refused."""
    tables = len(read_manifest(archive).tables)
    with click.progressbar(length=tables, label="Restoring") as bar:
        def progress(_name: str, _rows: int) -> None:
            bar.update(1)

        result = restore(archive, target, database_url=database_url, force=force,
                         progress=progress)
    click.echo(f"Restored {result.rows:,} rows of '{result.manifest.site_name}' "
               f"(backed up {result.manifest.created_at}) into {result.root}.")
    if result.needs_migration:
        click.echo("The installed packs are newer than the archived ones: run "
                   f"'crm --site {result.root} migrate' to upgrade the restored site.")


def register(group: click.Group) -> None:
    group.add_command(backup)
    group.add_command(restore_command)
