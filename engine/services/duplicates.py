"""Likely duplicates of a record about to be created or imported.

Customers are entered by many salespeople, by hand and by imports, so the
same company turns up as ``华信科技有限公司``, ``华信科技`` and
``ＨＵＡＸＩＮ 华信科技（有限公司）``.  Before a record is saved, the form or
the import asks :func:`find_duplicates` for the records that probably are the
same party, and shows them.

Two records are likely duplicates when one of these agrees after
normalising:

- the **name**: Unicode NFKC (full-width letters, digits and brackets become
  half-width), case folded, every space and punctuation mark dropped, and
  legal-form suffixes taken off the end (有限公司, 有限责任公司, 股份有限公司,
  Co., Ltd., Inc., LLC, ...);
- a **phone** number: its digits only, without a leading international
  prefix ``00``/``+86`` or trunk ``0`` (``+86 21 5080 1234`` is
  ``021-50801234``); numbers with fewer than 7 digits are ignored;
- an **e-mail** address: trimmed and case folded.

This is an engine service rather than a pack hook because the callers —
record forms, imports, the API — are the engine's, and the matching is the
same for any entity: the fields it compares are parameters (the core pack's
customer uses ``name``, ``phone`` and ``email``; a pack with members or
dealers passes its own).  Only records the actor may read are compared,
through the record service (``site.records.list`` with the actor), so a
salesperson is never told about a customer they cannot see.

:func:`merge` then folds a duplicate into the record kept, in one
transaction: the kept record's empty fields take the duplicate's values,
every record of any entity that refers to the duplicate (a ``reference``
or ``many_to_many`` field) is pointed at the kept one — whoever owns it and
whatever its stage, like a customer transfer — and the duplicate is
archived, not deleted, so its history stays readable.  Each moved record
gets an audit row (action ``merge``, the field, old → new id) and its
version is bumped; both customers get a ``merge`` row naming the other, all
under one change id.  Merging removes a customer, so it needs the ``delete``
right on the entity and both records within the actor's write scope
(salespeople of the core pack cannot merge; managers and owners can).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from engine.context import Actor
from engine.errors import NotFound, PermissionDenied, ValidationFailed
from engine.services.audit import new_change_id, write_audit
from engine.services.records import RecordService
from engine.storage.database import write_transaction

# Legal-form suffixes, longest first; CJK ones are matched on the end of the
# joined name, Latin ones as whole trailing words.
CJK_SUFFIXES = (
    "集团股份有限公司", "集团有限责任公司", "集团有限公司", "股份有限公司", "有限责任公司",
    "有限公司", "集团公司", "分公司", "公司",
)
LATIN_SUFFIXES = frozenset({
    "co", "company", "corp", "corporation", "inc", "incorporated", "ltd", "limited", "llc",
    "plc", "gmbh", "ag", "sa", "bv", "pte", "pty", "group",
})

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits (any script)


def normalise_name(name: Any) -> str:
    """The key two names of the same party share (empty when nothing is left)."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKC", str(name)).casefold()
    words = _WORD.findall(text)
    while len(words) > 1 and words[-1] in LATIN_SUFFIXES:
        words.pop()
    joined = "".join(words)
    stripped = True
    while stripped:
        stripped = False
        for suffix in CJK_SUFFIXES:
            if joined.endswith(suffix) and len(joined) > len(suffix):
                joined = joined[: -len(suffix)]
                stripped = True
                break
    return joined


def normalise_phone(phone: Any) -> str:
    """Digits only, without the international and trunk prefixes ('' if too short)."""
    if not phone:
        return ""
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", str(phone)) if ch.isdigit())
    if digits.startswith("00"):
        digits = digits[2:]
    if digits.startswith("86") and len(digits) >= 12:
        digits = digits[2:]
    digits = digits.lstrip("0")
    return digits if len(digits) >= 7 else ""


def normalise_email(email: Any) -> str:
    if not email:
        return ""
    return unicodedata.normalize("NFKC", str(email)).strip().casefold()


