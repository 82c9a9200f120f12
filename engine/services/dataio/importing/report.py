"""What an import found: per row and per column, and the file of rejected rows.

The same report serves the dry run, the real import, the CLI's table, the
upload page and the API: nothing about presenting it lives here.  The file
of rejected rows writes a text that a spreadsheet would run as a formula
with a ``'`` in front, as an export does, and imports back unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.services.dataio.importing.formulas import defuse
from engine.services.dataio.importing.messages import say


@dataclass
class RowError:
    """A refused row: its line in the file, messages by column, and its cells as read."""

    line: int
    errors: dict[str, list[str]]
    cells: list[Any] = field(default_factory=list)

    def messages(self) -> Iterable[tuple[str, str]]:
        for column, texts in self.errors.items():
            for text in texts:
                yield column, text

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "errors": self.errors}


@dataclass
class LikelyDuplicate:
    """A row whose new record looks like a record already there, or like an earlier row.

    A warning, not a refusal — the form, too, lets a user save anyway — so a
    consultant sees it in the check before importing: ``records`` holds the
    existing records it resembles (``id``, ``name``, ``reasons``: ``name``,
    ``phone``, ``email``), ``lines`` the earlier rows of the file (``line``,
    ``reasons``).
    """

    line: int
    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "records": self.records, "lines": self.lines}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LikelyDuplicate:
        return cls(data["line"], list(data.get("records") or []), list(data.get("lines") or []))


@dataclass
class ImportReport:
    """The outcome of one import (or dry run) of one file.

    ``written`` says whether anything reached the database: False for a
    dry run, and for an all-or-nothing import that found any error.
    """

    entity: str
    dry_run: bool
    good_rows: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    written: bool = False
    encoding: str | None = None
    file_errors: list[str] = field(default_factory=list)
    row_errors: list[RowError] = field(default_factory=list)
    skipped_columns: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # header → field
    header: list[str] = field(default_factory=list)
    #: Rows of refused records with no message of their own — a further line of a record
    #: refused for another of its rows — as (line, cells, the record's first line); they go
    #: to the file of rejected rows with the record, so it imports again as a whole.
    record_rows: list[tuple[int, list[Any], int]] = field(default_factory=list)
    #: New records that look like existing ones or like earlier rows (warnings).
    likely_duplicates: list[LikelyDuplicate] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.file_errors and not self.row_errors

    @property
    def rejected(self) -> int:
        return len(self.row_errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity, "dry_run": self.dry_run, "good_rows": self.good_rows,
            "rows": self.rows, "created": self.created, "updated": self.updated,
            "rejected": self.rejected, "written": self.written, "ok": self.ok,
            "encoding": self.encoding, "file_errors": self.file_errors,
            "row_errors": [e.to_dict() for e in self.row_errors],
            "skipped_columns": self.skipped_columns, "columns": self.columns,
            "likely_duplicates": [d.to_dict() for d in self.likely_duplicates],
        }

    def rejected_csv(self, language: str = "en") -> str:
        """The rejected rows with their reasons, as CSV text (the header of the file, plus
        the line number and the errors), ready to fix and import again."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*map(defuse, self.header), say("line_word", language),
                         say("errors_column", language)])
        width = len(self.header)
        rows = [(e.line, e.cells, "; ".join(f"{column}: {text}" for column, text in e.messages()))
                for e in self.row_errors]
        rows += [(line, cells, say("record_refused", language, line=first))
                 for line, cells, first in self.record_rows]
        for line, found, reasons in sorted(rows, key=lambda r: r[0]):
            cells = ["" if c is None else defuse(c) if isinstance(c, str) else c
                     for c in found[:width]]
            cells += [""] * (width - len(cells))
            writer.writerow([*cells, line, defuse(reasons)])
        return out.getvalue()
