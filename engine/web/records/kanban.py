"""The kanban board of an entity with a workflow: a column per stage, a card per record.

Cards come from the record service (the actor's rows and visible fields
only) and the stale and SLA-overdue marks from the pipeline service, so
the board shows what the figures say.  A move — dragged (``static/
kanban.js`` posts with the CSRF header and reads JSON) or chosen with the
card's button — runs the workflow service's transition, which checks the
role, the guard and the required fields again.  A move whose transition
declares fields (a lost reason) opens a sheet asking for them first, with
no choice made for the user; the board knows which moves ask from
``data-transitions``.  A refusal comes back with its reasons and with
field-level messages for the values asked on the way; without JavaScript
it renders ``kanban_move.html``, the same fields as a page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.context import Actor
from engine.errors import Conflict, CrmError, Throttled, TransitionRefused, ValidationFailed
from engine.http.context import actor, language, login_required, site
from engine.metadata.entity_views import column_field
from engine.metadata.model import Entity
from engine.metadata.workflow_model import Pipeline, Workflow, workflow_for
from engine.site import Site
from engine.web.i18n import translate
from engine.web.presentation.display import Presenter
from engine.web.records.form_values import read_form
from engine.web.records.pages import bp, entity_and_views

#: Cards per board; a bigger pipeline is better read as a filtered list.
BOARD_LIMIT = 500


@dataclass
class Card:
    id: int
    title: str
    value: Decimal | None
    owner: str
    version: Any
    stale: bool = False
    overdue: bool = False
    #: The texts of the view's card fields (``kanban.card``), each with its ``tel:`` or
    #: ``mailto:`` address when it is a phone number or an e-mail.
    extras: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class Column:
    key: str
    label: str
    colour: str | None
    category: str
    cards: list[Card] = field(default_factory=list)
    total: Decimal = Decimal(0)


def workflow_of(entity: Entity) -> Workflow | None:
    return workflow_for(site().registry.workflows, entity.key)


def _marks(site_: Site, me: Actor, entity: Entity, pipeline: str,
           ids: list[int]) -> tuple[set[int], set[int]]:
    """Ids of the stale and the SLA-overdue cards (empty when the actor may not see figures);
    only the cards on the board are looked at, so a big table costs no more than a small one."""
    try:
        stale = {s.record_id for s in site_.pipeline.stale(me, entity.key, pipeline=pipeline,
                                                            ids=ids)}
        late = {s.record_id for s in site_.pipeline.overdue(me, entity.key, pipeline=pipeline,
                                                            ids=ids)}
    except CrmError:
        return set(), set()
    return stale, late


def build_board(site_: Site, me: Actor, entity: Entity, workflow: Workflow, pipeline: Pipeline,
                shown: Presenter, card: tuple[str, ...] = ()) -> tuple[list[Column], bool]:
    """The columns of ``pipeline`` with the actor's records; True when the board was cut."""
    page = site_.records.list(me, entity.key, limit=BOARD_LIMIT, with_total=False)
    shown.preload(entity, page.rows)
    hidden = site_.records.hidden(me, entity)
    value_field = workflow.figures.value if workflow.figures.value not in hidden else None
    stale, late = _marks(site_, me, entity, pipeline.key, [r["id"] for r in page.rows])
    extras = [column_field(entity, k) for k in card
              if k not in hidden and k not in (value_field, "owner")]
    columns = {key: Column(key, stage.label.get(shown.language), stage.colour, stage.category)
               for key, stage in sorted(pipeline.stages.items(), key=lambda s: s[1].order)}
    for row in page.rows:
        if workflow.pipeline_of(row).key != pipeline.key:
            continue
        column = columns.get(workflow.stage_of(row).key)
        if column is None:
            continue
        raw = row.get(value_field) if value_field else None
        value = Decimal(raw) if raw is not None else None
        column.cards.append(Card(
            row["id"], shown.record_title(entity, row), value,
            shown.user_name(row["owner"]) if row.get("owner") else "", row.get("version"),
            stale=row["id"] in stale, overdue=row["id"] in late,
            extras=[(text, shown.href(f, row.get(f.key))) for f in extras
                    if (text := shown.value(f, row.get(f.key)))]))
        column.total += value or 0
    return list(columns.values()), page.has_more


@bp.route("/r/<entity_key>/kanban")
@login_required
def kanban(entity_key: str) -> str:
    entity, views = entity_and_views(entity_key)
    workflow = workflow_of(entity)
    if workflow is None:
        abort(404)
    pipeline = workflow.pipeline(request.args.get("pipeline") or workflow.default_pipeline)
    shown = Presenter(site(), actor(), language())
    columns, cut = build_board(site(), actor(), entity, workflow, pipeline, shown, views.card)
    value_field = entity.fields.get(workflow.figures.value or "")
    asks = _transition_fields(entity, pipeline)
    return render_template("kanban.html", entity=entity, workflow=workflow, pipeline=pipeline,
                           columns=columns, cut=cut, shown=shown, value_field=value_field,
                           may_move=site().records.policy.can(actor(), entity, "transition"),
                           transitions=json.dumps(asks[0]), fields=json.dumps(asks[1]))


