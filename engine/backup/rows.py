"""Table rows as JSON lines that keep their Python types.

Rows are read through the compiled SQLAlchemy tables, so values arrive as
the engine's types (``Decimal`` for money whatever the database stores,
aware ``datetime`` in UTC) and are written back through the same types on
restore — which is why one archive restores into SQLite or PostgreSQL.
JSON has no decimals, dates or bytes, so those are tagged; dictionaries
(only JSON columns hold them) are wrapped so a tag can never be mistaken
for data.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any

_TAGS = ("$d", "$dt", "$date", "$time", "$b", "$j")


def encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {"$j": value}
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        tag, inner = next(iter(value.items()))
        if tag == "$d":
            return Decimal(inner)
        if tag == "$dt":
            return dt.datetime.fromisoformat(inner)
        if tag == "$date":
            return dt.date.fromisoformat(inner)
        if tag == "$time":
            return dt.time.fromisoformat(inner)
        if tag == "$b":
            return base64.b64decode(inner)
        if tag == "$j":
            return inner
    return value


def header_line(columns: list[str]) -> bytes:
    return json.dumps({"columns": columns}, ensure_ascii=False).encode("utf-8") + b"\n"


def row_line(values: tuple[Any, ...]) -> bytes:
    return (json.dumps([encode(v) for v in values], ensure_ascii=False, separators=(",", ":"))
            .encode("utf-8") + b"\n")


def parse_header(line: bytes) -> list[str]:
    data = json.loads(line)
    return list(data["columns"])


def parse_row(line: bytes) -> list[Any]:
    return [decode(v) for v in json.loads(line)]
