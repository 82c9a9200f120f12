"""``GET /<entity>/duplicates`` and ``POST /<entity>/<id>/merge``: duplicates over the API.

A client about to create a customer asks for its likely duplicates with the
values it would send (``?name=华信科技&phone=021-50801234``) and shows them
before posting — the same matching as the web form's warning
(:mod:`engine.services.records.duplicates`), within the caller's scope.  Merging
folds a duplicate into the record in the path; ``"dry_run": true`` answers
what would change without changing it.  Only the entities checked for
duplicates (``CHECKED_ENTITIES``) have these endpoints.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request

from engine.api.auth import api_actor
from engine.api.records import answer, body
from engine.errors import NotFound, ValidationFailed
from engine.http.context import site
from engine.metadata.model import Entity
from engine.metadata.values import whole_number
from engine.services.records.duplicates import CHECKED_ENTITIES, duplicate_fields, likely_duplicates
from engine.services.records.merge import merge, plan_merge

LIMIT = 20


def _checked(entity_key: str) -> Entity:
    entity = site().records.entity(entity_key)
    if entity.key not in CHECKED_ENTITIES:
        raise NotFound(f"Records of '{entity_key}' are not checked for duplicates.")
    return entity


def register(bp: Any) -> None:
    @bp.get("/<entity>/duplicates")
    def find_duplicate_records(entity: str) -> Response:
        checked = _checked(entity)
        fields = duplicate_fields(checked)
        assert fields is not None  # a checked entity has them
        wanted = {k: request.args[k] for k in
                  (fields.name_field, *fields.phone_fields, *fields.email_fields)
                  if request.args.get(k)}
        exclude = request.args.get("exclude")
        if exclude is not None and whole_number(exclude) is None:
            raise ValidationFailed({"exclude": ["Give the id of the record being edited."]})
        found = likely_duplicates(site().records, api_actor(), checked.key, wanted,
                                  exclude_id=int(exclude) if exclude else None)
        return answer({"items": [{"id": d.id, "reasons": list(d.reasons), "record": d.record}
                                 for d in found[:LIMIT]]})

    @bp.post("/<entity>/<int:record_id>/merge")
    def merge_records(entity: str, record_id: int) -> Response:
        checked = _checked(entity)
        data = body()
        duplicate, dry_run = data.get("duplicate"), data.get("dry_run", False)
        if not isinstance(duplicate, int) or isinstance(duplicate, bool):
            raise ValidationFailed({"duplicate": ["Give the id of the record to merge into "
                                                  "this one."]})
        if not isinstance(dry_run, bool):
            raise ValidationFailed({"dry_run": ["Give true or false."]})
        records, actor = site().records, api_actor()
        plan = plan_merge(records, actor, record_id, duplicate, entity=checked.key)
        if dry_run:
            return answer({"kept": plan.kept, "merged": plan.duplicate["id"],
                           "fills": plan.fills, "moved": plan.moved, "dry_run": True})
        result = merge(records, actor, record_id, duplicate, entity=checked.key)
        return answer({"kept": result.kept, "merged": result.merged_id, "fills": plan.fills,
                       "moved": result.moved, "change_id": result.change_id, "dry_run": False})


def duplicate_paths(entity: Entity, hidden: frozenset[str], name: str,
                    errors: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI paths of these endpoints for ``entity`` (none when it is not checked)."""
    fields = duplicate_fields(entity)
    if fields is None:
        return {}
    keys = [k for k in (fields.name_field, *fields.phone_fields, *fields.email_fields)
            if k not in hidden]
    record = {"$ref": f"#/components/schemas/{name}"}
    params = [{"name": k, "in": "query", "required": False, "schema": {"type": "string"},
               "description": f"The {k} about to be saved."} for k in keys]
    params.append({"name": "exclude", "in": "query", "required": False,
                   "schema": {"type": "string", "pattern": "^[0-9]+$"},
                   "description": "The id of the record being edited (left out)."})
    merged = {"type": "object", "required": ["kept", "merged", "moved", "dry_run"],
              "properties": {"kept": record, "merged": {"type": "integer"},
                             "fills": {"type": "object"},
                             "moved": {"type": "object",
                                       "additionalProperties": {"type": "integer"}},
                             "change_id": {"type": "string"}, "dry_run": {"type": "boolean"}}}
    return {
        f"/{entity.key}/duplicates": {"get": {
            "operationId": f"duplicates_{entity.key}", "tags": [entity.key],
            "description": "Likely duplicates of the values about to be saved (normalised "
                           "name, phone, e-mail), among the records the caller can read.",
            "parameters": params,
            "responses": {"200": {"description": "OK", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"items": {"type": "array", "items": {
                    "type": "object", "required": ["id", "reasons", "record"],
                    "properties": {"id": {"type": "integer"},
                                   "reasons": {"type": "array", "items": {
                                       "type": "string", "enum": ["name", "phone", "email"]}},
                                   "record": record}}}}}}}}, **errors}}},
        f"/{entity.key}/{{id}}/merge": {
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "post": {
                "operationId": f"merge_{entity.key}", "tags": [entity.key],
                "description": "Merge the record 'duplicate' into this one: every record "
                               "referring to it moves here, it is archived.",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["duplicate"],
                    "properties": {"duplicate": {"type": "integer"},
                                   "dry_run": {"type": "boolean"}}}}}},
                "responses": {"200": {"description": "Merged (or what would change)",
                                      "content": {"application/json": {"schema": merged}}},
                              "409": errors["403"], **errors}}},
    }
