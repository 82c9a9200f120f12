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
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}

#: Defines ``contrast(el)`` in a page function: the WCAG 2 contrast ratio of an element's
#: text colour against the first opaque background behind it (white when none is).
CONTRAST_FUNCTION = """
  const rgba = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = rgba(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c;
    }
    return [255, 255, 255];
  };
  const luminance = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const contrast = (el) => {
    const [a, b] = [luminance(rgba(getComputedStyle(el).color)), luminance(background(el))];
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  };
"""


def with_contrast(body: str) -> str:
    """A page function (for ``page.evaluate``) whose ``body`` may call ``contrast(el)``."""
    return "() => {" + CONTRAST_FUNCTION + body + "}"


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
