"""``crm serve``: the web UI on werkzeug's built-in server.

The built-in server is for one user on one machine (a demo, a trial);
production runs ``gunicorn 'engine.web.wsgi:app'`` (see engine/web/wsgi.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from engine.cli.main import report_errors
from engine.cli.site_commands import command_clock
from engine.site import Site, find_site_dir


def serve_site(site: Site, host: str, port: int) -> None:
    """Run the app for ``site`` until interrupted."""
    from werkzeug.serving import run_simple

    from engine.web.app import create_app

    app = create_app(site)
    click.echo(f"VisionCRM is running at http://{host}:{port}/  (Ctrl+C to stop)")
    run_simple(host, port, app, use_reloader=False, threaded=True)


def serve_with_gunicorn(root: Path | None, host: str, port: int, workers: int) -> None:
    """Replace this process by gunicorn serving the site with ``workers`` processes.

    Every worker opens the site itself (engine.web.wsgi); nothing is shared
    between them but the database, the session key and, when configured,
    Redis — which is what lets several machines serve one site as well.
    With ``root`` None it serves every site of ``$CRM_SITES``, by host name.
    """
    gunicorn = shutil.which("gunicorn", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                               os.environ.get("PATH", "")]))
    if gunicorn is None:
        raise click.ClickException("gunicorn is not installed: pip install gunicorn")
    if root is None:
        installation = Path(os.environ["CRM_SITES"])
        if not installation.is_file():
            raise click.ClickException(f"{installation} (CRM_SITES) does not exist; "
                                       "see docs/deployment.md.")
        from engine.web.sites import load_installation

        # its mistakes here, once, rather than in every gunicorn worker's boot
        served = ", ".join(host for hosted in load_installation(installation)
                           for host in hosted.hosts)
        click.echo(f"Serving {served} ({installation})")
    else:
        os.environ["CRM_SITE"] = str(root)
        os.environ.pop("CRM_SITES", None)  # engine.web.wsgi would serve those instead
    click.echo(f"VisionCRM is running at http://{host}:{port}/ with {workers} gunicorn workers")
    os.execv(gunicorn, [gunicorn, "--workers", str(workers), "--bind", f"{host}:{port}",
                        "--access-logfile", "-", "engine.web.wsgi:app"])


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Serve with gunicorn and this many worker processes (production).")
@click.option("--with-worker", is_flag=True,
              help="Also run the reminder scheduler and outbox delivery in this process "
                   "(single-process sites; see docs/reminders.md).")
@click.pass_context
@report_errors
def serve(ctx: click.Context, host: str, port: int, workers: int | None,
          with_worker: bool) -> None:
    """Serve the web UI of the site (for production use --workers, see docs/deployment.md)."""
    if workers is not None:
        if with_worker:
            raise click.UsageError("--with-worker runs in one process; with --workers, run "
                                   "'crm worker' beside gunicorn (see docs/deployment.md).")
        chosen = ctx.obj.get("site_dir")  # --site or $CRM_SITE
        installation = not chosen and os.environ.get("CRM_SITES")
        serve_with_gunicorn(None if installation else find_site_dir(chosen), host, port, workers)
        return
    with Site.open(ctx.obj.get("site_dir"), clock=command_clock(ctx)) as site:
        if with_worker:
            from engine.notifications.worker import start_embedded

            start_embedded(site)
            click.echo("Reminders and notifications are delivered by this process.")
        serve_site(site, host, port)


def register(group: click.Group) -> None:
    group.add_command(serve)
