"""Column types that behave the same on SQLite and PostgreSQL.

Money must be exact on both databases.  PostgreSQL has NUMERIC; SQLite has
no exact decimal type (its NUMERIC affinity keeps floats), so on SQLite a
decimal is stored as a scaled integer — exact, sortable, and summable in
SQL, with ``func.sum`` results scaled back by the same type.  A 64-bit
integer holds every number of 18 digits, not every one of 19: so on SQLite a
decimal has at most 18 digits in all, and definitions asking for more are
refused when the site is checked (:func:`decimal_problems`), never met by an
overflow when a value is saved.  Datetimes are
stored in UTC and always come back timezone-aware.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from engine.errors import Problem
from engine.metadata.model import Field, Registry

#: The most digits a decimal may have on SQLite (a scaled 64-bit integer).
SQLITE_MAX_PRECISION = 18

#: Primary and foreign keys: BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class ExactDecimal(TypeDecorator):
    """NUMERIC(p, s) on PostgreSQL; a scaled BIGINT on SQLite."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2) -> None:
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.precision = precision
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        number = number.quantize(self._quantum, rounding=ROUND_HALF_UP)
        if dialect.name == "sqlite":
            return int(number.scaleb(self.scale))
        return number

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-self.scale).quantize(self._quantum)
        return Decimal(value).quantize(self._quantum)

    @property
    def python_type(self) -> type:
        return Decimal


@lru_cache(maxsize=512)
def _utc(value: dt.datetime) -> dt.datetime:
    """An instant in UTC (naive ones are taken as UTC).  Cached: the rows of one write share
    their timestamps (created, updated, audited at the same moment)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


@lru_cache(maxsize=512)
def _naive_utc(value: dt.datetime) -> dt.datetime:
    return _utc(value).replace(tzinfo=None)


class UTCDateTime(TypeDecorator):
    """TIMESTAMP WITH TIME ZONE on PostgreSQL; UTC text on SQLite; aware on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return _naive_utc(value) if dialect.name == "sqlite" else _utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    @property
    def python_type(self) -> type:
        return dt.datetime


def _decimal_fields(registry: Registry) -> Iterator[tuple[str, Field]]:
    """Every decimal column of the registry, with its path (``sale.items.price``)."""
    for entity in registry.entities.values():
        for field in entity.fields.values():
            for sub in [field, *field.fields.values()]:
                if sub.has_column and sub.value_type == "decimal":
                    inside = f"{field.key}.{sub.key}" if sub is not field else field.key
                    yield f"{entity.key}.{inside}", sub


def decimal_problems(registry: Registry, database: str) -> list[Problem]:
    """Decimal fields ``database`` (``sqlite``, ``postgresql``) cannot store exactly, located."""
    if database != "sqlite":
        return []
    problems = []
    for path, field in _decimal_fields(registry):
        precision = field.precision or SQLITE_MAX_PRECISION
        if precision <= SQLITE_MAX_PRECISION:
            continue
        origin = field.origin
        problems.append(Problem(
            file=origin.file if origin else path.split(".")[0],
            line=origin.line if origin else None,
            column=origin.column if origin else None,
            path=f"{path}.precision",
            message=(f"precision {precision} is more digits than a decimal holds on SQLite "
                     f"({SQLITE_MAX_PRECISION}: it is stored there as a 64-bit integer); use "
                     f"precision {SQLITE_MAX_PRECISION} or less, or a PostgreSQL database"),
        ))
    return problems
