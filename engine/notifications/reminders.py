"""Finding the reminders that fall due and writing their messages.

:class:`ReminderScheduler` looks at every enabled rule at "now" (the
site's clock, a :class:`~engine.context.FixedClock` in tests) and works
out, per record, the *occurrences* whose moment has come:

- a date rule: the date (at the rule's time of day for a date field) plus
  each offset; a yearly rule uses this year's anniversary;
- an SLA rule: the deadline of the record's current stage (from the
  pipeline figures) plus the offset, once per stay in the stage;
- a stale rule: the last activity plus the idle time, once per period of
  silence (new activity starts a new one).

An occurrence is due from its moment until ``catch_up`` later; its
messages carry the occurrence in their unique key, so running the scan
again (or on two machines) creates nothing new.  Records are read through
the record service as the system actor; who is told is screened by
:class:`~engine.services.messaging.recipients.Notifier` — only users who may read the
record, each without the fields hidden from them — and an occurrence that
reaches nobody is recorded (``nobody:<rule>`` in the job's summary, a
``skipped`` outbox row with the reason).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from engine.context import Actor, Clock
from engine.errors import NotFound
from engine.metadata.durations import zone
from engine.metadata.message_templates import render_text
from engine.metadata.model import Entity
from engine.metadata.reminder_rules import ReminderRule
from engine.metadata.values import to_json
from engine.services.messaging.outbox import Cause, Target, UserDirectory, applies, unique_targets
from engine.services.messaging.recipients import Notifier
from engine.services.records.service import RecordService
from engine.services.views.pipeline import PipelineService
from engine.storage.database import write_transaction
from engine.storage.queries import Filter

_PAGE = 500


class ScanFailed(Exception):
    """Some rules or records could not be handled; the others were."""

    def __init__(self, written: dict[str, int], problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.written = written
        self.problems = problems


@dataclass(frozen=True)
class Occurrence:
    """One moment a rule fires for one record."""

    rule: ReminderRule
    record_id: int
    key: str  # part of the messages' unique key
    due: dt.datetime  # the moment the text speaks of (the date, the deadline...)
    fires_at: dt.datetime


def _anniversary(day: dt.date, year: int) -> dt.date:
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a common year
        return day.replace(year=year, day=28)


class ReminderComposer:
    """Who receives a rule's message about a record, and its words in each language."""

    def __init__(self, records: RecordService, *, locale: str = "en",
                 timezone: str = "Asia/Shanghai") -> None:
        self.records = records
        self.registry = records.registry
        self.directory = UserDirectory(records.schema)
        self.locale = locale
        self.zone = zone(timezone)

    def targets(self, conn: Connection, rule: ReminderRule,
                record: Mapping[str, Any]) -> list[Target]:
        found: list[Target] = []
        system = Actor.system()
        for recipient in rule.recipients:
            if recipient.kind == "user":
                found += self.directory.users_by_id(conn, [record.get(recipient.field)])
            elif recipient.kind == "role":
                found += self.directory.users_with_role(conn, recipient.field)
            else:
                holder: Mapping[str, Any] | None = record
                if recipient.via:
                    ref = record.get(recipient.via)
                    holder = self.records.get(system, recipient.entity, ref,
                                              conn=conn) if ref else None
                found.append(self._address_target(rule, recipient.kind, recipient.field, holder))
        return unique_targets(found)

    def _address_target(self, rule: ReminderRule, kind: str, name: str,
                        holder: Mapping[str, Any] | None) -> Target:
        address = (holder or {}).get(name) or None
        channel = "email" if kind == "email" else "sms"
        refused = {}
        flag = rule.opt_in.get(channel)
        if flag and holder is not None and holder.get(flag) is not True:
            refused[channel] = f"opted out ({flag} is not set)"
        recipient = f"{kind}:{address}" if address else f"{kind}:(none)"
        return Target(recipient, self.locale, kind=kind,
                      email=address if kind == "email" else None,
                      phone=address if kind == "phone" else None, refused=refused)

    def context(self, rule: ReminderRule, entity: Entity, record: Mapping[str, Any],
                due: dt.datetime | None, language: str) -> dict[str, Any]:
        """What a template sees: raw values, shown values in the language, and the moment."""
        display = {}
        for key, value in record.items():
            found = entity.fields.get(key)
            if found is not None and found.choices and isinstance(value, str) \
                    and value in found.choices:
                display[key] = found.choices[value].get(language)
            else:
                shown = to_json(value)
                display[key] = "" if shown is None else str(shown)
        local_due = due.astimezone(self.zone).strftime("%Y-%m-%d %H:%M") if due else ""
        return {"record": dict(record), "display": display, "rule": rule.label.get(language),
                "entity": entity.label.get(language), "due": local_due, "language": language}

    def render(self, rule: ReminderRule, record: Mapping[str, Any], due: dt.datetime | None,
               language: str) -> tuple[str | None, str]:
        entity = self.registry.entity(rule.entity)
        context = self.context(rule, entity, record, due, language)
        subject = rule.subject.get(language) or rule.subject["en"] if rule.subject else None
        body = rule.message.get(language) or rule.message["en"]
        return (render_text(subject, context) if subject else None, render_text(body, context))


