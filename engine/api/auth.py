"""Who calls the API: a Bearer token, or the browser session (CSRF header for writes).

A token is checked by :meth:`UserService.actor_for_token` on every request;
an unknown, expired or revoked token, or a deactivated user's, is 401 with
one message for all.  The UI's own calls use the session the web app has
already loaded; a state-changing one must carry the session's CSRF token in
``X-CSRF-Token`` (a form field does not count: the API reads JSON only).
"""

from __future__ import annotations

import hmac

from flask import g, request, session

from engine.context import Actor
from engine.errors import CrmError, NotFound, PermissionDenied
from engine.http.context import site
from engine.http.security import CSRF_FIELD, CSRF_HEADER, SAFE_METHODS


class Unauthorized(CrmError):
    status = 401
    code = "unauthorized"


class CsrfMissing(CrmError):
    status = 403
    code = "csrf_failed"


def authenticate() -> None:
    """Before each API request: set ``g.api_actor`` or refuse."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use 'Authorization: Bearer <token>'.")
        try:
            g.api_actor = site().users.actor_for_token(token.strip())
        except (PermissionDenied, NotFound):
            raise Unauthorized("The token is not valid (unknown, expired or revoked).") from None
        return
    session_actor = g.get("actor")
    if session_actor is None:
        raise Unauthorized("Authentication required: a Bearer token or a session.")
    if request.method not in SAFE_METHODS:
        expected = session.get(CSRF_FIELD)
        given = request.headers.get(CSRF_HEADER)
        if not expected or not given or not hmac.compare_digest(str(expected), str(given)):
            raise CsrfMissing(f"A session's writes need the {CSRF_HEADER} header.")
    g.api_actor = session_actor


def api_actor() -> Actor:
    return g.api_actor
