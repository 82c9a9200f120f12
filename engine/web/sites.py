"""Several sites served by one installation, chosen by the request's host name.

A consultant hosts many clients: ``crm-sites.yaml`` lists the site folders
and the host names each answers to.  Each site is a separate app with its
own database, definitions, users and session key — a cookie signed for one
site is worthless on another, and no request can reach a site other than
the one its host names.  Sites open lazily, once per process, so migrating
(or breaking) one leaves the others serving.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from engine.context import Clock
from engine.errors import DefinitionError
from engine.metadata.schema_check import schema_problems
from engine.metadata.yaml_source import load_yaml
from engine.site import ENV_OVERRIDES, SITE_FILE, Site

log = logging.getLogger(__name__)
INSTALLATION_FILE = "crm-sites.yaml"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class HostedSite:
    root: Path
    hosts: tuple[str, ...]


def load_installation(path: Path) -> list[HostedSite]:
    """Read and check ``crm-sites.yaml``; every mistake is reported with its line."""
    doc = load_yaml(path, path.name)
    problems = schema_problems(doc, "installation")
    seen: dict[str, int] = {}
    sites = []
    for index, item in enumerate(doc.data.get("sites", []) if not problems else []):
        root = (path.parent / item["path"]).resolve()
        if not (root / SITE_FILE).is_file():
            problems.append(doc.problem(("sites", index, "path"),
                                        f"{root} holds no {SITE_FILE}: expected a site folder"))
        hosts = tuple(h.lower() for h in item["hosts"])
        for position, host in enumerate(hosts):
            if host in seen:
                problems.append(doc.problem(("sites", index, "hosts", position),
                                            f"the host '{host}' is already served by site "
                                            f"{seen[host] + 1}; a host picks exactly one site"))
            seen[host] = index
        sites.append(HostedSite(root=root, hosts=hosts))
    for name in sorted(ENV_OVERRIDES):
        if os.environ.get(name):
            # one value for every site: one database for all clients, or one session key
            # with which a session of one site would open the others
            problems.append(doc.problem(("sites",), (
                f"{name} is set in the environment, where it would apply to every site "
                f"listed here; unset it and give each site its own {ENV_OVERRIDES[name]} in its "
                f"{SITE_FILE}" + (" (or leave it to the site's .secret_key file)"
                                  if name == "CRM_SECRET_KEY" else ""))))
    if problems:
        raise DefinitionError(problems)
    return sites


class SiteDispatcher:
    """A WSGI app handing each request to the app of the site its host names."""

    def __init__(self, sites: list[HostedSite],
                 make_app: Callable[[Site], Flask] | None = None, *,
                 clock: Clock | None = None) -> None:
        self.by_host = {host: hosted for hosted in sites for host in hosted.hosts}
        self._make_app = make_app
        self._clock = clock  # every site's; None: the default clock (engine/context.py)
        self._apps: dict[Path, Flask] = {}
        self._lock = threading.Lock()

    def app_for(self, hosted: HostedSite) -> Flask:
        app = self._apps.get(hosted.root)
        if app is None:
            with self._lock:
                app = self._apps.get(hosted.root)
                if app is None:
                    make_app = self._make_app
                    if make_app is None:
                        from engine.web.app import create_app as make_app
                    app = make_app(Site.open(hosted.root, clock=self._clock))
                    self._apps[hosted.root] = app
        return app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = (environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "").lower()
        host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        hosted = self.by_host.get(host)
        if hosted is None:
            body = b"No site is served under this host name.\n"
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                             ("Content-Length", str(len(body)))])
            return [body]
        try:
            app = self.app_for(hosted)
        except Exception:
            log.exception("site %s could not be opened", hosted.root)
            body = b"This site is unavailable; its administrator has been told.\n"
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8"),
                                                       ("Retry-After", "30"),
                                                       ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    def close(self) -> None:
        for app in self._apps.values():
            from engine.http.context import EXTENSION

            app.extensions[EXTENSION].site.close()
        self._apps.clear()