class ReminderScheduler:
    """Writes the messages of the occurrences that are due; see the module docstring."""

    def __init__(self, records: RecordService, pipeline: PipelineService, *, clock: Clock,
                 locale: str = "en", timezone: str = "Asia/Shanghai") -> None:
        self.records = records
        self.registry = records.registry
        self.pipeline = pipeline
        self.clock = clock
        self.zone = zone(timezone)
        self.composer = ReminderComposer(records, locale=locale, timezone=timezone)
        self.notifier = Notifier(records)

    def scan(self) -> dict[str, int]:
        """Look at every enabled rule once; messages written per rule.

        One record (or rule) that cannot be handled does not hold up the
        others: the problems are gathered and raised together at the end
        (:class:`ScanFailed`, carrying what was written), so the job run is
        recorded as failed with every reason.
        """
        now = self.clock.now()
        written: dict[str, int] = {}
        problems: list[str] = []
        for rule in self.registry.reminders.values():
            if not rule.enabled:
                continue
            nobody: list[int] = []
            try:
                written[rule.name] = self.scan_rule(rule, now, problems, nobody)
            except Exception as exc:  # noqa: BLE001 - reported with the others below
                problems.append(f"{rule.name}: {exc.__class__.__name__}: {exc}")
            if nobody:
                written[f"nobody:{rule.name}"] = len(nobody)
        if problems:
            raise ScanFailed(written, problems)
        return written

    def scan_rule(self, rule: ReminderRule, now: dt.datetime,
                  problems: list[str] | None = None, nobody: list[int] | None = None) -> int:
        """The messages written for ``rule``; the records whose occurrence reached nobody
        are added to ``nobody``."""
        count = 0
        for occurrence in self.occurrences(rule, now):
            try:
                with write_transaction(self.records.engine) as conn:
                    count += self.write(conn, occurrence, now, nobody)
            except Exception as exc:
                if problems is None:
                    raise
                problems.append(f"{rule.name} on {rule.entity} {occurrence.record_id}: "
                                f"{exc.__class__.__name__}: {exc}")
        return count

    def write(self, conn: Connection, occurrence: Occurrence, now: dt.datetime,
              nobody: list[int] | None = None) -> int:
        """The messages of one occurrence (none when the rule's condition does not hold)."""
        rule = occurrence.rule
        record = self.records.get(Actor.system(), rule.entity, occurrence.record_id, conn=conn)
        if rule.when is not None and not rule.when.evaluate(record, now=now):
            return 0
        cause = Cause("reminder", rule.name, occurrence.key, rule.entity, occurrence.record_id,
                      {"due": occurrence.due.isoformat()})
        targets = self.composer.targets(conn, rule, record)
        written = self.notifier.write(
            conn, cause, targets, rule.channels,
            lambda language, hidden: self.composer.render(
                rule, {k: v for k, v in record.items() if k not in hidden}, occurrence.due,
                language),
            named=[r.source for r in rule.recipients], now=now)
        if written.nobody and nobody is not None:
            nobody.append(occurrence.record_id)
        return written.messages

    def preview(self, actor: Actor, rule_name: str, record_id: Any) -> dict[str, Any]:
        """What the rule would send about a record now: condition, recipients, texts.

        Nothing is written.  The record is read with ``actor``'s rights; the
        moment shown is the record's date (this year's for a yearly rule)
        for a date rule, else now.
        """
        rule = self.registry.reminders.get(rule_name)
        if rule is None:
            raise NotFound(f"There is no reminder '{rule_name}'; the reminders are: "
                           f"{', '.join(self.registry.reminders) or 'none'}.")
        record = self.records.get(actor, rule.entity, record_id)
        now = self.clock.now()
        due = now
        if rule.schedule == "date" and record.get(rule.date_field) is not None:
            value = record[rule.date_field]
            if rule.yearly:
                day = value.date() if isinstance(value, dt.datetime) else value
                value = _anniversary(day, now.astimezone(self.zone).year)
            due = self._moment(rule, value)
        with self.records.engine.connect() as conn:
            screened = self.notifier.access.screen(conn, rule.entity, record["id"],
                                                   self.composer.targets(conn, rule, record))
        texts = {lang: self.composer.render(rule, record, due, lang) for lang in ("en", "zh")}
        channels = []
        for target in [*screened.kept, *screened.withheld]:
            withheld = target in screened.withheld
            for channel in rule.channels:
                if applies(target, channel):
                    channels.append({"recipient": target.recipient, "channel": channel,
                                     "refused": "may not read this record" if withheld
                                     else target.refused.get(channel)})
        return {
            "rule": rule.name, "entity": rule.entity, "record_id": record["id"],
            "condition": None if rule.when is None else bool(rule.when.evaluate(record, now=now)),
            "due": due, "messages": channels,
            "texts": {lang: {"subject": subject, "body": body}
                      for lang, (subject, body) in texts.items()},
        }

    # -- occurrences ---------------------------------------------------------------

    def occurrences(self, rule: ReminderRule, now: dt.datetime) -> Iterator[Occurrence]:
        if rule.schedule == "date":
            yield from self._date_occurrences(rule, now)
        elif rule.schedule == "sla":
            for status in self.pipeline.sla(Actor.system(), rule.entity):
                fires = status.due_at + rule.sla_offset
                if fires <= now < fires + rule.catch_up:
                    yield Occurrence(rule, status.record_id,
                                     f"{status.stage}@{status.entered_at.isoformat()}",
                                     status.due_at, fires)
        else:
            for idle in self.pipeline.idle(Actor.system(), rule.entity):
                after = rule.stale_after or dt.timedelta(seconds=idle.stale_after_seconds)
                if not after:
                    continue
                fires = idle.last_activity + after
                if fires <= now < fires + rule.catch_up:
                    yield Occurrence(rule, idle.record_id,
                                     f"{idle.stage}@{idle.last_activity.isoformat()}",
                                     idle.last_activity, fires)

    def _moment(self, rule: ReminderRule, value: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        local = dt.datetime.combine(value, rule.at, tzinfo=self.zone)
        return local.astimezone(dt.UTC)

    def _date_occurrences(self, rule: ReminderRule, now: dt.datetime) -> Iterator[Occurrence]:
        assert rule.date_field is not None
        filters = [Filter(rule.date_field, "isnull", False)]
        if not rule.yearly:
            # anchors whose fire time can be in [now - catch_up, now], with a day's margin
            earliest = now - rule.catch_up - max(o for _, o in rule.offsets) - dt.timedelta(days=1)
            latest = now - min(o for _, o in rule.offsets) + dt.timedelta(days=1)
            if rule.date_is_datetime:
                filters.append(Filter(rule.date_field, "between", (earliest, latest)))
            else:
                filters.append(Filter(rule.date_field, "between",
                                      (earliest.date(), latest.date())))
        for row in self._rows(rule, filters):
            value = row[rule.date_field]
            anchors = [value]
            if rule.yearly:
                day = value.date() if isinstance(value, dt.datetime) else value
                this_year = now.astimezone(self.zone).year
                anchors = [_anniversary(day, y) for y in (this_year - 1, this_year, this_year + 1)]
            for anchor in anchors:
                moment = self._moment(rule, anchor)
                for label, offset in rule.offsets:
                    fires = moment + offset
                    if fires <= now < fires + rule.catch_up:
                        yield Occurrence(rule, row["id"], f"{anchor.isoformat()}{label}", moment,
                                         fires)

    def _rows(self, rule: ReminderRule, filters: list[Filter]) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.records.list(Actor.system(), rule.entity, filters=filters,
                                     limit=_PAGE, offset=offset, with_total=False)
            yield from page.rows
            if len(page.rows) < _PAGE:
                return
            offset += _PAGE
