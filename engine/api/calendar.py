"""The calendar through the API: events in a time window, and moving one.

Events come from ``site.calendar`` with the API actor, so they are exactly
the records the caller may read, as on the calendar page.  ``start`` and
``end`` are dates or times (ISO 8601; a time without an offset is on the
site's clock); without them the window is the coming week.  Moving an
event is an ordinary update: the version read is required (``version`` in
the body or ``If-Match``), a stale one is 409 and an invalid start 422.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, request

from engine.api.auth import api_actor
from engine.api.records import answer, body, version_of
from engine.context import Actor
from engine.errors import ValidationFailed
from engine.http.context import site
from engine.services.views.calendar import FIRST_YEAR, LAST_YEAR, in_calendar_years
from engine.site import Site

#: The widest window one request may ask for.
MAX_SPAN = dt.timedelta(days=366)
DEFAULT_SPAN = dt.timedelta(days=7)


def _moment(name: str, default: dt.datetime) -> dt.datetime:
    raw = request.args.get(name)
    if not raw:
        return default
    zone = site().calendar.zone
    try:
        if len(raw) == 10:
            value = dt.datetime.combine(dt.date.fromisoformat(raw), dt.time(), zone)
        else:
            value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed({name: ["Expected a date or time (ISO 8601)."]}) from None
    value = value if value.tzinfo else value.replace(tzinfo=zone)
    if not in_calendar_years(value):  # before any arithmetic: 9999-12-31 + 7 days overflows
        raise ValidationFailed({name: [f"Expected a year from {FIRST_YEAR} to {LAST_YEAR}."]})
    return value


def _window() -> tuple[dt.datetime, dt.datetime]:
    crm = site()
    today = crm.clock.now().astimezone(crm.calendar.zone).date()
    start = _moment("start", dt.datetime.combine(today, dt.time(), crm.calendar.zone))
    end = _moment("end", start + DEFAULT_SPAN)
    if end <= start:
        raise ValidationFailed({"end": ["The end must come after the start."]})
    if end - start > MAX_SPAN:
        raise ValidationFailed({"end": [f"Ask for at most {MAX_SPAN.days} days at a time."]})
    return start, end


def register(bp: Any) -> None:
    @bp.get("/calendar")
    def calendar_events() -> Response:
        crm, actor = site(), api_actor()
        start, end = _window()
        sources = crm.calendar.sources(actor)
        wanted = request.args.getlist("entity") or None
        known = {entity.key for entity, _ in sources}
        unknown = sorted(set(wanted or ()) - known)
        if unknown:
            raise ValidationFailed({"entity": [
                f"No calendar of yours shows {', '.join(unknown)}; "
                f"use one of: {', '.join(sorted(known)) or '(none)'}."]})
        events = crm.calendar.events(actor, start, end, entities=wanted)
        return answer({
            "start": start.isoformat(), "end": end.isoformat(),
            "sources": [{"entity": e.key, "label": e.label.to_data(), "start": c.start}
                        for e, c in sources],
            "items": [e.to_dict() for e in events]})

    @bp.post("/calendar/<entity>/<int:record_id>/move")
    def move_event(entity: str, record_id: int) -> Response:
        data = body()
        version = version_of(data)
        start = data.get("start")
        if not isinstance(start, str) or not start:
            raise ValidationFailed({"start": ["Give the new start as an ISO 8601 date or time."]})
        crm = site()
        moved = crm.calendar.reschedule(api_actor(), entity, record_id, start, version=version)
        calendar = crm.registry.views[entity].calendar
        end = moved.get(calendar.end) if calendar.end else None
        return answer({"entity": entity, "id": record_id, "start": moved[calendar.start],
                       "end": end, "version": moved["version"]},
                      headers={"ETag": f'"{moved["version"]}"'})


# -- OpenAPI ------------------------------------------------------------------------

CALENDAR_SCHEMAS: dict[str, Any] = {
    "CalendarEvent": {"type": "object",
                      "required": ["entity", "id", "title", "start", "end", "all_day"],
                      "properties": {
                          "entity": {"type": "string"}, "id": {"type": "integer"},
                          "title": {"type": "string"}, "start": {"type": "string"},
                          "end": {"type": "string"}, "all_day": {"type": "boolean"},
                          "color": {"type": ["string", "null"]},
                          "version": {"type": ["integer", "null"]}}},
    "CalendarEvents": {"type": "object", "required": ["start", "end", "sources", "items"],
                       "properties": {
                           "start": {"type": "string", "format": "date-time"},
                           "end": {"type": "string", "format": "date-time"},
                           "sources": {"type": "array", "items": {"type": "object", "properties": {
                               "entity": {"type": "string"}, "label": {"type": "object"},
                               "start": {"type": "string"}}}},
                           "items": {"type": "array", "items": {
                               "$ref": "#/components/schemas/CalendarEvent"}}}},
    "CalendarMove": {"type": "object", "required": ["start", "version"], "properties": {
        "start": {"type": "string", "minLength": 1,
                  "description": "The new start: a date, or a time (ISO 8601)."},
        "version": {"type": "integer"}}},
    "CalendarMoved": {"type": "object", "required": ["entity", "id", "start", "version"],
                      "properties": {
                          "entity": {"type": "string"}, "id": {"type": "integer"},
                          "start": {"type": "string"}, "end": {"type": ["string", "null"]},
                          "version": {"type": "integer"}}},
}


def calendar_paths(crm: Site, actor: Actor, id_param: dict[str, Any],
                   errors: dict[str, Any]) -> dict[str, Any]:
    """``/calendar`` and ``/calendar/{entity}/{id}/move`` for the calendars the actor sees."""
    keys = [entity.key for entity, _ in crm.calendar.sources(actor)]
    when = {"type": "string", "description": "A date (2026-11-23) or a time (ISO 8601)."}
    paths: dict[str, Any] = {"/calendar": {"get": {
        "operationId": "calendar", "tags": ["calendar"],
        "summary": "Events starting in [start, end) that you may see (default: the coming week).",
        "parameters": [
            {"name": "start", "in": "query", "schema": when},
            {"name": "end", "in": "query", "schema": when},
            {"name": "entity", "in": "query", "style": "form", "explode": True,
             "schema": {"type": "array", "items": {"type": "string", "enum": keys or [""]}}}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/CalendarEvents"}}}}, **errors}}}}
    if keys:
        paths["/calendar/{entity}/{id}/move"] = {
            "parameters": [{"name": "entity", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": keys}}, id_param],
            "post": {"operationId": "calendar_move", "tags": ["calendar"],
                     "summary": "Move an event (an update: rights, validation, version).",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/CalendarMove"}}}},
                     "responses": {"200": {"description": "Moved", "content": {
                         "application/json": {
                             "schema": {"$ref": "#/components/schemas/CalendarMoved"}}}},
                         "409": {"$ref": "#/components/responses/Problem"},
                         "428": {"$ref": "#/components/responses/Problem"}, **errors}}}
    return paths
