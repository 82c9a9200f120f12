"""The in-app inbox: the user's notifications, the unread count in the header, the digest choice.

Everything goes through :class:`~engine.notifications.inbox.InboxService`
with the request's actor, so a user only ever sees and marks their own
notifications.  The blueprint adds ``inbox_unread()`` and ``inbox_label``
to every template (the header shows the count).  Labels are kept here, in
both languages, beside the only page that uses them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.notifications.inbox import InboxService
from engine.web.context import actor, language, login_required, site

bp = Blueprint("inbox", __name__)

LABELS: dict[str, dict[str, str]] = {
    "inbox": {"en": "Inbox", "zh": "消息"},
    "unread": {"en": "unread", "zh": "未读"},
    "empty": {"en": "No notifications yet.", "zh": "暂无消息。"},
    "mark_all": {"en": "Mark all as read", "zh": "全部标为已读"},
    "mark_one": {"en": "Mark as read", "zh": "标为已读"},
    "marked": {"en": "{count} notification(s) marked as read.", "zh": "已将 {count} 条消息标为已读。"},
    "open_record": {"en": "Open the record", "zh": "打开记录"},
    "digest": {"en": "Send my e-mail reminders as one daily digest",
               "zh": "将邮件提醒合并为每日摘要发送"},
    "digest_on": {"en": "Your e-mail reminders now come as a daily digest.",
                  "zh": "邮件提醒将以每日摘要发送。"},
    "digest_off": {"en": "Your e-mail reminders now come one by one.",
                   "zh": "邮件提醒将逐条发送。"},
    "save": {"en": "Save", "zh": "保存"},
    "all": {"en": "All", "zh": "全部"},
}


def label(key: str, **params: Any) -> str:
    words = LABELS[key]
    return words.get(language(), words["en"]).format(**params)


def _service() -> InboxService:
    current = site()
    return InboxService(current.schema, current.engine, current.clock)


@bp.app_context_processor
def _header() -> dict[str, Any]:
    def unread() -> int:
        me = g.get("actor")
        return _service().unread_count(me) if me is not None else 0

    return {"inbox_unread": unread, "inbox_label": lambda key="inbox": label(key)}


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
                           unread=service.unread_count(me), digest=service.digest(me),
                           label=label)


@bp.route("/inbox/read", methods=["POST"])
@login_required
def mark_read() -> Response:
    chosen = request.form.get("id")
    ids = [int(chosen)] if chosen and chosen.isdigit() else None
    count = _service().mark_read(actor(), ids)
    if ids is None:
        flash(label("marked", count=count), "success")
    return redirect(url_for("inbox.inbox"))


@bp.route("/inbox/digest", methods=["POST"])
@login_required
def digest() -> Response:
    on = request.form.get("digest") == "on"
    _service().set_digest(actor(), on)
    flash(label("digest_on" if on else "digest_off"), "success")
    return redirect(url_for("inbox.inbox"))
