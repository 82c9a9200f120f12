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

With ``background=true`` the import is queued for ``crm worker``
(:mod:`engine.services.dataio.importing.queue`) instead: ``202`` with the run and
``Location: /api/v1/imports/<id>``, where ``GET`` follows its status and
progress and, once it is done, gives the same report; the refused rows are
at ``/api/v1/imports/<id>/rejected.csv``.  Only the user who queued a run
(or an administrator) sees it; anyone else gets 404.  The default stays in
the request, so a client's answer never changes shape under it: a client
with big files asks for the background.  A file of more than
:data:`~engine.services.dataio.importing.queue.REQUEST_ROWS` rows is refused in
the request (``422 import_refused``, saying to use ``background=true``):
it would hold a web worker, and on SQLite the write lock, too long.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response, request, url_for

from engine.api.auth import api_actor
from engine.api.problems import problem
from engine.api.records import UnsupportedMedia, answer
from engine.errors import CrmError, NotFound, ValidationFailed
from engine.http.context import site
from engine.metadata.model import Entity
from engine.services.dataio.importing import Importer
from engine.services.dataio.importing.queue import REQUEST_ROWS, ImportQueue
from engine.services.dataio.importing.report import ImportReport

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
    except (ValueError, RecursionError):  # malformed, or nested too deep to parse
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
        options = {"dry_run": _flag("dry_run"),
                   "upsert_on": (_param("upsert_on") or "").strip() or None,
                   "mapping": _mapping(_param("mapping")), "good_rows": _flag("good_rows")}
        background = _flag("background")
        data, name = _file()
        if background:
            run = ImportQueue.for_site(opened).enqueue(actor, entity, data, name, **options)
            return answer(run_body(run.to_dict()), 202,
                          {"Location": url_for("api.import_run", run_id=run.id)})
        report = importer.run(actor, entity, data, name, max_rows=REQUEST_ROWS, **options)
        if report.written or report.dry_run:
            return answer(report.to_dict())
        if report.file_errors:
            raise ImportRefused("The file cannot be imported: see errors.file.", report)
        raise ImportRefused(
            f"{report.rejected} row(s) refused, so nothing was written: fix them, or import "
            "the good rows (good_rows=true).", report)

    @bp.get("/imports/<int:run_id>")
    def import_run(run_id: int) -> Response:
        run = ImportQueue.for_site(site()).get(api_actor(), run_id)
        return answer(run_body(run.to_dict()))

    @bp.get("/imports/<int:run_id>/rejected.csv")
    def import_run_rejected(run_id: int) -> Response:
        actor = api_actor()
        text = ImportQueue.for_site(site()).rejected(actor, run_id)
        if text is None:
            raise NotFound(f"Import {run_id} has no refused rows (yet).")
        return Response("\ufeff" + text, content_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="import-{run_id}.rejected.csv"'})

    bp.register_error_handler(ImportRefused, import_problem)


def run_body(run: dict[str, Any]) -> dict[str, Any]:
    """A run as the API answers it: with the address of its refused rows, when it has some."""
    link = url_for("api.import_run_rejected", run_id=run["id"])
    return {**run, "rejected_url": link if run["has_rejected"] else None}


def import_problem(exc: ImportRefused) -> Response:
    """The refusal as problem+json, with the report (and the file's problems under ``file``)."""
    errors = {"file": exc.report.file_errors} if exc.report.file_errors else None
    return problem(exc.status, exc.code, exc.message, errors=errors,
                   report=exc.report.to_dict())


_REASONS = {"type": "array", "items": {"type": "string", "enum": ["name", "phone", "email"]}}
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
            "likely_duplicates": {
                "type": "array",
                "description": "Warnings, not refusals: new records that look like records "
                               "the caller can read, or like earlier rows of the file, by "
                               "normalised name, phone or e-mail (checked entities only).",
                "items": {
                    "type": "object", "required": ["line", "records", "lines"],
                    "properties": {
                        "line": {"type": "integer"},
                        "records": {"type": "array", "items": {
                            "type": "object", "required": ["id", "reasons"],
                            "properties": {"id": {"type": "integer"}, "name": {},
                                           "reasons": _REASONS}}},
                        "lines": {"type": "array", "items": {
                            "type": "object", "required": ["line", "reasons"],
                            "properties": {"line": {"type": "integer"},
                                           "reasons": _REASONS}}}}}},
        },
    },
    "ImportRun": {
        "type": "object",
        "description": "An import queued with background=true, run by crm worker.",
        "required": ["id", "entity", "status", "dry_run", "good_rows", "file_name",
                     "rows_done", "rows_total", "percent", "created_at", "report",
                     "has_rejected", "rejected_url"],
        "properties": {
            "id": {"type": "integer"}, "entity": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "dry_run": {"type": "boolean"}, "good_rows": {"type": "boolean"},
            "upsert_on": {"type": ["string", "null"]}, "file_name": {"type": "string"},
            "file_size": {"type": "integer"},
            "rows_done": {"type": "integer", "description": "Rows read so far."},
            "rows_total": {"type": "integer", "description": "About how many rows the file has."},
            "percent": {"type": "integer", "minimum": 0, "maximum": 100},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "error": {"type": ["string", "null"],
                      "description": "Why a failed run failed (nothing was written)."},
            "report": {"description": "The import's report, once the run is done.",
                       "anyOf": [{"$ref": "#/components/schemas/ImportReport"},
                                 {"type": "null"}]},
            "has_rejected": {"type": "boolean"},
            "rejected_url": {"type": ["string", "null"],
                             "description": "The refused rows as CSV, when there are some."},
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
        "background": {"type": "boolean", "description":
                       "Queue the import for the worker: 202 and Location /imports/{id}."},
    }
    report = {"application/json": {"schema": {"$ref": "#/components/schemas/ImportReport"}}}
    queued = {"application/json": {"schema": {"$ref": "#/components/schemas/ImportRun"}}}
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
                              "content": report},
                      "202": {"description": "Queued (background=true): follow the Location",
                              "headers": {"Location": {"schema": {"type": "string"}}},
                              "content": queued},
                      **errors},
    }}


def import_run_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI path items of background imports (``/imports/{run_id}``)."""
    run_id = [{"name": "run_id", "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": 1}}]
    return {
        "/imports/{run_id}": {"get": {
            "operationId": "import_run", "tags": ["imports"],
            "summary": "A background import: status, progress and, once done, the report.",
            "parameters": run_id,
            "responses": {"200": {"description": "The run", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ImportRun"}}}}, **errors}}},
        "/imports/{run_id}/rejected.csv": {"get": {
            "operationId": "import_run_rejected", "tags": ["imports"],
            "summary": "The rows a finished background import refused, with their reasons.",
            "parameters": run_id,
            "responses": {"200": {"description": "CSV (UTF-8 with a byte-order mark)",
                                  "content": {"text/csv": {"schema": {"type": "string"}}}},
                          **errors}}},
    }
