"""Turning what a spreadsheet cell holds into what the record service accepts.

Spreadsheets write ``是``, ``2026/3/1``, ``¥1,200.00`` and "Key account"
where the service expects ``true``, ``2026-03-01``, ``1200.00`` and ``a``;
and they name a customer where the service expects its id.  This module
only *translates* such cells (choice labels in either language to keys,
common date forms to dates, names to ids); every rule — types, lengths,
ranges, required fields, scopes — is still checked by the record service,
so an import is exactly as strict as the form.

A reference is found by the target's numbering field, one of its unique
fields or its title field, among the records the actor can see; a value
that finds no record, or more than one, is an error (never a guess).
``#12`` names a record by its id.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, or_, select

from engine.context import Actor
from engine.metadata.model import Entity, Field
from engine.metadata.values import ValueProblem
from engine.services.dataio.importing.mapping import normalise
from engine.services.dataio.importing.messages import say

TEXT_TYPES = frozenset({"string", "text", "email", "phone", "url", "sequence"})
EXTRA_TRUE = {"√", "✓", "✔", "对", "有"}
EXTRA_FALSE = {"×", "✗", "✘", "错", "无"}
_DATE_FORMS = [
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
]
_TIME = re.compile(r"^(\d{1,2})[:时](\d{2})(?:[:分](\d{2})(?:\.(\d{1,6}))?秒?)?$")
_CURRENCY = re.compile(r"^[¥￥$€£]|[¥￥$€£元]$")
SPLIT_MANY = re.compile(r"[,;，；、|]")


class CellProblem(Exception):
    """A cell that cannot be translated: the message, in the actor's language."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _plain(value: Any) -> Any:
    """Blank text as None, text stripped; other cell values as they are."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def parse_date(value: Any, language: str) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0, 0):
            raise CellProblem(say("not_a_date", language))
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if " " in text or "T" in text:  # "2026-03-01 00:00:00" as spreadsheets write dates
        day, _, rest = text.replace("T", " ").partition(" ")
        if rest.strip() in ("00:00", "00:00:00", "0:00", "0:00:00"):
            text = day
    for form in _DATE_FORMS:
        match = form.match(text)
        if match:
            year, month, day = match.groups()
            try:
                return dt.date(int(year), int(month), int(day))
            except ValueError:
                break
    raise CellProblem(say("not_a_date", language))


def parse_datetime(value: Any, language: str, zone: dt.tzinfo) -> dt.datetime:
    """A moment; a time without a zone is the site's local time."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time(0, 0))
    else:
        text = str(value).strip()
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            day_text, _, time_text = text.replace("T", " ").partition(" ")
            day = parse_date(day_text, language) if day_text else None
            match = _TIME.match(time_text.strip()) if time_text.strip() else None
            if day is None or (time_text.strip() and match is None):
                raise CellProblem(say("not_a_datetime", language)) from None
            hour, minute, second = ((int(match.group(1)), int(match.group(2)),
                                     int(match.group(3) or 0)) if match else (0, 0, 0))
            try:
                moment = dt.datetime.combine(day, dt.time(hour, minute, second))
            except ValueError:
                raise CellProblem(say("not_a_datetime", language)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC)


