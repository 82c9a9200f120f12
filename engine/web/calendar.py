"""The calendar page (week or month), moving events, and the phone feed.

Events come from :class:`engine.services.views.calendar.CalendarService` with the
actor, coloured by owner and narrowed to a person or team
(``calendar_people``).  Dragging an event onto another day (``static/calendar.js``) posts a
move that is an ordinary update — rights, validation and the version the
page showed are checked, and a refusal is shown where the event was.  The
feed address is the one route here without a session: its secret token is
the credential, and a wrong one gets the same 404 as a revoked one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from werkzeug.exceptions import NotFound as HttpNotFound

from engine.errors import Conflict, CrmError, NotFound, ValidationFailed
from engine.http.context import actor, login_required, site
from engine.metadata.values import whole_number
from engine.services.views.calendar import CalendarEvent, in_calendar_years
from engine.web.calendar_people import colour_class, people

bp = Blueprint("calendar", __name__)
@dataclass
class Day:
    date: dt.date
    in_range: bool
    events: list[CalendarEvent] = field(default_factory=list)


def _start_of(span: str, anchor: dt.date) -> tuple[dt.date, dt.date]:
    if span == "month":
        first = anchor.replace(day=1)
        start = first - dt.timedelta(days=first.weekday())
        following = (first + dt.timedelta(days=32)).replace(day=1)
        end = following + dt.timedelta(days=(7 - following.weekday()) % 7)
        return start, end
    start = anchor - dt.timedelta(days=anchor.weekday())
    return start, start + dt.timedelta(days=7)


@bp.route("/calendar")
@login_required
def page() -> str:
    crm = site()
    zone = crm.calendar.zone
    today = crm.clock.now().astimezone(zone).date()
    span = "month" if request.args.get("span") == "month" else "week"
    try:
        anchor = dt.date.fromisoformat(request.args.get("start", "")) if request.args.get(
            "start") else today
    except ValueError:
        anchor = today
    if not in_calendar_years(anchor):  # a link, not input: show today rather than refuse
        anchor = today
    first, last = _start_of(span, anchor)
    start = dt.datetime.combine(first, dt.time(), zone)
    end = dt.datetime.combine(last, dt.time(), zone)
    wanted = request.args.getlist("entity") or None
    sources = crm.calendar.sources(actor())
    chosen = people(crm, actor(), sources, request.args.get("owner"), request.args.get("team"))
    events = crm.calendar.events(actor(), start, end, entities=wanted, filters=chosen.filters())
    days = [Day(first + dt.timedelta(days=i),
                span == "week" or (first + dt.timedelta(days=i)).month == anchor.month)
            for i in range((last - first).days)]
    for event in events:
        moment = event.start if isinstance(event.start, dt.date) and not isinstance(
            event.start, dt.datetime) else event.start.astimezone(zone).date()
        index = (moment - first).days
        if 0 <= index < len(days):
            days[index].events.append(event)
    step = dt.timedelta(days=7) if span == "week" else dt.timedelta(days=31)
    shown = crm.users.list()
    names = {u["id"]: u.get("display_name") or u["login"] for u in shown}
    legend = sorted({e.owner for e in events if e.owner is not None},
                    key=lambda o: names.get(o, "").lower())
    return render_template(
        "calendar.html", days=days, span=span, today=today, zone=zone,
        sources=sources, wanted=wanted or [], people=chosen, names=names,
        legend=[(colour_class(o), names.get(o, str(o))) for o in legend],
        colour_of=lambda event: colour_class(event.owner),
        keep={"owner": chosen.owner, "team": chosen.team},
        previous=(anchor - step).replace(day=1 if span == "month" else (anchor - step).day),
        following=(anchor + step).replace(day=1 if span == "month" else (anchor + step).day),
        anchor=anchor)


@bp.route("/calendar/move/<entity_key>/<int:record_id>", methods=["POST"])
@login_required
def move(entity_key: str, record_id: int) -> tuple[Response, int]:
    version = request.form.get("version")
    try:
        moved = site().calendar.reschedule(
            actor(), entity_key, record_id, request.form.get("start", ""),
            version=whole_number(version))
    except ValidationFailed as exc:
        return jsonify({"message": exc.message, "errors": exc.errors}), exc.status
    except Conflict as exc:
        return jsonify({"message": exc.message}), exc.status
    except CrmError as exc:
        return jsonify({"message": exc.message}), exc.status
    view = site().registry.views[entity_key]
    value = moved[view.calendar.start]
    return jsonify({"start": value.isoformat(), "version": moved["version"]}), 200


@bp.route("/calendar/feed", methods=["POST"])
@login_required
def new_feed() -> str:
    token = site().calendar.create_feed(actor())
    address = url_for("calendar.feed", token=token, _external=True)
    return render_template("calendar_feed.html", address=address)


@bp.route("/calendar/feed/revoke", methods=["POST"])
@login_required
def revoke_feed() -> str:
    site().calendar.revoke_feed(actor())
    return render_template("calendar_feed.html", address=None)


@bp.route("/calendar/feed/<token>.ics")
def feed(token: str) -> Response:
    crm = site()
    try:
        owner = crm.users.actor(crm.calendar.feed_owner(token))
    except NotFound:
        raise HttpNotFound() from None
    data = crm.calendar.feed(owner, site_name=crm.config.name)
    response = Response(data, mimetype="text/calendar")
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Content-Disposition"] = 'inline; filename="visioncrm.ics"'
    return response


