"""The resolved registry: plain, immutable objects built once at start-up.

Nothing here knows about YAML, SQL or HTTP.  The loader builds these objects
from definition files; the storage layer compiles them to tables; services
read them to validate and compute.  Because they never change after
building, a registry can be shared by every request of a process without
locks, and two registries (two sites) never leak into each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from types import MappingProxyType
from typing import Any

from engine.expressions import Expression

#: Columns every entity table has; field keys may not reuse them.
SYSTEM_COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "owner",
    "version",
    "archived",
)

#: Columns every lines (child) table has.
LINE_SYSTEM_COLUMNS: tuple[str, ...] = ("id", "parent_id", "position")


@dataclass(frozen=True)
class Origin:
    """Where a definition came from, for messages that point at a file and line."""

    file: str
    line: int | None = None
    column: int | None = None
    pack: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Label:
    """A text in English and Chinese; ``zh`` falls back to ``en`` when missing."""

    en: str
    zh: str | None = None

    def get(self, locale: str | None = "en") -> str:
        if locale and locale.startswith("zh") and self.zh:
            return self.zh
        return self.en

    @classmethod
    def from_yaml(cls, value: Any, fallback: str = "") -> Label:
        if isinstance(value, Mapping):
            return cls(en=str(value.get("en") or fallback), zh=value.get("zh"))
        if value:
            return cls(en=str(value))
        return cls(en=fallback)

    @classmethod
    def from_key(cls, key: str) -> Label:
        return cls(en=key.replace("_", " ").capitalize())

    def to_data(self) -> dict[str, str]:
        return {"en": self.en, "zh": self.zh} if self.zh else {"en": self.en}


@dataclass(frozen=True)
class Field:
    """One field of an entity (or of a lines field), fully resolved."""

    key: str
    type: str
    label: Label
    help: Label | None = None
    required: bool = False
    required_if: Expression | None = None
    visible_if: Expression | None = None
    readonly: bool = False
    default: Any = None
    default_expression: Expression | None = None
    unique: bool = False
    index: bool = False
    searchable: bool = False
    tracked: bool = True
    hidden: bool = False
    renamed_from: str | None = None
    max_length: int | None = None
    min_length: int | None = None
    pattern: str | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    precision: int | None = None
    scale: int | None = None
    choices: Mapping[str, Label] = field(default_factory=lambda: MappingProxyType({}))
    multiple: bool = False
    to: str | None = None
    on_delete: str = "restrict"
    fields: Mapping[str, Field] = field(default_factory=lambda: MappingProxyType({}))
    expression: Expression | None = None
    returns: str | None = None
    stored: bool = True
    sequence_pattern: str | None = None
    #: Hidden fields this field's conditions or expressions read on purpose (see rule_leaks).
    reveals: tuple[str, ...] = ()
    origin: Origin | None = field(default=None, compare=False)

    @property
    def value_type(self) -> str:
        """The type of the values this field holds (a computed field's result type)."""
        return self.returns if self.type == "computed" and self.returns else self.type

    @property
    def has_column(self) -> bool:
        """Whether the field is a column of its entity's own table."""
        if self.type in ("lines", "many_to_many"):
            return False
        return not (self.type == "computed" and not self.stored)

    @property
    def is_input(self) -> bool:
        """Whether a caller may give this field a value (computed and sequences are the engine's)."""
        return self.type not in ("computed", "sequence")

    def to_data(self) -> dict[str, Any]:
        """A canonical, JSON-ready form: what the definitions hash and snapshot hold."""
        data: dict[str, Any] = {"type": self.type, "label": self.label.to_data()}
        for name in (
            "required",
            "readonly",
            "unique",
            "index",
            "searchable",
            "hidden",
            "multiple",
        ):
            if getattr(self, name):
                data[name] = True
        if not self.tracked:
            data["tracked"] = False
        for name in (
            "max_length",
            "min_length",
            "pattern",
            "precision",
            "scale",
            "to",
            "returns",
            "sequence_pattern",
            "renamed_from",
        ):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        for name in ("min", "max"):
            value = getattr(self, name)
            if value is not None:
                data[name] = str(value)
        if self.default is not None:
            data["default"] = self.default
        for name in ("required_if", "visible_if", "default_expression", "expression"):
            expr = getattr(self, name)
            if expr is not None:
                data[name] = expr.source
        if self.help is not None:
            data["help"] = self.help.to_data()
        if self.type == "reference":
            data["on_delete"] = self.on_delete
        if self.type == "computed":
            data["stored"] = self.stored
        if self.choices:
            data["choices"] = {k: v.to_data() for k, v in self.choices.items()}
        if self.fields:
            data["fields"] = {k: f.to_data() for k, f in self.fields.items()}
        if self.reveals:
            data["reveals"] = list(self.reveals)
        return data


@dataclass(frozen=True)
class IndexDef:
    fields: tuple[str, ...]
    unique: bool = False
    name: str | None = None

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"fields": list(self.fields)}
        if self.unique:
            data["unique"] = True
        if self.name:
            data["name"] = self.name
        return data


