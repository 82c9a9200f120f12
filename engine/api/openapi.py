"""The OpenAPI 3.1 document, generated from the metadata the caller may see.

Each entity gets a record schema (what answers carry: system fields and
engine-set fields read-only) and an input schema (what create and update
accept), derived from the field definitions: types and formats, enums for
choices, lengths and bounds, decimals as strings with a pattern, nullable
for optional fields.  Bounds the server enforces are written down: whole
numbers within 64 bits, decimals within their field's digits, one-line text
without control characters, no unknown properties, paging ranges and the
version preconditions (docs/api.md, "HTTP semantics").
"""

from __future__ import annotations

from typing import Any

from engine.api.attachments import ATTACHMENT_SCHEMAS, attachment_paths, shared_attachment_paths
from engine.api.calendar import CALENDAR_SCHEMAS, calendar_paths
from engine.api.documents import PRINT_SCHEMAS, print_paths
from engine.api.duplicates import duplicate_paths
from engine.api.exports import export_path
from engine.api.imports import REPORT_SCHEMA, import_path, import_run_paths
from engine.api.meta import read_only, readable
from engine.api.records import MAX_LIMIT
from engine.context import Actor
from engine.errors import DefinitionError
from engine.metadata.model import Entity, Field
from engine.metadata.values import INT_MAX, INT_MIN
from engine.printing.documents import GENERIC, print_formats
from engine.services.records.choices import DEFAULT_CHOICES, MAX_CHOICES, MAX_QUERY
from engine.site import Site

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
#: One line of text: no line break, no other control character (engine.metadata.values).
ONE_LINE = r"^[^\x00-\x1f\x7f\x85\u2028\u2029]*$"
#: Several lines: tabs and line breaks, but no other control character.
LINES = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
WHOLE = {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX}
RECORD_ID = {"type": "integer", "minimum": 1, "maximum": INT_MAX}
SIMPLE = {
    "string": {"type": "string", "pattern": ONE_LINE},
    "text": {"type": "string", "pattern": LINES},
    "email": {"type": "string", "format": "email"}, "phone": {"type": "string"},
    "url": {"type": "string", "format": "uri"}, "integer": WHOLE,
    "boolean": {"type": "boolean"}, "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "sequence": {"type": "string", "pattern": ONE_LINE},
    "reference": RECORD_ID,
}
SYSTEM = {
    "id": {"type": "integer", "readOnly": True},
    "version": {"type": "integer", "readOnly": True},
    "created_at": {"type": ["string", "null"], "format": "date-time", "readOnly": True},
    "updated_at": {"type": ["string", "null"], "format": "date-time", "readOnly": True},
    "created_by": {"type": ["integer", "null"], "readOnly": True},
    "updated_by": {"type": ["integer", "null"], "readOnly": True},
    "owner": {"type": ["integer", "null"]},
    "archived": {"type": "boolean", "readOnly": True},
}


def _number(value: Any) -> int | float:
    return int(value) if value == int(value) else float(value)


def decimal_pattern(field: Field) -> str:
    """A decimal as the field stores it: its digits before and after the point."""
    scale = field.scale if field.scale is not None else 2
    digits = (field.precision or 18) - scale
    after = rf"(\.[0-9]{{1,{scale}}})?" if scale else ""
    return rf"^-?[0-9]{{1,{digits}}}{after}$"


def field_schema(field: Field, lang: str) -> dict[str, Any]:
    kind = field.value_type
    if kind == "choice":
        schema: dict[str, Any] = {"type": "string", "enum": list(field.choices)}
        if field.multiple:
            schema = {"type": "array", "items": schema, "uniqueItems": True}
    elif kind == "many_to_many":
        schema = {"type": "array", "items": dict(RECORD_ID)}
    elif kind == "lines":
        props = {f.key: field_schema(f, lang) for f in field.fields.values()}
        schema = {"type": "array", "items": {"type": "object", "properties": props}}
    elif kind == "json":
        schema = {}
    elif kind == "decimal":
        schema = {"type": "string", "pattern": decimal_pattern(field)}
    else:
        schema = dict(SIMPLE.get(kind, {"type": "string"}))
    if schema.get("type") == "string" and kind not in ("date", "datetime", "decimal"):
        if field.max_length:
            schema["maxLength"] = field.max_length
        if field.min_length:
            schema["minLength"] = field.min_length
    if kind == "integer":
        if field.min is not None:
            schema["minimum"] = _number(field.min)
        if field.max is not None:
            schema["maximum"] = _number(field.max)
    if schema and not field.required and "type" in schema:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    schema["title"] = field.label.get(lang)
    if read_only(field) or field.readonly:
        schema["readOnly"] = True
    return schema


