"""Numbers, money, dates and times as a reader of each language expects them.

A small formatter of our own instead of Babel: the UI speaks two
languages whose number format is the same (``1,234.50``) and whose date
formats are short to write, and one dependency fewer keeps the wheel lean.
Times are stored in UTC and shown in the site's time zone.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from engine.web.i18n import normalise, translate

CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def number(value: int | Decimal | float | None, scale: int | None = None) -> str:
    """Digits grouped by thousands; ``scale`` fixes the decimals shown."""
    if value is None:
        return ""
    if scale is not None:
        return f"{Decimal(value):,.{scale}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{Decimal(value):,f}"


def money(value: int | Decimal | float | None, currency: str = "CNY") -> str:
    """An amount with its currency: ``¥1,234.50`` (the symbol, else the ISO code)."""
    if value is None:
        return ""
    symbol = CURRENCY_SYMBOLS.get(currency)
    text = number(abs(Decimal(value)), 2)
    sign = "-" if Decimal(value) < 0 else ""
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def date(value: dt.date | None, language: str = "en") -> str:
    if value is None:
        return ""
    if normalise(language) == "zh":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{_MONTHS[value.month - 1]} {value.day}, {value.year}"


def local_time(value: dt.datetime, timezone: str) -> dt.datetime:
    """A stored (UTC) moment in the site's time zone."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(ZoneInfo(timezone))


def datetime(value: dt.datetime | None, language: str = "en",
             timezone: str = "Asia/Shanghai") -> str:
    if value is None:
        return ""
    local = local_time(value, timezone)
    return f"{date(local.date(), language)} {local:%H:%M}"


def duration(seconds: int | None, language: str = "en") -> str:
    """A time span in its largest sensible unit: ``3 d``, ``5 h``, ``12 min``."""
    if seconds is None:
        return ""
    if seconds >= 86400:
        return translate("days", language, n=round(seconds / 86400, 1))
    if seconds >= 3600:
        return translate("hours", language, n=round(seconds / 3600, 1))
    return translate("minutes", language, n=max(1, seconds // 60))


def parse_iso(value: Any) -> Any:
    """A date or datetime back from its JSON text (conflict payloads carry ISO strings)."""
    if not isinstance(value, str):
        return value
    try:
        if "T" in value:
            return dt.datetime.fromisoformat(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        return value


def parse_decimal(value: Any) -> Decimal:
    """A decimal from a stored value or its JSON text."""
    return value if isinstance(value, Decimal) else Decimal(str(value))
