"""``POST /api/v1/<entity>/import``: a CSV or XLSX file through the importer, as ``crm import``.

The file comes as a multipart upload (field ``file``) or as the request
body itself (``text/csv``, or the XLSX media type).  Parameters — in the
query string or, for an upload, as form fields — are those of the CLI:
``dry_run``, ``upsert_on``, ``mapping`` (a JSON object: column header →
field key, ``null`` to skip the column) and ``good_rows``.  The import
runs with the caller's actor, so the ``import`` right, scopes and field
rules are the record service's.

The answer is the importer's report (``crm import --json``): 200 when the
import was written or was a dry run, and ``422`` problem+json carrying
the same report (``report``) and the file's problems (``errors.file``)
when nothing was written because of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response, request

from engine.api.auth import api_actor
from engine.api.problems import problem
from engine.api.records import UnsupportedMedia, answer
from engine.errors import CrmError, ValidationFailed
from engine.metadata.model import Entity
from engine.services.importing import Importer
from engine.services.importing.report import ImportReport
from engine.web.context import site

#: The largest import request body (bytes): files of tens of thousands of rows.
MAX_IMPORT_BODY = 20 * 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPES = ("text/csv", "text/plain", "application/csv")
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


class ImportRefused(CrmError):
    """Nothing was written: the report says why (file problems or refused rows)."""

    status = 422
    code = "import_refused"

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


def upload_limit() -> int:
    return MAX_IMPORT_BODY


def _param(name: str) -> str | None:
    """A parameter from the form of an upload, else from the query string."""
    if name in request.form:
        return request.form[name]
    return request.args.get(name)


def _flag(name: str) -> bool:
    raw = (_param(name) or "").strip().lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise ValidationFailed({name: ["Expected true or false."]})


def _mapping(raw: str | None) -> dict[str, str | None] | None:
    """The ``mapping`` parameter: a JSON object of header → field key (or null)."""
    if raw is None or not raw.strip():
        return None
    try:
        found = json.loads(raw)
    except ValueError:
        found = None
    if not isinstance(found, Mapping) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in found.items()):
        raise ValidationFailed({"mapping": [
            'Expected a JSON object of column header to field key (or null), e.g. '
            '{"客户全称": "name", "旧编号": null}.']})
    return dict(found)


def _file() -> tuple[bytes, str]:
    """The file's bytes and a name telling CSV from XLSX."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed({"file": ["Send the file as the multipart field 'file'."]})
        return upload.read(), upload.filename or "upload.csv"
    if request.mimetype == XLSX:
        return request.get_data(), "upload.xlsx"
    if request.mimetype in CSV_TYPES:
        return request.get_data(), "upload.csv"
    raise UnsupportedMedia(
        "Send the file as multipart/form-data (field 'file'), text/csv or XLSX.")


def register(bp: Any) -> None:
    @bp.post("/<entity>/import")
    def import_records(entity: str) -> Response:
        opened = site()
        actor = api_actor()
        importer = Importer(opened.records, timezone=opened.config.timezone)
        importer.allow(actor, entity)  # 403 before the file is read
        data, name = _file()
        report = importer.run(
            actor, entity, data, name, dry_run=_flag("dry_run"),
            upsert_on=(_param("upsert_on") or "").strip() or None,
            mapping=_mapping(_param("mapping")), good_rows=_flag("good_rows"))
        if report.written or report.dry_run:
            return answer(report.to_dict())
        if report.file_errors:
            raise ImportRefused("The file cannot be imported: see errors.file.", report)
        raise ImportRefused(
            f"{report.rejected} row(s) refused, so nothing was written: fix them, or import "
            "the good rows (good_rows=true).", report)

    bp.register_error_handler(ImportRefused, import_problem)


def import_problem(exc: ImportRefused) -> Response:
    """The refusal as problem+json, with the report (and the file's problems under ``file``)."""
    errors = {"file": exc.report.file_errors} if exc.report.file_errors else None
    return problem(exc.status, exc.code, exc.message, errors=errors,
                   report=exc.report.to_dict())


REPORT_SCHEMA: dict[str, Any] = {
    "ImportReport": {
        "type": "object",
        "required": ["entity", "dry_run", "good_rows", "rows", "created", "updated",
                     "rejected", "written", "ok", "file_errors", "row_errors"],
        "properties": {
            "entity": {"type": "string"}, "dry_run": {"type": "boolean"},
            "good_rows": {"type": "boolean"}, "rows": {"type": "integer"},
            "created": {"type": "integer"}, "updated": {"type": "integer"},
            "rejected": {"type": "integer"}, "written": {"type": "boolean"},
            "ok": {"type": "boolean"}, "encoding": {"type": ["string", "null"]},
            "file_errors": {"type": "array", "items": {"type": "string"}},
            "row_errors": {"type": "array", "items": {
                "type": "object", "required": ["line", "errors"],
                "properties": {"line": {"type": "integer"}, "errors": {
                    "type": "object", "description": "Messages by column header.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}}}}}},
            "skipped_columns": {"type": "array", "items": {"type": "string"}},
            "columns": {"type": "object", "description": "Column header → field key.",
                        "additionalProperties": {"type": "string"}},
        },
    },
}


def import_path(entity: Entity, errors: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI path item of an entity's import."""
    params = {
        "dry_run": {"type": "boolean", "description": "Check every row; write nothing."},
        "upsert_on": {"type": "string", "description":
                      "Update the record whose field (unique, numbering, or id) matches."},
        "mapping": {"type": "string", "description":
                    "A JSON object: column header → field key, null to skip the column."},
        "good_rows": {"type": "boolean", "description":
                      "Import the rows that pass; report the others."},
    }
    report = {"application/json": {"schema": {"$ref": "#/components/schemas/ImportReport"}}}
    return {"post": {
        "operationId": f"import_{entity.key}", "tags": [entity.key],
        "summary": "Import a CSV or XLSX file, as strictly as the form (crm import).",
        "parameters": [{"name": k, "in": "query", "required": False, "schema": v}
                       for k, v in params.items()],
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}, **params}}},
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        }},
        "responses": {"200": {"description": "The report (written, or a dry run)",
                              "content": report}, **errors},
    }}
