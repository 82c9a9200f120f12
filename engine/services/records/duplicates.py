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

:func:`engine.services.records.merge.merge` then folds a duplicate into the record
kept (re-exported here).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.context import Actor
from engine.services.records.service import RecordService
from engine.storage.queries import Filter

# Legal-form suffixes, longest first; CJK ones are matched on the end of the
# joined name, Latin ones as whole trailing words.
CJK_SUFFIXES = (
    "集团股份有限公司", "集团有限责任公司", "集团有限公司", "股份有限公司", "有限责任公司",
    "有限公司", "集团公司", "分公司", "公司", "集团",
)
LATIN_SUFFIXES = frozenset({
    "co", "company", "corp", "corporation", "inc", "incorporated", "ltd", "limited", "llc",
    "plc", "gmbh", "ag", "sa", "bv", "pte", "pty", "group",
})

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits (any script)
PAGE = 1000  # matched records read whole per query


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


class DuplicateIndex:
    """The normalised names, phones and e-mails of many records, to match candidates against.

    :func:`find_duplicates` builds one per question; an import builds one
    for the whole file — the readable records once, then each row added as
    it is read, so a row is matched against the records *and* the earlier
    rows — instead of reading the table once per row.  Keys are any hashable
    value: record ids, or the file's line numbers.
    """

    def __init__(self, name_field: str = "name", phone_fields: Sequence[str] = ("phone",),
                 email_fields: Sequence[str] = ("email",)) -> None:
        self.name_field = name_field
        self.phone_fields = tuple(phone_fields)
        self.email_fields = tuple(email_fields)
        self._by: dict[str, dict[str, list[Any]]] = {"name": {}, "phone": {}, "email": {}}
        self._names: dict[Any, Any] = {}

    def fresh(self) -> DuplicateIndex:
        """An empty index comparing the same fields (for the rows of a file, say)."""
        return DuplicateIndex(self.name_field, self.phone_fields, self.email_fields)

    @property
    def fields(self) -> list[str]:
        return [self.name_field, *self.phone_fields, *self.email_fields]

    def add(self, key: Any, values: Mapping[str, Any]) -> None:
        self._names[key] = values.get(self.name_field)
        for reason, found in _keys(values, self.name_field, self.phone_fields,
                                   self.email_fields).items():
            for normalised in found:
                self._by[reason].setdefault(normalised, []).append(key)

    def name(self, key: Any) -> Any:
        """The name (the title field's value) added under ``key``."""
        return self._names.get(key)

    def matches(self, candidate: Mapping[str, Any]) -> dict[Any, tuple[str, ...]]:
        """The keys ``candidate`` probably is, each with its reasons (in name, phone, e-mail
        order); the key with most reasons first, then in the order they were added."""
        found: dict[Any, list[str]] = {}
        for reason, wanted in _keys(candidate, self.name_field, self.phone_fields,
                                    self.email_fields).items():
            for normalised in wanted:
                for key in self._by[reason].get(normalised, ()):
                    reasons = found.setdefault(key, [])
                    if reason not in reasons:
                        reasons.append(reason)
        ordered = sorted(found, key=lambda k: -len(found[k]))  # stable: added order kept
        return {key: tuple(found[key]) for key in ordered}

    @classmethod
    def of_records(cls, records: RecordService, actor: Actor, entity: str, *,
                   name_field: str = "name", phone_fields: Sequence[str] = ("phone",),
                   email_fields: Sequence[str] = ("email",)) -> DuplicateIndex:
        """The records of ``entity`` the actor can read (archived left out), by id; only the
        compared columns are read."""
        index = cls(name_field, phone_fields, email_fields)
        for row in records.visible_values(actor, entity, index.fields):
            index.add(row["id"], row)
        return index


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
    if not any(_keys(candidate, name_field, phone_fields, email_fields).values()):
        return []
    index = DuplicateIndex.of_records(records, actor, entity, name_field=name_field,
                                      phone_fields=phone_fields, email_fields=email_fields)
    matched = {key: reasons for key, reasons in index.matches(candidate).items()
               if exclude_id is None or str(key) != str(exclude_id)}
    if not matched:
        return []
    return read_matches(records, actor, entity, matched)


def read_matches(records: RecordService, actor: Actor, entity: str,
                 matched: Mapping[Any, tuple[str, ...]]) -> list[Duplicate]:
    """The matched records read whole (as the actor sees them), strongest first, then oldest."""
    ids = sorted(matched)
    found = [Duplicate(row, matched[row["id"]])
             for start in range(0, len(ids), PAGE)
             for row in records.list(actor, entity,
                                     filters=[Filter("id", "in", ids[start:start + PAGE])],
                                     limit=PAGE, with_total=False).rows]
    found.sort(key=lambda d: (-len(d.reasons), d.record["id"]))
    return found


#: The entities whose new records are checked for duplicates before saving (forms, API).
CHECKED_ENTITIES = frozenset({"customer"})


@dataclass(frozen=True)
class DuplicateFields:
    """Which fields of an entity :func:`find_duplicates` compares."""

    name_field: str
    phone_fields: tuple[str, ...]
    email_fields: tuple[str, ...]


def duplicate_fields(entity: Any) -> DuplicateFields | None:
    """The compared fields of a checked entity: its title, its phone and e-mail fields.

    None for an entity that is not checked (see :data:`CHECKED_ENTITIES`).
    """
    if entity.key not in CHECKED_ENTITIES or not entity.title_field:
        return None
    return DuplicateFields(
        entity.title_field,
        tuple(f.key for f in entity.fields.values() if f.type == "phone"),
        tuple(f.key for f in entity.fields.values() if f.type == "email"))


def duplicate_index(records: RecordService, actor: Actor,
                    entity: str) -> DuplicateIndex | None:
    """The readable records of a checked entity, indexed on its compared fields (None for an
    entity that is not checked)."""
    fields = duplicate_fields(records.entity(entity))
    if fields is None:
        return None
    return DuplicateIndex.of_records(records, actor, entity, name_field=fields.name_field,
                                     phone_fields=fields.phone_fields,
                                     email_fields=fields.email_fields)


def likely_duplicates(records: RecordService, actor: Actor, entity: str,
                      candidate: Mapping[str, Any], *, exclude_id: Any = None) -> list[Duplicate]:
    """:func:`find_duplicates` with the entity's compared fields ([] when it is not checked)."""
    fields = duplicate_fields(records.entity(entity))
    if fields is None:
        return []
    return find_duplicates(records, actor, candidate, entity=entity,
                           name_field=fields.name_field, phone_fields=fields.phone_fields,
                           email_fields=fields.email_fields, exclude_id=exclude_id)


# Kept importable from here: merging is what a user does with a duplicate found.
from engine.services.records.merge import MergePlan, MergeResult, merge, plan_merge  # noqa: E402

__all__ = ["Duplicate", "DuplicateIndex", "MergePlan", "duplicate_index", "MergeResult", "find_duplicates", "likely_duplicates", "merge",
           "normalise_email", "normalise_name", "normalise_phone", "plan_merge"]
