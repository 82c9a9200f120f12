"""Record endpoints: list, create, get, update, delete, archive, history, lookup, related.

Every call goes to ``site.records`` with the caller's actor, so scopes,
field rules and validation are the service's, exactly as in the UI.
Writes that change an existing record carry its version (``If-Match`` or
``version`` in the body): a stale one is 409 with the current values, a
missing one 428, and ``If-Match: *`` (RFC 9110 13.1.1) takes whatever
version is current.  Paging values outside their range are refused (422),
never clamped.
"""

from __future__ import annotations

from typing import Any

from flask import Response, json, request, url_for

from engine.api.auth import api_actor
from engine.errors import CrmError, NotFound, ValidationFailed
from engine.http.context import site
from engine.metadata.values import INT_MAX, to_json
from engine.services.records.choices import DEFAULT_CHOICES, MAX_CHOICES, choose
from engine.storage.queries import Filter, Sort

RESERVED = frozenset({"sort", "limit", "offset", "fields", "q", "count", "include_archived"})
#: The most records one page carries.
MAX_LIMIT = 1000


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


#: How deep a request's JSON may nest (a record with lines is three levels).
MAX_DEPTH = 32


def parse_json(raw: str | bytes, name: str = "body") -> Any:
    """``raw`` parsed, or 422 for ``name``: malformed, or nested deeper than :data:`MAX_DEPTH`.

    The parser itself recurses, so a body of a thousand ``[`` fails inside
    it (RecursionError); a shallower one that still nests too deep is
    refused by :func:`depth` before anything walks it recursively.
    """
    try:
        data = json.loads(raw)
    except RecursionError:
        data = None
        too_deep = True
    except ValueError:
        raise ValidationFailed({name: ["Expected JSON."]}) from None
    else:
        too_deep = depth(data) > MAX_DEPTH
    if too_deep:
        raise ValidationFailed({name: [f"JSON nested deeper than {MAX_DEPTH} levels."]})
    return data


def depth(data: Any) -> int:
    """How many arrays and objects deep ``data`` nests, counted without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            stack.extend((child, level + 1) for child in item)
    return deepest


def body() -> dict[str, Any]:
    """The request's JSON object (415 for another type, 422 for malformed or too deep JSON)."""
    if not request.is_json:
        raise UnsupportedMedia("Send JSON (Content-Type: application/json).")
    data = parse_json(request.get_data(cache=True))
    if not isinstance(data, dict):
        raise ValidationFailed({"body": ["Expected a JSON object."]})
    return data


def version_of(data: dict[str, Any] | None = None, *, required: bool = True) -> int | None:
    """The version the client read: ``If-Match: "3"`` or ``version`` in the body.

    ``If-Match: *`` means any current version (None: the write is not
    checked against one); a list of several tags is refused, as a record
    has one version to compare with.
    """
    raw: Any = None
    header = request.headers.get("If-Match")
    if header and header.strip() == "*":
        if data is not None:
            data.pop("version", None)
        return None
    if header:
        if "," in header:
            raise ValidationFailed({"version": ["Send one version in If-Match."]})
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
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        raw = int(raw) if len(raw.strip()) <= 19 else -1
    if type(raw) is not int or not 0 <= raw <= INT_MAX:
        raise ValidationFailed({"version": ["The version must be a whole number."]})
    return raw


def _etag(record: dict[str, Any]) -> dict[str, str]:
    return {"ETag": f'"{record["version"]}"'} if "version" in record else {}


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    """A paging value from the query string, refused (never clamped) outside low..high."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) and not (
            text[:1] == "-" and text[1:].isascii() and text[1:].isdigit()):
        raise ValidationFailed({name: ["Expected a whole number."]})
    number = int(text) if len(text) <= 20 else high + 1
    if not low <= number <= high:
        raise ValidationFailed({name: [f"Must be from {low} to {high}."]})
    return number


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
            "limit": _int_arg("limit", 50, 1, MAX_LIMIT),
            "offset": _int_arg("offset", 0, 0, INT_MAX - MAX_LIMIT - 1),
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

    @bp.get("/<entity>/choices")
    def record_choices(entity: str) -> Response:
        """Records to point a reference at, by text: what the web pickers search."""
        found = choose(site().records, api_actor(), entity, request.args.get("q"),
                       limit=_int_arg("limit", DEFAULT_CHOICES, 1, MAX_CHOICES))
        return answer(found.as_json())

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