@dataclass(frozen=True)
class LedgerDef:
    """An append-only ledger on an entity: records are movements summed into balances.

    ``quantity`` is the signed field each movement adds; ``dimensions`` the
    fields a balance is kept per; ``amounts`` more fields summed alongside
    (never checked).  See docs/ledger.md.
    """

    quantity: str
    dimensions: tuple[str, ...]
    allow_negative: bool = False
    amounts: tuple[str, ...] = ()

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"quantity": self.quantity, "dimensions": list(self.dimensions),
                                "allow_negative": self.allow_negative}
        if self.amounts:
            data["amounts"] = list(self.amounts)
        return data


@dataclass(frozen=True)
class HookRef:
    """One hook function an entity declares: which event, which function, in which file.

    ``file`` is the resolved path of the ``hooks.py`` that holds it (a pack's
    or the site's ``custom/``), so running it needs no search.
    """

    event: str
    function: str
    pack: str
    file: str
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Entity:
    """An entity: one table, its fields, and what the UI and services need to know."""

    key: str
    label: Label
    plural: Label
    fields: Mapping[str, Field]
    pack: str
    description: Label | None = None
    title_field: str | None = None
    icon: str | None = None
    archivable: bool = True
    audit: bool = True
    indexes: tuple[IndexDef, ...] = ()
    extended_by: tuple[str, ...] = ()
    #: Set when the entity is an append-only ledger (see :class:`LedgerDef`).
    ledger: LedgerDef | None = None
    #: The key the entity had before: its table (and history, files, counters) is renamed.
    renamed_from: str | None = None
    origin: Origin | None = field(default=None, compare=False)
    #: Hook functions by event (``before_save`` …), in run order; see docs/hooks.md.
    hooks: Mapping[str, tuple[HookRef, ...]] = field(
        default_factory=lambda: MappingProxyType({}), compare=False
    )

    @property
    def table_name(self) -> str:
        return self.key

    def child_table_name(self, field_key: str) -> str:
        return f"{self.key}__{field_key}"

    def field(self, key: str) -> Field:
        return self.fields[key]

    def column_fields(self) -> Iterator[Field]:
        return (f for f in self.fields.values() if f.has_column)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label.to_data(),
            "plural": self.plural.to_data(),
            "pack": self.pack,
            "fields": {k: f.to_data() for k, f in self.fields.items()},
        }
        if self.title_field:
            data["title_field"] = self.title_field
        if self.indexes:
            data["indexes"] = [i.to_data() for i in self.indexes]
        if not self.archivable:
            data["archivable"] = False
        if not self.audit:
            data["audit"] = False
        if self.ledger is not None:
            data["ledger"] = self.ledger.to_data()
        if self.renamed_from:
            data["renamed_from"] = self.renamed_from
        return data


@dataclass(frozen=True)
class PackInfo:
    name: str
    version: str
    label: Label
    depends: tuple[str, ...]
    path: str
    description: Label | None = None


@dataclass(frozen=True)
class Registry:
    """Everything the definitions say, resolved and checked; read-only once built."""

    entities: Mapping[str, Entity]
    packs: Mapping[str, PackInfo]
    #: Stage flows by key (see ``engine.metadata.workflows``).
    workflows: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: Roles by key (see ``engine.metadata.roles``).
    roles: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: What a customer resource transfer moves, parents first (``engine.metadata.transfer_rules``).
    transfer: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: Declared views by entity (``engine.metadata.view_defs``); not in the snapshot, as
    #: a view changes no table.
    views: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: Declared dashboards by name (``engine.metadata.view_defs``); not in the snapshot.
    dashboards: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: Reminder rules by name (``engine.metadata.reminder_rules``); not in the snapshot, as
    #: a rule changes no table.
    reminders: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[Any, ...] = ()

    def entity(self, key: str) -> Entity:
        return self.entities[key]

    def snapshot(self) -> dict[str, Any]:
        """The canonical data form of the registry, stored with each applied migration."""
        return {
            "packs": {name: p.version for name, p in self.packs.items()},
            "entities": {key: e.to_data() for key, e in sorted(self.entities.items())},
            "workflows": {key: w.to_data() for key, w in sorted(self.workflows.items())},
            "roles": {key: r.to_data() for key, r in sorted(self.roles.items())},
            "transfer": {key: t.to_data() for key, t in self.transfer.items()},
        }

    @cached_property
    def definitions_hash(self) -> str:
        """Identifies these exact definitions; recorded in the database when applied."""
        text = json.dumps(self.snapshot(), sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()
