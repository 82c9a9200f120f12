"""Reading and checking reminder rules (``reminder:`` documents).

A reminder is a document of its own, one rule per file in a pack's
``reminders/`` folder, rather than a ``reminders:`` key on the entity: a
rule names its recipients, channels and two templates, which would bury
the fields of an entity under message texts; it changes no table, so
editing one never needs a migration; and a site overlay replaces or
switches off one rule by naming it (``reminder: membership_expiry`` with
``enabled: false`` in ``custom/``) without restating the entity.

Everything that can be checked at load is: the entity and fields exist
and have the right types, the condition parses and names known fields,
recipients are known roles and address fields, templates compile and
name real fields.  Problems carry the file and line of the rule.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem
from engine.expressions import Expression, ExpressionError, compile_expression
from engine.metadata.durations import parse_clock_time, parse_duration
from engine.metadata.merge import SITE
from engine.metadata.message_templates import TemplateProblem, check_template
from engine.metadata.model import SYSTEM_COLUMNS, Entity, Label, Origin
from engine.metadata.yaml_source import SourceDocument

#: Document kinds this module builds from.
REMINDER_KINDS: tuple[str, ...] = ("reminder",)
#: Columns holding a user, for ``user:<field>`` recipients.
USER_COLUMNS: tuple[str, ...] = ("owner", "created_by", "updated_by")
CHANNELS: tuple[str, ...] = ("in_app", "email", "sms")


@dataclass(frozen=True)
class Recipient:
    """One ``to`` entry: ``kind`` is user, role, email or phone.

    ``user`` recipients read a user column (``field``); ``email``/``phone``
    read an address in ``field``, on the record or, with ``via``, on the
    record its reference ``via`` points at (``entity`` is that record's).
    """

    source: str
    kind: str
    field: str = ""
    via: str | None = None
    entity: str = ""


@dataclass(frozen=True)
class ReminderRule:
    """One checked rule; see docs/reminders.md for what each part means."""

    name: str
    entity: str
    pack: str
    label: Label
    schedule: str  # date | sla | stale
    recipients: tuple[Recipient, ...]
    channels: tuple[str, ...]
    message: Mapping[str, str]
    subject: Mapping[str, str] | None = None
    enabled: bool = True
    date_field: str | None = None
    date_is_datetime: bool = False
    offsets: tuple[tuple[str, dt.timedelta], ...] = ()  # (written form, signed offset)
    yearly: bool = False
    at: dt.time = dt.time(9, 0)
    sla_offset: dt.timedelta = dt.timedelta(0)
    stale_after: dt.timedelta | None = None
    catch_up: dt.timedelta = dt.timedelta(days=1)
    when: Expression | None = None
    opt_in: Mapping[str, str] = field(default_factory=dict)
    origin: Origin | None = field(default=None, compare=False)


def _near(word: str, candidates: list[str]) -> str:
    found = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean '{found[0]}'?)" if found else ""


def _texts(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {k: str(v) for k, v in value.items() if v}
    return {"en": str(value)}


class _RuleReader:
    """Checks one document, collecting problems located in it."""

    def __init__(self, pack: str, doc: SourceDocument, entities: Mapping[str, Entity],
                 workflows: Mapping[str, Any], roles: Mapping[str, Any]) -> None:
        self.pack, self.doc, self.data = pack, doc, doc.data
        self.entities, self.workflows, self.roles = entities, workflows, roles
        self.problems: list[Problem] = []

    def report(self, path: tuple, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def read(self) -> ReminderRule | None:
        data = self.data
        entity = self.entities.get(data["entity"])
        if entity is None:
            self.report(("entity",), f"there is no entity '{data['entity']}'"
                        f"{_near(data['entity'], list(self.entities))}")
            return None
        known = [*entity.fields, *SYSTEM_COLUMNS]
        schedule = self._schedule(entity)
        when = self._condition(entity, known)
        recipients = tuple(r for r in (self._recipient(entity, text, i)
                                       for i, text in enumerate(data["to"])) if r)
        channels = tuple(data.get("channels") or ("in_app",))
        opt_in = self._opt_in(recipients)
        message = self._template("message", known)
        subject = self._template("subject", known) if data.get("subject") is not None else None
        if self.problems or schedule is None:
            return None
        line, column = self.doc.locate(("reminder",))
        return ReminderRule(
            name=data["reminder"], entity=entity.key, pack=self.pack,
            label=Label.from_yaml(data.get("label"), data["reminder"].replace("_", " ")),
            recipients=recipients, channels=channels, message=message, subject=subject,
            enabled=bool(data.get("enabled", True)), when=when, opt_in=opt_in,
            catch_up=parse_duration(data.get("catch_up", "1d")),
            origin=Origin(self.doc.file, line, column), **schedule,
        )

    def _schedule(self, entity: Entity) -> dict[str, Any] | None:
        spec = self.data["schedule"]
        if "date" in spec:
            date = spec["date"]
            found = entity.fields.get(date["field"])
            if found is None or found.value_type not in ("date", "datetime"):
                dates = [f.key for f in entity.fields.values()
                         if f.value_type in ("date", "datetime")]
                what = "not a field" if found is None else f"a {found.type} field"
                self.report(("schedule", "date", "field"),
                            f"'{date['field']}' is {what} of {entity.key}; a date schedule needs "
                            f"a date or datetime field{_near(date['field'], dates)}")
                return None
            offsets = [(f"-{t}", -parse_duration(t)) for t in date.get("before", ())]
            offsets += [(f"+{t}", parse_duration(t)) for t in date.get("after", ())]
            return {"schedule": "date", "date_field": found.key,
                    "date_is_datetime": found.value_type == "datetime",
                    "offsets": tuple(offsets or [("", dt.timedelta(0))]),
                    "yearly": bool(date.get("yearly", False)),
                    "at": parse_clock_time(date.get("at", "09:00"))}
        workflow = next((w for w in self.workflows.values() if w.entity == entity.key), None)
        kind = "sla" if "sla" in spec else "stale"
        if workflow is None:
            self.report(("schedule", kind), f"{entity.key} has no workflow, so it has no "
                        f"{'SLA deadlines' if kind == 'sla' else 'stages to go stale in'}")
            return None
        stages = [s for p in workflow.pipelines.values() for s in p.stages.values()]
        if kind == "sla":
            if not any(s.sla is not None for s in stages):
                self.report(("schedule", "sla"), f"no stage of the workflow '{workflow.key}' "
                            "has an sla to be reminded of")
                return None
            sla = spec["sla"] or {}
            offset = (-parse_duration(sla["before"]) if "before" in sla
                      else parse_duration(sla.get("after", "0m")))
            return {"schedule": "sla", "sla_offset": offset}
        after = (spec["stale"] or {}).get("after")
        if after is None and not any(s.stale_after is not None for s in stages):
            self.report(("schedule", "stale"), f"no stage of the workflow '{workflow.key}' has a "
                        "stale_after; say how long with 'after:'")
            return None
        return {"schedule": "stale", "stale_after": parse_duration(after) if after else None}

    def _condition(self, entity: Entity, known: list[str]) -> Expression | None:
        text = self.data.get("when")
        if text is None:
            return None
        try:
            expr = compile_expression(str(text))
        except ExpressionError as exc:
            note = f" at column {exc.column}" if exc.column else ""
            self.report(("when",), f"the condition does not parse{note}: {exc.message}")
            return None
        for message in expr.check_names(known):
            self.report(("when",), f"the condition {message}")
        return expr

    def _recipient(self, entity: Entity, text: str, index: int) -> Recipient | None:
        path = ("to", index)
        if text in ("owner", "creator"):
            return Recipient(text, "user", "owner" if text == "owner" else "created_by")
        kind, _, rest = text.partition(":")
        if kind == "role":
            if rest not in self.roles:
                self.report(path, f"there is no role '{rest}'{_near(rest, list(self.roles))}")
                return None
            return Recipient(text, "role", rest)
        if kind == "user":
            if rest not in USER_COLUMNS:
                self.report(path, f"'{rest}' holds no user; write user:owner, user:created_by "
                            "or user:updated_by")
                return None
            return Recipient(text, "user", rest)
        if kind in ("email", "phone"):
            return self._address(entity, text, kind, rest, path)
        self.report(path, f"'{text}' is not someone to remind; write owner, creator, role:<key>, "
                    "user:<field>, email:<field> or phone:<field>")
        return None

    def _address(self, entity: Entity, text: str, kind: str, rest: str,
                 path: tuple) -> Recipient | None:
        via, _, name = rest.rpartition(".")
        holder = entity
        if via:
            ref = entity.fields.get(via)
            if ref is None or ref.type != "reference" or ref.to not in self.entities:
                refs = [f.key for f in entity.fields.values() if f.type == "reference"]
                self.report(path, f"'{via}' is not a reference field of {entity.key}"
                            f"{_near(via, refs)}")
                return None
            holder = self.entities[ref.to]
        found = holder.fields.get(name)
        if found is None or found.value_type != kind:
            candidates = [f.key for f in holder.fields.values() if f.value_type == kind]
            what = "not a field" if found is None else f"a {found.type} field"
            self.report(path, f"'{name}' is {what} of {holder.key}; {kind}: needs a {kind} "
                        f"field{_near(name, candidates)}")
            return None
        return Recipient(text, kind, name, via or None, holder.key)

    def _opt_in(self, recipients: tuple[Recipient, ...]) -> dict[str, str]:
        found: dict[str, str] = {}
        for channel, name in (self.data.get("opt_in") or {}).items():
            kind = "email" if channel == "email" else "phone"
            holders = [r for r in recipients if r.kind == kind]
            if not holders:
                self.report(("opt_in", channel), f"no recipient is reached by {channel} through "
                            f"an address ({kind}:<field>), so '{name}' has nothing to decide")
                continue
            for r in holders:
                target = self.entities[r.entity]
                flag = target.fields.get(name)
                if flag is None or flag.value_type != "boolean":
                    booleans = [f.key for f in target.fields.values()
                                if f.value_type == "boolean"]
                    self.report(("opt_in", channel), f"'{name}' must be a boolean field of "
                                f"{target.key}{_near(name, booleans)}")
            found[channel] = name
        return found

    def _template(self, key: str, known: list[str]) -> dict[str, str]:
        texts = _texts(self.data[key])
        for language, source in texts.items():
            try:
                check_template(source, known)
            except TemplateProblem as exc:
                path = (key, language) if isinstance(self.data[key], Mapping) else (key,)
                line, column = self.doc.locate(path)
                if exc.line and exc.line > 1 and line is not None:
                    line += exc.line - 1
                self.problems.append(Problem(self.doc.file, line, column, ".".join(map(str, path)),
                                             exc.message))
        return texts


def build_reminders(
    documents: list[tuple[str, SourceDocument, str]],
    entities: Mapping[str, Entity],
    workflows: Mapping[str, Any],
    roles: Mapping[str, Any],
) -> tuple[dict[str, ReminderRule], list[Problem]]:
    """The rules by name; a site document replaces the pack rule of the same name."""
    problems: list[Problem] = []
    chosen: dict[str, tuple[str, SourceDocument]] = {}
    for pack, doc, kind in documents:
        if kind not in REMINDER_KINDS:
            continue
        name = doc.data["reminder"]
        if name in chosen and pack != SITE and chosen[name][0] != SITE:
            problems.append(doc.problem(("reminder",), f"the reminder '{name}' is already declared "
                                        f"in {chosen[name][1].file}; rename one of them"))
            continue
        if name not in chosen or pack == SITE:
            chosen[name] = (pack, doc)
    rules: dict[str, ReminderRule] = {}
    for name, (pack, doc) in sorted(chosen.items()):
        reader = _RuleReader(pack, doc, entities, workflows, roles)
        rule = reader.read()
        problems.extend(reader.problems)
        if rule is not None:
            rules[name] = rule
    return rules, problems
