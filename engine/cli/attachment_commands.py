"""``crm file``: attach files to records, list them, fetch and remove them."""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli import output
from engine.cli.main import report_errors
from engine.cli.record_commands import as_option, cli_actor
from engine.cli.site_commands import open_site


@click.group(name="file")
def file_group() -> None:
    """Files attached to records (the same rights as in the web UI)."""


@file_group.command("attach")
@click.argument("entity")
@click.argument("record_id", type=int)
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@as_option
@click.pass_context
@report_errors
def attach(ctx: click.Context, entity: str, record_id: int, paths: tuple[Path, ...],
           login: str | None) -> None:
    """Attach one or more files to a record."""
    with open_site(ctx) as site:
        actor = cli_actor(site, login)
        for path in paths:
            with path.open("rb") as stream:
                stored = site.attachments.attach(actor, entity, record_id, path.name, stream)
            click.echo(f"{stored.key}  {stored.name}  {stored.size:,} bytes  {stored.content_type}")


@file_group.command("list")
@click.argument("entity")
@click.argument("record_id", type=int)
@as_option
@click.pass_context
@report_errors
def list_files(ctx: click.Context, entity: str, record_id: int, login: str | None) -> None:
    """The files of a record."""
    with open_site(ctx) as site:
        found = site.attachments.list(cli_actor(site, login), entity, record_id)
        rows = [[a.key, a.name, f"{a.size:,}", a.content_type, str(a.created_at)[:19]]
                for a in found]
    for line in output.table(["key", "name", "bytes", "type", "added"], rows):
        click.echo(line)


@file_group.command("get")
@click.argument("key")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write it (default: its name, in the current folder).")
@as_option
@click.pass_context
@report_errors
def get_file(ctx: click.Context, key: str, out: Path | None, login: str | None) -> None:
    """Write a file to disk."""
    with open_site(ctx) as site:
        found, chunks = site.attachments.content(cli_actor(site, login), key)
        target = out or Path(found.name)
        with target.open("wb") as sink:
            for chunk in chunks:
                sink.write(chunk)
    click.echo(f"{target} ({found.size:,} bytes)")


@file_group.command("remove")
@click.argument("key")
@as_option
@click.pass_context
@report_errors
def remove_file(ctx: click.Context, key: str, login: str | None) -> None:
    """Remove a file from its record."""
    with open_site(ctx) as site:
        site.attachments.remove(cli_actor(site, login), key)
    click.echo("Removed.")


def register(group: click.Group) -> None:
    group.add_command(file_group)
