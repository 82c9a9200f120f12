"""Reading spreadsheets: CSV in whatever encoding it was saved in, and XLSX.

Chinese spreadsheets are saved as UTF-8 with a byte-order mark (Excel's
"CSV UTF-8"), as GBK/GB18030 (Excel's plain "CSV" on a Chinese Windows) or
as UTF-8 without a mark.  The encoding is chosen by decoding every line
both ways and keeping the one that fails on the fewest lines (UTF-8 on a
tie); lines that still fail are reported by line number, never imported
as mojibake.  The delimiter is sniffed (comma, semicolon, tab, bar).  A CSV cell loses
the one ``'`` an export put in front of a text a spreadsheet would read as
a formula (:mod:`~engine.services.dataio.importing.formulas`).

XLSX is read with openpyxl in read-only mode, row by row — after the
archive has been measured (:mod:`~engine.services.dataio.importing.xlsx_limits`):
a small file that unpacks to hundreds of megabytes, or holds a cell longer
than any spreadsheet writes, is refused before anything is unpacked whole.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ValidationFailed
from engine.services.dataio.importing.formulas import restore
from engine.services.dataio.importing.messages import say
from engine.services.dataio.importing.xlsx_limits import check_xlsx

CANDIDATE_ENCODINGS = ("utf-8", "gb18030")
DELIMITERS = ",;\t|"


@dataclass
class Sheet:
    """A table read from a file: its header, and its rows as ``(line, cells)``.

    ``cells`` is None for a row spanning a line that could not be decoded
    (``bad_lines``): it is refused with the ``bad_encoding`` message.
    ``size_hint`` estimates the number of data rows (for a progress bar).
    """

    header: list[str]
    rows: Iterator[tuple[int, list[Any] | None]]
    encoding: str | None = None
    size_hint: int = 0
    bad_lines: set[int] = field(default_factory=set)
    kind: str = "csv"


def read_sheet(data: bytes, name: str, language: str = "en") -> Sheet:
    """The sheet in ``data``; ``name`` (the file's name) picks CSV or XLSX.

    Raises :class:`ValidationFailed` (under ``file``) for a file that
    cannot be read at all; problems of single lines travel with the sheet.
    """
    lowered = name.lower()
    if lowered.endswith((".xlsx", ".xlsm")) or data[:4] == b"PK\x03\x04":
        return _read_xlsx(data, language)
    if lowered.endswith((".csv", ".txt", ".tsv")) or not Path(lowered).suffix:
        return _read_csv(data, language)
    raise ValidationFailed({"file": [say("unknown_format", language, name=name)]})


# -- CSV ------------------------------------------------------------------------------


def _decode_lines(data: bytes) -> tuple[str, str, set[int]]:
    """The text, the encoding chosen and the (1-based) lines that did not decode."""
    if data.startswith(codecs.BOM_UTF8):
        encodings: tuple[str, ...] = ("utf-8",)
        data = data[len(codecs.BOM_UTF8):]
        try:
            return data.decode("utf-8"), "utf-8", set()
        except UnicodeDecodeError:
            pass
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16", set()
        except UnicodeDecodeError:
            encodings = ("utf-16",)
    else:
        try:
            return data.decode("utf-8"), "utf-8", set()
        except UnicodeDecodeError:
            encodings = CANDIDATE_ENCODINGS
    lines = data.split(b"\n")
    best: tuple[int, str] | None = None
    for encoding in encodings:
        failures = 0
        for line in lines:
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                failures += 1
        if best is None or failures < best[0]:
            best = (failures, encoding)
    assert best is not None
    encoding = best[1]
    bad: set[int] = set()
    parts = []
    for number, line in enumerate(lines, start=1):
        try:
            parts.append(line.decode(encoding))
        except UnicodeDecodeError:
            bad.add(number)
            parts.append(line.decode(encoding, errors="replace"))
    return "\n".join(parts), encoding, bad


def _delimiter(text: str) -> str:
    sample = text[:65536]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = sample.split("\n", 1)[0]
        counts = {d: first.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _read_csv(data: bytes, language: str) -> Sheet:
    text, encoding, bad = _decode_lines(data)
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationFailed({"file": [say("no_header", language)]}) from None
    except csv.Error as exc:
        raise ValidationFailed({"file": [say("unreadable", language, kind="CSV",
                                             reason=str(exc))]}) from None
    if not any(cell.strip() for cell in header):
        raise ValidationFailed({"file": [say("no_header", language)]})
    header_end = reader.line_num

    def rows() -> Iterator[tuple[int, list[Any] | None]]:
        start = header_end + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ValidationFailed({"file": [say(
                    "unreadable", language, kind="CSV", reason=f"line {start}: {exc}")]}) from None
            end = reader.line_num
            undecodable = bad and any(n in bad for n in range(start, end + 1))
            if undecodable:
                yield start, None
            else:  # a new list each row already
                yield start, [restore(c) if c[:1] == "'" else c for c in cells]
            start = end + 1

    return Sheet(header=[restore(h.strip()) for h in header], rows=rows(), encoding=encoding,
                 size_hint=max(0, text.count("\n") - header_end + 1), bad_lines=bad)


# -- XLSX ---------------------------------------------------------------------------


def _read_xlsx(data: bytes, language: str) -> Sheet:
    check_xlsx(data, language)
    try:
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        values = sheet.iter_rows(values_only=True)
        header_row = next(values, None)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
        raise ValidationFailed({"file": [say("unreadable", language, kind="XLSX",
                                             reason=exc.__class__.__name__)]}) from None
    if header_row is None or not any(c not in (None, "") for c in header_row):
        raise ValidationFailed({"file": [say("no_header", language)]})
    header = ["" if c is None else str(c).strip() for c in header_row]
    while header and header[-1] == "":
        header.pop()

    def rows() -> Iterator[tuple[int, list[Any] | None]]:
        try:
            for number, row in enumerate(values, start=2):
                yield number, list(row)
        finally:
            book.close()

    return Sheet(header=header, rows=rows(), encoding=None,
                 size_hint=max(0, (sheet.max_row or 1) - 1), kind="xlsx")
