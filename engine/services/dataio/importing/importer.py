"""Importing a spreadsheet into an entity, as strictly as the form and the API.

What an import writes commits in one transaction.  Rows are read in batches; each batch
is translated (:mod:`~engine.services.dataio.importing.cells`), its references
found with one query per target, and handed to the record service —
:meth:`~engine.services.records.batch.RecordBatchMixin.create_many` for new
records, :meth:`~engine.services.records.service.RecordService.update` for the
records an upsert finds — so every rule of the form holds: the ``import``
and ``create``/``update`` rights, row scopes, hidden and read-only fields,
required fields, types, lengths, references, unique values, stage rules
and hooks.

A file may also give the fields of the entity's lines, one row per line
(:mod:`~engine.services.dataio.importing.lines`): the rows of a record are then
read together and the record is created with all its lines at once, in
the same batches; the messages about a line land on the line of the file
it came from.  Files without line columns never take that path.

Every row is checked even after the first error, so the report is
complete.  At the end the transaction is committed only when the import is
not a dry run and either found no error or was asked to import the good
rows; otherwise it is rolled back, so an import that fails — or stops on
an unexpected exception — leaves the database as it was.

A check (dry run) writes nothing and so never takes SQLite's write lock:
each batch is read in its own short read transaction and goes through
:meth:`~engine.services.records.batch.RecordBatchMixin.check_many` and
:meth:`~engine.services.records.service.RecordService.check_update`, the same steps
as the writes without the writing (references, unique values and the
create scope are asked with ``SELECT``; the file's own duplicates are kept
in memory), so its report says what the import would.  Only what a
written record alone can tell — ``after_save`` hooks — waits for the real
import.  A real import is written in one transaction, so all or nothing
holds; on SQLite others' saves wait for it (and answer 503 after the busy
timeout).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from engine.context import Actor
from engine.errors import CrmError, PermissionDenied, ValidationFailed
from engine.i18n import message
from engine.metadata.model import Entity
from engine.metadata.values import ValueProblem, coerce
from engine.services.dataio.importing.cells import (
    SPLIT_MANY,
    CellProblem,
    CellReader,
    ReferenceFinder,
    reference_text,
)
from engine.services.dataio.importing.lines import LineGroup, continues, line_groups, where
from engine.services.dataio.importing.mapping import (
    Column,
    ColumnPlan,
    MappingStore,
    normalise,
    plan_columns,
)
from engine.services.dataio.importing.messages import say
from engine.services.dataio.importing.readers import Sheet, read_sheet
from engine.services.dataio.importing.report import ImportReport, LikelyDuplicate, RowError
from engine.services.records.duplicates import DuplicateIndex, duplicate_fields, duplicate_index
from engine.storage.database import read_transaction, write_transaction

#: Rows handed to the record service at once.
BATCH_SIZE = 1000
#: How a user is told to import a file too long for a web request.
BACKGROUND_HOW = "background=true, crm import --background, or the upload page"
#: Likely duplicates named per row of the report (the strongest first).
SHOWN_MATCHES = 5
ROW_KEY = "row"


class _Undo(Exception):
    """Roll the import's transaction back (refused rows in all-or-nothing mode)."""


@dataclass(frozen=True)
class _Ref:
    """A reference cell waiting for its id: the target ("__user__" for owner) and the text."""

    target: str
    text: str


@dataclass
class _Row:
    line: int
    cells: list[Any]
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    record_id: int | None = None  # the record an upsert updates
    #: With line columns: the line of the file each line came from, by lines field, and
    #: the further rows of the record (line, cells).
    lines_at: dict[str, list[int]] | None = None
    more: list[tuple[int, list[Any]]] | None = None

    def fail(self, key: str, text: str) -> None:
        self.errors.setdefault(key, []).append(text)


