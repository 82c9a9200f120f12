"""``crm sites``: the sites one installation serves, and whether each is ready."""

from __future__ import annotations

import os
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from engine.cli.main import report_errors
from engine.cli.output import table
from engine.errors import CrmError
from engine.site import Site
from engine.storage.migration import is_up_to_date
from engine.web.sites import INSTALLATION_FILE, load_installation


@click.command()
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The installation file (default: $CRM_SITES, else ./{INSTALLATION_FILE}).")
@report_errors
def sites(path: Path | None) -> None:
    """List the sites of this installation: hosts, folder, database and state."""
    path = path or Path(os.environ.get("CRM_SITES") or INSTALLATION_FILE)
    if not path.is_file():
        raise click.ClickException(f"{path} does not exist; see docs/deployment.md.")
    rows = []
    for hosted in load_installation(path):
        try:
            with Site.open(hosted.root) as site:
                url = make_url(site.config.database_url)
                database = f"{url.get_backend_name()}:{url.database or ''}"
                state = "ready" if is_up_to_date(site.engine, site.registry) else "run crm migrate"
                name = site.config.name
        except CrmError as exc:
            name, database, state = "?", "?", f"error: {exc.message.splitlines()[0]}"
        rows.append([", ".join(hosted.hosts), name, str(hosted.root), database, state])
    for line in table(["hosts", "site", "folder", "database", "state"], rows):
        click.echo(line)


def register(group: click.Group) -> None:
    group.add_command(sites)
