"""Logging in and out, and the user's own profile (language and password).

Logins go through :meth:`UserService.authenticate`, which slows failed
attempts down per login and address; the session is cleared and a fresh
one started on login, so a session fixed before login is useless.  A
session carries the user's session epoch: logging out, changing the
password and "log out everywhere" raise it, which ends every session of
the user — copies of the cookie included — in every process.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from engine.errors import Throttled, ValidationFailed
from engine.http.context import SESSION_EPOCH, actor, language, login_required, site
from engine.http.security import csrf_token
from engine.web.i18n import LANGUAGES, translate

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
        error = throttled_message(exc)
        response = render_template("login.html", error=error, login=name, next=target)
        return response, 429, {"Retry-After": str(exc.retry_after)}
    if user is None:
        error = translate("bad_login", language())
        return render_template("login.html", error=error, login=name, next=target), 401
    _start_session(user["login"], user["session_epoch"])
    return redirect(_safe_next(target))


def throttled_message(exc: Throttled) -> str:
    """How long to wait, in seconds under a minute, else in minutes."""
    if exc.retry_after < 60:
        return translate("throttled_seconds", language(), seconds=max(1, exc.retry_after))
    return translate("throttled", language(), minutes=-(-exc.retry_after // 60))


def _start_session(login: str, epoch: int) -> None:
    """A fresh session (and CSRF token): nothing carried over from before."""
    session.clear()
    session.permanent = True
    session["login"] = login
    session[SESSION_EPOCH] = epoch
    csrf_token()


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """End every session of the user: this one, their other devices', and any copy."""
    if g.get("actor") is not None:
        site().users.end_sessions(g.actor.login)
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
                flash(translate("language_saved", chosen), "success")
                return redirect(url_for("auth.profile"))
        elif request.form.get("action") == "password":
            errors = _change_password(me.login)
            if not errors:
                # every other session (and any copy of this one) has ended; this browser
                # carries on under a fresh session
                _start_session(me.login, site().users.get(me.login)["session_epoch"])
                flash(translate("password_changed", language()), "success")
                return redirect(url_for("auth.profile"))
        elif request.form.get("action") == "sessions":
            _start_session(me.login, site().users.end_sessions(me.login))
            flash(translate("sessions_ended", language()), "success")
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
        return {"current_password": [throttled_message(exc)]}
    except ValidationFailed as exc:
        return {"new_password": exc.errors.get("password", [exc.message])}
    return {}
