"""Downloads, for the web UI and the API alike: a list export and a stored file.

CSV is streamed as it is produced; XLSX is written to a spooled temporary
file first (a workbook is a zip archive) and streamed from it.  A list
export may give a row per line of one lines field (``lines=FIELD``, from
the query string of the API's and the list page's export alike).  A stored
file always goes out as an attachment with ``nosniff`` and a sandboxing CSP,
whichever door it is fetched through.
"""

from __future__ import annotations

import tempfile
from typing import Any
from urllib.parse import quote

from flask import Response, has_request_context, request, stream_with_context

from engine.errors import ValidationFailed
from engine.services.dataio.exporting import FORMATS, MEDIA_TYPES, Exporter
from engine.services.records.attachments import Attachment
from engine.storage.queries import Filter, Sort

#: Bytes of an XLSX kept in memory before it spills to a temporary file.
SPOOL_BYTES = 8 * 1024 * 1024


def export_response(exporter: Exporter, actor: Any, entity_key: str, *, fmt: str,
                    filters: list[Filter], sort: list[Sort], search: str | None,
                    include_archived: bool, keys: bool = False,
                    lines: str | None = None) -> Response:
    """The file as a streamed response (shared with the web UI's export link).

    ``lines`` names the lines field to write a row per line of; by default the
    request's ``lines`` argument, so every export link takes it the same way.
    """
    if fmt not in FORMATS:
        raise ValidationFailed({"format": [f"Use one of: {', '.join(FORMATS)}."]})
    if lines is None and has_request_context():
        lines = request.args.get("lines", "").strip() or None
    header, rows = exporter.rows(actor, entity_key, filters=filters, sort=sort, search=search,
                                 include_archived=include_archived, keys=keys,
                                 typed=fmt == "xlsx", lines=lines)
    name = f"{entity_key}-{lines}" if lines else entity_key
    disposition = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
    if fmt == "csv":
        return Response(stream_with_context(exporter.csv_chunks(header, rows)),
                        mimetype="text/csv", content_type=MEDIA_TYPES["csv"],
                        headers=disposition)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed below
    try:
        exporter.write_xlsx(header, rows, spool, title=name)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)

    def chunks() -> Any:
        with spool:
            while block := spool.read(64 * 1024):
                yield block

    return Response(chunks(), content_type=MEDIA_TYPES["xlsx"], headers=disposition)


def file_response(found: Attachment, chunks: Any) -> Response:
    """The bytes as a download that a browser will never render in the CRM's origin."""
    response = Response(chunks, mimetype=None)  # chunks need no request context
    response.headers["Content-Type"] = found.content_type
    response.headers["Content-Length"] = str(found.size)
    ascii_name = found.name.encode("ascii", "replace").decode().replace('"', "").replace("?", "_")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(found.name)}")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "private, no-store"
    return response
