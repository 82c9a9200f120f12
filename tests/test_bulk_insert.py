"""``insert_rows`` writes exactly what ``conn.execute(insert(table), rows)`` writes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    event,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError, StatementError

from engine.storage.bulk import insert_rows
from engine.storage.database import create_db_engine
from engine.storage.types import ExactDecimal, IdType, UTCDateTime


def _tables() -> tuple[MetaData, Table, Table]:
    metadata = MetaData()
    columns = lambda: [  # noqa: E731 - the same columns for both tables
        Column("id", IdType, primary_key=True),
        Column("name", String(40), nullable=False, unique=True),
        Column("amount", ExactDecimal(14, 2)),
        Column("due", Date),
        Column("at", UTCDateTime),
        Column("flag", Boolean),
        Column("doc", JSON),
        Column("count", Integer, default=7),
    ]
    return (metadata, Table("by_execute", metadata, *columns()),
            Table("by_bulk", metadata, *columns()))


def _rows(count: int) -> list[dict]:
    zone = dt.timezone(dt.timedelta(hours=8))
    return [{
        "id": i + 1,
        "name": f"Row {i} 100% 'quoted'",
        "amount": None if i % 5 == 0 else Decimal(f"{i}.456"),  # rounded to 2 places
        "due": dt.date(2026, 1 + i % 12, 1 + i % 28),
        "at": dt.datetime(2026, 3, 1, 9, 30, tzinfo=zone) + dt.timedelta(minutes=i),
        "flag": bool(i % 2),
        "doc": {"i": i, "名": "客户", "list": [1, None]},
        "count": i,
    } for i in range(count)]


@pytest.fixture
def engine(db_url: str):
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


def test_the_same_rows_as_execute(engine) -> None:
    metadata, by_execute, by_bulk = _tables()
    metadata.create_all(engine)
    rows = _rows(50)
    with engine.begin() as conn:
        conn.execute(insert(by_execute), rows)
        insert_rows(conn, by_bulk, rows)
    with engine.connect() as conn:
        expected = conn.execute(select(by_execute).order_by(by_execute.c.id)).all()
        written = conn.execute(select(by_bulk).order_by(by_bulk.c.id)).all()
    assert written == expected
    assert written[1].amount == Decimal("1.46")
    assert written[1].at == dt.datetime(2026, 3, 1, 1, 31, tzinfo=dt.UTC)


def test_rows_leaving_a_column_to_its_default_get_the_default(engine) -> None:
    metadata, _, table = _tables()
    metadata.create_all(engine)
    rows = [{k: v for k, v in row.items() if k != "count"} for row in _rows(3)]
    with engine.begin() as conn:
        insert_rows(conn, table, rows)
    with engine.connect() as conn:
        assert list(conn.execute(select(table.c.count).order_by(table.c.id)).scalars()) == [
            7, 7, 7]


def test_rows_with_different_columns_are_refused_as_execute_refuses_them(engine) -> None:
    metadata, by_execute, by_bulk = _tables()
    metadata.create_all(engine)
    rows = [{"id": 1, "name": "a", "flag": True}, {"id": 2, "name": "b", "due": dt.date(2026, 5, 1)}]
    for table in (by_execute, by_bulk):
        with pytest.raises(StatementError, match="due"), engine.begin() as conn:
            if table is by_execute:
                conn.execute(insert(table), rows)
            else:
                insert_rows(conn, table, rows)
    with engine.connect() as conn:
        assert conn.execute(select(by_bulk.c.id)).all() == []


def test_a_broken_constraint_raises_as_execute_does_and_writes_nothing(engine) -> None:
    metadata, _, table = _tables()
    metadata.create_all(engine)
    rows = _rows(3)
    rows[2]["name"] = rows[0]["name"]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        insert_rows(conn, table, rows)
    with engine.connect() as conn:
        assert conn.execute(select(table.c.id)).all() == []


def test_no_rows_is_no_statement(engine) -> None:
    metadata, _, table = _tables()
    metadata.create_all(engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    with engine.begin() as conn:
        insert_rows(conn, table, [])
    assert not [s for s in statements if s.lstrip().upper().startswith("INSERT")]
