"""``crm demo``: from a fresh install to a seeded CRM in one command."""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli.main import report_errors
from engine.cli.site_commands import command_clock, create_site, migrate_site
from engine.cli.web_commands import serve_site
from engine.context import Actor
from engine.demo import TravelClock, load_demo
from engine.notifications.worker import start_embedded
from engine.pack_code import site_pack_modules
from engine.site import SITE_FILE, Site

DEMO_LOGIN = "admin"
DEMO_PASSWORD = "visioncrm-demo"
#: The demo company's letterhead, so printed documents look like the real thing.
DEMO_LETTERHEAD = """\
company:
  name: {en: "Vision Demo Trading Co., Ltd.", zh: 远景示范贸易有限公司}
  address: {en: "88 Century Avenue, Pudong, Shanghai", zh: 上海市浦东新区世纪大道88号}
  phone: "+86 21 5888 0000"
"""


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("crm-demo"), show_default=True, help="Where to create the demo site.")
@click.option("--pack", "packs", multiple=True, default=("core",), show_default=True)
@click.option("--locale", type=click.Choice(["en", "zh"]), default="zh", show_default=True)
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Serve the web UI once the demo is ready.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--size", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also generate a company with this many customers (and their contacts, "
                   "deals, activities...), e.g. 300.")
@click.option("--seed", default=2026, show_default=True, type=int,
              help="The generator's seed: the same seed gives the same data.")
@click.pass_context
@report_errors
def demo(ctx: click.Context, directory: Path, packs: tuple[str, ...], locale: str, serve: bool, host: str,
         port: int, size: int, seed: int) -> None:
    """Create (or reopen) a demo site on SQLite with demo data, then serve it (with the
    worker running in the same process)."""
    fresh = not (directory / SITE_FILE).exists()
    if fresh:
        create_site(directory, name="VisionCRM demo", packs=list(packs),
                    database_url="sqlite:///crm.db", locale=locale)
        with (directory / SITE_FILE).open("a", encoding="utf-8") as settings:
            settings.write(DEMO_LETTERHEAD)
    with Site.open(directory, clock=TravelClock(command_clock(ctx))) as site:
        click.echo("Migrating the database:")
        migrate_site(site, allow_destructive=False, applied_by="demo")
        if fresh:
            site.users.create(DEMO_LOGIN, password=DEMO_PASSWORD, display_name="Demo admin",
                              language=locale, roles=["admin"], is_admin=True)
            actor = site.users.actor(DEMO_LOGIN)
            paths = [Path(p.path) for p in site.registry.packs.values()]
            with click.progressbar(length=1, label="Loading demo data") as bar:
                def progress(done: int, total: int) -> None:
                    bar.length = total
                    bar.update(1)

                count = load_demo(site.records, actor, paths, progress,
                                  workflows=site.workflows)
            click.echo(f"Created {count} demo records.")
            if size:
                generate_company(site, size, seed)
        else:
            actor = Actor.system()
            if size:
                click.echo("The demo site exists already: --size applies only when it is "
                           "created (remove the folder to start again).")
        customers = site.records.count(actor, "customer") if "customer" in site.registry.entities else 0
    click.echo(f"\nDemo site ready in {directory.resolve()} ({customers} customers).")
    click.echo(f"Log in as {DEMO_LOGIN} / {DEMO_PASSWORD}")
    click.echo(f"Try:  crm --site {directory} record list opportunity --sort -amount")
    if serve:
        click.echo(f"Web UI: http://{host}:{port}/  (log in as {DEMO_LOGIN} / {DEMO_PASSWORD})")
        with Site.open(directory, clock=command_clock(ctx)) as site:
            # One process serves the demo: reminders, notifications, scheduled jobs and big
            # imports are run here too, as `crm serve --with-worker` runs them.
            start_embedded(site)
            serve_site(site, host, port)


def generate_company(site: Site, size: int, seed: int) -> None:
    """Run each pack's demo generator with a progress bar, then print the users' logins."""
    for pack, module in site_pack_modules(site, "demo_generator").items():
        with click.progressbar(length=size, label=f"Generating {pack} demo data") as bar:
            def progress(done: int, total: int) -> None:
                bar.update(done - bar.pos)

            made = module.generate(site, size, seed=seed, progress=progress)
        click.echo(f"Generated {made.total} records: "
                   + ", ".join(f"{n} {entity}" for entity, n in made.counts.items()))
        click.echo("Generated users (login / password, role, team):")
        for user in made.users:
            click.echo(f"  {user.login:<16} / {user.password}  {user.role:<8} "
                       f"{user.team or '-':<6} {user.display_name}")


def register(group: click.Group) -> None:
    group.add_command(demo)
