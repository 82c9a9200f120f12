"""The buttons of a detail page: stage transitions, archive, restore, delete.

Each is a POST carrying the CSRF token and the version the page showed,
and goes through the services, which check rights and state again — a
button hidden from someone is never the only thing stopping them.  A
refused transition re-renders the detail page with every reason (409), or
with the messages of the values asked for on the way (422).
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from engine.errors import Conflict, Throttled, TransitionRefused, ValidationFailed
from engine.http.context import actor, language, login_required, site
from engine.web.i18n import translate
from engine.web.records.form_values import read_form
from engine.web.records.pages import bp, entity_and_views, render_detail


def _version() -> str | None:
    return request.form.get("version") or None


def _back(entity_key: str, record_id: int) -> Response:
    return redirect(url_for("records.detail", entity_key=entity_key, record_id=record_id))


@bp.route("/r/<entity_key>/<int:record_id>/transition", methods=["POST"])
@login_required
def transition(entity_key: str, record_id: int) -> tuple[str, int] | Response:
    entity, views = entity_and_views(entity_key)
    to_stage = request.form.get("to", "")
    given = [k for k in entity.fields
             if k != views.stage_field and (k in request.form or f"{k}__present" in request.form)]
    values = read_form(entity, given, request.form, site().config.timezone)
    try:
        moved = site().workflows.transition(
            actor(), entity.key, record_id, to_stage, values, version=_version(),
            comment=request.form.get("comment") or None)
    except TransitionRefused as exc:
        return render_detail(entity.key, record_id, 409, refusal=exc, refused_to=to_stage)
    except ValidationFailed as exc:
        return render_detail(entity.key, record_id, 422, action_errors=exc.errors,
                             refused_to=to_stage)
    except (Conflict, Throttled) as exc:
        return render_detail(entity.key, record_id, exc.status, action_message=exc.message)
    stage = entity.fields[views.stage_field] if views.stage_field else None
    label = stage.choices[moved[stage.key]].get(language()) if stage and stage.choices.get(
        moved.get(stage.key)) else to_stage
    flash(translate("moved_to", language(), stage=label), "success")
    return _back(entity.key, record_id)


@bp.route("/r/<entity_key>/<int:record_id>/<any(archive, restore):action>", methods=["POST"])
@login_required
def archive(entity_key: str, record_id: int, action: str) -> tuple[str, int] | Response:
    entity, _ = entity_and_views(entity_key)
    change = site().records.archive if action == "archive" else site().records.restore
    try:
        change(actor(), entity.key, record_id, version=_version())
    except Conflict as exc:
        return render_detail(entity.key, record_id, 409, action_message=exc.message)
    done = "archived_done" if action == "archive" else "restored_done"
    flash(translate(done, language()), "success")
    return _back(entity.key, record_id)


@bp.route("/r/<entity_key>/<int:record_id>/delete", methods=["POST"])
@login_required
def delete(entity_key: str, record_id: int) -> tuple[str, int] | Response:
    entity, _ = entity_and_views(entity_key)
    try:
        site().records.delete(actor(), entity.key, record_id, version=_version())
    except Conflict as exc:
        return render_detail(entity.key, record_id, 409, action_message=exc.message)
    flash(translate("deleted", language()), "success")
    return redirect(url_for("records.list_records", entity_key=entity.key))
