"""Duplicates in the web UI: the warning before a new record is saved, and the merge page.

- **Before saving** a new record of a checked entity (the core pack's
  customers, see :data:`engine.services.records.duplicates.CHECKED_ENTITIES`), the
  form asks :func:`duplicate_warning`; when likely duplicates exist, a page
  lists them (each with why it matched, a link to it and to its merge page)
  and offers "save anyway", which posts the same values again with
  ``confirm_duplicates`` set.
- **The merge page** (``/r/<entity>/<id>/merge``, linked from the detail
  page) keeps the record it is opened on: it suggests that record's likely
  duplicates (or takes an id), previews what would change
  (:func:`engine.services.records.merge.plan_merge`) and merges on confirmation.

Everything goes through the services with the logged-in actor: duplicates
are only those the actor can read, and the merge checks its own rights.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.errors import CrmError
from engine.http.context import actor, language, login_required, site
from engine.metadata.entity_views import EntityViews
from engine.metadata.model import Entity
from engine.services.records.duplicates import CHECKED_ENTITIES, likely_duplicates
from engine.services.records.merge import merge, plan_merge
from engine.web.i18n import translate
from engine.web.records.pages import bp, entity_and_views, presenter

#: The form field that confirms saving despite likely duplicates.
CONFIRM_FIELD = "confirm_duplicates"
#: The form field that goes back to the form, its values kept.
BACK_FIELD = "edit_again"


@bp.app_context_processor
def _merge_globals() -> dict[str, Any]:
    """Lets the detail page show "Merge…" on the entities checked for duplicates."""
    return {"mergeable_entities": CHECKED_ENTITIES}


def duplicate_warning(entity: Entity, views: EntityViews,
                      values: dict[str, Any]) -> tuple[str, int] | None:
    """The "this may already exist" page for a new record, or None to go on saving."""
    if request.form.get(CONFIRM_FIELD) or entity.key not in CHECKED_ENTITIES:
        return None
    if request.form.get(BACK_FIELD):
        from engine.web.records.forms import render_form  # imports this module

        return render_form(entity, views, values, record=None)
    try:
        found = likely_duplicates(site().records, actor(), entity.key, values)
    except CrmError:
        return None  # the save itself reports what is wrong with the values
    if not found:
        return None
    posted = [(k, v) for k, values_ in request.form.lists() for v in values_
              if k not in ("csrf_token", CONFIRM_FIELD, BACK_FIELD)]
    shown = presenter()
    rows = [(d.id, shown.record_title(entity, d.record), d.record, d.reasons) for d in found[:10]]
    html = render_template("duplicates.html", entity=entity, views=views, rows=rows,
                           posted=posted, confirm_field=CONFIRM_FIELD, back_field=BACK_FIELD,
                           shown=shown)
    return html, 200


@bp.route("/r/<entity_key>/<int:record_id>/merge", methods=["GET", "POST"])
@login_required
def merge_page(entity_key: str, record_id: int) -> tuple[str, int] | Response:
    entity, views = entity_and_views(entity_key)
    me = actor()
    records = site().records
    kept = records.get(me, entity.key, record_id)  # NotFound → 404
    shown = presenter()
    raw = request.values.get("drop", "").strip()
    plan, error, status = None, None, 200
    if raw:
        try:
            plan = plan_merge(records, me, kept["id"], int(raw), entity=entity.key)
        except ValueError:
            error, status = translate("duplicate_id", language()) + ": " + raw, 422
        except CrmError as exc:
            error, status = exc.message, exc.status
    if plan is not None and request.method == "POST":
        try:
            result = merge(records, me, kept["id"], plan.duplicate["id"], entity=entity.key)
        except CrmError as exc:
            error, status = exc.message, exc.status
        else:
            flash(translate("merged", language(), n=sum(result.moved.values())), "success")
            return redirect(url_for("records.detail", entity_key=entity.key,
                                    record_id=kept["id"]))
    try:
        candidates = [(d.id, shown.record_title(entity, d.record), d.reasons)
                      for d in likely_duplicates(records, me, entity.key, kept,
                                                 exclude_id=kept["id"])[:20]]
    except CrmError:
        candidates = []
    moves = []
    if plan is not None:
        for move in plan.moves:
            other = records.entity(move.entity)
            field = other.fields[move.field]
            label = f"{other.plural.get(language())} · {field.label.get(language())}"
            if move.column:
                label += f" · {field.fields[move.column].label.get(language())}"
            moves.append((label, len(move.record_ids)))
    fills = [(entity.fields[k].label.get(language()), shown.value(entity.fields[k], v))
             for k, v in (plan.fills.items() if plan is not None else ())]
    html = render_template(
        "merge.html", entity=entity, views=views, record=kept, shown=shown,
        candidates=candidates, plan=plan, moves=moves, fills=fills, error=error,
        drop=raw, duplicate_title=shown.record_title(entity, plan.duplicate) if plan else None)
    return html, status
