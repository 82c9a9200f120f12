"""Between HTML forms and record values: what a posted form means, what an input shows.

The browser sends text; the record service coerces and validates it (the
same rules for the UI, the API and imports), so this module only reshapes:
it picks the fields the form showed, reads checkboxes and multi-selects,
gathers lines from ``<lines>-<row>-<field>`` inputs, and reads a
``datetime-local`` input as a time in the site's time zone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

from engine.metadata.model import Entity, Field
from engine.web.presentation.formatting import local_time, parse_iso

_LINE_INPUT = re.compile(r"^(?P<lines>[a-z0-9_]+)-(?P<row>\d+)-(?P<field>[a-z0-9_]+)$")


def _one(field: Field, form: MultiDict, name: str, timezone: str) -> Any:
    kind = field.value_type
    if kind == "boolean":
        return name in form and form.get(name) not in ("", "0", "off", "false")
    if kind == "choice" and field.multiple or kind == "many_to_many":
        return [v for v in form.getlist(name) if v]
    raw = form.get(name, "")
    if kind == "datetime" and raw.strip():
        try:
            naive = dt.datetime.fromisoformat(raw.strip())
        except ValueError:
            return raw  # the service explains what is wrong with it
        if naive.tzinfo is None:
            naive = naive.replace(tzinfo=ZoneInfo(timezone))
        return naive.isoformat()
    if kind != "text":
        raw = raw.strip()
    return raw if raw != "" else None


def _lines(field: Field, form: MultiDict, timezone: str) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    names: dict[int, set[str]] = {}
    for name in form:
        match = _LINE_INPUT.match(name)
        if not match or match["lines"] != field.key or match["field"] not in field.fields:
            continue
        names.setdefault(int(match["row"]), set()).add(match["field"])
    for row in sorted(names):
        line: dict[str, Any] = {}
        for key in names[row]:
            sub = field.fields[key]
            if sub.is_input:
                line[key] = _one(sub, form, f"{field.key}-{row}-{key}", timezone)
        if any(v not in (None, "", [], False) for v in line.values()):
            rows[row] = line
    return [rows[r] for r in sorted(rows)]


def read_form(entity: Entity, keys: Iterable[str], form: MultiDict,
              timezone: str) -> dict[str, Any]:
    """The values a posted form gives for the fields ``keys`` (and no others)."""
    values: dict[str, Any] = {}
    for key in keys:
        field = entity.fields[key]
        if field.type == "lines":
            values[key] = _lines(field, form, timezone)
        elif field.value_type == "boolean" or key in form or f"{key}__present" in form:
            values[key] = _one(field, form, key, timezone)
    return values


def applies(field: Field, values: Mapping[str, Any], now: dt.datetime) -> bool:
    """Whether ``visible_if`` lets the field apply to these values (no condition: it does)."""
    if field.visible_if is None:
        return True
    try:
        return bool(field.visible_if.evaluate(values, now=now))
    except Exception:  # noqa: BLE001 - half-filled values: show the field, the service decides
        return True


def input_value(field: Field, value: Any, timezone: str) -> Any:
    """What an input shows for a value: ISO dates, local ``datetime-local`` text, lists."""
    if value is None:
        return [] if field.type == "many_to_many" or field.multiple else ""
    kind = field.value_type
    if kind == "datetime":
        moment = parse_iso(value)
        if isinstance(moment, dt.datetime):
            return local_time(moment, timezone).strftime("%Y-%m-%dT%H:%M")
        return str(value)
    if kind == "date":
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)


def field_errors(errors: Mapping[str, list[str]], known: Iterable[str]) -> dict[str, list[str]]:
    """Messages not about any field shown (``record``, a hidden one): shown above the form."""
    shown = set(known)
    return {k: v for k, v in errors.items() if k.split("[", 1)[0] not in shown}
