"""Logging in and out, and the user's own profile (language and password).

Logins go through :meth:`UserService.authenticate`, which throttles failed
attempts per login and per source address; the session is cleared and a
fresh one started on login, so a session fixed before login is useless.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from engine.errors import Throttled, ValidationFailed
from engine.web.context import actor, language, login_required, site
from engine.web.i18n import LANGUAGES, translate
from engine.web.security import csrf_token

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never redirect to another host after login."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return url_for("records.home")
    parts = urlsplit(target)
    return target if not parts.netloc and not parts.scheme else url_for("records.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        if g.get("actor") is not None:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("login.html", next=request.args.get("next", ""))
    name = request.form.get("login", "").strip()
    password = request.form.get("password", "")
    target = request.form.get("next")
    try:
        user = site().users.authenticate(name, password, source=request.remote_addr)
    except Throttled as exc:
        error = translate("throttled", language(), minutes=max(1, exc.retry_after // 60))
        return render_template("login.html", error=error, login=name, next=target), 429
    if user is None:
        error = translate("bad_login", language())
        return render_template("login.html", error=error, login=name, next=target), 401
    session.clear()  # a fresh session (and CSRF token): nothing carried over from before
    session.permanent = True
    session["login"] = user["login"]
    csrf_token()
    return redirect(_safe_next(target))


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile() -> str | Response | tuple[str, int]:
    me = actor()
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        if request.form.get("action") == "language":
            chosen = request.form.get("language", "en")
            if chosen in LANGUAGES:
                # UserService has no public setter for the language yet.
                site().users._set(me.login, language=chosen)  # noqa: SLF001
                flash(translate("language_saved", chosen), "ok")
                return redirect(url_for("auth.profile"))
        elif request.form.get("action") == "password":
            errors = _change_password(me.login)
            if not errors:
                flash(translate("password_changed", language()), "ok")
                return redirect(url_for("auth.profile"))
    user = site().users.get(me.login)
    status = 422 if errors else 200
    return render_template("profile.html", user=user, languages=LANGUAGES,
                           errors=errors), status


def _change_password(login: str) -> dict[str, list[str]]:
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    try:
        if site().users.authenticate(login, current, source=request.remote_addr) is None:
            return {"current_password": [translate("wrong_password", language())]}
        site().users.reset_password(login, new)
    except Throttled as exc:
        minutes = max(1, exc.retry_after // 60)
        return {"current_password": [translate("throttled", language(), minutes=minutes)]}
    except ValidationFailed as exc:
        return {"new_password": exc.errors.get("password", [exc.message])}
    return {}