@dataclass
class _Run:
    """The state of one import while it runs."""

    actor: Actor
    entity: Entity
    plan: ColumnPlan
    header: list[str]
    report: ImportReport
    reader: CellReader
    finder: ReferenceFinder
    upsert_on: str | None
    timezone: str = "UTC"
    seen_keys: dict[Any, int] = field(default_factory=dict)
    #: (cell index, field key, converter) per column; None for references, owner and id.
    converters: list[tuple[int, str, Any]] = field(default_factory=list)

    #: The columns whose cells name other records (references, links, the owner).
    references: tuple[str, ...] = ()
    #: Unique fields given by a column (not the upsert key), and the line of each value seen.
    unique_columns: tuple[str, ...] = ()
    unique_seen: dict[str, dict[Any, int]] = field(default_factory=dict)
    #: The cells under a blank header (each filled one is refused).
    blank_headers: tuple[int, ...] = ()
    #: (cell index, field key, converter) of every column, references included, when no
    #: column is the owner or the id (whose blank cells are left out, not None); else None.
    plain: list[tuple[int, str, Any]] | None = None
    #: For an entity checked for likely duplicates: the records the actor reads, and the
    #: rows of the file created so far (None for other entities).
    existing: DuplicateIndex | None = None
    in_file: DuplicateIndex | None = None
    #: A check of a ledger's movements: the records it passed so far (as if written).
    ledger_written: list[dict[str, Any]] = field(default_factory=list)
    #: The line columns, by lines field (empty for a file without any).
    line_groups: tuple[LineGroup, ...] = ()
    #: The cells of the record's own columns and of the line columns.
    record_indexes: tuple[int, ...] = ()
    line_indexes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.blank_headers = tuple(i for i, name in enumerate(self.header) if not name)
        self.references = tuple(c.field for c in self.plan.columns if c.field == "owner" or (
            c.field in self.entity.fields
            and self.entity.fields[c.field].type in ("reference", "many_to_many")))
        self.unique_columns = tuple(
            c.field for c in self.plan.columns if c.field != self.upsert_on
            and c.field in self.entity.fields and self.entity.fields[c.field].unique)
        for column in self.plan.columns:
            found = self.entity.fields.get(column.field)
            simple = found is not None and found.type not in ("reference", "many_to_many")
            self.converters.append((column.index, column.field,
                                    self.reader.converter(found) if simple else None))
        if all(c.field in self.entity.fields for c in self.plan.columns):
            self.plain = [(index, key, convert or _reference_reader(self.entity.fields[key]))
                          for index, key, convert in self.converters]
        if self.plan.line_columns:
            self.line_groups = line_groups(self.entity, self.plan, self.reader.language,
                                           self.timezone)
            self.record_indexes = tuple(c.index for c in self.plan.columns)
            self.line_indexes = tuple(c.index for c in self.plan.line_columns)

    def continues(self, cells: list[Any] | None) -> bool:
        """Whether the row is a further line of the record above."""
        return cells is not None and continues(cells, self.record_indexes, self.line_indexes)


