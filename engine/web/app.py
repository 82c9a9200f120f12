"""The Flask app factory: one app serving one site.

``create_app(site)`` takes the opened site explicitly and keeps it on the
app, so nothing about a site lives in module globals.  Sessions are signed
cookies (HttpOnly, SameSite=Lax, Secure outside of local HTTP when
``CRM_SECURE_COOKIES`` is set) that expire after a period of inactivity;
the key that signs them comes from :func:`engine.http.security.secret_key`.
Engine errors become pages with their own status (404, 403, 409, 422,
429); anything unexpected becomes a plain 500 page, never a stack trace.

Production: ``gunicorn 'engine.web.wsgi:app'`` with ``CRM_SITE`` (and
``CRM_SECRET_KEY``) in the environment; every worker opens the site itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from flask import Flask, current_app, g, jsonify, make_response, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter
from werkzeug.wrappers import Response

from engine.errors import CrmError, DatabaseBusy, SchemaOutOfDate
from engine.http import reload
from engine.http.context import EXTENSION, WebState, language, load_actor, state
from engine.http.security import add_security_headers, check_csrf, csrf_token, secret_key
from engine.metadata.entity_views import ViewRegistry
from engine.metadata.values import INT_MAX
from engine.services.views.dashboards import DashboardService
from engine.site import Site
from engine.web import auth, calendar, inbox, till
from engine.web.admin import jobs as job_admin
from engine.web.admin import operations
from engine.web.dashboards import pages as dashboard  # noqa: F401 - routes
from engine.web.documents import attachments, printing
from engine.web.i18n import LANGUAGES, translate
from engine.web.navigation import navigation
from engine.web.records import (  # noqa: F401 - routes of the records blueprint
    actions,
    export_links,
    form_rules,
    forms,
    imports,
    kanban,
    list_actions,
    quick,
    transfer,
)
from engine.web.records import pages as records

log = logging.getLogger(__name__)
SESSION_TIMEOUT = dt.timedelta(hours=8)


#: Pages that take files larger than MAX_CONTENT_LENGTH, with the function giving their limit.
LARGE_BODIES = {"attachments.upload": attachments.upload_limit,
                "records.import_records": imports.upload_limit}


def _body_limit() -> None:
    """A page's own body limit, set before anything reads the form (the CSRF check does)."""
    limit = LARGE_BODIES.get(request.endpoint or "")
    if limit is not None:
        request.max_content_length = limit()


class RecordIdConverter(IntegerConverter):
    """``<int:...>`` in every route: a number no id column can hold becomes 0, which no
    record has, so the view answers 404 for it.

    Without the bound such an id reached the database driver and came back as
    a 500.  Refusing it in the converter instead would make werkzeug answer
    405 for the other methods of the same path.
    """

    def to_python(self, value: str) -> Any:
        if len(value) > 19:  # before int(): thousands of digits are slow to convert
            return 0
        number = super().to_python(value)
        return number if number <= INT_MAX else 0