def _entity_schemas(entity: Entity, hidden: frozenset[str], lang: str) -> dict[str, Any]:
    fields = [f for f in entity.fields.values() if f.key not in hidden]
    record = {"type": "object", "title": entity.label.get(lang),
              "properties": {**SYSTEM, **{f.key: field_schema(f, lang) for f in fields}}}
    inputs = {f.key: field_schema(f, lang) for f in fields if f.is_input and not f.readonly}
    for schema in inputs.values():
        schema.pop("readOnly", None)
    name = _name(entity)
    return {
        name: record,
        f"{name}Input": {"type": "object", "properties": {**inputs, "owner": SYSTEM["owner"]},
                         "additionalProperties": False,
                         "required": [f.key for f in fields if f.required and f.is_input
                                      and f.default is None and f.default_expression is None
                                      and f.key in inputs]},
        f"{name}Patch": {"type": "object", "additionalProperties": False,
                         "properties": {**inputs, "owner": SYSTEM["owner"],
                                        "version": VERSION}},
        f"{name}Page": {"type": "object", "required": ["items", "limit", "offset", "has_more"],
                        "properties": {"items": {"type": "array",
                                                 "items": {"$ref": f"#/components/schemas/{name}"}},
                                       "limit": {"type": "integer"}, "offset": {"type": "integer"},
                                       "has_more": {"type": "boolean"},
                                       "total": {"type": "integer"}}},
    }


def _name(entity: Entity) -> str:
    return "".join(part.title() for part in entity.key.split("_"))


def _json(ref: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


PROBLEM = {"$ref": "#/components/responses/Problem"}
ERRORS = {str(s): PROBLEM for s in (400, 401, 403, 404, 413, 415, 422)}
ID = {"name": "id", "in": "path", "required": True, "schema": RECORD_ID}
VERSION = {"type": "integer", "minimum": 0, "maximum": INT_MAX}
#: A version as an entity tag ("3", W/"3") or * for whatever version is current.
IF_MATCH_SCHEMA = {"type": "string", "pattern": r'^(\*|(W/)?"[0-9]{1,18}")$'}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": IF_MATCH_SCHEMA,
            "description": 'The version read, as "3" (or * for any); without it, '
                           "'version' in the body. Neither: 428."}
IF_MATCH_REQUIRED = {**IF_MATCH, "required": True,
                     "description": 'The version read, as "3", or * for any (RFC 9110 13.1.1). '
                                    "Also accepted as ?version=3. Missing: 428."}
LIST_PARAMS = [
    {"name": "sort", "in": "query", "schema": {"type": "string"},
     "description": "Fields, comma-separated; '-' for descending."},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                "maximum": MAX_LIMIT},
     "description": f"Records per page (default 50); outside 1..{MAX_LIMIT}: 422."},
    {"name": "offset", "in": "query",
     "schema": {"type": "integer", "minimum": 0, "maximum": INT_MAX - MAX_LIMIT - 1},
     "description": "Records to skip (default 0); outside the range: 422."},
    {"name": "fields", "in": "query", "schema": {"type": "string"}},
    {"name": "q", "in": "query", "schema": {"type": "string"}},
    {"name": "count", "in": "query", "schema": {"type": "boolean"}},
]

CHOICE_PARAMS = [
    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": MAX_QUERY},
     "description": "Words each found in the title, a number or code, or a searchable "
                    "field; #42 finds record 42."},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                "maximum": MAX_CHOICES},
     "description": f"Choices at most (default {DEFAULT_CHOICES})."},
]


