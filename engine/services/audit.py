"""Audit rows: who changed what, when, from which value to which.

Rows are written with the change itself, in the same transaction, so an
audit trail can never disagree with the data.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Table, insert

from engine.context import Actor
from engine.services.values import to_json


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
