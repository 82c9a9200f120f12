"""Printing from a record's page: preview the document, download its PDF, attach it.

Everything goes through :mod:`engine.printing.documents` with the actor,
so the same scope and hidden-field rules hold as for the page itself.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, flash, redirect, url_for

from engine.errors import CrmError
from engine.http.context import actor, language, login_required, site
from engine.printing.documents import formats_for, render_html, render_pdf
from engine.web.i18n import translate

bp = Blueprint("printing", __name__)


@bp.app_context_processor
def _prints_of() -> dict[str, Any]:
    def print_formats_of(entity_key: str) -> list:
        try:
            return formats_for(site(), entity_key)
        except CrmError:
            return []

    return {"print_formats_of": print_formats_of}


def _file_name(label: str, record: int) -> str:
    return f"{label}-{record}.pdf"


@bp.route("/r/<entity_key>/<int:record_id>/print/<fmt>")
@login_required
def preview(entity_key: str, record_id: int, fmt: str) -> Response:
    _, html = render_html(site(), actor(), fmt, entity_key, record_id, language=language())
    response = Response(html, mimetype="text/html")
    # The preview is the document alone: no scripts, images only from the site itself.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:")
    return response


@bp.route("/r/<entity_key>/<int:record_id>/print/<fmt>.pdf")
@login_required
def pdf(entity_key: str, record_id: int, fmt: str) -> Response:
    found, data = render_pdf(site(), actor(), fmt, entity_key, record_id, language=language())
    name = _file_name(found.label.get(language()), record_id)
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{fmt}-{record_id}.pdf\"; filename*=UTF-8''{quote(name)}")
    return response


@bp.route("/r/<entity_key>/<int:record_id>/print/<fmt>/attach", methods=["POST"])
@login_required
def attach(entity_key: str, record_id: int, fmt: str) -> Response:
    found, data = render_pdf(site(), actor(), fmt, entity_key, record_id, language=language())
    name = _file_name(found.label.get(language()), record_id)
    site().attachments.attach(actor(), entity_key, record_id, name, io.BytesIO(data))
    flash(translate("files_attached", language(), count=1), "success")
    return redirect(url_for("records.detail", entity_key=entity_key, record_id=record_id)
                    + "#files")
