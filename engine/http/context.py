"""Who is asking, and which site they ask: the request context of the pages and the API.

Both HTTP front ends (engine.web and engine.api) read the site and the actor
here, which is why it lives in engine.http rather than in the web pages.

The site is stored on the app (``app.extensions``), never in a module
global, so one process can serve several sites and tests can run apps
side by side.  The actor is rebuilt from the user record on every request
(a deactivated user, a changed role or ended sessions take effect at once,
in every process: nothing about the actor is kept between requests) and handed
explicitly to every service call; Flask's ``g`` and ``session`` stay here,
in the HTTP layer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, redirect, request, session, url_for

from engine.context import Actor
from engine.errors import NotFound
from engine.i18n import normalise
from engine.metadata.entity_views import ViewRegistry
from engine.services.views.dashboards import DashboardService
from engine.site import Site

EXTENSION = "visioncrm"
#: The session's copy of the user's ``session_epoch`` when it was issued.
SESSION_EPOCH = "epoch"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class WebState:
    """What the app knows for its whole life: the site and the views of its entities."""

    site: Site
    views: ViewRegistry
    dashboards: DashboardService


def state() -> WebState:
    return current_app.extensions[EXTENSION]


def site() -> Site:
    return state().site


def actor() -> Actor:
    """The logged-in actor (only called behind :func:`login_required`)."""
    return g.actor


def language() -> str:
    found = g.get("actor")
    if found is not None:
        return normalise(found.language)
    return normalise(state().site.config.locale)


def load_actor() -> None:
    """Before each request: the actor of the session's user, or None."""
    g.actor = None
    login = session.get("login")
    if not login:
        return
    try:
        g.actor = site().users.actor_for_session(login, session.get(SESSION_EPOCH))
    except NotFound:  # deleted, deactivated or its sessions ended since they logged in
        session.clear()


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("actor") is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
