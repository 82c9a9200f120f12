"""Site commands: ``init``, ``check``, ``migrate`` and ``schema``."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from engine.cli.main import echo_json, report_errors
from engine.context import Clock
from engine.errors import DefinitionError, MigrationRefused, SchemaOutOfDate
from engine.metadata.schema_check import all_schemas
from engine.services.access.users import generate_password
from engine.site import (
    OVERLAY_DIR,
    SITE_FILE,
    Site,
    find_site_dir,
    load_site_config,
    load_site_registry,
)
from engine.storage.migration import apply_migration, is_up_to_date, plan_migration

OVERLAY_README = """\
# Overlays for this site

YAML files here adjust the packs for this client without changing the packs
themselves, so a pack can be upgraded underneath. For example, to add a field
to customers, create `custom/customer.yaml`:

    extend: customer
    fields:
      wechat_group:
        type: string
        max_length: 100
        label: {en: WeChat group, zh: 微信群}

Then run `crm check` and `crm migrate`.
"""


def open_site(ctx: click.Context, *, require_migrated: bool = True) -> Site:
    """Open the command's site; refuse to work on a database behind its definitions."""
    site = Site.open(ctx.obj.get("site_dir"), clock=command_clock(ctx))
    if require_migrated and not is_up_to_date(site.engine, site.registry):
        site.close()
        raise SchemaOutOfDate(
            "The database does not match the site's definitions yet: run 'crm migrate' "
            "('crm migrate --plan' shows what would change)."
        )
    return site


def command_clock(ctx: click.Context) -> Clock | None:
    """The clock the caller gave ``crm`` (``main(obj={"clock": ...})``), else None: the default."""
    return (ctx.find_root().obj or {}).get("clock")


def site_dir(ctx: click.Context) -> Path:
    return find_site_dir(ctx.obj.get("site_dir"))


def migrate_site(site: Site, *, allow_destructive: bool, applied_by: str = "cli") -> list[str]:
    """Apply the site's definitions to its database, echoing each step."""
    plan = apply_migration(
        site.engine,
        site.registry,
        site.schema,
        allow_destructive=allow_destructive,
        progress=lambda line: click.echo(f"  {line}"),
        applied_by=applied_by,
        clock=site.clock,
    )
    return plan.describe()


