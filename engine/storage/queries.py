"""Filters, search and sorting for record lists, built from metadata.

A filter is plain data — ``Filter("amount", "gt", 100)`` — so the CLI
(``amount__gt=100``), the API's query string and saved filters all become
the same objects; this module turns them into SQLAlchemy expressions, never
into SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, func, or_

OPERATORS: dict[str, str] = {
    "eq": "equals",
    "ne": "differs from",
    "lt": "less than",
    "le": "at most",
    "gt": "greater than",
    "ge": "at least",
    "in": "one of (comma-separated)",
    "contains": "contains the text (any case)",
    "between": "between two values (inclusive, comma-separated)",
    "isnull": "is empty (true) or not empty (false)",
}

#: Operators that compare order, meaningless on these value types.
UNORDERED_TYPES = frozenset({"boolean", "json", "choice"})


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: Any = None

    @classmethod
    def parse(cls, text: str) -> Filter:
        """``field__op=value`` (``field=value`` means eq), as typed on the command line."""
        if "=" not in text:
            raise ValueError(f"expected field__op=value, got '{text}'")
        left, value = text.split("=", 1)
        field, _, op = left.partition("__")
        return cls(field.strip(), (op or "eq").strip(), value)


@dataclass(frozen=True)
class Sort:
    field: str
    descending: bool = False

    @classmethod
    def parse(cls, text: str) -> Sort:
        text = text.strip()
        return cls(text[1:], True) if text.startswith("-") else cls(text, False)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def condition(table: Table, column: str, op: str, value: Any) -> ColumnElement[bool]:
    """The SQL condition for one already-typed filter."""
    col = table.c[column]
    if op == "eq":
        return col.is_(None) if value is None else col == value
    if op == "ne":
        return col.is_not(None) if value is None else or_(col != value, col.is_(None))
    if op == "lt":
        return col < value
    if op == "le":
        return col <= value
    if op == "gt":
        return col > value
    if op == "ge":
        return col >= value
    if op == "in":
        return col.in_(list(value))
    if op == "between":
        low, high = value
        return col.between(low, high)
    if op == "isnull":
        return col.is_(None) if value else col.is_not(None)
    if op == "contains":
        return func.lower(col).like(f"%{like_escape(str(value).lower())}%", escape="\\")
    raise ValueError(op)  # pragma: no cover - validated by the caller


def search_condition(table: Table, columns: Sequence[str], text: str) -> ColumnElement[bool]:
    """Any searchable column containing every word of ``text`` (any case)."""
    words = [w for w in text.split() if w]
    clauses = []
    for word in words:
        pattern = f"%{like_escape(word.lower())}%"
        clauses.append(
            or_(*(func.lower(table.c[c]).like(pattern, escape="\\") for c in columns))
        )
    return and_(*clauses)
