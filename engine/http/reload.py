"""Following definition changes made by another process, without restarting.

Several app processes (gunicorn workers, other machines) serve one site.
When ``crm migrate`` runs anywhere, the others must stop writing under the
old definitions — the storage layer refuses such writes with a 503
(:func:`engine.storage.database.check_definitions`) — and should pick up the
new ones by themselves.  Before a request, at most every
``CHECK_INTERVAL`` seconds (and at once after a refused write), this module
reads the applied definitions hash (one indexed row) and, when it moved,
reopens the site from its folder.  The reopened site is used only if its
definitions are exactly the applied ones; a machine whose pack files were
not updated yet keeps refusing writes until they are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app

from engine.errors import CrmError
from engine.http.context import EXTENSION, WebState, state
from engine.site import Site
from engine.storage.migration.state import applied_state

log = logging.getLogger(__name__)
WATCH = "visioncrm_definitions_watch"
CHECK_INTERVAL = 2.0


@dataclass
class DefinitionsWatch:
    build_state: Callable[[Site], WebState]
    interval: float = CHECK_INTERVAL
    checked: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def install(app: Flask, build_state: Callable[[Site], WebState], *,
            interval: float = CHECK_INTERVAL) -> None:
    app.extensions[WATCH] = DefinitionsWatch(build_state=build_state, interval=interval)
    app.before_request(follow_definitions)


def check_soon() -> None:
    """Called when a write was refused as stale: look again on the next request."""
    watch: DefinitionsWatch | None = current_app.extensions.get(WATCH)
    if watch is not None:
        watch.checked = float("-inf")  # due now, however long the interval (monotonic may be small)


def follow_definitions() -> None:
    watch: DefinitionsWatch = current_app.extensions[WATCH]
    now = time.monotonic()
    if now - watch.checked < watch.interval:
        return
    watch.checked = now
    current = state().site
    try:
        applied = applied_state(current.engine)
    except Exception:  # noqa: BLE001 - the request itself will report a database failure
        return
    if applied is None or applied.definitions_hash == current.registry.definitions_hash:
        return
    with watch.lock:
        if state().site is not current:  # another thread reloaded meanwhile
            return
        try:
            fresh = Site.open(current.config.root, clock=current.clock)
        except CrmError as exc:
            log.error("definitions changed in the database, but this site's files do not load: %s",
                      exc.message)
            return
        if fresh.registry.definitions_hash != applied.definitions_hash:
            log.warning("definitions changed in the database (%s) but this machine's files give %s;"
                        " writes stay refused until they match", applied.definitions_hash[:12],
                        fresh.registry.definitions_hash[:12])
            fresh.close()
            return
        current_app.extensions[EXTENSION] = watch.build_state(fresh)
        log.info("reloaded definitions %s", applied.definitions_hash[:12])
    current.close()  # its pools: the primary's and, when it has one, the replica's