@dataclass(frozen=True)
class Duplicate:
    """A record that is probably the same party, and why (``name``, ``phone``, ``email``)."""

    record: dict[str, Any]
    reasons: tuple[str, ...] = ()

    @property
    def id(self) -> Any:
        return self.record["id"]


def _keys(record: Mapping[str, Any], name_field: str, phone_fields: Sequence[str],
          email_fields: Sequence[str]) -> dict[str, set[str]]:
    keys = {"name": {normalise_name(record.get(name_field))},
            "phone": {normalise_phone(record.get(f)) for f in phone_fields},
            "email": {normalise_email(record.get(f)) for f in email_fields}}
    return {reason: {k for k in found if k} for reason, found in keys.items()}


def _readable(records: RecordService, actor: Actor, entity: str,
              page_size: int = 1000) -> Iterable[dict[str, Any]]:
    offset = 0
    while True:
        page = records.list(actor, entity, limit=page_size, offset=offset, with_total=False)
        yield from page.rows
        if not page.has_more:
            return
        offset += page_size


def find_duplicates(
    records: RecordService,
    actor: Actor,
    candidate: Mapping[str, Any],
    *,
    entity: str = "customer",
    name_field: str = "name",
    phone_fields: Sequence[str] = ("phone",),
    email_fields: Sequence[str] = ("email",),
    exclude_id: Any = None,
) -> list[Duplicate]:
    """Records of ``entity`` the actor can read that probably are ``candidate``.

    ``candidate`` holds the values about to be saved (a form's or an import
    row's); ``exclude_id`` leaves out the record being edited.  The strongest
    matches (most reasons) come first, then the oldest records.  Archived
    records are not compared.
    """
    wanted = _keys(candidate, name_field, phone_fields, email_fields)
    if not any(wanted.values()):
        return []
    found = []
    for row in _readable(records, actor, entity):
        if exclude_id is not None and str(row["id"]) == str(exclude_id):
            continue
        keys = _keys(row, name_field, phone_fields, email_fields)
        reasons = tuple(reason for reason in ("name", "phone", "email")
                        if wanted[reason] & keys[reason])
        if reasons:
            found.append(Duplicate(row, reasons))
    found.sort(key=lambda d: (-len(d.reasons), d.record["id"]))
    return found


@dataclass(frozen=True)
class MergeResult:
    """The kept record after a merge, what moved to it ("entity.field" → count), the change id."""

    kept: dict[str, Any]
    merged_id: Any
    moved: dict[str, int]
    change_id: str


_NOT_COPIED = frozenset({"lines", "many_to_many", "sequence", "computed"})


def _fill(records: RecordService, actor: Actor, entity: Any, kept: Mapping[str, Any],
          duplicate: Mapping[str, Any]) -> dict[str, Any]:
    """The kept record's empty fields the duplicate has a value for (and the actor may set)."""
    closed = records.hidden(actor, entity) | records.policy.readonly_fields(actor, entity)
    merged = dict(kept)
    fills: dict[str, Any] = {}
    for field in entity.fields.values():
        if (field.type in _NOT_COPIED or field.unique or field.readonly or field.key in closed
                or not field.is_input):
            continue
        if kept.get(field.key) not in (None, "", []) or duplicate.get(field.key) in (None, "", []):
            continue
        candidate = {**merged, field.key: duplicate[field.key]}
        if field.visible_if is not None and not field.visible_if.evaluate(
                candidate, now=records.clock.now()):
            continue
        merged = candidate
        fills[field.key] = duplicate[field.key]
    return fills


def _reachable(conn: Connection, records: RecordService, actor: Actor, entity: Any,
               record_id: Any, action: str) -> bool:
    table = records.schema.table(entity.key)
    scope = records.policy.row_filter(actor, entity, table, action)
    where = [table.c.id == record_id] + ([scope] if scope is not None else [])
    return conn.execute(select(table.c.id).where(*where)).first() is not None


