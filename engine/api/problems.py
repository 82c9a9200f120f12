"""Errors as ``application/problem+json`` (RFC 9457): never a stack trace, never SQL.

Engine errors keep their status and code; their field messages go in
``errors``, a stale version's current values in ``current`` and a refused
transition's reasons in ``reasons``.  A database busy with another writer
(SQLite's "database is locked", PostgreSQL's lock and statement timeouts)
is 503 with ``Retry-After``.  Anything else unexpected is logged and
answered with a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, json, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from engine.errors import (
    Conflict,
    CrmError,
    DatabaseBusy,
    SchemaOutOfDate,
    Throttled,
    TransitionRefused,
    ValidationFailed,
)
from engine.http import reload
from engine.metadata.values import to_json

log = logging.getLogger(__name__)
PROBLEM_TYPE = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 413: "Request too large",
          415: "Unsupported media type", 422: "Unprocessable content",
          428: "Precondition required", 429: "Too many requests",
          500: "Internal server error", 503: "Service unavailable"}


def problem(status: int, code: str, detail: str, **extra: Any) -> Response:
    body = {"type": f"urn:visioncrm:problem:{code}", "title": TITLES.get(status, "Error"),
            "status": status, "code": code, "detail": detail}
    body.update({k: to_json(v) for k, v in extra.items() if v is not None})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_TYPE)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="visioncrm"'
    return response


def crm_error(exc: CrmError) -> Response:
    if isinstance(exc, SchemaOutOfDate):
        reload.check_soon()
        response = problem(exc.status, exc.code, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, DatabaseBusy):
        log.warning("database busy on %s", request.path)
        response = problem(exc.status, exc.code, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if exc.status >= 500:
        log.error("engine error on %s: %s", request.path, exc.message)
        return problem(exc.status, exc.code, "The server could not answer this request.")
    extra: dict[str, Any] = {}
    detail = exc.message
    if isinstance(exc, ValidationFailed):
        extra["errors"] = exc.errors
    if isinstance(exc, Conflict):
        extra["current"] = exc.current
    if isinstance(exc, TransitionRefused):
        detail = exc.summary
        extra["reasons"] = [r.to_dict() for r in exc.reasons]
        extra["errors"] = exc.errors or None
    response = problem(exc.status, exc.code, detail, **extra)
    if isinstance(exc, Throttled):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        return problem(500, "error", "The server could not answer this request.")
    code = {413: "too_large", 404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request")
    detail = exc.description if status == 400 and exc.description else exc.name
    response = problem(status, code, str(detail))
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # RFC 9110 15.5.6
    return response


def unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return http_error(exc)
    busy = DatabaseBusy.from_exception(exc)
    if busy is not None:
        return crm_error(busy)
    log.exception("unexpected error on %s", request.path)
    return problem(500, "error", "The server could not answer this request.")