def create_site(
    folder: Path,
    *,
    name: str,
    packs: list[str],
    database_url: str,
    locale: str,
) -> Path:
    """Write ``crm.yaml`` and ``custom/`` into a new (or empty) folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / SITE_FILE).exists():
        raise click.ClickException(f"{folder / SITE_FILE} already exists; this is a site already.")
    config = {
        "name": name,
        "database_url": database_url,
        "packs": packs,
        "locale": locale,
        "currency": "CNY",
        "timezone": "Asia/Shanghai",
    }
    (folder / SITE_FILE).write_text(
        yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    overlays = folder / OVERLAY_DIR
    overlays.mkdir(exist_ok=True)
    (overlays / "README.md").write_text(OVERLAY_README, encoding="utf-8")
    return folder


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pack", "packs", multiple=True, default=("core",), show_default=True,
              help="A pack to enable (repeat for several).")
@click.option("--name", help="The site's name (default: the folder's name).")
@click.option("--database-url", default="sqlite:///crm.db", show_default=True,
              help="SQLAlchemy URL; e.g. postgresql+psycopg://user@host/db for PostgreSQL.")
@click.option("--locale", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--admin-login", default="admin", show_default=True)
@click.option("--admin-password", help="The first admin's password (default: generated and printed once).")
@click.option("--ask-password", is_flag=True,
              help="Type the first admin's password (hidden, asked twice) instead.")
@click.pass_context
@report_errors
def init(
    ctx: click.Context, directory: Path, packs: tuple[str, ...], name: str | None,
    database_url: str, locale: str, admin_login: str, admin_password: str | None,
    ask_password: bool,
) -> None:
    """Create a site in DIRECTORY, migrate its database and create the first admin."""
    if ask_password and not admin_password:
        admin_password = click.prompt("Password for the first admin", hide_input=True,
                                      confirmation_prompt=True)
    create_site(directory, name=name or directory.resolve().name, packs=list(packs),
                database_url=database_url, locale=locale)
    click.echo(f"Created {directory / SITE_FILE}")
    site = Site.open(directory, clock=command_clock(ctx))
    try:
        click.echo("Migrating the database:")
        migrate_site(site, allow_destructive=False, applied_by="init")
        password = admin_password or generate_password()
        declared = site.registry.roles
        site.users.create(admin_login, password=password, display_name="Administrator",
                          language=locale,
                          roles=["admin"] if "admin" in declared or not declared else [],
                          is_admin=True)
    finally:
        site.close()
    click.echo(f"Admin user: {admin_login}")
    if not admin_password:
        click.echo(f"Password:   {password}   (shown once — write it down)")
    click.echo(f"Next: cd {directory} && crm check && crm record list customer")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON.")
@click.option("--explain", "explain", metavar="ENTITY",
              help="Print ENTITY's merged definition and the file:line each part came from.")
@click.pass_context
@report_errors
def check(ctx: click.Context, as_json: bool, explain: str | None) -> None:
    """Check the site's definitions: every problem with its file, line and what was expected."""
    root = site_dir(ctx)
    try:
        config = load_site_config(root)
        registry = load_site_registry(config)
        from engine.jobs.definitions import configured_jobs

        configured_jobs(config, registry)  # crm.yaml's jobs: name declared pack jobs
        from engine.metadata.print_formats import declared_print_formats

        declared_print_formats(registry)  # prints: name entities and templates that exist
    except DefinitionError as exc:
        if as_json:
            echo_json({"ok": False, "problems": [p.to_dict() for p in exc.problems]})
            raise SystemExit(2) from None
        raise
    if explain:
        from engine.metadata.explain import explain_entity

        for warning in registry.warnings:
            click.echo(str(warning), err=True)
        click.echo(explain_entity(
            registry, explain, config.requirements(), search_paths=config.pack_paths,
            overlay_dir=config.overlay_dir, overlay_prefix=OVERLAY_DIR), nl=False)
        return
    if as_json:
        echo_json({"ok": True, "entities": sorted(registry.entities),
                   "warnings": [w.to_dict() for w in registry.warnings]})
        return
    for warning in registry.warnings:
        click.echo(str(warning))
    fields = sum(len(e.fields) for e in registry.entities.values())
    click.echo(
        f"OK: {len(registry.packs)} pack(s), {len(registry.entities)} entities, {fields} fields "
        f"(definitions {registry.definitions_hash[:12]})."
    )


@click.command()
@click.option("--plan", "plan_only", is_flag=True, help="Show what would change and stop.")
@click.option("--allow-destructive", is_flag=True,
              help="Allow changes that remove or narrow data; old values go to the archive.")
@click.pass_context
@report_errors
def migrate(ctx: click.Context, plan_only: bool, allow_destructive: bool) -> None:
    """Bring the database to the site's definitions, without losing data."""
    site = open_site(ctx, require_migrated=False)
    try:
        plan = plan_migration(site.engine, site.registry, site.schema)
        if plan.is_empty:
            click.echo("The database is up to date.")
            return
        if plan_only:
            click.echo("The migration would:")
            for line in plan.describe():
                click.echo(f"  - {line}")
            from engine.storage.migration import applied_state
            from engine.storage.migration.pack_steps import pending_steps

            previous = applied_state(site.engine)
            for data_step in pending_steps(site.registry, previous.packs if previous else None):
                click.echo(f"  - {data_step.describe()}")
            if plan.destructive:
                click.echo(
                    f"{len(plan.destructive)} change(s) would remove or narrow data; they need "
                    "--allow-destructive (old values are kept in the archive)."
                )
            return
        click.echo("Migrating:")
        try:
            migrate_site(site, allow_destructive=allow_destructive)
        except MigrationRefused:
            click.echo("Nothing was changed.", err=True)
            raise
        click.echo("Done.")
    finally:
        site.close()


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write the JSON Schemas into.")
@report_errors
def schema(out_dir: Path) -> None:
    """Write the JSON Schemas of every definition file kind (for editors)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, document in all_schemas().items():
        (out_dir / name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
        click.echo(f"wrote {out_dir / name}")


def register(group: click.Group) -> None:
    for command in (init, check, migrate, schema):
        group.add_command(command)
