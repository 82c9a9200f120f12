"""Pack commands: ``crm pack new`` writes a working skeleton, ``crm pack check`` checks one.

Both work without a site, so a pack can be started and checked on its own
before any client uses it.
"""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli.main import report_errors
from engine.metadata.loader import load_registry
from engine.pack_scaffold import new_pack


@click.group()
def pack() -> None:
    """Write and check packs."""


@pack.command("new")
@click.argument("name")
@click.option("--path", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True,
              help="The folder to create the pack folder in.")
@report_errors
def new(name: str, folder: Path) -> None:
    """Create a working pack skeleton NAME: entity, workflow, roles, view, hooks, demo, test."""
    root = new_pack(name, folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        click.echo(f"  wrote {path.relative_to(folder)}")
    click.echo(f"Created pack '{name}' in {root}.")
    click.echo(f"Next: crm pack check {root} && pytest {root / 'tests'}")


@pack.command("check")
@click.argument("path", type=click.Path(file_okay=False, exists=True, path_type=Path))
@report_errors
def check(path: Path) -> None:
    """Check the pack in folder PATH (with its dependencies), as a site using it would."""
    root = path.resolve()
    if not (root / "pack.yaml").is_file():
        raise click.ClickException(f"{root} is not a pack: it has no pack.yaml.")
    registry = load_registry([root.name], search_paths=[root.parent])
    for warning in registry.warnings:
        click.echo(str(warning))
    own = [e for e in registry.entities.values() if e.pack == root.name]
    click.echo(f"OK: pack '{root.name}' {registry.packs[root.name].version}: {len(own)} "
               f"entities, {len(registry.workflows)} workflow(s).")


def register(group: click.Group) -> None:
    group.add_command(pack)
