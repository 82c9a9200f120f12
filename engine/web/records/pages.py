"""Pages for any entity of the registry: home, list, detail and the reference lookup.

Nothing here is written for one entity: the views (:mod:`engine.metadata.entity_views`)
say what to show, and the record service decides what the actor may see.
A list counts its rows only on its first page; later pages ask for one row
more than they show to know whether there is a next page, so paging a big
table never runs a full count.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, jsonify, render_template, request
from werkzeug.wrappers import Response

from engine.errors import ValidationFailed
from engine.http.context import actor, language, login_required, site, state
from engine.metadata.entity_views import FILTER_KINDS, EntityViews, column_field
from engine.metadata.model import Entity
from engine.services.records.choices import MAX_CHOICES, choose
from engine.services.records.service import Page
from engine.services.views.saved_filters import SavedFilterService
from engine.storage.queries import Filter, Sort
from engine.web.presentation.display import Presenter
from engine.web.records.detail import related_lists, timeline, transitions
from engine.web.records.form_values import applies
from engine.web.records.narrowing import narrowing

bp = Blueprint("records", __name__)
PAGE_SIZE = 25
LOOKUP_SIZE = 20


def presenter() -> Presenter:
    return Presenter(site(), actor(), language())


def entity_and_views(entity_key: str) -> tuple[Entity, EntityViews]:
    entity = site().records.entity(entity_key)  # NotFound → 404
    return entity, state().views.of(entity.key)


@bp.route("/")
@login_required
def home() -> tuple[str, int]:
    """The actor's dashboard for their role (``engine.web.dashboards.pages``)."""
    from engine.web.dashboards.pages import render

    return render("home")


def _int_arg(name: str, default: int = 0) -> int:
    """A paging value from the link; one out of range is the default (a page link, not input)."""
    raw = str(request.args.get(name, default)).strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 15:
        return default
    return int(raw)


def _list_filters(entity: Entity, views: EntityViews,
                  hidden: frozenset[str]) -> tuple[list[Filter], list[dict[str, Any]]]:
    """Filters from the query string: the view's filter widgets and reference links."""
    filters: list[Filter] = []
    widgets: list[dict[str, Any]] = []
    for key in views.filters:
        if key in hidden:
            continue
        field = entity.fields[key]
        kind = FILTER_KINDS[field.value_type]
        widget: dict[str, Any] = {"field": field, "kind": kind}
        if kind == "range":
            for op in ("ge", "le"):
                value = request.args.get(f"{key}__{op}", "").strip()
                widget[op] = value
                if value:
                    filters.append(Filter(key, op, value))
        else:
            value = request.args.get(key, "").strip()
            widget["value"] = value
            if value:
                filters.append(Filter(key, "eq", value))
        widgets.append(widget)
    for field in entity.fields.values():
        value = request.args.get(field.key, "").strip()
        if field.type == "reference" and value and field.key not in hidden \
                and field.key not in views.filters:
            filters.append(Filter(field.key, "eq", value))
    return filters, widgets


@bp.route("/r/<entity_key>")
@login_required
def list_records(entity_key: str) -> tuple[str, int]:
    """A page of records; counted only when cheap (one page) or asked (``?count=1``)."""
    from engine.web.records.list_actions import bulk_options

    entity, views = entity_and_views(entity_key)
    me = actor()
    hidden = site().records.hidden(me, entity)
    columns = [column_field(entity, c) for c in views.columns if c not in hidden]
    search = request.args.get("q", "").strip()
    sort = request.args.get("sort", "").strip() or views.default_sort
    offset = _int_arg("offset")
    archived = request.args.get("archived") == "1"
    filters, widgets = _list_filters(entity, views, hidden)
    handled = frozenset(views.filters) | {f"{k}__{op}" for k in views.filters for op in ("ge", "le")}
    errors: dict[str, list[str]] = {}
    try:
        extra, chips = narrowing(entity, handled, hidden, request.args, presenter(), language())
    except ValidationFailed as exc:
        extra, chips, errors = [], [], exc.errors
    filters += extra
    size = views.page_size
    try:
        if errors:  # a link's narrowing was refused: show nothing rather than too much
            raise ValidationFailed(errors)
        page = site().records.list(
            me, entity.key, filters=filters, search=search or None, sort=[Sort.parse(sort)],
            limit=size, offset=offset, include_archived=archived,
            with_total=request.args.get("count") == "1", search_fields=views.search)
    except ValidationFailed as exc:
        errors = exc.errors
        page = Page(rows=[], limit=size, offset=offset, total=None, has_more=False)
    if page.total is None and not page.has_more and not errors:
        page = replace(page, total=offset + len(page.rows))  # the last page counts itself
    shown = presenter()
    shown.preload(entity, page.rows)
    policy = site().records.policy
    html = render_template(
        "list.html", entity=entity, views=views, columns=columns, page=page, shown=shown,
        search=search, sort=sort, widgets=widgets, archived=archived, errors=errors,
        chips=chips,
        may_create=policy.can(me, entity, "create"),
        may_update=policy.can(me, entity, "update") and entity.ledger is None,
        bulk=bulk_options(entity, me),
        saved=SavedFilterService(site().schema, site().engine).list(me, entity.key))
    return html, 422 if errors else 200


def render_detail(entity_key: str, record_id: int, status: int = 200,
                  **extra: Any) -> tuple[str, int]:
    """The detail page; actions that fail re-render it with their messages (``extra``)."""
    entity, views = entity_and_views(entity_key)
    me = actor()
    record = site().records.get(me, entity.key, record_id)
    shown = presenter()
    shown.preload(entity, [record])
    now = site().clock.now()
    hidden = site().records.hidden(me, entity) | {
        f.key for f in entity.fields.values() if not applies(f, record, now)}
    policy = site().records.policy
    html = render_template(
        "detail.html", entity=entity, views=views, record=record, shown=shown,
        hidden=hidden, related=related_lists(site(), me, entity, record["id"], shown,
                                            views.related),
        events=timeline(site(), me, entity, record["id"], shown, views.stage_field),
        options=transitions(site(), me, entity, record["id"]),
        may_update=policy.can(me, entity, "update") and entity.ledger is None,
        may_delete=policy.can(me, entity, "delete") and entity.ledger is None, **extra)
    return html, status


@bp.route("/r/<entity_key>/<int:record_id>")
@login_required
def detail(entity_key: str, record_id: int) -> tuple[str, int]:
    return render_detail(entity_key, record_id)


@bp.route("/r/<entity_key>/lookup")
@login_required
def lookup(entity_key: str) -> Response | tuple[Response, int]:
    """Records matching ``q`` for a reference picker: ``{"results": [{id, title, detail}],
    "has_more"}`` — every record the actor may read, searched by title, number, code and
    the searchable fields (:mod:`engine.services.records.choices`)."""
    entity, _ = entity_and_views(entity_key)
    limit = _int_arg("limit", LOOKUP_SIZE) or LOOKUP_SIZE
    try:
        found = choose(site().records, actor(), entity.key, request.args.get("q"),
                       limit=min(limit, MAX_CHOICES))
    except ValidationFailed as exc:
        return jsonify({"errors": exc.errors}), 422
    return jsonify({"results": [c.as_json() for c in found.items],
                    "has_more": found.has_more})
