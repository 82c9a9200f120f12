"""What a migration will do, as plain data: one frozen dataclass per kind of change.

Following Alembic's layering, these objects only *say* what changes; the
planner builds them by comparing the database with the definitions and
the executor carries them out.  Keeping them inert lets ``crm migrate
--plan`` show exactly what ``crm migrate`` would do, and lets tests check
each layer on its exact output.  Every operation describes itself in words a
consultant understands and says whether it would lose data (``destructive``)
and why (``reason``).  ``blocked`` marks a change that cannot be made even
when destructive changes are allowed, because it would need a person to
choose which rows to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from engine.storage.migration.convert import ColumnSpec

#: What a removed table's rows are called, by the role of the table.
_ROW_WORDS = {"entity": "record", "lines": "line", "link": "link", "system": "row"}


def count(n: int, word: str) -> str:
    """``1 value``, ``12 values``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def quoted(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


@dataclass(frozen=True)
class Place:
    """A table, named as a consultant knows it: ``Customer`` or ``Order lines "Items"``."""

    table: str
    entity: str
    entity_label: str
    lines: str | None = None
    lines_label: str | None = None

    def __str__(self) -> str:
        if self.lines is None:
            return self.entity_label
        return f'{self.entity_label} lines "{self.lines_label or self.lines}"'

    def archive_field(self, key: str) -> str:
        """The ``field`` recorded in the archive for a column of this table."""
        return f"{self.lines}.{key}" if self.lines else key


@dataclass(frozen=True)
class Operation:
    """Base of every operation; ``kind`` names the executor step that applies it."""

    kind: ClassVar[str] = ""

    def describe(self) -> str:  # pragma: no cover - every operation overrides it
        raise NotImplementedError

    @property
    def destructive(self) -> bool:
        return False

    @property
    def reason(self) -> str | None:
        return None

    @property
    def blocked(self) -> bool:
        return False


@dataclass(frozen=True)
class CreateTable(Operation):
    """A new table; ``indexes`` are created with it (they are not separate steps)."""

    kind: ClassVar[str] = "create_table"
    place: Place
    role: str  # system, entity, lines or link
    key: str
    label: str
    indexes: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.role == "system":
            return f'Create system table "{self.place.table}"'
        if self.role == "entity":
            return f'Add entity "{self.label}" ({self.key})'
        return f'Add {self.role} field "{self.label}" ({self.key}) to {self.place.entity_label}'


@dataclass(frozen=True)
class RenameTable(Operation):
    """A renamed entity, lines or link field (``renamed_from``): its table is renamed, rows kept.

    For an entity the history, files, archived values and number counters
    kept under its old key move to the new one with it.
    """

    kind: ClassVar[str] = "rename_table"
    place: Place  # the new table
    role: str
    old_table: str
    old: str
    new: str
    indexes: tuple[tuple[str, str], ...] = ()  # (old name, new name), renamed with the table

    def describe(self) -> str:
        if self.role == "entity":
            return (f'Rename entity "{self.old}" to "{self.new}" ({self.place.entity_label}: '
                    "records, history, files and numbers kept)")
        if self.old == self.new:  # the lines of a renamed entity go with it
            return (f'Rename the table of {self.role} field "{self.new}" from '
                    f'"{self.old_table}" to "{self.place.table}" (data kept)')
        return (
            f'Rename {self.role} field "{self.old}" to "{self.new}" on {self.place.entity_label} '
            "(data kept)"
        )


@dataclass(frozen=True)
class KeepIdsUnique(Operation):
    """A SQLite table that could give a deleted row's id again: rebuilt, every row kept.

    ``next_id`` is the first id it gives afterwards: above every id its rows
    and the audit, attachment and history rows of its records ever used.
    """

    kind: ClassVar[str] = "keep_ids_unique"
    place: Place
    entity: str | None  # the entity whose records the rows are (None: lines, system rows)
    rows: int
    next_id: int

    def describe(self) -> str:
        return (
            f"Never give the id of a deleted row of {self.place} again (table rebuilt, "
            f"{count(self.rows, 'row')} kept; next id {self.next_id})"
        )


@dataclass(frozen=True)
class DropTable(Operation):
    """A table no longer defined; its rows go to the archive first."""

    kind: ClassVar[str] = "drop_table"
    place: Place
    role: str
    key: str
    rows: int
    #: The types its field columns were written with, to archive exact values.
    specs: tuple[tuple[str, ColumnSpec], ...] = ()

    def _what(self) -> str:
        if self.role == "entity":
            return f'entity "{self.key}"'
        return f'{self.role} field "{self.key}" from {self.place.entity_label}'

    def describe(self) -> str:
        word = _ROW_WORDS.get(self.role, "row")
        if not self.rows:
            return f"Remove {self._what()} (no {word}s)"
        return f"Remove {self._what()} — {count(self.rows, word)} will be moved to the archive"

    @property
    def destructive(self) -> bool:
        return self.rows > 0

    @property
    def reason(self) -> str | None:
        if not self.destructive:
            return None
        word = _ROW_WORDS.get(self.role, "row")
        return f"removing {self._what()} would lose {count(self.rows, word)}"


@dataclass(frozen=True)
class AddColumn(Operation):
    kind: ClassVar[str] = "add_column"
    place: Place
    key: str
    label: str
    type_label: str

    def describe(self) -> str:
        return f'Add field "{self.label}" ({self.key}: {self.type_label}) to {self.place}'


@dataclass(frozen=True)
class RenameColumn(Operation):
    """A declared ``renamed_from``: the column is renamed, never dropped and re-added."""

    kind: ClassVar[str] = "rename_column"
    place: Place
    old: str
    new: str

    def describe(self) -> str:
        return f'Rename field "{self.old}" to "{self.new}" on {self.place} (data kept)'


@dataclass(frozen=True)
class DropColumn(Operation):
    kind: ClassVar[str] = "drop_column"
    place: Place
    key: str
    values: int
    spec: ColumnSpec | None = None  # as written, when the applied definitions say

    def describe(self) -> str:
        if not self.values:
            return f'Remove field "{self.key}" from {self.place} (no values)'
        return (
            f'Remove field "{self.key}" from {self.place} — '
            f"{count(self.values, 'value')} will be moved to the archive"
        )

    @property
    def destructive(self) -> bool:
        return self.values > 0

    @property
    def reason(self) -> str | None:
        if not self.destructive:
            return None
        return f'removing field "{self.key}" from {self.place} would lose {count(self.values, "value")}'


@dataclass(frozen=True)
class ChangeType(Operation):
    """A column whose storage changes; ``changed`` values would not survive unaltered."""

    kind: ClassVar[str] = "change_type"
    place: Place
    key: str
    old_type: str
    new_type: str
    old_spec: ColumnSpec
    new_spec: ColumnSpec
    widening: bool
    values: int
    changed: int

    def _what(self) -> str:
        return f'field "{self.key}" on {self.place} from {self.old_type} to {self.new_type}'

    def describe(self) -> str:
        if self.widening:
            return f"Widen {self._what()}"
        if not self.values:
            return f"Change {self._what()} (no values)"
        outcome = f"{self.changed} will change" if self.changed else "none will change"
        return (
            f"Change {self._what()} — {count(self.values, 'value')} will be copied to the "
            f"archive; {outcome}"
        )

    @property
    def destructive(self) -> bool:
        return not self.widening and self.values > 0

    @property
    def reason(self) -> str | None:
        if not self.destructive:
            return None
        if self.changed:
            return (
                f"changing {self._what()} would alter {self.changed} of its "
                f"{count(self.values, 'value')} (cut, rounded or emptied)"
            )
        return (
            f"changing {self._what()} narrows it; its {count(self.values, 'value')} fit "
            "but would all be converted"
        )


@dataclass(frozen=True)
class AddChoices(Operation):
    """New choices: a definitions change only, nothing in the tables."""

    kind: ClassVar[str] = "add_choices"
    place: Place
    key: str
    choices: tuple[str, ...]

    def describe(self) -> str:
        word = "choice" if len(self.choices) == 1 else "choices"
        return f'Add {word} {quoted(self.choices)} to field "{self.key}" on {self.place}'


@dataclass(frozen=True)
class RemoveChoices(Operation):
    """Choices no longer offered; records using them are archived, then cleared."""

    kind: ClassVar[str] = "remove_choices"
    place: Place
    key: str
    choices: tuple[str, ...]
    multiple: bool
    uses: tuple[tuple[str, int], ...]  # (choice, records using it), only those in use
    records: int  # records using any of them

    def _what(self) -> str:
        word = "choice" if len(self.choices) == 1 else "choices"
        return f'{word} {quoted(self.choices)} from field "{self.key}" on {self.place}'

    def describe(self) -> str:
        if not self.records:
            return f"Remove {self._what()} (not used)"
        return (
            f"Remove {self._what()} — used by {count(self.records, 'record')}; the old values "
            "will be moved to the archive and cleared"
        )

    @property
    def destructive(self) -> bool:
        return self.records > 0

    @property
    def reason(self) -> str | None:
        if not self.destructive:
            return None
        used = ", ".join(f'"{c}" by {count(n, "record")}' for c, n in self.uses)
        return (
            f'removing {self._what()} would clear it in {count(self.records, "record")} '
            f"(used: {used})"
        )


@dataclass(frozen=True)
class AddIndex(Operation):
    """An index or a uniqueness rule; ``duplicates`` are values already used twice or more."""

    kind: ClassVar[str] = "add_index"
    place: Place
    name: str
    columns: tuple[str, ...]
    unique: bool
    duplicates: tuple[tuple[str, int], ...] = ()  # (value as shown, records), at most 5
    duplicated_values: int = 0  # how many distinct values are duplicated in all

    def _fields(self) -> str:
        if len(self.columns) == 1:
            return f'field "{self.columns[0]}" on {self.place}'
        return f"fields ({', '.join(self.columns)}) on {self.place}"

    def describe(self) -> str:
        if self.unique and len(self.columns) == 1:
            return f"Make {self._fields()} unique"
        what = "unique index" if self.unique else "index"
        return f"Add {what} on {self.place} ({', '.join(self.columns)})"

    @property
    def blocked(self) -> bool:
        return bool(self.duplicates)

    @property
    def destructive(self) -> bool:
        return self.blocked

    @property
    def reason(self) -> str | None:
        if not self.blocked:
            return None
        shown = ", ".join(f"{v} is used by {count(n, 'record')}" for v, n in self.duplicates)
        more = self.duplicated_values - len(self.duplicates)
        if more > 0:
            shown += f", and {count(more, 'other value')} more"
        return (
            f"{self._fields()} cannot be made unique: {shown}; change those records first "
            "(the migration cannot choose which ones)"
        )


@dataclass(frozen=True)
class DropIndex(Operation):
    kind: ClassVar[str] = "drop_index"
    place: Place
    name: str
    columns: tuple[str, ...]
    unique: bool

    def describe(self) -> str:
        what = "unique rule" if self.unique else "index"
        return f"Remove {what} on {self.place} ({', '.join(self.columns)})"


@dataclass(frozen=True)
class MigrationPlan:
    """Everything one migration would do, in the order the executor does it."""

    operations: tuple[Operation, ...]
    previous_hash: str | None
    new_hash: str

    @property
    def destructive(self) -> tuple[Operation, ...]:
        """The operations that would lose data (or cannot be done at all)."""
        return tuple(op for op in self.operations if op.destructive)

    @property
    def blocked(self) -> tuple[Operation, ...]:
        return tuple(op for op in self.operations if op.blocked)

    @property
    def is_empty(self) -> bool:
        """Nothing to change and the definitions already recorded: migrating is a no-op."""
        return not self.operations and self.previous_hash == self.new_hash

    def describe(self) -> list[str]:
        lines = [op.describe() for op in self.operations]
        if not lines and not self.is_empty:
            lines.append("Record the new definitions (no change to the tables)")
        return lines
