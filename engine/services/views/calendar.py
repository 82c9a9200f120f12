"""The calendar: records with a date placed in time, and each user's phone feed.

Which records appear is declared in view YAML (``calendar: {start: due_at}``)
— visit plans, follow-ups, milestones, instalments, membership expiries.
Events are read through the record service with the actor, so the calendar
and the feed hold exactly the records the actor may read; a record whose
start field is hidden from the actor is simply not placed.  Moving an event
is an ordinary update (rights, validation, optimistic locking).

The feed is an iCalendar document (RFC 5545, built with ``icalendar``)
behind a per-user secret address: phones subscribe to it without logging
in, so the address is a bearer secret — stored only as a hash, revocable,
read-only, and it answers with what its user may see *now*, not what they
could see when it was made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar
from icalendar import Event as IcsEvent
from sqlalchemy import insert, select, update

from engine.context import Actor, Clock
from engine.errors import NotFound, PermissionDenied, ValidationFailed
from engine.metadata.model import Entity
from engine.services.records.service import RecordService
from engine.storage.database import write_transaction
from engine.storage.queries import Filter, Sort

#: Events per source and request: a calendar is for looking at, not for exporting.
MAX_EVENTS = 2000
#: What the phone feed covers around today.
FEED_PAST = dt.timedelta(days=30)
FEED_AHEAD = dt.timedelta(days=180)
DEFAULT_LENGTH = dt.timedelta(hours=1)
#: The years a window may lie in: far enough from year 1 and 9999 that a window's
#: date arithmetic, in any time zone, never leaves what Python's dates can hold.
FIRST_YEAR, LAST_YEAR = 1900, 2999


def in_calendar_years(day: dt.date) -> bool:
    """Whether ``day`` (or a moment's day) lies in the years a calendar window may show."""
    return FIRST_YEAR <= day.year <= LAST_YEAR


def check_window(start: dt.datetime, end: dt.datetime) -> None:
    """Refuse (422, by parameter) a window outside :data:`FIRST_YEAR`..:data:`LAST_YEAR`."""
    for name, moment in (("start", start), ("end", end)):
        if not in_calendar_years(moment):
            raise ValidationFailed({name: [f"Expected a year from {FIRST_YEAR} to {LAST_YEAR}."]})


@dataclass(frozen=True)
class CalendarEvent:
    entity: str
    record_id: int
    title: str
    start: dt.date | dt.datetime
    end: dt.date | dt.datetime
    all_day: bool
    color: str | None
    version: int | None
    #: The record's owner (a user id), by which the calendar page colours and filters.
    owner: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "id": self.record_id, "title": self.title,
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "all_day": self.all_day, "color": self.color, "version": self.version}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CalendarService:
    def __init__(self, records: RecordService, views: Any, *, timezone: str,
                 clock: Clock, users_table: Any, feeds_table: Any) -> None:
        self.records = records
        self.views = views
        self.zone = ZoneInfo(timezone)
        self.clock = clock
        self.users = users_table
        self.feeds = feeds_table

    # -- events -------------------------------------------------------------------

    def sources(self, actor: Actor, *, feed_only: bool = False) -> list[tuple[Entity, Any]]:
        """The entities with a calendar the actor may read, with their calendar settings."""
        found = []
        for key, view in sorted(self.views.items()):
            calendar = getattr(view, "calendar", None)
            if calendar is None or (feed_only and not calendar.feed):
                continue
            entity = self.records.entity(key)
            if not self.records.policy.can(actor, entity, "read"):
                continue
            if calendar.start in self.records.hidden(actor, entity):
                continue
            found.append((entity, calendar))
        return found

    def events(self, actor: Actor, start: dt.datetime, end: dt.datetime, *,
               entities: Iterable[str] | None = None, feed_only: bool = False,
               filters: Iterable[Filter] = ()) -> list[CalendarEvent]:
        """Events starting in [start, end) (aware datetimes), soonest first."""
        check_window(start, end)
        wanted = set(entities) if entities is not None else None
        events: list[CalendarEvent] = []
        for entity, calendar in self.sources(actor, feed_only=feed_only):
            if wanted is not None and entity.key not in wanted:
                continue
            is_date = entity.fields[calendar.start].value_type == "date"
            low = start.astimezone(self.zone).date() if is_date else start
            high = end.astimezone(self.zone).date() if is_date else end
            page = self.records.list(
                actor, entity.key, filters=[Filter(calendar.start, "ge", low.isoformat()),
                                            Filter(calendar.start, "lt", high.isoformat()),
                                            *filters],
                sort=(Sort(calendar.start),), limit=MAX_EVENTS, with_total=False)
            for record in page.rows:
                events.append(self._event(entity, calendar, record, is_date))
        return sorted(events, key=lambda e: (self._moment(e.start), e.title))

    def _moment(self, value: dt.date | dt.datetime) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        return dt.datetime.combine(value, dt.time(), self.zone)

    def _event(self, entity: Entity, calendar: Any, record: dict[str, Any],
               is_date: bool) -> CalendarEvent:
        start = record[calendar.start]
        end = record.get(calendar.end) if calendar.end else None
        try:
            if end is None or end < start:
                end = start + (dt.timedelta(days=1) if is_date else DEFAULT_LENGTH)
            elif is_date:
                end = end + dt.timedelta(days=1)  # an all-day event ends the day after its last
        except OverflowError:  # an end on 9999-12-31: the last day there is
            end = start if end is None or end < start else end
        color = record.get(calendar.color_by) if calendar.color_by else None
        title = record.get(entity.title_field) if entity.title_field else None
        return CalendarEvent(entity=entity.key, record_id=record["id"],
                             title=str(title or f"{entity.label.get('en')} {record['id']}"),
                             start=start, end=end, all_day=is_date,
                             color=None if color is None else str(color),
                             version=record.get("version"), owner=record.get("owner"))

    def reschedule(self, actor: Actor, entity_key: str, record_id: Any, start: str, *,
                   version: int | None = None) -> dict[str, Any]:
        """Move an event; its length is kept.  An ordinary update, with every check."""
        view = self.views.get(entity_key)
        calendar = getattr(view, "calendar", None)
        if calendar is None:
            raise NotFound(f"{entity_key} has no calendar.")
        record = self.records.get(actor, entity_key, record_id)
        entity = self.records.entity(entity_key)
        is_date = entity.fields[calendar.start].value_type == "date"
        try:
            new_start = (dt.date.fromisoformat(start) if is_date
                         else dt.datetime.fromisoformat(start))
        except (TypeError, ValueError):
            raise ValidationFailed({calendar.start: [f"'{start}' is not a valid "
                                                     f"{'date' if is_date else 'time'}."]}
                                   ) from None
        if not is_date and new_start.tzinfo is None:  # a time on the site's clock
            new_start = new_start.replace(tzinfo=self.zone)
        changes: dict[str, Any] = {calendar.start: new_start.isoformat()}
        if calendar.end and record.get(calendar.end) is not None and record.get(calendar.start):
            length = record[calendar.end] - record[calendar.start]
            try:
                changes[calendar.end] = (new_start + length).isoformat()
            except OverflowError:
                raise ValidationFailed({calendar.start: [
                    f"'{start}' would put the end beyond the year 9999."]}) from None
        return self.records.update(actor, entity_key, record_id, changes, version=version)

    # -- the phone feed -------------------------------------------------------------

    def create_feed(self, actor: Actor) -> str:
        """A new secret feed address token for the actor; any older one stops working."""
        if actor.user_id is None:
            raise PermissionDenied("Only a user has a calendar feed.")
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        with write_transaction(self.records.engine) as conn:
            conn.execute(update(self.feeds).where(self.feeds.c.user_id == actor.user_id,
                                                  self.feeds.c.revoked_at.is_(None))
                         .values(revoked_at=now))
            conn.execute(insert(self.feeds).values(user_id=actor.user_id, token_hash=_hash(token),
                                                   created_at=now))
        return token

    def revoke_feed(self, actor: Actor) -> None:
        with write_transaction(self.records.engine) as conn:
            conn.execute(update(self.feeds).where(self.feeds.c.user_id == actor.user_id,
                                                  self.feeds.c.revoked_at.is_(None))
                         .values(revoked_at=self.clock.now()))

    def feed_owner(self, token: str) -> str:
        """The login of a live feed token's user (NotFound for anything else)."""
        with self.records.engine.connect() as conn:
            row = conn.execute(
                select(self.users.c.login, self.users.c.active)
                .join(self.feeds, self.feeds.c.user_id == self.users.c.id)
                .where(self.feeds.c.token_hash == _hash(token or ""),
                       self.feeds.c.revoked_at.is_(None))).first()
        if row is None or not row.active:
            raise NotFound("There is no such calendar.")
        return row.login

    def feed(self, actor: Actor, *, site_name: str) -> bytes:
        """The actor's events around today as an iCalendar document."""
        now = self.clock.now()
        calendar = Calendar()
        calendar.add("prodid", "-//VisionCRM//Calendar feed//EN")
        calendar.add("version", "2.0")
        calendar.add("calscale", "GREGORIAN")
        calendar.add("x-wr-calname", f"{site_name} · {actor.login}")
        calendar.add("x-wr-timezone", str(self.zone))
        for event in self.events(actor, now - FEED_PAST, now + FEED_AHEAD, feed_only=True):
            item = IcsEvent()
            item.add("uid", f"{event.entity}-{event.record_id}@visioncrm")
            item.add("dtstamp", now)
            item.add("summary", event.title)
            item.add("dtstart", event.start)
            item.add("dtend", event.end)
            entity = self.records.entity(event.entity)
            item.add("categories", [entity.label.get(actor.language or "en")])
            if event.version is not None:
                item.add("sequence", int(event.version))
            calendar.add_component(item)
        return calendar.to_ical()