class CellReader:
    """Translates the cells of one entity's columns for one actor (see the module docstring)."""

    def __init__(self, entity: Entity, language: str, timezone: str = "UTC", *,
                 fields: Mapping[str, Field] | None = None) -> None:
        """``fields`` reads the cells of other fields than the entity's own (a line's)."""
        self.entity = entity
        self.language = language
        try:
            self.zone: dt.tzinfo = ZoneInfo(timezone)
        except Exception:  # noqa: BLE001 - an unknown zone name: fall back to UTC
            self.zone = dt.UTC
        self._choices: dict[str, dict[str, str]] = {}
        self._exact: dict[str, dict[str, str]] = {}  # labels and keys exactly as written
        for found in (entity.fields if fields is None else fields).values():
            if found.value_type == "choice":
                names: dict[str, str] = {}
                exact: dict[str, str] = {}
                for key, label in found.choices.items():
                    for name in (label.en, label.zh):
                        if name:
                            names.setdefault(normalise(name), key)
                            exact.setdefault(name, key)
                for key in found.choices:
                    names[normalise(key)] = key
                    exact[key] = key
                self._choices[found.key] = names
                self._exact[found.key] = exact

    def choice(self, found: Field, value: Any) -> Any:
        names = self._choices[found.key]
        if found.multiple:
            items = SPLIT_MANY.split(value) if isinstance(value, str) else [value]
            return [names.get(normalise(i), str(i).strip()) for i in items if str(i).strip()]
        return names.get(normalise(value), value)

    def converter(self, found: Field) -> Any:
        """A function translating one cell for ``found``: :meth:`cell`, with text cells of
        text fields (the bulk of a big file) taken the short way."""
        if found.value_type in TEXT_TYPES:
            slow = self.cell

            def text(value: Any) -> Any:
                if type(value) is str:
                    return value.strip() or None
                return slow(found, value)

            return text
        kind = found.value_type
        slow_cell = self.cell
        if kind == "choice" and not found.multiple:
            exact = {name: key for name, key in self._exact[found.key].items()}

            def choice(value: Any) -> Any:
                if type(value) is str and value in exact:
                    return exact[value]
                return slow_cell(found, value)

            return choice
        if kind in ("integer", "decimal", "boolean"):

            def plain(value: Any) -> Any:
                if type(value) is str and value.isascii() and value.replace(".", "", 1).isalnum():
                    return value  # "12", "1200.50", "true": the record service reads these
                return slow_cell(found, value)

            return plain
        if kind in ("date", "datetime"):
            language, zone = self.language, self.zone

            def moment(value: Any) -> Any:
                if type(value) is str:  # what cell() does with text, without its dispatch
                    text = value.strip()
                    if not text:
                        return None
                    if kind == "date":
                        return parse_date(text, language)
                    return parse_datetime(text, language, zone)
                return slow_cell(found, value)

            return moment
        return lambda value: slow_cell(found, value)

    def cell(self, found: Field, value: Any) -> Any:
        """The value to hand to the record service for ``found`` (references aside)."""
        value = _plain(value)
        if value is None:
            return None
        kind = found.value_type
        if kind in TEXT_TYPES:
            if isinstance(value, float) and value.is_integer():
                return str(int(value))  # a phone number a spreadsheet stored as a number
            if isinstance(value, dt.datetime):
                return value.isoformat(sep=" ")
            if isinstance(value, (dt.date, int, Decimal, float)):
                return str(value)
            return value
        if kind == "choice":
            return self.choice(found, value)
        if kind == "boolean":
            if isinstance(value, str) and value in EXTRA_TRUE:
                return True
            if isinstance(value, str) and value in EXTRA_FALSE:
                return False
            return value
        if kind in ("integer", "decimal"):
            if isinstance(value, str):
                # Commas stay: the record service takes them as thousands separators only
                # (1,234.5) and refuses "3,5" rather than read it as 35.
                value = _CURRENCY.sub("", value.replace(" ", ""))
            return value
        if kind == "date":
            return parse_date(value, self.language)
        if kind == "datetime":
            return parse_datetime(value, self.language, self.zone)
        if kind == "json" and isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value


