"""Printed documents through the API: which formats, the PDF, and attaching it to the record.

Rendering goes through :mod:`engine.printing.documents` with the API
actor, so a record the caller cannot read cannot be printed (404) and
hidden fields are absent from the page.  The language is ``?lang=en`` or
``?lang=zh`` (the caller's own by default).  Attaching renders the PDF and
stores it with ``site.attachments``, which needs the right to change the
record.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import quote

from flask import Response, request, url_for

from engine.api.attachments import described
from engine.api.auth import api_actor
from engine.api.records import answer
from engine.errors import ValidationFailed
from engine.http.context import site
from engine.metadata.model import Entity
from engine.printing.documents import GENERIC, PrintFormat, formats_for, render_pdf

LANGUAGES = ("en", "zh")


def _language() -> str:
    """``?lang=``, else the caller's language (``zh_CN`` and the like count as ``zh``)."""
    asked = request.args.get("lang")
    if asked is not None:
        if asked not in LANGUAGES:
            raise ValidationFailed({"lang": [f"Use one of: {', '.join(LANGUAGES)}."]})
        return asked
    default = api_actor().language or site().config.locale or "en"
    return "zh" if default.startswith("zh") else "en"


def _file_name(fmt: PrintFormat, lang: str, record_id: int) -> str:
    return f"{fmt.label.get(lang)}-{record_id}.pdf"


def _rendered(entity: str, record_id: int, fmt: str) -> tuple[PrintFormat, bytes, str]:
    lang = _language()
    found, data = render_pdf(site(), api_actor(), fmt, entity, record_id, language=lang)
    return found, data, lang


def register(bp: Any) -> None:
    @bp.get("/<entity>/<int:record_id>/prints")
    def list_prints(entity: str, record_id: int) -> Response:
        site().records.get(api_actor(), entity, record_id)  # 404 unless the caller sees it
        items = [{"key": f.key, "label": f.label.to_data(), "page": f.page,
                  "pdf": url_for("api.print_pdf", entity=entity, record_id=record_id, fmt=f.key)}
                 for f in formats_for(site(), entity)]
        return answer({"items": items})

    @bp.get("/<entity>/<int:record_id>/prints/<fmt>.pdf")
    def print_pdf(entity: str, record_id: int, fmt: str) -> Response:
        found, data, lang = _rendered(entity, record_id, fmt)
        name = _file_name(found, lang, record_id)
        response = Response(data, mimetype="application/pdf")
        response.headers["Content-Disposition"] = (
            f"attachment; filename=\"{found.key}-{record_id}.pdf\"; "
            f"filename*=UTF-8''{quote(name)}")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "private, no-store"
        return response

    @bp.post("/<entity>/<int:record_id>/prints/<fmt>/attach")
    def attach_print(entity: str, record_id: int, fmt: str) -> Response:
        site().records.require_writable(api_actor(), entity, record_id)  # before rendering
        found, data, lang = _rendered(entity, record_id, fmt)
        stored = site().attachments.attach(api_actor(), entity, record_id,
                                           _file_name(found, lang, record_id), io.BytesIO(data))
        return answer(described(stored), 201)


# -- OpenAPI ------------------------------------------------------------------------

PRINT_SCHEMAS: dict[str, Any] = {
    "PrintFormatList": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"type": "object",
                                             "required": ["key", "label", "pdf"], "properties": {
                                                 "key": {"type": "string"},
                                                 "label": {"type": "object"},
                                                 "page": {"type": "string"},
                                                 "pdf": {"type": "string"}}}}}},
}
LANG = {"name": "lang", "in": "query", "required": False,
        "schema": {"type": "string", "enum": list(LANGUAGES)},
        "description": "The document's language (the caller's own by default)."}


def print_paths(entity: Entity, formats: list[str], id_param: dict[str, Any],
                errors: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI path items of an entity's printed documents (``formats``: its keys)."""
    key, tag = entity.key, [entity.key]
    fmt = {"name": "format", "in": "path", "required": True,
           "schema": {"type": "string", "enum": formats or [GENERIC]}}
    return {
        f"/{key}/{{id}}/prints": {"parameters": [id_param], "get": {
            "operationId": f"prints_{key}", "tags": tag,
            "summary": "The print formats of the record, with their PDF addresses.",
            "responses": {"200": {"description": "OK", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/PrintFormatList"}}}}, **errors}}},
        f"/{key}/{{id}}/prints/{{format}}.pdf": {"parameters": [id_param, fmt], "get": {
            "operationId": f"print_{key}", "tags": tag, "parameters": [LANG],
            "summary": "The document as PDF.",
            "responses": {"200": {"description": "The PDF", "content": {"application/pdf": {
                "schema": {"type": "string", "format": "binary"}}}}, **errors}}},
        f"/{key}/{{id}}/prints/{{format}}/attach": {"parameters": [id_param, fmt], "post": {
            "operationId": f"attach_print_{key}", "tags": tag, "parameters": [LANG],
            "summary": "Render the PDF and attach it to the record.",
            "responses": {"201": {"description": "Attached", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Attachment"}}}}, **errors}}},
    }