def _paths(entity: Entity, hidden: frozenset[str], has_flow: bool) -> dict[str, Any]:
    name, key = _name(entity), entity.key
    tag = [key]
    body = lambda ref: {"required": True, "content": {"application/json": {  # noqa: E731
        "schema": {"$ref": f"#/components/schemas/{ref}"}}}}
    filters = [{"name": f.key, "in": "query", "required": False, "schema": {"type": "string"},
                "description": f"Filter: {f.key}=value or {f.key}__op=value."}
               for f in entity.fields.values() if f.has_column and f.key not in hidden]
    paths: dict[str, Any] = {
        f"/{key}": {
            "get": {"operationId": f"list_{key}", "tags": tag,
                    "parameters": LIST_PARAMS + filters,
                    "responses": {"200": _json(f"{name}Page"), **ERRORS}},
            "post": {"operationId": f"create_{key}", "tags": tag, "requestBody": body(f"{name}Input"),
                     "responses": {"201": _json(name, "Created"), **ERRORS}},
        },
        f"/{key}/{{id}}": {
            "parameters": [ID],
            "get": {"operationId": f"get_{key}", "tags": tag,
                    "responses": {"200": _json(name), **ERRORS}},
            "patch": {"operationId": f"update_{key}", "tags": tag, "parameters": [IF_MATCH],
                      "requestBody": body(f"{name}Patch"),
                      "responses": {"200": _json(name), "409": PROBLEM, "428": PROBLEM,
                                    **ERRORS}},
            "delete": {"operationId": f"delete_{key}", "tags": tag,
                       "parameters": [IF_MATCH_REQUIRED],
                       "responses": {"204": {"description": "Deleted"}, "409": PROBLEM,
                                     "428": PROBLEM, **ERRORS}},
        },
        f"/{key}/{{id}}/archive": {"parameters": [ID], "post": {
            "operationId": f"archive_{key}", "tags": tag,
            "responses": {"200": _json(name), "409": PROBLEM, **ERRORS}}},
        f"/{key}/{{id}}/restore": {"parameters": [ID], "post": {
            "operationId": f"restore_{key}", "tags": tag,
            "responses": {"200": _json(name), "409": PROBLEM, **ERRORS}}},
        f"/{key}/{{id}}/history": {"parameters": [ID], "get": {
            "operationId": f"history_{key}", "tags": tag,
            "responses": {"200": _json("History"), **ERRORS}}},
        f"/{key}/lookup": {"post": {
            "operationId": f"lookup_{key}", "tags": tag,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"type": "object", "minProperties": 1}}}},
            "responses": {"200": _json(name), **ERRORS}}},
        f"/{key}/choices": {"get": {
            "operationId": f"choices_{key}", "tags": tag,
            "parameters": CHOICE_PARAMS,
            "responses": {"200": _json("Choices"), **ERRORS}}},
    }
    if has_flow:
        paths[f"/{key}/{{id}}/transitions"] = {
            "parameters": [ID],
            "get": {"operationId": f"transitions_{key}", "tags": tag,
                    "responses": {"200": _json("TransitionList"), **ERRORS}},
            "post": {"operationId": f"transition_{key}", "tags": tag,
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/TransitionRequest"}}}},
                     "responses": {"200": _json(name), "409": PROBLEM, **ERRORS}},
        }
    return paths