class ReferenceFinder:
    """Finds ids for the values of reference cells, asking the database once per batch."""

    def __init__(self, records: Any, actor: Actor) -> None:
        self.records = records
        self.actor = actor
        self.found: dict[tuple[str, str], int | CellProblem] = {}

    def _key_fields(self, target: Entity) -> list[str]:
        hidden = self.records.hidden(self.actor, target)
        keys = [f.key for f in target.fields.values()
                if (f.type == "sequence" or f.unique) and f.value_type in TEXT_TYPES
                and f.key not in hidden]
        if target.title_field and target.title_field not in hidden and target.title_field not in keys:
            title = target.fields.get(target.title_field)
            if title is not None and title.has_column and title.value_type in TEXT_TYPES:
                keys.append(target.title_field)
        return keys

    def prepare(self, conn: Connection, target_key: str, values: Iterable[str]) -> None:
        """Look up every value of ``target_key`` not looked up yet."""
        wanted = sorted({v for v in values if (target_key, v) not in self.found})
        if not wanted:
            return
        if target_key == "__user__":
            self._prepare_users(conn, wanted)
            return
        target = self.records.entity(target_key)
        label = target.label.get(self.actor.language)
        if not self.records.policy.can(self.actor, target, "read"):
            for value in wanted:
                self.found[(target_key, value)] = CellProblem(say(
                    "reference_unknown", self.actor.language, entity=label, value=value))
            return
        table, scope = self.records.scope_conditions(self.actor, target_key)
        keys = self._key_fields(target)
        by_id = [v for v in wanted if re.fullmatch(r"#\d+", v)]
        by_key = [v for v in wanted if v not in by_id]
        matches: dict[str, set[int]] = {v: set() for v in wanted}
        for start in range(0, len(by_key), 500):
            chunk = by_key[start:start + 500]
            if not keys:
                break
            rows = conn.execute(
                select(table.c.id, *(table.c[k] for k in keys))
                .where(or_(*(table.c[k].in_(chunk) for k in keys)), *scope,
                       table.c.archived.is_(False))
            ).all()
            chunk_set = set(chunk)
            for row in rows:
                for cell in row[1:]:
                    if cell in chunk_set:
                        matches[cell].add(row[0])
        if by_id:
            ids = {int(v[1:]): v for v in by_id}
            for record_id in conn.execute(
                select(table.c.id).where(table.c.id.in_(list(ids)), *scope)
            ).scalars():
                matches[ids[record_id]].add(record_id)
        for value, ids_found in matches.items():
            self.found[(target_key, value)] = self._one(ids_found, value, label,
                                                        "reference_unknown", "reference_ambiguous")

    def _prepare_users(self, conn: Connection, wanted: list[str]) -> None:
        users = self.records.schema.system("crm_user")
        matches: dict[str, set[int]] = {v: set() for v in wanted}
        rows = conn.execute(
            select(users.c.id, users.c.login, users.c.display_name, users.c.email).where(
                or_(users.c.login.in_(wanted), users.c.display_name.in_(wanted),
                    users.c.email.in_(wanted)), users.c.active.is_(True))
        ).all()
        for row in rows:
            if row.login in matches:  # a login names one user, whatever else matches
                matches[row.login] = {row.id}
                continue
            for cell in (row.display_name, row.email):
                if cell in matches:
                    matches[cell].add(row.id)
        for value, ids_found in matches.items():
            self.found[("__user__", value)] = self._one(ids_found, value, "", "user_unknown",
                                                        "user_ambiguous")

    def _one(self, ids: set[int], value: str, label: str, unknown: str,
             ambiguous: str) -> int | CellProblem:
        if len(ids) == 1:
            return next(iter(ids))
        key = unknown if not ids else ambiguous
        return CellProblem(say(key, self.actor.language, entity=label, value=value,
                               count=len(ids)))

    def get(self, target_key: str, value: str) -> int:
        found = self.found[(target_key, value)]
        if isinstance(found, CellProblem):
            raise found
        return found


def reference_text(value: Any) -> str | None:
    """A reference cell as the text looked up (a whole number from XLSX without its ``.0``)."""
    value = _plain(value)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


__all__ = ["CellProblem", "CellReader", "ReferenceFinder", "ValueProblem", "parse_date",
           "parse_datetime", "reference_text"]
