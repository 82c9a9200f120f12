"""Exporting a list — its filters, search and sort — to CSV or XLSX, a page at a time.

Records come from :meth:`RecordService.export <engine.services.records.reads.RecordAccessMixin.export>`
with the actor, so the export right, the row scope and hidden fields hold
(a hidden field is not even a column).  Nothing is loaded whole: pages are
read as the file is written, CSV is produced as a stream of bytes and XLSX
through openpyxl's write-only workbook, so memory stays flat however many
rows there are.

An export is a long read: :meth:`Exporter.for_site` reads it from the site's
read-only replica when crm.yaml names one (``database.replica_url``), through
a record service with the very same policy, so it never loads the primary.

Cells are written for people and for a round trip through the importer:
choices by their label, booleans as yes/no (是/否), references by the
target's title (``#id`` when the actor cannot see it), many-to-many links
as the linked records' titles joined with ", " (each one the actor cannot
see, or whose title the importer would not read back as it is — one
holding a separator, or archived — as ``#id``), the owner by login.

``lines=FIELD`` writes one row per line of the lines field FIELD, as
ERPNext and Odoo do: the record's columns on the row of its first line and
blank on the rows of its further lines, then the line's columns headed
"<lines label> / <line field label>" (``FIELD/line_field`` with keys).
The importer reads that shape back.  Lines are read with their records,
a page at a time, so such an export streams as any other.

A file is opened in a spreadsheet, so no cell may become a formula there
(CSV injection): a text cell starting with ``=`` ``+`` ``-`` ``@``, a tab or
a carriage return — what a customer's name can hold as well as any other
text — is written as text.  In CSV that means one ``'`` in front (OWASP's
advice), which the importer takes off again
(:mod:`~engine.services.dataio.importing.formulas`); in
XLSX the cell is stored as a string (``t="inlineStr"``), which no
spreadsheet evaluates, with the text as it is.  Numbers (``-5`` in a
number field) stay numbers.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.context import Actor
from engine.errors import CrmError, PermissionDenied, ValidationFailed
from engine.metadata.model import Entity, Field
from engine.services.dataio.importing.cells import SPLIT_MANY
from engine.services.dataio.importing.formulas import defuse, formula_like
from engine.services.dataio.importing.messages import say
from engine.storage.queries import Filter, Sort

if TYPE_CHECKING:
    from engine.services.views.site_services import SiteServices

FORMATS = ("csv", "xlsx")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


#: Field types no column holds: lines (exported a row per line with ``lines=``) and JSON.
NOT_A_COLUMN = ("lines", "json")


@dataclass(frozen=True)
class ExportColumn:
    key: str
    header: str
    field: Field | None  # None for id and owner
    lines: str | None = None  # the lines field of a line's column (``key`` is the line field)


class Exporter:
    """Streams the records an actor may export (see the module docstring)."""

    def __init__(self, records: Any, *, timezone: str = "UTC", page_size: int = 500) -> None:
        self.records = records
        self.page_size = page_size
        try:
            self.zone: dt.tzinfo = ZoneInfo(timezone)
        except Exception:  # noqa: BLE001 - an unknown zone name: fall back to UTC
            self.zone = dt.UTC

    @classmethod
    def for_site(cls, site: SiteServices, **options: Any) -> Exporter:
        """The site's exporter: reading the replica when there is one, else the primary."""
        return cls(site.report_records, timezone=site.config.timezone, **options)

    def allow(self, actor: Actor, entity_key: str) -> Entity:
        entity = self.records.entity(entity_key)
        policy = self.records.policy
        if not (policy.can(actor, entity, "read") and policy.can(actor, entity, "export")):
            raise PermissionDenied(say("no_export_right", actor.language,
                                       entity=entity.plural.get(actor.language)))
        return entity

    def columns(self, actor: Actor, entity: Entity, *, keys: bool = False,
                lines: str | None = None) -> list[ExportColumn]:
        """id, the fields the actor sees (lines and JSON aside), the owner, then — with
        ``lines`` — the fields of a line of that lines field."""
        hidden = self.records.hidden(actor, entity)
        language = actor.language
        out = [ExportColumn("id", "id", None)]
        for found in entity.fields.values():
            if found.key in hidden or found.type in NOT_A_COLUMN:
                continue
            out.append(ExportColumn(found.key, found.key if keys else found.label.get(language),
                                    found))
        out.append(ExportColumn("owner", "owner" if keys else say_owner(language), None))
        if lines is not None:
            outer = self.lines_field(actor, entity, lines)
            for sub in outer.fields.values():
                if sub.type in NOT_A_COLUMN:
                    continue
                header = (f"{outer.key}/{sub.key}" if keys else
                          f"{outer.label.get(language)} / {sub.label.get(language)}")
                out.append(ExportColumn(sub.key, header, sub, lines=outer.key))
        return out

    def lines_field(self, actor: Actor, entity: Entity, key: str) -> Field:
        """The lines field ``key`` of ``entity`` if the actor sees it (ValidationFailed else,
        saying no more about a hidden one than about one that does not exist)."""
        found = entity.fields.get(key)
        if found is None or found.type != "lines" or key in self.records.hidden(actor, entity):
            raise ValidationFailed({"lines": [say(
                "no_lines_field", actor.language, entity=entity.label.get(actor.language),
                field=key)]})
        return found

    def rows(
        self, actor: Actor, entity_key: str, *, filters: Sequence[Filter] = (),
        sort: Sequence[Sort] = (), search: str | None = None, include_archived: bool = False,
        keys: bool = False, typed: bool = False, lines: str | None = None,
    ) -> tuple[list[str], Iterator[list[Any]]]:
        """The header, and a generator of rows as cells (text; ``typed`` keeps numbers and dates).

        ``lines`` names a lines field: a row per line (see the module docstring).
        The rights, the filters and ``lines`` are checked here, before the first
        row is asked for.
        """
        entity = self.allow(actor, entity_key)
        columns = self.columns(actor, entity, keys=keys, lines=lines)
        # Refuse a bad filter or sort now, not halfway through a download.
        self.records.list(actor, entity.key, filters=filters, sort=sort, search=search, limit=1,
                          include_archived=include_archived, with_total=False)
        records = self.records.export(actor, entity.key, filters=filters, search=search,
                                      include_archived=include_archived, sort=sort,
                                      batch=self.page_size)

        converters = [(column.key, self._converter(actor, column, typed))
                      for column in columns if column.lines is None]
        line_converters = [(column.key, self._converter(actor, column, typed))
                           for column in columns if column.lines is not None]
        blank_record = [None] * len(converters)
        blank_line = [None] * len(line_converters)

        def generate() -> Iterator[list[Any]]:
            while True:
                page = list(islice(records, self.page_size))
                if not page:
                    return
                titles = self._titles(actor, entity, columns, page)
                for record in page:
                    cells = [value if (value := record.get(key)) is None or convert is None
                             else convert(value, titles) for key, convert in converters]
                    if lines is None:
                        yield cells
                        continue
                    items = record.get(lines) or ()
                    if not items:
                        yield cells + blank_line
                    for place, line in enumerate(items):
                        yield (cells if place == 0 else blank_record) + [
                            value if (value := line.get(key)) is None or convert is None
                            else convert(value, titles) for key, convert in line_converters]

        return [c.header for c in columns], generate()

    # -- cells ---------------------------------------------------------------------------

    def _titles(self, actor: Actor, entity: Entity, columns: list[ExportColumn],
                page: list[dict[str, Any]]) -> dict[tuple[str, Any], str]:
        """Titles of the records and users a page refers to: one query per target (per
        thousand records).  ``(target, id, "archived")`` marks an archived one."""
        wanted: dict[str, set[Any]] = {}
        for column in columns:
            if column.key == "owner" and column.lines is None:
                wanted.setdefault("__user__", set()).update(
                    r.get("owner") for r in page if r.get("owner") is not None)
            elif column.field is None or column.field.type not in ("reference", "many_to_many"):
                continue
            elif column.lines is not None:
                wanted.setdefault(column.field.to or "", set()).update(
                    line.get(column.key) for r in page for line in r.get(column.lines) or ()
                    if line.get(column.key) is not None)
            elif column.field.type == "many_to_many":
                wanted.setdefault(column.field.to or "", set()).update(
                    target for r in page for target in r.get(column.key) or ())
            else:
                wanted.setdefault(column.field.to or "", set()).update(
                    r.get(column.key) for r in page if r.get(column.key) is not None)
        titles: dict[tuple[str, Any], str] = {}
        for target, ids in wanted.items():
            if not ids:
                continue
            if target == "__user__":
                users = self.records.schema.system("crm_user")
                with self.records.engine.connect() as conn:
                    for user_id, login in conn.execute(
                            select(users.c.id, users.c.login).where(users.c.id.in_(ids))):
                        titles[(target, user_id)] = login
                continue
            other = self.records.entity(target)
            title = other.title_field
            ordered = sorted(ids)
            for start in range(0, len(ordered), 1000):
                try:
                    found = self.records.list(
                        actor, target, filters=[Filter("id", "in", ordered[start:start + 1000])],
                        limit=1000, with_total=False, include_archived=True)
                except CrmError:
                    break  # the actor may not read the target: ids are all they get
                for row in found.rows:
                    if title and row.get(title) not in (None, ""):
                        titles[(target, row["id"])] = str(row[title])
                    if row.get("archived"):
                        titles[(target, row["id"], "archived")] = ""
        return titles

    def _converter(self, actor: Actor, column: ExportColumn, typed: bool) -> Any:
        """How a column's (non-empty) values become cells: ``f(value, titles)``, or None
        for values written as they are.  Chosen once per export, not per cell."""
        found = column.field
        if column.key == "owner" and column.lines is None:
            return lambda value, titles: titles.get(("__user__", value), f"#{value}")
        if found is None:
            return None
        language = actor.language
        kind = found.value_type
        if kind == "reference":
            target = found.to or ""
            return lambda value, titles: titles.get((target, value), f"#{value}")
        if kind == "many_to_many":
            target = found.to or ""

            def links(value: Any, titles: Any) -> str:
                # A title the importer would not find again by itself — one the actor may not
                # read, holding a separator, or archived — is written as #id.
                return ", ".join(
                    title if (title := titles.get((target, one))) is not None
                    and (target, one, "archived") not in titles and not SPLIT_MANY.search(title)
                    else f"#{one}" for one in value)

            return links
        if kind == "choice":
            labels = {k: label.get(language) for k, label in found.choices.items()}

            def choice(value: Any, titles: Any) -> str:
                keys = value if isinstance(value, list) else [value]
                return ", ".join(labels.get(k, str(k)) for k in keys)

            return choice
        if kind == "boolean":
            yes, no = say("yes", language), say("no", language)
            return lambda value, titles: yes if value else no
        if kind == "datetime":
            zone = self.zone

            def moment(value: Any, titles: Any) -> Any:
                if not isinstance(value, dt.datetime):
                    return value
                local = value.astimezone(zone)
                return local.replace(tzinfo=None) if typed else local.isoformat(
                    sep=" ", timespec="seconds")

            return moment
        if typed:
            return None
        if kind == "date":
            return lambda value, titles: value.isoformat()
        if kind in ("decimal", "computed"):
            return lambda value, titles: str(value) if isinstance(value, Decimal) else value
        return None

    # -- files ----------------------------------------------------------------------------

    def csv_chunks(self, header: list[str], rows: Iterator[list[Any]],
                   rows_per_chunk: int = 200) -> Iterator[bytes]:
        """CSV as UTF-8 with a byte-order mark (so Excel reads Chinese), a chunk at a time."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([defuse(h) for h in header])
        yield codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")
        while True:
            chunk = list(islice(rows, rows_per_chunk))
            if not chunk:
                return
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(["" if c is None else defuse(c) if c.__class__ is str else c
                              for c in row] for row in chunk)
            yield buffer.getvalue().encode("utf-8")

    @staticmethod
    def write_xlsx(header: list[str], rows: Iterator[list[Any]], out: IO[bytes],
                   title: str = "export") -> None:
        """An XLSX workbook written row by row (openpyxl write-only mode) into ``out``.

        A text cell that a spreadsheet would read as a formula is stored as a
        string cell (openpyxl makes any text starting with ``=`` a formula).
        """
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell

        book = Workbook(write_only=True)
        sheet = book.create_sheet(title=title[:31] or "export")

        def text(value: str) -> WriteOnlyCell:
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            return cell

        def cells(row: Sequence[Any]) -> list[Any]:
            return [text(c) if c.__class__ is str and formula_like(c) else c for c in row]

        sheet.append(cells(header))
        for row in rows:
            sheet.append(cells(row))
        book.save(out)


def say_owner(language: str) -> str:
    return "负责人" if language.startswith("zh") else "Owner"
