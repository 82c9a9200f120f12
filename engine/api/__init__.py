"""The REST API, ``/api/v1``: records, transitions, files, prints, calendar, metadata, OpenAPI.

Authentication is a Bearer API token or the browser session (whose writes
need the ``X-CSRF-Token`` header); every answer is JSON, every error
``application/problem+json``.  Bodies larger than :data:`MAX_BODY` are
refused with 413 before they are read (file uploads have their own limit:
the site's file size times the files one request may carry).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException

from engine.api import (
    attachments,
    calendar,
    dashboards,
    documents,
    duplicates,
    exports,
    imports,
    ledgers,
    problems,
    records,
    transitions,
)
from engine.api.auth import api_actor, authenticate
from engine.api.meta import describe
from engine.api.openapi import document
from engine.errors import CrmError
from engine.http.context import site

PREFIX = "/api/v1"
#: The largest request body the API reads (bytes).
MAX_BODY = 1024 * 1024

bp = Blueprint("api", __name__, url_prefix=PREFIX)


class TooLarge(CrmError):
    status = 413
    code = "too_large"


#: Endpoints that take more than MAX_BODY (file uploads), with the function giving their limit.
LARGE_BODIES = {"api.upload_attachments": attachments.upload_limit,
                "api.import_records": imports.upload_limit}


@bp.before_request
def _before() -> None:
    limit = LARGE_BODIES[request.endpoint]() if request.endpoint in LARGE_BODIES else MAX_BODY
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"The request body is larger than {limit} bytes.")
    authenticate()


@bp.get("/meta")
def meta() -> Response:
    return records.answer(describe(site(), api_actor()))


@bp.get("/openapi.json")
def openapi() -> Response:
    return records.answer(document(site(), api_actor(), PREFIX))


dashboards.register(bp)  # before records: /dashboards is not an entity
exports.register(bp)  # before records: /<entity>/export is not a record
imports.register(bp)  # before records: /<entity>/import is not a record
ledgers.register(bp)  # before records: /<entity>/balances is not a record
attachments.register(bp)  # /attachments/<key> is not an entity
calendar.register(bp)  # /calendar is not an entity
documents.register(bp)
records.register(bp)
transitions.register(bp)
duplicates.register(bp)
bp.register_error_handler(CrmError, problems.crm_error)
bp.register_error_handler(HTTPException, problems.http_error)
bp.register_error_handler(Exception, problems.unexpected)


def register_api(app: Flask) -> None:
    """Mount the API on the web app: the blueprint, and its own CSRF rule.

    The app checks a form CSRF token before every write; API calls are
    checked by :func:`engine.api.auth.authenticate` instead (a Bearer token
    needs none, a session needs the header), so the app's check skips them.
    """
    funcs = app.before_request_funcs.setdefault(None, [])

    def wrap(func: Any) -> Any:
        def skip_api() -> Any:
            if request.path.startswith(PREFIX + "/"):
                return None
            return func()
        skip_api.__name__ = getattr(func, "__name__", "before_request")
        return skip_api

    funcs[:] = [wrap(f) if getattr(f, "__name__", "") == "check_csrf" else f for f in funcs]
    app.register_blueprint(bp)

    def unrouted(exc: HTTPException) -> Any:
        """An API path no route matches (404, 405) still answers problem+json."""
        if request.path.startswith(PREFIX + "/"):
            return problems.http_error(exc)
        fallback = app.error_handler_spec[None][None].get(HTTPException)
        return fallback(exc) if fallback is not None else exc

    app.register_error_handler(404, unrouted)
    app.register_error_handler(405, unrouted)
