"""A demo-like site served for real on localhost, for the Playwright tests and screenshots.

The app runs in a background thread under werkzeug's ``make_server`` on a
free port, so the browser talks HTTP to exactly what ``crm serve`` runs.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from engine.context import Clock
from engine.demo import load_demo
from engine.site import Site
from engine.web import create_app
from tests.support import open_migrated, write_site

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
LOGIN, PASSWORD = "demo", "demo-password-1"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return f"Debian's chromium is not installed ({CHROMIUM}); .ci/run installs it"
    return None


def require_chromium() -> None:
    """Skip with the reason when the browser cannot run here; under ``CI`` fail instead."""
    missing = chromium_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the browser tests: {missing}")
        pytest.skip(missing)


def demo_site(root: Path, *, clock: Clock | None = None) -> Site:
    """A migrated core site with the core pack's demo data and a ``demo`` admin."""
    write_site(root, f"sqlite:///{root / 'crm.db'}", ["core"], name="Jinding Trading CRM")
    site = open_migrated(root, clock=clock)
    site.users.create(LOGIN, password=PASSWORD, display_name="Demo admin", roles=["admin"],
                      is_admin=True)
    actor = site.users.actor(LOGIN)
    load_demo(site.records, actor, [Path(p.path) for p in site.registry.packs.values()],
              workflows=site.workflows)
    return site


@contextmanager
def serve(site: Site) -> Iterator[str]:
    """Serve ``site`` on a free localhost port; yields the base URL."""
    server = make_server("127.0.0.1", 0, create_app(site), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
