"""Record endpoints: list, create, get, update, delete, archive, history, lookup, related.

Every call goes to ``site.records`` with the caller's actor, so scopes,
field rules and validation are the service's, exactly as in the UI.
Writes that change an existing record carry its version (``If-Match`` or
``version`` in the body): a stale one is 409 with the current values, a
missing one 428.
"""

from __future__ import annotations

from typing import Any

from flask import Response, json, request, url_for

from engine.api.auth import api_actor
from engine.errors import CrmError, NotFound, ValidationFailed
from engine.services.values import to_json
from engine.storage.queries import Filter, Sort
from engine.web.context import site

RESERVED = frozenset({"sort", "limit", "offset", "fields", "q", "count", "include_archived"})


class VersionRequired(CrmError):
    status = 428
    code = "version_required"


class UnsupportedMedia(CrmError):
    status = 415
    code = "unsupported_media_type"


def answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(to_json(data)), status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def body() -> dict[str, Any]:
    """The request's JSON object (415 for another type, 400 for malformed JSON)."""
    if not request.is_json:
        raise UnsupportedMedia("Send JSON (Content-Type: application/json).")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed({"body": ["Expected a JSON object."]})
    return data


def version_of(data: dict[str, Any] | None = None, *, required: bool = True) -> int | None:
    """The version the client read: ``If-Match: "3"`` or ``version`` in the body."""
    raw: Any = None
    header = request.headers.get("If-Match")
    if header:
        raw = header.strip().removeprefix("W/").strip('"')
    elif data is not None and "version" in data:
        raw = data.pop("version")
    elif request.args.get("version"):
        raw = request.args["version"]
    if raw is None:
        if required:
            raise VersionRequired(
                "Send the version you read: an If-Match header or 'version' in the body.")
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValidationFailed({"version": ["The version must be a whole number."]}) from None


def _etag(record: dict[str, Any]) -> dict[str, str]:
    return {"ETag": f'"{record["version"]}"'} if "version" in record else {}


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed({name: ["Expected a whole number."]}) from None


def _query() -> dict[str, Any]:
    """Filters, search, sort and paging from the query string."""
    filters = []
    for key, value in request.args.items(multi=True):
        if key in RESERVED or key == "version":
            continue
        name, _, op = key.partition("__")
        filters.append(Filter(name, op or "eq", value))
    sort = [Sort.parse(s) for s in request.args.get("sort", "").split(",") if s.strip()]
    return {"filters": filters, "sort": sort, "search": request.args.get("q") or None,
            "limit": _int_arg("limit", 50), "offset": _int_arg("offset", 0),
            "include_archived": request.args.get("include_archived") in ("1", "true")}


def _select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    wanted = [f.strip() for f in request.args.get("fields", "").split(",") if f.strip()]
    if not wanted:
        return rows
    keep = {"id", "version", *wanted}
    return [{k: v for k, v in row.items() if k in keep} for row in rows]


def _page(entity: str, extra_filters: list[Filter] | None = None) -> Response:
    args = _query()
    args["filters"] = [*args["filters"], *(extra_filters or [])]
    with_total = request.args.get("count") in ("1", "true") or args["offset"] == 0
    page = site().records.list(api_actor(), entity, with_total=with_total, **args)
    data: dict[str, Any] = {"items": _select(page.rows), "limit": page.limit,
                            "offset": page.offset, "has_more": page.has_more}
    if page.total is not None:
        data["total"] = page.total
    return answer(data)


def register(bp: Any) -> None:
    @bp.get("/<entity>")
    def list_records(entity: str) -> Response:
        return _page(entity)

    @bp.post("/<entity>")
    def create_record(entity: str) -> Response:
        record = site().records.create(api_actor(), entity, body())
        location = url_for("api.get_record", entity=entity, record_id=record["id"])
        return answer(record, 201, {"Location": location, **_etag(record)})

    @bp.get("/<entity>/<int:record_id>")
    def get_record(entity: str, record_id: int) -> Response:
        record = site().records.get(api_actor(), entity, record_id)
        return answer(record, headers=_etag(record))

    @bp.patch("/<entity>/<int:record_id>")
    def update_record(entity: str, record_id: int) -> Response:
        data = body()
        version = version_of(data)
        record = site().records.update(api_actor(), entity, record_id, data, version=version)
        return answer(record, headers=_etag(record))

    @bp.delete("/<entity>/<int:record_id>")
    def delete_record(entity: str, record_id: int) -> Response:
        site().records.delete(api_actor(), entity, record_id, version=version_of())
        return Response(status=204)

    @bp.post("/<entity>/<int:record_id>/archive")
    def archive_record(entity: str, record_id: int) -> Response:
        data = body() if request.get_data() else {}
        record = site().records.archive(api_actor(), entity, record_id,
                                        version=version_of(data, required=False))
        return answer(record, headers=_etag(record))

    @bp.post("/<entity>/<int:record_id>/restore")
    def restore_record(entity: str, record_id: int) -> Response:
        data = body() if request.get_data() else {}
        record = site().records.restore(api_actor(), entity, record_id,
                                        version=version_of(data, required=False))
        return answer(record, headers=_etag(record))

    @bp.get("/<entity>/<int:record_id>/history")
    def record_history(entity: str, record_id: int) -> Response:
        return answer({"items": site().records.history(api_actor(), entity, record_id)})

    @bp.post("/<entity>/lookup")
    def lookup_record(entity: str) -> Response:
        keys = body()
        if not keys:
            raise ValidationFailed({"body": ["Give the key fields to look up by."]})
        record = site().records.lookup(api_actor(), entity, keys)
        return answer(record, headers=_etag(record))

    @bp.get("/<entity>/<int:record_id>/related/<other>/<field>")
    def related_records(entity: str, record_id: int, other: str, field: str) -> Response:
        records = site().records
        parent = records.entity(entity)
        target = records.entity(other)
        link = target.fields.get(field)
        if link is None or link.type != "reference" or link.to != parent.key:
            raise NotFound(f"'{other}.{field}' does not point at {entity}.")
        records.get(api_actor(), entity, record_id)  # 404 unless the caller sees it
        return _page(other, [Filter(field, "eq", record_id)])

