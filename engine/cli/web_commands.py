"""``crm serve``: the web UI on werkzeug's built-in server.

The built-in server is for one user on one machine (a demo, a trial);
production runs ``gunicorn 'engine.web.wsgi:app'`` (see engine/web/wsgi.py).
"""

from __future__ import annotations

import click

from engine.cli.main import report_errors
from engine.site import Site


def serve_site(site: Site, host: str, port: int) -> None:
    """Run the app for ``site`` until interrupted."""
    from werkzeug.serving import run_simple

    from engine.web.app import create_app

    app = create_app(site)
    click.echo(f"VisionCRM is running at http://{host}:{port}/  (Ctrl+C to stop)")
    run_simple(host, port, app, use_reloader=False, threaded=True)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.pass_context
@report_errors
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the web UI of the site (for production use gunicorn, see the README)."""
    with Site.open(ctx.obj.get("site_dir")) as site:
        serve_site(site, host, port)


def register(group: click.Group) -> None:
    group.add_command(serve)
