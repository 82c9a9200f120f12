"""The in-app inbox: the user's notifications, the unread count in the header, the digest choice.

Everything goes through :class:`~engine.notifications.inbox.InboxService`
with the request's actor, so a user only ever sees and marks their own
notifications.  The blueprint adds ``inbox_unread()`` to every template
(the header shows the count); the page's words are in the web UI's
catalogue (:mod:`engine.web.i18n`, the ``inbox_`` keys) like every other page's.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.http.context import actor, language, login_required, site
from engine.metadata.values import whole_number
from engine.notifications.inbox import InboxService
from engine.web.i18n import translate

bp = Blueprint("inbox", __name__)


def _service() -> InboxService:
    current = site()
    return InboxService(current.schema, current.engine, current.clock)


@bp.app_context_processor
def _header() -> dict[str, Any]:
    def unread() -> int:
        me = g.get("actor")
        return _service().unread_count(me) if me is not None else 0

    return {"inbox_unread": unread}


@bp.route("/inbox")
@login_required
def inbox() -> str:
    unread_only = request.args.get("unread") == "1"
    service = _service()
    me = actor()
    entities = site().registry.entities
    items = []
    for row in service.messages(me, unread_only=unread_only, limit=200):
        entity = entities.get(row["entity"] or "")
        items.append({**row, "entity_label": entity.label.get(language()) if entity else None,
                      "link": url_for("records.detail", entity_key=row["entity"],
                                      record_id=row["record_id"])
                      if entity is not None and row["record_id"] else None})
    return render_template("inbox.html", items=items, unread_only=unread_only,
                           unread=service.unread_count(me), digest=service.digest(me))


@bp.route("/inbox/read", methods=["POST"])
@login_required
def mark_read() -> Response:
    chosen = request.form.get("id")
    number = whole_number(chosen)
    ids = [number] if number is not None else None
    count = _service().mark_read(actor(), ids)
    if ids is None:
        flash(translate("inbox_marked", language(), count=count), "success")
    return redirect(url_for("inbox.inbox"))


@bp.route("/inbox/digest", methods=["POST"])
@login_required
def digest() -> Response:
    on = request.form.get("digest") == "on"
    _service().set_digest(actor(), on)
    flash(translate("inbox_digest_on" if on else "inbox_digest_off", language()), "success")
    return redirect(url_for("inbox.inbox"))