def merge(
    records: RecordService,
    actor: Actor,
    keep_id: Any,
    duplicate_id: Any,
    *,
    entity: str = "customer",
    conn: Connection | None = None,
) -> MergeResult:
    """Fold ``duplicate_id`` into ``keep_id`` (see the module docstring); all or nothing."""
    target = records.entity(entity)
    if str(keep_id) == str(duplicate_id):
        raise ValidationFailed({"duplicate": ["A record cannot be merged into itself."]})
    if not records.policy.can(actor, target, "delete"):
        raise PermissionDenied(f"You may not merge {target.plural.get(actor.language)}.")
    if conn is None:
        with write_transaction(records.engine) as new:
            return merge(records, actor, keep_id, duplicate_id, entity=entity, conn=new)
    kept = records.get(actor, entity, keep_id, conn=conn)
    duplicate = records.get(actor, entity, duplicate_id, conn=conn)
    keep_id, duplicate_id = kept["id"], duplicate["id"]
    for record_id, action in ((keep_id, "update"), (duplicate_id, "delete")):
        if not _reachable(conn, records, actor, target, record_id, action):
            raise PermissionDenied(f"You may see this {target.label.get(actor.language)} "
                                   "but not change it.")
    if duplicate["archived"]:
        raise NotFound(f"{target.label.get(actor.language)} {duplicate_id} is archived.")
    fills = _fill(records, actor, target, kept, duplicate)
    if fills:
        records.update(actor, entity, keep_id, fills, conn=conn)
    now = records.clock.now()
    change_id = new_change_id()
    audit = records.schema.system("crm_audit")
    moved: dict[str, int] = {}
    for other in records.registry.entities.values():
        for field in other.fields.values():
            if field.to != entity or field.type not in ("reference", "many_to_many"):
                continue
            where = f"{other.key}.{field.key}"
            if field.type == "reference":
                table = records.schema.table(other.key)
                ids = [r for (r,) in conn.execute(
                    select(table.c.id).where(table.c[field.key] == duplicate_id))]
                if not ids:
                    continue
                conn.execute(update(table).where(table.c.id.in_(ids)).values(
                    {field.key: keep_id, "version": table.c.version + 1, "updated_at": now,
                     "updated_by": actor.user_id}))
            else:
                link = records.schema.child(other.key, field.key)
                ids = [r for (r,) in conn.execute(
                    select(link.c.source_id).where(link.c.target_id == duplicate_id))]
                if not ids:
                    continue
                both = select(link.c.source_id).where(link.c.target_id == keep_id)
                conn.execute(delete(link).where(and_(link.c.target_id == duplicate_id,
                                                     link.c.source_id.in_(both))))
                conn.execute(update(link).where(link.c.target_id == duplicate_id)
                             .values(target_id=keep_id))
                table = records.schema.table(other.key)
                conn.execute(update(table).where(table.c.id.in_(ids)).values(
                    version=table.c.version + 1, updated_at=now, updated_by=actor.user_id))
            moved[where] = len(ids)
            if other.audit:
                for record_id in ids:
                    write_audit(conn, audit, actor=actor, at=now, entity=other.key,
                                record_id=record_id, action="merge",
                                changes={field.key: (duplicate_id, keep_id)},
                                change_id=change_id)
    records.archive(actor, entity, duplicate_id, conn=conn)
    if target.audit:
        write_audit(conn, audit, actor=actor, at=now, entity=entity, record_id=keep_id,
                    action="merge", changes={"merged_from": (None, duplicate_id)},
                    change_id=change_id)
        write_audit(conn, audit, actor=actor, at=now, entity=entity, record_id=duplicate_id,
                    action="merge", changes={"merged_into": (None, keep_id)},
                    change_id=change_id)
    elevated = replace(actor, is_admin=True)
    return MergeResult(records.get(elevated, entity, keep_id, conn=conn), duplicate_id, moved,
                       change_id)
