"""Audit rows: who changed what, when, from which value to which.

Rows are written with the change itself, in the same transaction, so an
audit trail can never disagree with the data.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, insert

from engine.context import Actor
from engine.metadata.values import JSON_READY, to_json


def new_change_id() -> str:
    return uuid.uuid4().hex


def write_audit(
    conn: Connection,
    audit: Table,
    *,
    actor: Actor,
    at: dt.datetime,
    entity: str,
    record_id: int,
    action: str,
    changes: Mapping[str, tuple[Any, Any]] | None = None,
    change_id: str | None = None,
) -> str:
    """Write one row per changed field (or one row for the action itself)."""
    change_id = change_id or new_change_id()
    rows = audit_rows(actor=actor, at=at, entity=entity, record_id=record_id, action=action,
                      changes=changes, change_id=change_id)
    conn.execute(insert(audit), rows)
    return change_id


def audit_rows(
    *,
    actor: Actor,
    at: dt.datetime,
    entity: str,
    record_id: int,
    action: str,
    changes: Mapping[str, tuple[Any, Any]] | None,
    change_id: str,
) -> list[dict[str, Any]]:
    """The audit rows of one change, for :func:`write_audit` or a batch's single insert."""
    base = {
        "at": at,
        "actor_id": actor.user_id,
        "entity": entity,
        "record_id": record_id,
        "action": action,
        "change_id": change_id,
    }
    rows = [
        {**base, "field": name, "old_value": to_json(old), "new_value": to_json(new)}
        for name, (old, new) in (changes or {}).items()
    ]
    if not rows:
        rows = [{**base, "field": None, "old_value": None, "new_value": None}]
    return rows


def new_change_ids(count: int) -> list[str]:
    """``count`` change ids as :func:`new_change_id` makes them (random UUID4 in hex), drawn
    from the system's random source in one read rather than one object each."""
    raw = os.urandom(16 * count)
    clear = ~(0xF000 << 64) & ~(0xC000 << 48)
    mark = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant
    return [f"{int.from_bytes(raw[i:i + 16], 'big') & clear | mark:032x}"
            for i in range(0, 16 * count, 16)]


def creation_rows(
    *, actor: Actor, at: dt.datetime, entity: str,
    records: Sequence[tuple[int, Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """The audit rows of many new records, ``(id, record)`` each, for one insert.

    Row for row what :func:`audit_rows` makes for a create (the record's
    filled values under ``*``, as :func:`to_json` writes them), built in one
    pass: a big import writes one per record.
    """
    actor_id = actor.user_id
    ready = JSON_READY
    rows = []
    for (record_id, record), change_id in zip(records, new_change_ids(len(records)), strict=True):
        new: dict[str, Any] = {}
        for key, value in record.items():
            kind = type(value)
            if kind in ready:
                if value is not None:
                    new[key] = value
            elif kind in _TEXT_OF:
                new[key] = _TEXT_OF[kind](value)
            elif value != []:
                new[key] = to_json(value)
        rows.append({"at": at, "actor_id": actor_id, "entity": entity, "record_id": record_id,
                     "action": "create", "change_id": change_id, "field": "*",
                     "old_value": None, "new_value": new})
    return rows


#: What :func:`to_json` makes of these exact types, without its chain of tests.
_TEXT_OF: dict[type, Any] = {Decimal: str, dt.date: dt.date.isoformat,
                             dt.datetime: dt.datetime.isoformat}
