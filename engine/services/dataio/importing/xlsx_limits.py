"""Measuring an XLSX archive before it is read, so a small file cannot unpack without limit.

An XLSX file is a zip archive of XML: 300 KB can hold a single cell of
300 MB, which openpyxl would unpack, parse and hold whole before the
importer saw its first row.  So before openpyxl opens the file:

- the sizes the archive declares for its parts are added up and must stay
  under :data:`MAX_UNPACKED` (Python's zip reader never gives more bytes of
  a part than declared, and refuses a part whose bytes do not match, so the
  declaration binds);
- a part bigger than :data:`RATIO_FLOOR` may not unpack to more than
  :data:`MAX_RATIO` times its packed size (spreadsheet programs stay far
  below; zip bombs far above);
- the sheets and the shared strings are read once as a stream, a megabyte
  at a time, and a run of text longer than :data:`MAX_CELL` bytes — longer
  than any spreadsheet cell (32,767 characters) — refuses the file.

Nothing is held whole: the first two read only the archive's directory,
the third holds one chunk at a time.
"""

from __future__ import annotations

import io
import re
import zipfile

from engine.errors import ValidationFailed
from engine.services.dataio.importing.messages import say

MB = 1024 * 1024
#: The most all the parts of an XLSX file may unpack to (bytes).
MAX_UNPACKED = 256 * MB
#: Parts smaller than this are not held to MAX_RATIO.
RATIO_FLOOR = 4 * MB
#: The most a part may unpack to, as a multiple of its packed size.
MAX_RATIO = 200
#: The longest run of text in a sheet's XML (bytes): 32,767 characters, escaped, fit.
MAX_CELL = 256 * 1024
CHUNK = MB
_TEXT_RUN = re.compile(rb"[^<]{%d}" % (MAX_CELL + 1))


def _refuse(key: str, language: str, **params: object) -> ValidationFailed:
    text = say(key, language, **params)
    return ValidationFailed({"file": [text]}, text)


def check_xlsx(data: bytes, language: str = "en") -> None:
    """Refuse (:class:`ValidationFailed` under ``file``) an archive that unpacks too far."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _refuse("unreadable", language, kind="XLSX", reason=exc.__class__.__name__) \
            from None
    with archive:
        total = sum(part.file_size for part in parts)
        if total > MAX_UNPACKED:
            raise _refuse("xlsx_unpacks_big", language, size=total // MB,
                          limit=MAX_UNPACKED // MB)
        for part in parts:
            ratio = part.file_size // max(part.compress_size, 1)
            if part.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
                raise _refuse("xlsx_packed_tight", language, part=part.filename, ratio=ratio)
        for part in parts:
            name = part.filename.lower()
            if name.startswith("xl/worksheets/") or name == "xl/sharedstrings.xml":
                _check_text_runs(archive, part, language)


def _check_text_runs(archive: zipfile.ZipFile, part: zipfile.ZipInfo, language: str) -> None:
    """Stream one part: no run of text between two tags longer than MAX_CELL."""
    carried = 0  # the length of the run that the chunk before ended in
    try:
        with archive.open(part) as stream:
            while chunk := stream.read(CHUNK):
                first = chunk.find(b"<")
                if carried + (len(chunk) if first < 0 else first) > MAX_CELL or \
                        _TEXT_RUN.search(chunk):
                    raise _refuse("xlsx_cell_too_long", language, part=part.filename,
                                  limit=MAX_CELL // 1024)
                carried = carried + len(chunk) if first < 0 else len(chunk) - chunk.rfind(b"<") - 1
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise _refuse("unreadable", language, kind="XLSX", reason=exc.__class__.__name__) \
            from None