def create_app(site: Site, *, testing: bool = False) -> Flask:
    """A Flask app serving ``site`` (see the module docstring)."""
    app = Flask(__name__)
    app.url_map.converters["int"] = RecordIdConverter  # before any route is added
    app.config.update(
        SECRET_KEY=secret_key(site),
        TESTING=testing,
        SESSION_COOKIE_NAME="visioncrm_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(os.environ.get("CRM_SECURE_COOKIES")),
        SESSION_REFRESH_EACH_REQUEST=True,
        PERMANENT_SESSION_LIFETIME=SESSION_TIMEOUT,
        MAX_CONTENT_LENGTH=4 * 1024 * 1024,
    )
    app.extensions[EXTENSION] = web_state(site)
    reload.install(app, web_state)  # follow `crm migrate` run by other processes
    app.jinja_env.autoescape = True
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.before_request(_body_limit)  # before check_csrf reads the form
    app.before_request(load_actor)
    app.before_request(check_csrf)
    app.after_request(add_security_headers)
    app.context_processor(_template_globals)
    app.register_blueprint(auth.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(attachments.bp)  # files of records
    app.register_blueprint(printing.bp)  # printed documents
    app.register_blueprint(calendar.bp)  # calendar and phone feed
    app.register_blueprint(inbox.bp)  # /inbox and the header's unread count
    app.register_blueprint(job_admin.bp)  # /admin/jobs: scheduled jobs and the last backup
    app.register_blueprint(till.bp)  # /lookup: find a record by its exact keys
    from engine.api import register_api  # /api/v1: engine/api

    register_api(app)
    operations.install(app)  # /healthz, /readyz, /metrics
    app.add_url_rule("/favicon.ico", "favicon", _favicon)  # asked for by every browser
    app.register_error_handler(CrmError, _crm_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    proxies = _trusted_proxies()
    if proxies:
        # behind nginx every request comes from the proxy: take the client's address (login
        # throttling, login history) and scheme (https links) from the headers it sets
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    return app


def _favicon() -> Response:
    """The site icon where browsers look for it (pages link static/favicon.svg)."""
    response = current_app.send_static_file("favicon.ico")
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response


def _trusted_proxies() -> int:
    """How many reverse proxies ``CRM_PROXIES`` says stand in front (0: trust no header).

    X-Forwarded-For is only believed when an operator said a proxy sets it;
    otherwise any client could pick the address its failed logins count against.
    """
    value = os.environ.get("CRM_PROXIES", "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise CrmError(f"CRM_PROXIES must be the number of proxies in front of VisionCRM "
                       f"(e.g. 1 for nginx), not {value!r}.")
    return int(value)


def web_state(site: Site) -> WebState:
    """What the app keeps for a site; rebuilt when the site's definitions change."""
    return WebState(site=site, views=ViewRegistry(site.registry), dashboards=DashboardService(site))


def _template_globals() -> dict[str, Any]:
    lang = language()
    me = g.get("actor")
    web = state()
    return {
        "t": lambda key, **params: translate(key, lang, **params),
        "lang": lang,
        "languages": LANGUAGES,
        "me": me,
        "site_name": web.site.config.name,
        "nav": navigation(web.site, me, lang) if me is not None else [],
        "csrf_token": csrf_token,
        "csrf_field": lambda: Markup('<input type="hidden" name="csrf_token" value="{}">')
        .format(csrf_token()),
        "url_with": _url_with,
        "quick_forms": quick.template_quick_forms,
        "may_transfer": lambda: me is not None and web.site.transfers.may_transfer(me),
    }


def _url_with(**changes: Any) -> str:
    """The current page's URL with some query arguments changed (None removes one)."""
    from flask import url_for

    args = {**request.args.to_dict(), **changes}
    args = {k: v for k, v in args.items() if v not in (None, "")}
    return url_for(request.endpoint or "records.home", **(request.view_args or {}), **args)


def _wants_json() -> bool:
    return request.endpoint == "records.lookup" or (
        request.accept_mimetypes.best == "application/json")


def _error_page(status: int, message: str) -> tuple[str | Response, int]:
    if _wants_json():
        return jsonify({"message": message}), status
    title = translate(f"error_{status}", language())
    return render_template("error.html", status=status, title=title, message=message), status


def _crm_error(exc: CrmError) -> tuple[str | Response, int]:
    if isinstance(exc, SchemaOutOfDate | DatabaseBusy):
        if isinstance(exc, SchemaOutOfDate):
            reload.check_soon()
        page, status = _error_page(exc.status, exc.message)
        response = make_response(page, status)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response, status
    if exc.status >= 500:
        log.error("engine error on %s: %s", request.path, exc.message)
        return _error_page(exc.status, translate("error_500", language()))
    return _error_page(exc.status, exc.message)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 400 and exc.description == "csrf":
        return make_response(_error_page(400, translate("csrf_failed", language())))
    response = make_response(
        _error_page(status, exc.name if status < 500 else translate("error_500", language())))
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # RFC 9110 15.5.6
    return response


def _unexpected(exc: Exception) -> tuple[str | Response, int]:
    busy = DatabaseBusy.from_exception(exc)
    if busy is not None:
        log.warning("database busy on %s", request.path)
        return _crm_error(busy)
    log.exception("unexpected error on %s", request.path)
    return _error_page(500, translate("error_500", language()))
