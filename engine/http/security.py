"""Secrets, CSRF tokens and security headers for the web pages and the API.

The API accepts the same session cookie as the pages (with the same CSRF
check), so both import this module from engine.http.

**Secret key.**  Sessions are signed cookies, so every process serving a
site must sign with the same key, and the key must outlive a restart or
everyone is logged out.  The key comes from ``$CRM_SECRET_KEY``
(production: set it in the environment of every worker) or ``secret_key``
in ``crm.yaml``, else from ``.secret_key`` in the site folder, generated on
first start with owner-only permissions.  Several gunicorn workers started
from the same folder therefore share it without configuration.

**CSRF.**  A small check of our own rather than Flask-WTF: the app has no
WTForms forms, and the whole mechanism is one random token kept in the
(signed) session and compared, in constant time, with the ``csrf_token``
field or ``X-CSRF-Token`` header of every state-changing request.
Together with ``SameSite=Lax`` cookies this stops cross-site form posts.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from flask import Response, abort, request, session

from engine.site import Site

SECRET_FILE = ".secret_key"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

#: No inline scripts or styles, nothing from other origins, never framed.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def secret_key(site: Site) -> str:
    """The key sessions are signed with (see the module docstring for where it comes from)."""
    if site.config.secret_key:
        return site.config.secret_key
    path = Path(site.config.root) / SECRET_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    # Written aside, then linked into place: of several workers starting at once,
    # the first link wins and every one of them reads that same key.
    draft = path.with_name(f"{SECRET_FILE}.{os.getpid()}.tmp")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
    finally:
        os.close(fd)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text(encoding="utf-8").strip()


def csrf_token() -> str:
    """This session's token, created on first use (templates put it in every form)."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """Refuse (400) a state-changing request without this session's token."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get(CSRF_FIELD)
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not expected or not given or not hmac.compare_digest(str(expected), str(given)):
        abort(400, description="csrf")


def add_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response
