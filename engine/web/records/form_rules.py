"""``visible_if`` and ``required_if`` applied live while a form is filled in.

Rather than a JavaScript port of the expression language (two evaluators
that could disagree), ``static/app.js`` posts the form's current values to
``/r/<entity>/rules`` and the server answers, for every field with a
condition, whether it applies and whether it is required — evaluated by
the same compiled expressions the record service checks on save.  The
save is checked again anyway: this only decides what the form shows.
A record being edited is read through the record service with the actor,
so the endpoint reveals nothing the actor may not read.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from werkzeug.wrappers import Response

from engine.http.context import actor, login_required, site
from engine.metadata.model import Entity
from engine.metadata.values import ValueProblem, coerce, whole_number
from engine.web.records.form_values import read_form
from engine.web.records.pages import bp, entity_and_views


def conditional_keys(entity: Entity) -> list[str]:
    """Fields whose showing or requiring depends on other values."""
    return [k for k, f in entity.fields.items()
            if f.visible_if is not None or f.required_if is not None]


def typed(entity: Entity, values: dict[str, Any]) -> dict[str, Any]:
    """Form text as typed values, so ``amount > 1000`` compares numbers; bad text is None."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        field = entity.fields.get(key)
        if field is None or field.type in ("lines", "many_to_many"):
            out[key] = value
            continue
        try:
            out[key] = coerce(field, value)
        except ValueProblem:
            out[key] = None
    return out


def evaluate(entity: Entity, values: dict[str, Any]) -> dict[str, dict[str, bool]]:
    """For each conditional field: does it apply, is it required, given ``values``."""
    now = site().clock.now()
    visible: dict[str, bool] = {}
    required: dict[str, bool] = {}
    for key in conditional_keys(entity):
        field = entity.fields[key]
        for rule, found in ((field.visible_if, visible), (field.required_if, required)):
            if rule is None:
                continue
            try:
                found[key] = bool(rule.evaluate(values, now=now))
            except Exception:  # noqa: BLE001 - half-filled values: the save decides
                found[key] = rule is field.visible_if
        if key not in required:
            required[key] = field.required
    return {"visible": visible, "required": required}


@bp.route("/r/<entity_key>/rules", methods=["POST"])
@login_required
def form_rules(entity_key: str) -> Response:
    """``{"visible": {field: bool}, "required": {field: bool}}`` for the posted values."""
    entity, _ = entity_and_views(entity_key)
    base: dict[str, Any] = {}
    record_id = request.form.get("record_id", "")
    if whole_number(record_id) is not None:
        base = site().records.get(actor(), entity.key, int(record_id))
    hidden = site().records.hidden(actor(), entity)
    keys = [k for k, f in entity.fields.items() if f.is_input and k not in hidden]
    posted = read_form(entity, keys, request.form, site().config.timezone)
    answer = evaluate(entity, {**base, **typed(entity, posted)})
    for part in answer.values():
        for key in list(part):
            if key in hidden:
                del part[key]
    return jsonify(answer)
