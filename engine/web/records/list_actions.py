"""What a list page does besides listing: bulk actions and saved filters.

A bulk action (move to a stage, hand to another owner, archive) runs once
per ticked record through the services with the actor — the same checks
as on the record's own page — and reports per record: "12 moved, 2
refused: #7 …".  One refusal never stops the others, and each record is
its own transaction, so a refused one leaves nothing half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from engine.context import Actor
from engine.errors import CrmError, TransitionRefused, ValidationFailed
from engine.http.context import actor, language, login_required, site
from engine.metadata.model import Entity
from engine.metadata.values import whole_number
from engine.metadata.workflow_model import workflow_for
from engine.services.views.saved_filters import SavedFilterService, clean_query
from engine.web.i18n import translate
from engine.web.records.pages import bp, entity_and_views

MAX_BULK = 200


@dataclass
class BulkOptions:
    """The bulk actions offered on a list: stage targets, owners, archiving."""

    stages: list[tuple[str, str]] = field(default_factory=list)
    owners: list[tuple[int, str]] = field(default_factory=list)
    archive: bool = False

    def __bool__(self) -> bool:
        return bool(self.stages or self.owners or self.archive)


def bulk_options(entity: Entity, me: Actor) -> BulkOptions:
    """What the actor may try in bulk (each record is checked again when it runs)."""
    policy = site().records.policy
    options = BulkOptions()
    if not policy.can(me, entity, "update") or entity.ledger is not None:
        return options  # a ledger's movements are never changed (docs/ledger.md)
    lang = language()
    workflow = workflow_for(site().registry.workflows, entity.key)
    if workflow is not None:
        seen: dict[str, str] = {}
        for pipeline in workflow.pipelines.values():
            for key, stage in sorted(pipeline.stages.items(), key=lambda s: s[1].order):
                seen.setdefault(key, stage.label.get(lang))
        options.stages = list(seen.items())
    if "owner" not in site().records.policy.readonly_fields(me, entity):
        options.owners = [(u["id"], u["display_name"] or u["login"])
                          for u in site().users.list() if u.get("active", True)]
    options.archive = entity.archivable
    return options


def _reason(exc: CrmError) -> str:
    if isinstance(exc, TransitionRefused):
        return "; ".join(r.message for r in exc.reasons) or exc.summary
    if isinstance(exc, ValidationFailed):
        return "; ".join(m for texts in exc.errors.values() for m in texts)
    return exc.message


def _back(entity_key: str) -> Response:
    query = request.form.get("back", "")
    target = url_for("records.list_records", entity_key=entity_key)
    return redirect(f"{target}?{clean_query(parse_qsl(query))}" if query else target)


def _one(me: Actor, entity: Entity, record_id: int, action: str, value: str) -> None:
    if action == "transition":
        site().workflows.transition(me, entity.key, record_id, value, {})
    elif action == "reassign":
        site().records.update(me, entity.key, record_id, {"owner": int(value)})
    elif action == "archive":
        site().records.archive(me, entity.key, record_id)


@bp.route("/r/<entity_key>/bulk", methods=["POST"])
@login_required
def bulk(entity_key: str) -> Response:
    """Run one action on every ticked record and say how each went."""
    entity, _ = entity_and_views(entity_key)
    me = actor()
    lang = language()
    action = request.form.get("action", "")
    value = request.form.get(f"{action}_value", "").strip()
    ids = [n for n in map(whole_number, request.form.getlist("ids")) if n is not None][:MAX_BULK]
    if action not in ("transition", "reassign", "archive") or not ids or (
            action != "archive" and not value) or (action == "reassign" and whole_number(value) is None):
        flash(translate("bulk_nothing", lang), "error")
        return _back(entity.key)
    done, refused = 0, []
    for record_id in ids:
        try:
            _one(me, entity, record_id, action, value)
            done += 1
        except CrmError as exc:
            refused.append(f"#{record_id}: {_reason(exc)}")
    message = translate(f"bulk_{action}_done", lang, count=done)
    if refused:
        message += " " + translate("bulk_refused", lang, count=len(refused),
                                   reasons=" · ".join(refused))
    flash(message, ("warning" if done else "error") if refused else "success")
    return _back(entity.key)


@bp.route("/r/<entity_key>/filters", methods=["POST"])
@login_required
def save_filter(entity_key: str) -> Response:
    entity, _ = entity_and_views(entity_key)
    saved_filters = SavedFilterService(site().schema, site().engine)
    query = request.form.get("query", "")
    try:
        saved = saved_filters.save(actor(), entity.key, request.form.get("name", ""), query,
                                   site().clock.now())
    except ValidationFailed as exc:
        flash(_reason(exc), "error")
        return _back(entity.key)
    flash(translate("filter_saved", language(), name=saved.name), "success")
    target = url_for("records.list_records", entity_key=entity.key)
    return redirect(f"{target}?{saved.query}" if saved.query else target)


@bp.route("/r/<entity_key>/filters/<int:filter_id>/delete", methods=["POST"])
@login_required
def delete_filter(entity_key: str, filter_id: int) -> Response:
    entity, _ = entity_and_views(entity_key)
    SavedFilterService(site().schema, site().engine).delete(actor(), filter_id)
    flash(translate("filter_deleted", language()), "success")
    return _back(entity.key)