class Importer:
    """Imports CSV and XLSX files through a record service (see the module docstring)."""

    def __init__(self, records: Any, *, timezone: str = "UTC", batch_size: int = BATCH_SIZE) -> None:
        self.records = records
        self.timezone = timezone
        self.batch_size = max(1, batch_size)
        self.mappings = MappingStore(records.schema, records.engine)

    def allow(self, actor: Actor, entity_key: str) -> Entity:
        """The entity, if the actor may import into it (PermissionDenied otherwise)."""
        entity = self.records.entity(entity_key)
        if not self.records.policy.can(actor, entity, "import"):
            raise PermissionDenied(say("no_import_right", actor.language,
                                       entity=entity.plural.get(actor.language)))
        return entity

    def save_mapping(self, actor: Actor, entity_key: str, columns: Mapping[str, str | None]) -> None:
        """Remember ``columns`` (header → field, None to skip) for the entity's next imports."""
        entity = self.allow(actor, entity_key)
        self.mappings.save(actor, entity.key, columns, self.records.clock.now())

    def run(
        self,
        actor: Actor,
        entity_key: str,
        data: bytes,
        filename: str,
        *,
        dry_run: bool = False,
        upsert_on: str | None = None,
        mapping: Mapping[str, str | None] | None = None,
        good_rows: bool = False,
        progress: Callable[[int, int], None] | None = None,
        before_commit: Callable[[Connection, ImportReport], None] | None = None,
        max_rows: int | None = None,
    ) -> ImportReport:
        """Import (or, with ``dry_run``, only check) the file; the report says what happened.

        ``progress(rows, total)`` is called after each batch with the rows just
        done and an estimate of all the rows.  ``before_commit(conn, report)``
        is called inside the import's transaction just before a written import
        commits, so what the caller records of it (a background run's outcome)
        commits with the rows or not at all; an exception from it rolls the
        import back.  ``max_rows`` refuses a longer file (an import in a web
        request: bigger ones belong in the background).
        """
        entity = self.allow(actor, entity_key)
        report = ImportReport(entity=entity.key, dry_run=dry_run, good_rows=good_rows)
        started = self._start(actor, entity, data, filename, report, mapping, upsert_on,
                              max_rows)
        if started is None:
            return report
        run, sheet = started
        if dry_run:  # read a batch at a time, never writing: no write lock, ever
            self._all_rows(run, sheet, self._checked_batch, progress)
            return report
        try:
            with write_transaction(self.records.engine) as conn:
                self._all_rows(run, sheet, lambda r, pending: self._batch(conn, r, pending),
                               progress)
                if not self._writable(report):
                    raise _Undo
                if before_commit is not None:
                    report.written = True  # what the caller records, once this commits
                    try:
                        before_commit(conn, report)
                    except BaseException:
                        report.written = False
                        raise
            report.written = True
        except _Undo:
            pass
        return report

    @staticmethod
    def _writable(report: ImportReport) -> bool:
        """Whether what was read may be committed: no problem with the file, no refused
        row unless only the good rows were asked for, and something to write."""
        return not report.file_errors and not (report.row_errors and not report.good_rows) \
            and bool(report.created or report.updated)

    def _start(
        self, actor: Actor, entity: Entity, data: bytes, filename: str, report: ImportReport,
        mapping: Mapping[str, str | None] | None, upsert_on: str | None, max_rows: int | None,
    ) -> tuple[_Run, Sheet] | None:
        """The sheet and the run's state, or None when the file itself is refused (said in
        the report)."""
        language = actor.language
        try:
            sheet = read_sheet(data, filename, language)
        except ValidationFailed as exc:
            report.file_errors = [t for texts in exc.errors.values() for t in texts]
            return None
        report.header, report.encoding = sheet.header, sheet.encoding
        if max_rows is not None and sheet.size_hint > max_rows:
            report.file_errors.append(say("too_many_rows", language, rows=sheet.size_hint,
                                          limit=max_rows, how=BACKGROUND_HOW))
            return None
        plan = self._plan(actor, entity, sheet, mapping, upsert_on, report)
        if report.file_errors:
            return None
        run = _Run(actor=actor, entity=entity, plan=plan, header=sheet.header, report=report,
                   reader=CellReader(entity, language, self.timezone),
                   finder=ReferenceFinder(self.records, actor), upsert_on=upsert_on,
                   timezone=self.timezone)
        fields = duplicate_fields(entity)
        if fields is not None:  # a checked entity: the readable records (none without the
            # right to read), and the file's own rows as they are read
            run.existing = (duplicate_index(self.records, actor, entity.key)
                            if self.records.policy.can(actor, entity, "read")
                            else DuplicateIndex(fields.name_field, fields.phone_fields,
                                                fields.email_fields))
            run.in_file = run.existing.fresh()
        return run, sheet

    def _checked_batch(self, run: _Run, pending: Sequence[tuple[int, list[Any] | None]]) -> None:
        """Check one batch as it would be written, in its own short read transaction."""
        with read_transaction(self.records.engine) as conn:
            self._batch(conn, run, pending, check=True)
            conn.rollback()  # nothing was written; a hook's stray write is not kept either

    # -- planning ---------------------------------------------------------------------

    def _plan(
        self, actor: Actor, entity: Entity, sheet: Sheet,
        mapping: Mapping[str, str | None] | None, upsert_on: str | None, report: ImportReport,
    ) -> ColumnPlan:
        language = actor.language
        hidden = self.records.hidden(actor, entity)
        keep: frozenset[str] = frozenset()
        if upsert_on:
            key = entity.fields.get(upsert_on)
            if upsert_on != "id" and (key is None or upsert_on in hidden or not (
                    key.unique or key.type == "sequence")):
                report.file_errors.append(say("upsert_key", language, field=upsert_on))
                return ColumnPlan()
            if key is not None and not key.is_input:
                keep = frozenset({upsert_on})
        effective = {**self.mappings.get(entity.key), **(mapping or {})}
        plan = plan_columns(entity, sheet.header, effective, hidden=hidden, language=language,
                            keep=keep)
        if upsert_on == "id":
            for index, header in enumerate(sheet.header):
                if normalise(header) == "id" and header in plan.skipped:
                    plan.skipped.remove(header)
                    plan.columns.append(Column(index=index, header=header, field="id"))
                    break
        if upsert_on and plan.header_of(upsert_on) is None:
            plan.problems.append(say("upsert_column", language, field=upsert_on))
        report.file_errors.extend(plan.problems)
        report.skipped_columns = list(plan.skipped)
        report.columns = {c.header: c.field for c in plan.columns}
        report.columns.update({c.header: c.key for c in plan.line_columns})
        return plan

    # -- rows --------------------------------------------------------------------------

    def _all_rows(self, run: _Run, sheet: Sheet,
                  batch: Callable[[_Run, Sequence[tuple[int, list[Any] | None]]], None],
                  progress: Callable[[int, int], None] | None) -> None:
        pending: list[tuple[int, list[Any] | None]] = []
        try:
            if run.line_groups:
                # A batch ends before a row starting a record, never inside a record's lines.
                for line, cells in sheet.rows:
                    if len(pending) >= self.batch_size and not run.continues(cells) and (
                            cells is None or any(map(_filled, cells))):
                        batch(run, pending)
                        if progress:
                            progress(len(pending), sheet.size_hint)
                        pending = []
                    pending.append((line, cells))
            else:
                for line, cells in sheet.rows:
                    pending.append((line, cells))
                    if len(pending) >= self.batch_size:
                        batch(run, pending)
                        if progress:
                            progress(len(pending), sheet.size_hint)
                        pending = []
        except ValidationFailed as exc:  # the file itself breaks off (a broken CSV quote)
            run.report.file_errors.extend(t for texts in exc.errors.values() for t in texts)
            return
        if pending:
            batch(run, pending)
            if progress:
                progress(len(pending), sheet.size_hint)

    def _batch(self, conn: Connection, run: _Run,
               pending: Sequence[tuple[int, list[Any] | None]], *, check: bool = False) -> None:
        """Read, look up and write (or with ``check`` only check) one batch of rows."""
        if run.line_groups:
            rows = self._read_records(run, pending)
        else:
            rows = [row for line, cells in pending if (row := self._read_row(run, line, cells))]
            run.report.rows += len(rows)
        self._duplicates(run, rows)
        self._find_references(conn, run, rows)
        if run.line_groups:
            self._find_line_references(conn, run, rows)
        creates = rows
        if run.upsert_on:
            creates = self._match(conn, run, rows)
            self._update(conn, run, [r for r in rows if r.record_id is not None], check)
        self._create(conn, run, creates, check)
        if run.line_groups:
            for row in rows:
                self._report_record(run, row)
        else:
            for row in rows:
                if row.errors:
                    run.report.row_errors.append(RowError(
                        row.line, self._by_column(run, row.errors), row.cells))
        run.report.row_errors.sort(key=lambda e: e.line)

    def _read_row(self, run: _Run, line: int, cells: list[Any] | None) -> _Row | None:
        language = run.actor.language
        if cells is None:
            row = _Row(line=line, cells=[])
            row.fail(ROW_KEY, say("bad_encoding", language, encoding=run.report.encoding))
            return row
        if not any(map(_filled, cells)):
            return None  # blank lines between rows are not rows
        row = _Row(line=line, cells=cells)
        width = len(run.header)
        if len(cells) > width and any(_filled(c) for c in cells[width:]):
            row.fail(ROW_KEY, say("too_many_cells", language, count=len(cells), header=width))
        for index in run.blank_headers:
            if index < len(cells) and _filled(cells[index]):
                row.fail(ROW_KEY, say("blank_header", language, number=index + 1))
        count = len(cells)
        if run.plain is not None and count >= width:
            try:  # every cell in one go; a refused cell reads the row again, cell by cell
                row.values = {key: convert(cells[index]) for index, key, convert in run.plain}
                return row
            except CellProblem:
                pass
        fields = run.entity.fields
        values = row.values
        for index, key, convert in run.converters:
            raw = cells[index] if index < count else None
            if convert is not None:
                try:
                    values[key] = convert(raw)
                except CellProblem as problem:
                    row.fail(key, problem.text)
                continue
            found = fields.get(key)
            try:
                if key == "owner":
                    text = reference_text(raw)
                    if text:  # a blank owner is no owner given: the importing user
                        row.values[key] = _Ref("__user__", text)
                elif key == "id":
                    text = reference_text(raw)
                    row.values[key] = text
                elif found.type == "reference":  # type: ignore[union-attr]
                    text = reference_text(raw)
                    row.values[key] = _Ref(found.to, text) if text else None  # type: ignore[union-attr]
                elif found.type == "many_to_many":  # type: ignore[union-attr]
                    text = reference_text(raw) or ""
                    row.values[key] = [_Ref(found.to, t.strip())  # type: ignore[union-attr]
                                       for t in SPLIT_MANY.split(text) if t.strip()]
                else:
                    row.values[key] = run.reader.cell(found, raw)  # type: ignore[arg-type]
            except CellProblem as problem:
                row.fail(key, problem.text)
        return row

    # -- records with lines ------------------------------------------------------------

    def _read_records(self, run: _Run, pending: Sequence[tuple[int, list[Any] | None]],
                      ) -> list[_Row]:
        """A row per record, its lines (from its own row and the rows continuing it) in
        its values; a row continuing no record is refused on its own."""
        language = run.actor.language
        rows: list[_Row] = []
        current: _Row | None = None
        width = len(run.header)
        for line, cells in pending:
            if cells is not None and not any(map(_filled, cells)):
                continue  # blank lines between rows are not rows
            run.report.rows += 1
            if run.continues(cells):
                assert cells is not None
                if current is None:
                    run.report.row_errors.append(RowError(
                        line, {ROW_KEY: [say("continuation_first", language)]}, cells))
                    continue
                assert current.more is not None
                current.more.append((line, cells))
                at = f"{ROW_KEY}@{line}"
                if len(cells) > width and any(_filled(c) for c in cells[width:]):
                    current.fail(at, say("too_many_cells", language, count=len(cells),
                                         header=width))
                for index in run.blank_headers:
                    if index < len(cells) and _filled(cells[index]):
                        current.fail(at, say("blank_header", language, number=index + 1))
                self._read_lines(run, current, line, cells)
                continue
            row = self._read_row(run, line, cells)
            assert row is not None
            row.lines_at = {group.key: [] for group in run.line_groups}
            row.more = []
            if cells is not None:
                self._read_lines(run, row, line, cells)
            rows.append(row)
            current = row
        return rows

    def _read_lines(self, run: _Run, row: _Row, line: int, cells: list[Any]) -> None:
        """The lines a row gives (at most one per lines field), added to the record's."""
        assert row.lines_at is not None
        count = len(cells)
        for group in run.line_groups:
            if not any(_filled(cells[i]) for i in group.indexes if i < count):
                continue
            lines = row.values.setdefault(group.key, [])
            place = len(lines)
            values: dict[str, Any] = {}
            for index, key, convert in group.columns:
                raw = cells[index] if index < count else None
                try:
                    if convert is None:
                        text = reference_text(raw)
                        values[key] = _Ref(group.field.fields[key].to or "", text) if text else None
                    else:
                        values[key] = convert(raw)
                except CellProblem as problem:
                    row.fail(f"{group.key}[{place}].{key}", problem.text)
            lines.append(values)
            row.lines_at[group.key].append(line)

    def _find_line_references(self, conn: Connection, run: _Run, rows: list[_Row]) -> None:
        """The ids of the records the lines name (a product by its code or name)."""
        _look_up(conn, run, (value for row in rows for group in run.line_groups
                             for values in row.values.get(group.key) or ()
                             for value in values.values()))
        for row in rows:
            for group in run.line_groups:
                for place, values in enumerate(row.values.get(group.key) or ()):
                    for key, value in list(values.items()):
                        if not isinstance(value, _Ref):
                            continue
                        try:
                            values[key] = run.finder.get(value.target, value.text)
                        except CellProblem as problem:
                            row.fail(f"{group.key}[{place}].{key}", problem.text)
                            del values[key]

    def _report_record(self, run: _Run, row: _Row) -> None:
        """A refused record's messages, each on the line of the file it is about; its other
        rows go to the file of rejected rows with it."""
        if not row.errors:
            return
        assert row.lines_at is not None and row.more is not None
        by_line: dict[int, dict[str, list[str]]] = {}
        for key, texts in row.errors.items():
            line, name = self._place(run, row, key)
            by_line.setdefault(line, {}).setdefault(name, []).extend(texts)
        cells = {row.line: row.cells, **dict(row.more)}
        for line in (row.line, *(line for line, _ in row.more)):
            if line in by_line:
                run.report.row_errors.append(RowError(line, by_line[line], cells[line]))
            else:
                run.report.record_rows.append((line, cells[line], row.line))

    def _place(self, run: _Run, row: _Row, key: str) -> tuple[int, str]:
        """The line of the file and the column a message of the record is about."""
        language = run.actor.language
        assert row.lines_at is not None
        if key.startswith(f"{ROW_KEY}@"):
            return int(key.partition("@")[2]), ROW_KEY
        found = where(key)
        if found is None:
            return row.line, next(iter(self._by_column(run, {key: []})))
        lines_key, place, sub = found
        lines = row.lines_at.get(lines_key) or []
        line = lines[place] if place < len(lines) else row.line
        outer = run.entity.fields.get(lines_key)
        if outer is None or outer.type != "lines":
            return line, key
        if sub is None:
            return line, outer.label.get(language)
        name = run.plan.header_of_line(lines_key, sub)
        if name is None:
            inner = outer.fields.get(sub)
            name = (f"{outer.label.get(language)} / "
                    f"{inner.label.get(language) if inner is not None else sub}")
        return line, name

    def _duplicates(self, run: _Run, rows: list[_Row]) -> None:
        """A unique value given twice in the file: the later row names the earlier line."""
        language = run.actor.language
        for key in run.unique_columns:
            seen = run.unique_seen.setdefault(key, {})
            label = run.entity.fields[key].label.get(language)
            for row in rows:
                value = row.values.get(key)
                if value in (None, "") or key in row.errors:
                    continue
                if isinstance(value, str):
                    value = value.strip()
                if value in seen:
                    row.fail(key, say("duplicate_key", language, field=label, value=value,
                                      line=seen[value]))
                else:
                    seen[value] = row.line

    def _find_references(self, conn: Connection, run: _Run, rows: list[_Row]) -> None:
        _look_up(conn, run, (ref for row in rows for key in run.references
                             for ref in _listed(row.values.get(key))))
        for row in rows:
            for key in run.references:
                value = row.values.get(key)
                try:
                    if isinstance(value, _Ref):
                        row.values[key] = run.finder.get(value.target, value.text)
                    elif isinstance(value, list) and value and isinstance(value[0], _Ref):
                        row.values[key] = [run.finder.get(r.target, r.text) for r in value]
                except CellProblem as problem:
                    row.fail(key, problem.text)
                    del row.values[key]

    def _match(self, conn: Connection, run: _Run, rows: list[_Row]) -> list[_Row]:
        """Find the records an upsert updates; the rows left are new records."""
        key = run.upsert_on
        assert key is not None
        language = run.actor.language
        entity = run.entity
        found = entity.fields.get(key)
        label = found.label.get(language) if found else key
        must_exist = key == "id" or (found is not None and not found.is_input)
        keyed: dict[Any, _Row] = {}
        for row in rows:
            value = row.values.get(key)
            if key in row.errors or value in (None, ""):
                continue
            if key == "id":
                text = str(value).lstrip("#")
                if not text.isdigit():
                    row.fail(key, say("upsert_missing", language, entity=entity.label.get(
                        language), field=label, value=value))
                    continue
                value = int(text)
            elif found is not None:
                try:
                    value = coerce(found, value)
                except ValueProblem as problem:
                    row.fail(key, message(problem.key, language, **problem.params))
                    continue
            if value in run.seen_keys:
                row.fail(key, say("duplicate_key", language, field=label, value=value,
                                  line=run.seen_keys[value]))
                continue
            run.seen_keys[value] = row.line
            keyed[value] = row
        table, scope = self.records.scope_conditions(run.actor, entity.key)
        values = list(keyed)
        for start in range(0, len(values), 900):
            chunk = values[start:start + 900]
            for record_id, value in conn.execute(
                select(table.c.id, table.c[key]).where(table.c[key].in_(chunk), *scope)
            ):
                keyed[value].record_id = record_id
        creates = []
        for row in rows:
            if row.record_id is not None:
                continue
            value = row.values.get(key)
            if must_exist and value not in (None, "") and key not in row.errors:
                row.fail(key, say("upsert_missing", language, entity=entity.label.get(language),
                                  field=label, value=value))
            row.values.pop("id", None)
            creates.append(row)
        return creates

    def _update(self, conn: Connection, run: _Run, rows: list[_Row], check: bool) -> None:
        """Upserted rows change their record through the update path (blank cells change
        nothing); with ``check`` the same path refuses or passes them without writing."""
        keep_key = run.upsert_on if run.upsert_on not in ("id",) else None
        found = run.entity.fields.get(run.upsert_on or "")
        if found is not None and not found.is_input:
            keep_key = None
        for row in rows:
            if row.errors:
                continue
            changes = {k: v for k, v in row.values.items()
                       if v not in (None, "", []) and (k != run.upsert_on or keep_key)}
            try:
                if check:
                    self.records.check_update(run.actor, run.entity.key, row.record_id, changes,
                                              conn=conn)
                else:
                    with conn.begin_nested():
                        self.records.update(run.actor, run.entity.key, row.record_id, changes,
                                            conn=conn)
                run.report.updated += 1
            except CrmError as exc:
                for key, texts in (getattr(exc, "errors", None) or {ROW_KEY: [exc.message]}).items():
                    for text in texts:
                        row.fail(key, text)

    def _create(self, conn: Connection, run: _Run, rows: list[_Row], check: bool) -> None:
        """New records through ``create_many`` (``check_many`` for a check, which writes
        nothing and passes the rows ``create_many`` would write)."""
        if not rows:
            return
        refused = {index for index, row in enumerate(rows) if row.errors}
        values = [r.values for r in rows]
        if check:
            outcome = self.records.check_many(run.actor, run.entity.key, values, conn=conn,
                                              refused=refused, written=run.ledger_written)
        else:
            outcome = self.records.create_many(run.actor, run.entity.key, values, conn=conn,
                                               refused=refused)
        for index, (row, record_id, errors) in enumerate(
                zip(rows, outcome.ids, outcome.errors, strict=True)):
            if record_id is not None or (check and not errors and index not in refused):
                run.report.created += 1
                if run.existing is not None:
                    self._likely_duplicate(run, row)
            for key, texts in (errors or {}).items():
                if key in row.errors:
                    continue  # the cell's own message says it already
                for text in texts:
                    row.fail(key, text)

    @staticmethod
    def _likely_duplicate(run: _Run, row: _Row) -> None:
        """Warn of a new record that looks like a readable record or an earlier row (by
        normalised name, phone or e-mail, as the form warns before saving)."""
        assert run.existing is not None and run.in_file is not None
        records = list(run.existing.matches(row.values).items())[:SHOWN_MATCHES]
        lines = list(run.in_file.matches(row.values).items())[:SHOWN_MATCHES]
        if records or lines:
            run.report.likely_duplicates.append(LikelyDuplicate(
                row.line,
                [{"id": key, "name": run.existing.name(key), "reasons": list(reasons)}
                 for key, reasons in records],
                [{"line": key, "reasons": list(reasons)} for key, reasons in lines]))
        run.in_file.add(row.line, row.values)

    @staticmethod
    def _by_column(run: _Run, errors: dict[str, list[str]]) -> dict[str, list[str]]:
        """Messages under the column's header (the field's label when no column gave it)."""
        shown: dict[str, list[str]] = {}
        language = run.actor.language
        for key, texts in errors.items():
            name = run.plan.header_of(key)
            if name is None:
                found = run.entity.fields.get(key)
                name = found.label.get(language) if found else key
            shown.setdefault(name, []).extend(texts)
        return shown


def _look_up(conn: Connection, run: _Run, values: Iterable[Any]) -> None:
    """Ask the database, once per target entity, for every name the references among
    ``values`` give (the others are passed over)."""
    wanted: dict[str, set[str]] = {}
    for value in values:
        if isinstance(value, _Ref):
            wanted.setdefault(value.target, set()).add(value.text)
    for target, texts in wanted.items():
        run.finder.prepare(conn, target, texts)


def _listed(value: Any) -> list[Any]:
    """A link column's list as it is; any other value as a list of one."""
    return value if isinstance(value, list) else [value]


def _reference_reader(found: Any) -> Any:
    """The converter of a reference or link column, as :meth:`Importer._read_row` reads it."""
    target = found.to
    if found.type == "reference":
        def reference(raw: Any) -> Any:
            text = reference_text(raw)
            return _Ref(target, text) if text else None
        return reference

    def links(raw: Any) -> Any:
        text = reference_text(raw) or ""
        return [_Ref(target, t.strip()) for t in SPLIT_MANY.split(text) if t.strip()]
    return links


def _filled(cell: Any) -> bool:
    return cell is not None and not (isinstance(cell, str) and not cell.strip())
