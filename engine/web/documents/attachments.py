"""Files on a record's page: upload (several at once, or dropped), download, remove.

Every route goes through :class:`engine.services.records.attachments.AttachmentService`
with the actor.  Downloads are always served as attachments, with the type
found in the file's bytes, ``nosniff`` and a sandboxing CSP, so an uploaded
HTML page or SVG never runs in the CRM's origin.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for

from engine.errors import CrmError, TooLarge, ValidationFailed
from engine.http.context import actor, language, login_required, site
from engine.http.downloads import file_response
from engine.web.i18n import translate

bp = Blueprint("attachments", __name__)
#: Several files may come in one request; the request as a whole is capped too.
MAX_FILES_PER_REQUEST = 10


@bp.app_context_processor
def _files_of() -> dict[str, Any]:
    def attachments_of(entity_key: str, record_id: int) -> list:
        try:
            return site().attachments.list(actor(), entity_key, record_id)
        except CrmError:
            return []

    return {"attachments_of": attachments_of}


def _back(entity_key: str, record_id: int) -> Response:
    return redirect(url_for("records.detail", entity_key=entity_key, record_id=record_id)
                    + "#files")


def upload_limit() -> int:
    """The largest upload request: the files allowed at once, each of the largest size."""
    return site().attachments.max_size * MAX_FILES_PER_REQUEST + 64 * 1024


@bp.route("/r/<entity_key>/<int:record_id>/files", methods=["POST"])
@login_required
def upload(entity_key: str, record_id: int) -> Response:
    service = site().attachments
    files = [f for f in request.files.getlist("files") if f.filename]
    if not files:
        raise ValidationFailed({"files": [translate("choose_files", language())]})
    if len(files) > MAX_FILES_PER_REQUEST:
        raise TooLarge(translate("too_many_files", language(), count=MAX_FILES_PER_REQUEST))
    for upload in files:
        service.attach(actor(), entity_key, record_id, upload.filename or "file", upload.stream)
    flash(translate("files_attached", language(), count=len(files)), "success")
    return _back(entity_key, record_id)


@bp.route("/files/<key>")
@login_required
def download(key: str) -> Response:
    found, chunks = site().attachments.content(actor(), key)
    return file_response(found, chunks)


@bp.route("/files/<key>/remove", methods=["POST"])
@login_required
def remove(key: str) -> Response:
    service = site().attachments
    found = service.find(actor(), key)
    service.remove(actor(), key)
    flash(translate("file_removed", language(), name=found.name), "success")
    return _back(found.entity, found.record_id)