def _transition_fields(entity: Entity, pipeline: Pipeline) -> tuple[dict, dict]:
    """Per source stage and target stage, the fields its transition asks for; and how to
    draw each of them (label, type, choices) in the move sheet."""
    hidden = site().records.hidden(actor(), entity)
    by_move: dict[str, dict[str, list[str]]] = {}
    keys: set[str] = set()
    for source in pipeline.stages:
        for target in pipeline.stages:
            found = pipeline.transition(source, target) if source != target else None
            asked = [k for k in found.fields if k in entity.fields and k not in hidden] \
                if found else []
            if asked:
                by_move.setdefault(source, {})[target] = asked
                keys.update(asked)
    return by_move, {item["key"]: item for item in _asked(entity, {k: [] for k in sorted(keys)})}


def _wants_json() -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def _asked(entity: Entity, errors: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The fields a refused move asks for, as the board's dialog draws them."""
    asked = []
    lang = language()
    for key in errors:
        found = entity.fields.get(key)
        if found is None or not found.is_input:
            continue
        asked.append({"key": key, "label": found.label.get(lang), "type": found.value_type,
                      "choices": [[k, v.get(lang)] for k, v in found.choices.items()],
                      "multiple": bool(getattr(found, "multiple", False))})
    return asked


@bp.route("/r/<entity_key>/kanban/move", methods=["POST"])
@login_required
def kanban_move(entity_key: str) -> tuple[Response | str, int] | Response:
    """Run one transition from the board; JSON for the script, a redirect without it."""
    entity, views = entity_and_views(entity_key)
    try:
        record_id = int(request.form.get("record_id", ""))
    except ValueError:
        record_id = 0
    to_stage = request.form.get("to", "")
    given = [k for k in entity.fields
             if k != views.stage_field and (k in request.form or f"{k}__present" in request.form)]
    body: dict[str, Any] = {"ok": False, "reasons": [], "errors": {}, "ask": []}
    status = 200
    try:
        values = read_form(entity, given, request.form, site().config.timezone)
        moved = site().workflows.transition(actor(), entity.key, record_id, to_stage, values,
                                            version=request.form.get("version") or None)
        body.update(ok=True, version=moved.get("version"))
    except TransitionRefused as exc:
        status = 409
        missing = {f: [r.message] for r in exc.reasons if r.code == "missing_fields"
                   for f in r.fields}
        body["errors"] = {k: list(dict.fromkeys(missing.get(k, []) + exc.errors.get(k, [])))
                          for k in {**missing, **exc.errors}}
        body["reasons"] = [r.message for r in exc.reasons if r.code != "missing_fields"]
        body["ask"] = _asked(entity, body["errors"])
    except ValidationFailed as exc:
        status = 422
        body["errors"] = exc.errors
        body["ask"] = _asked(entity, exc.errors)
    except (Conflict, Throttled) as exc:
        status = exc.status
        body["reasons"] = [exc.message]
    if _wants_json():
        return jsonify(body), status
    if body["ok"]:
        flash(translate("moved", language()), "success")
    else:
        texts = body["reasons"] + [m for ms in body["errors"].values() for m in ms]
        flash(" ".join(dict.fromkeys(texts)) or translate("move_refused", language()), "error")
        if body["ask"]:
            return _move_page(entity, record_id, to_stage, body), status
    return redirect(url_for("records.kanban", entity_key=entity.key,
                            pipeline=request.form.get("pipeline") or None))


def _move_page(entity: Entity, record_id: int, to_stage: str, body: dict[str, Any]) -> str:
    """The fields a move asks for as a page (the board without JavaScript), each with its
    messages, nothing chosen for the user."""
    shown = Presenter(site(), actor(), language())
    try:
        record = site().records.get(actor(), entity.key, record_id)
    except CrmError:
        abort(404)
    workflow = workflow_of(entity)
    stage = workflow.pipeline_of(record).stages.get(to_stage) if workflow else None
    return render_template(
        "kanban_move.html", entity=entity, record=record, to_stage=to_stage,
        title=shown.record_title(entity, record),
        stage_label=stage.label.get(language()) if stage else to_stage,
        asked=[entity.fields[item["key"]] for item in body["ask"]],
        errors=body["errors"], values=request.form,
        pipeline=request.form.get("pipeline") or "")