COMMON_SCHEMAS: dict[str, Any] = {
    "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"},
                    "status": {"type": "integer"}, "detail": {"type": "string"},
                    "code": {"type": "string"},
                    "errors": {"type": "object", "additionalProperties": {
                        "type": "array", "items": {"type": "string"}}},
                    "current": {"type": "object"},
                    "reasons": {"type": "array", "items": {"type": "object"}}}},
    "History": {"type": "object", "properties": {"items": {"type": "array",
                                                           "items": {"type": "object"}}}},
    "TransitionList": {"type": "object", "properties": {"items": {"type": "array", "items": {
        "type": "object", "properties": {
            "key": {"type": "string"}, "to": {"type": "string"}, "label": {"type": "string"},
            "to_label": {"type": "string"}, "allowed": {"type": "boolean"},
            "reasons": {"type": "array", "items": {"type": "object"}},
            "fields": {"type": "array", "items": {"type": "string"}},
            "confirm": {"type": ["string", "null"]}}}}}},
    "TransitionRequest": {"type": "object", "required": ["to"], "properties": {
        "to": {"type": "string", "minLength": 1}, "values": {"type": "object"},
        "comment": {"type": "string"}, "version": {"type": "integer"}}},
    "Choices": {"type": "object", "required": ["items", "has_more"], "properties": {
        "items": {"type": "array", "items": {"type": "object", "required": ["id", "title"],
                                             "properties": {
            "id": {"type": "integer"}, "title": {"type": "string"},
            "detail": {"type": "string"}}}},
        "has_more": {"type": "boolean"}}},
    "Meta": {"type": "object"},
    "DashboardList": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "label": {"type": "object"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "widgets": {"type": "integer"}}}}}},
    "Dashboard": {"type": "object", "required": ["name", "widgets"], "properties": {
        "name": {"type": "string"}, "label": {"type": "object"},
        "roles": {"type": "array", "items": {"type": "string"}},
        "widgets": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string"}, "kind": {"type": "string"},
            "target": {"type": "string"}, "error": {"type": ["string", "null"]},
            "figure": {"type": ["object", "null"], "properties": {
                "title": {"type": "object"},
                "kind": {"enum": ["bar", "column", "funnel", "line", "table", "number"]},
                "unit": {"enum": ["count", "money", "percent", "days", "hours", "number"]},
                "categories": {"type": "array", "items": {"type": "string"}},
                "series": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "object"},
                    "values": {"type": "array",
                               "items": {"type": ["string", "integer", "null"]}}}}},
                "note": {"type": ["object", "null"]}}}}}}}},
}


def document(site: Site, actor: Actor, server: str = "/api/v1") -> dict[str, Any]:
    lang = actor.language
    schemas: dict[str, Any] = {**COMMON_SCHEMAS, **ATTACHMENT_SCHEMAS, **PRINT_SCHEMAS,
                               **CALENDAR_SCHEMAS, **REPORT_SCHEMA}
    paths: dict[str, Any] = {
        "/meta": {"get": {"operationId": "meta", "tags": ["meta"],
                          "responses": {"200": _json("Meta"), **ERRORS}}},
        "/dashboards": {"get": {"operationId": "dashboards", "tags": ["dashboards"],
                                "responses": {"200": _json("DashboardList"), **ERRORS}}},
        "/dashboards/{name}": {"get": {
            "operationId": "dashboard", "tags": ["dashboards"],
            "description": "The figures of a dashboard ('home': the caller's own).",
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _json("Dashboard"), **ERRORS}}},
    }
    paths.update(shared_attachment_paths(ERRORS))
    paths.update(import_run_paths(ERRORS))
    paths.update(calendar_paths(site, actor, ID, ERRORS))
    printed: dict[str, list[str]] = {}
    try:
        for fmt in print_formats(site).values():
            printed.setdefault(fmt.entity, []).append(fmt.key)
    except DefinitionError:  # a broken prints: declaration; the print routes report it
        printed = {}
    flows = {w.entity for w in site.registry.workflows.values()}
    for entity, hidden in readable(site, actor):
        schemas.update(_entity_schemas(entity, hidden, lang))
        paths.update(_paths(entity, hidden, entity.key in flows))
        paths.update(duplicate_paths(entity, hidden, _name(entity), ERRORS))
        paths.update(attachment_paths(entity, ID, ERRORS))
        paths.update(print_paths(entity, [*printed.get(entity.key, []), GENERIC], ID, ERRORS))
        if site.records.policy.can(actor, entity, "export"):
            paths[f"/{entity.key}/export"] = export_path(entity, hidden, ERRORS)
        if site.records.policy.can(actor, entity, "import"):
            paths[f"/{entity.key}/import"] = import_path(entity, ERRORS)
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{site.config.name} API", "version": "1",
                 "description": "VisionCRM REST API, generated from the site's definitions."},
        "servers": [{"url": server}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
            "responses": {"Problem": {"description": "A problem (RFC 9457)", "content": {
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}}}}},
        },
    }
