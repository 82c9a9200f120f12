"""Customer resource transfer from the UI: preview what moves, then confirm.

Both steps call :class:`engine.services.records.transfer.TransferService` with the
actor, which decides from the roles who may transfer whose customers to
whom (an owner anyone's, a manager their team's; a salesperson gets 403) —
the page is only a form over the service, offering the people the service
names, by display name, and the rules by their translated names.  The confirm step re-plans inside its own
transaction, so what moves is what the rules say at that moment, and the
preview shown is exactly the plan the service would run then.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.errors import PermissionDenied, ValidationFailed
from engine.http.context import actor, language, login_required, site
from engine.services.records.transfer import RULES
from engine.web.i18n import translate
from engine.web.records.pages import bp


def _users() -> list[dict[str, Any]]:
    return [u for u in site().transfers.people(actor()) if u.get("active", True)]


def _choices() -> dict[str, Any]:
    return {"from_login": request.form.get("from_login", ""),
            "to_logins": [v for v in request.form.getlist("to_logins") if v],
            "rule": request.form.get("rule", "round_robin")}


@bp.route("/transfer", methods=["GET", "POST"])
@login_required
def transfer() -> tuple[str, int] | Response:
    me = actor()
    if not site().transfers.may_transfer(me):
        raise PermissionDenied(translate("error_403", language()))
    chosen = _choices()
    plan = None
    errors: dict[str, list[str]] = {}
    status = 422
    if request.method == "POST":
        if chosen["rule"] not in RULES:
            chosen["rule"] = "round_robin"
        try:
            if request.form.get("step") == "confirm":
                done = site().transfers.run(me, chosen["from_login"], chosen["to_logins"],
                                            rule=chosen["rule"])
                flash(translate("transfer_done", language(), count=done.get("total", 0)), "success")
                return redirect(url_for("records.transfer"))
            plan = site().transfers.preview(me, chosen["from_login"], chosen["to_logins"],
                                            rule=chosen["rule"])
        except ValidationFailed as exc:
            errors = exc.errors
        except PermissionDenied as exc:  # people outside the actor's scope
            errors, status = {"transfer": [exc.message]}, 403
    labels = {k: e.plural.get(language()) for k, e in site().registry.entities.items()}
    users = _users()
    names = {u["login"]: u.get("display_name") or u["login"] for u in users}
    html = render_template("transfer.html", users=users, chosen=chosen, plan=plan,
                           data=plan.to_data() if plan else None, rules=RULES, errors=errors,
                           labels=labels, names=names)
    return html, status if errors else 200
