"""``crm config export`` and ``crm config import``: a site's configuration, without secrets."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from engine.cli.main import report_errors
from engine.cli.site_commands import open_site
from engine.errors import ValidationFailed
from engine.site_config import dump_config, export_config, import_config
from engine.storage.migration import is_up_to_date


@click.group("config")
def config_group() -> None:
    """Carry a site's configuration (overlays, hooks, packs, users, teams) to another site."""


@config_group.command("export")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write (default: print it).")
@click.pass_context
@report_errors
def export(ctx: click.Context, out: Path | None) -> None:
    """Write the site's configuration as YAML: no database URL, passwords or tokens."""
    site = open_site(ctx, require_migrated=False)
    try:
        text = dump_config(export_config(site))
    finally:
        site.close()
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"Wrote {out}.")


@config_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--replace", is_flag=True,
              help="Overwrite files of custom/ that exist with other content.")
@click.pass_context
@report_errors
def import_(ctx: click.Context, file: Path, replace: bool) -> None:
    """Apply an exported configuration to this site, checked in full before anything is written."""
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValidationFailed({"file": [f"{file} is not YAML: {exc}"]}) from None
    site = open_site(ctx, require_migrated=False)
    try:
        summary = import_config(site, data, replace=replace)
    finally:
        site.close()
    for name in summary.files:
        click.echo(f"  wrote {name}")
    if summary.settings:
        click.echo("  crm.yaml: " + ", ".join(f"{k}={v}" for k, v in summary.settings.items()))
    click.echo(f"  users: {len(summary.users_created)} created (without passwords: set them "
               f"with 'crm user'), {len(summary.users_updated)} updated; "
               f"teams: {len(summary.teams)}")
    site = open_site(ctx, require_migrated=False)
    try:
        if not is_up_to_date(site.engine, site.registry):
            click.echo("The definitions changed: run 'crm migrate --plan', then 'crm migrate'.")
    finally:
        site.close()


def register(group: click.Group) -> None:
    group.add_command(config_group)
