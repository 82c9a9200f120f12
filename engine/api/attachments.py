"""Files of a record through the API: list, upload (one or several), download, remove.

Every call goes to ``site.attachments`` with the API actor, so the record's
scope holds exactly as on the record page: a file of a record the caller
cannot read is "not found", whoever knows its key.  An upload is
``multipart/form-data`` with one or several ``files`` parts; every part is
checked (size, emptiness) before any is stored, and if storing one fails
the ones already stored are removed again — an upload is all or nothing.
Downloads are served as attachments with the type found in the bytes,
``nosniff`` and a sandboxing CSP, as in the web UI.
"""

from __future__ import annotations

import contextlib
import os
from typing import IO, Any

from flask import Response, request, url_for

from engine.api.auth import api_actor
from engine.api.records import UnsupportedMedia, answer
from engine.errors import CrmError, TooLarge, ValidationFailed
from engine.http.context import site
from engine.http.downloads import file_response
from engine.metadata.model import Entity
from engine.services.records.attachments import Attachment

#: Parts one upload may carry; the request as a whole is capped accordingly.
MAX_FILES_PER_REQUEST = 10
#: Room for the multipart framing around the files.
FRAMING = 64 * 1024
FIELDS = ("files", "file")


def upload_limit() -> int:
    """The largest upload request body (bytes): the site's file size times the files allowed."""
    return site().attachments.max_size * MAX_FILES_PER_REQUEST + FRAMING


def described(found: Attachment) -> dict[str, Any]:
    """An attachment as the API shows it, with the address to download it from."""
    return {**found.to_dict(), "entity": found.entity, "record_id": found.record_id,
            "url": url_for("api.download_attachment", key=found.key)}


def _size(stream: IO[bytes]) -> int:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def _uploaded() -> list[tuple[str, IO[bytes]]]:
    """The uploaded parts, each checked before anything is stored."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMedia("Send the files as multipart/form-data (parts named 'files').")
    parts = [f for name in FIELDS for f in request.files.getlist(name)]
    if not parts:
        raise ValidationFailed({"files": ["Send at least one file (a part named 'files')."]})
    if len(parts) > MAX_FILES_PER_REQUEST:
        raise TooLarge(f"At most {MAX_FILES_PER_REQUEST} files may come in one request.")
    limit = site().attachments.max_size
    checked = []
    for part in parts:
        name = part.filename or "file"
        size = _size(part.stream)
        if size > limit:
            raise TooLarge(f"'{name}' is larger than the {limit // 2**20} MB a file may be here.")
        if size == 0:
            raise ValidationFailed({"files": [f"'{name}' is empty."]})
        checked.append((name, part.stream))
    return checked


def store_all(entity: str, record_id: int, files: list[tuple[str, IO[bytes]]]) -> list[Attachment]:
    """Attach every file, or none: a failure removes those stored before it."""
    service, actor = site().attachments, api_actor()
    stored: list[Attachment] = []
    try:
        for name, stream in files:
            stored.append(service.attach(actor, entity, record_id, name, stream))
    except BaseException:
        for done in stored:
            with contextlib.suppress(CrmError):  # the first failure is the one to answer
                service.remove(actor, done.key)
        raise
    return stored


def register(bp: Any) -> None:
    @bp.get("/<entity>/<int:record_id>/attachments")
    def list_attachments(entity: str, record_id: int) -> Response:
        found = site().attachments.list(api_actor(), entity, record_id)
        return answer({"items": [described(a) for a in found]})

    @bp.post("/<entity>/<int:record_id>/attachments")
    def upload_attachments(entity: str, record_id: int) -> Response:
        site().records.require_writable(api_actor(), entity, record_id)  # 404/403 before parsing
        stored = store_all(entity, record_id, _uploaded())
        return answer({"items": [described(a) for a in stored]}, 201)

    @bp.get("/attachments/<key>")
    def download_attachment(key: str) -> Response:
        found, chunks = site().attachments.content(api_actor(), key)
        return file_response(found, chunks)

    @bp.delete("/attachments/<key>")
    def delete_attachment(key: str) -> Response:
        site().attachments.remove(api_actor(), key)
        return Response(status=204)


# -- OpenAPI ------------------------------------------------------------------------

ATTACHMENT_SCHEMAS: dict[str, Any] = {
    "Attachment": {"type": "object",
                   "required": ["key", "name", "content_type", "size", "sha256", "url"],
                   "properties": {
                       "key": {"type": "string"}, "name": {"type": "string"},
                       "content_type": {"type": "string",
                                        "description": "Found in the bytes, not as uploaded."},
                       "size": {"type": "integer", "minimum": 1},
                       "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                       "created_at": {"type": ["string", "null"], "format": "date-time"},
                       "created_by": {"type": ["integer", "null"]},
                       "entity": {"type": "string"}, "record_id": {"type": "integer"},
                       "url": {"type": "string"}}},
    "AttachmentList": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}}}},
}
BINARY = {"type": "string", "format": "binary"}
UPLOAD = {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "minItems": 1, "maxItems": MAX_FILES_PER_REQUEST,
                  "items": BINARY,
                  "description": "One or several files; each part's file name is kept."}}},
    "encoding": {"files": {"contentType": "application/octet-stream"}}}}}
KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}


def attachment_paths(entity: Entity, id_param: dict[str, Any],
                     errors: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI path item of an entity's files."""
    listing = {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/AttachmentList"}}}}
    return {f"/{entity.key}/{{id}}/attachments": {
        "parameters": [id_param],
        "get": {"operationId": f"attachments_{entity.key}", "tags": [entity.key],
                "summary": "The record's files.", "responses": {"200": listing, **errors}},
        "post": {"operationId": f"attach_{entity.key}", "tags": [entity.key],
                 "summary": "Attach one or several files (all or nothing; 413 when too large).",
                 "requestBody": UPLOAD,
                 "responses": {"201": {**listing, "description": "Stored"}, **errors}},
    }}


def shared_attachment_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """``/attachments/{key}``: download and remove a file by its key."""
    return {"/attachments/{key}": {
        "parameters": [KEY],
        "get": {"operationId": "download_attachment", "tags": ["attachments"],
                "summary": "The file's bytes, as an attachment with the type found in them.",
                "responses": {"200": {
                    "description": "The file",
                    "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                    "content": {"application/octet-stream": {"schema": BINARY},
                                "*/*": {"schema": BINARY}}}, **errors}},
        "delete": {"operationId": "delete_attachment", "tags": ["attachments"],
                   "responses": {"204": {"description": "Removed"}, **errors}},
    }}
