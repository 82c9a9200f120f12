"""Keeping a long-running ``crm worker`` on the definitions the database was migrated to.

After ``crm migrate`` in another process, every write of a process still
built from the old definitions is refused (engine/storage/database.py,
``check_definitions``) — for a worker that means every claim and every
delivery, until it is restarted, while messages pile up. The web app
reloads by itself (engine/http/reload.py); this does the same for the
worker: a watcher looks at the applied definitions every few seconds,
stops the worker's loop when they moved, reopens the site from its folder
and starts a new worker on it — only once the folder's definitions are the
applied ones (a machine whose pack files were not updated yet keeps waiting,
writing nothing).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from engine.errors import CrmError
from engine.site import Site
from engine.storage.migration.state import applied_state

log = logging.getLogger(__name__)
CHECK_INTERVAL = 2.0


class Runnable(Protocol):
    def run_forever(self, stop: threading.Event, *, poll: float = ...) -> None: ...


def definitions_moved(site: Site) -> bool:
    """Whether the database was migrated to other definitions than the site's."""
    try:
        applied = applied_state(site.engine)
    except Exception:  # noqa: BLE001 - a database hiccup is the worker's jobs' to report
        return False
    return applied is not None and applied.definitions_hash != site.registry.definitions_hash


def _reopen(site: Site) -> Site | None:
    """The site reopened from its folder, if that gives the applied definitions."""
    try:
        fresh = Site.open(site.config.root, clock=site.clock)
    except CrmError as exc:
        log.error("definitions changed in the database, but the site's files do not load: %s",
                  exc.message)
        return None
    if definitions_moved(fresh):
        log.warning("definitions changed in the database but this machine's files differ; "
                    "waiting for them to match")
        fresh.close()
        return None
    return fresh


def run_following_definitions(site: Site, stop: threading.Event,
                              make_worker: Callable[[Site, threading.Event], Runnable], *,
                              poll: float, check_every: float = CHECK_INTERVAL) -> None:
    """Run ``make_worker(site, generation_stop)`` until ``stop``, starting a new one on the
    reopened site whenever the database moves to other definitions. ``site`` stays the
    caller's to close; sites opened here are closed here."""
    current = site
    try:
        while not stop.is_set():
            generation = threading.Event()

            def watch(watched: Site = current, done: threading.Event = generation) -> None:
                while not done.is_set():
                    if stop.wait(check_every) or definitions_moved(watched):
                        done.set()

            watcher = threading.Thread(target=watch, name="crm-worker-definitions", daemon=True)
            watcher.start()
            make_worker(current, generation).run_forever(generation, poll=poll)
            generation.set()
            watcher.join()
            while not stop.is_set():
                fresh = _reopen(current)
                if fresh is not None:
                    if current is not site:
                        current.close()
                    current = fresh
                    log.info("worker reloaded definitions %s",
                             current.registry.definitions_hash[:12])
                    break
                stop.wait(check_every)
    finally:
        if current is not site:
            current.close()
