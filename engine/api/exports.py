"""``GET /api/v1/<entity>/export``: a list as CSV or XLSX, streamed.

The same filters, search and sort as the list endpoint (``amount__gt=100``,
``q``, ``sort=-amount``, ``include_archived``), plus ``format`` (csv, the
default, or xlsx), ``keys`` (head columns with field keys instead of
labels) and ``lines`` (a lines field: a row per line, the record's columns
on its first).  The export right, the row scope and hidden fields hold as in the
UI; errors (a bad filter, no right) answer problem+json before any row is
sent.  CSV is streamed as it is produced; XLSX is written to a spooled
temporary file first (a workbook is a zip archive) and streamed from it.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request

from engine.api.auth import api_actor
from engine.api.records import RESERVED
from engine.http.context import site
from engine.http.downloads import export_response
from engine.metadata.model import Entity
from engine.services.dataio.exporting import FORMATS, MEDIA_TYPES, Exporter
from engine.storage.queries import Filter, Sort

EXPORT_ARGS = frozenset({"format", "keys", "lines", "version"})


def register(bp: Any) -> None:
    @bp.get("/<entity>/export")
    def export_records(entity: str) -> Response:
        filters = []
        for key, value in request.args.items(multi=True):
            if key in RESERVED or key in EXPORT_ARGS:
                continue
            name, _, op = key.partition("__")
            filters.append(Filter(name, op or "eq", value))
        sort = [Sort.parse(s) for s in request.args.get("sort", "").split(",") if s.strip()]
        opened = site()
        exporter = Exporter.for_site(opened)
        return export_response(
            exporter, api_actor(), entity, fmt=request.args.get("format", "csv"),
            filters=filters, sort=sort, search=request.args.get("q") or None,
            include_archived=request.args.get("include_archived") in ("1", "true"),
            keys=request.args.get("keys") in ("1", "true"),
            lines=request.args.get("lines", "").strip() or None)


def export_path(entity: Entity, hidden: frozenset[str], errors: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI path item of an entity's export."""
    filters = [{"name": f.key, "in": "query", "required": False, "schema": {"type": "string"},
                "description": f"Filter: {f.key}=value or {f.key}__op=value."}
               for f in entity.fields.values() if f.has_column and f.key not in hidden]
    params = [
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": list(FORMATS)},
         "description": "csv (the default) or xlsx."},
        {"name": "sort", "in": "query", "schema": {"type": "string"},
         "description": "Fields, comma-separated; '-' for descending."},
        {"name": "q", "in": "query", "schema": {"type": "string"}},
        {"name": "include_archived", "in": "query", "schema": {"type": "boolean"}},
        {"name": "keys", "in": "query", "schema": {"type": "boolean"},
         "description": "Head columns with field keys instead of labels."},
    ]
    lines = [f.key for f in entity.fields.values() if f.type == "lines" and f.key not in hidden]
    if lines:
        params.append({"name": "lines", "in": "query", "schema": {"type": "string",
                                                                   "enum": lines},
                       "description": "A row per line of this lines field: the record's "
                                      "columns on the row of its first line, blank on the "
                                      "others."})
    return {"get": {
        "operationId": f"export_{entity.key}", "tags": [entity.key],
        "summary": "The records you may export, as CSV or XLSX (streamed).",
        "parameters": params + filters,
        "responses": {"200": {"description": "The file", "content": {
            "text/csv": {"schema": {"type": "string"}},
            MEDIA_TYPES["xlsx"]: {"schema": {"type": "string", "contentMediaType":
                                             MEDIA_TYPES["xlsx"]}}}}, **errors},
    }}
