"""Stage transitions: what leaves the record's stage (and why not), and taking one.

A stage never changes through PATCH; ``POST .../transitions`` with
``{"to": stage, "values": {...}}`` goes through ``site.workflows``, so
roles, guards and required fields hold as in the UI.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from engine.api.auth import api_actor
from engine.api.records import _etag, answer, body, version_of
from engine.errors import ValidationFailed
from engine.http.context import site


def register(bp: Any) -> None:
    @bp.get("/<entity>/<int:record_id>/transitions")
    def list_transitions(entity: str, record_id: int) -> Response:
        options = site().workflows.available(api_actor(), entity, record_id)
        return answer({"items": [o.to_dict() for o in options]})

    @bp.post("/<entity>/<int:record_id>/transitions")
    def take_transition(entity: str, record_id: int) -> Response:
        data = body()
        version = version_of(data, required=False)
        to = data.get("to")
        values = data.get("values") or {}
        errors: dict[str, list[str]] = {}
        if not isinstance(to, str) or not to:
            errors["to"] = ["Name the stage to move to."]
        if not isinstance(values, dict):
            errors["values"] = ["Expected a JSON object of field values."]
        comment = data.get("comment")
        if comment is not None and not isinstance(comment, str):
            errors["comment"] = ["Expected text."]
        if errors:
            raise ValidationFailed(errors)
        record = site().workflows.transition(api_actor(), entity, record_id, to, values,
                                             version=version, comment=comment)
        return answer(record, headers=_etag(record))
