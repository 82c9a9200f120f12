"""A figure's values as text, by each measure's unit and the reader's language.

One formatter for the three places a figure is read — the web dashboard, the
API (each series' ``text``) and ``crm report`` — so a count never shows as
money nor a number of days as a percentage in any of them.  Units:

``count``    whole things: ``1,234`` (an average count keeps its decimals)
``money``    an amount in its currency: ``¥1,234.50``, ``1,234.50 CHF``
``percent``  ``68.5%``
``days``     ``3.5 days`` / ``3.5 天``
``hours``    ``12.5 h`` / ``12.5 小时``
``number``   any other quantity: ``1,234.5``
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from engine.metadata.view_defs import FIGURE_UNITS as UNITS

__all__ = ["UNITS", "format_value", "money"]
CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$"}
_SPANS = {
    "days": {"en": ("{n} day", "{n} days"), "zh": ("{n} 天", "{n} 天")},
    "hours": {"en": ("{n} h", "{n} h"), "zh": ("{n} 小时", "{n} 小时")},
}


def _decimal(value: Any) -> Decimal | None:
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _grouped(value: Decimal, places: int | None) -> str:
    """Thousands grouped; ``places`` fixed, or up to one decimal with trailing zeros dropped."""
    if places is not None:
        return f"{value:,.{places}f}"
    rounded = value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    if rounded == rounded.to_integral_value():
        return f"{int(rounded):,}"
    return f"{rounded:,.1f}"


def money(value: Any, currency: str) -> str:
    """``¥1,234.50``; a currency without a symbol is written after: ``1,234.50 CHF``."""
    amount = _decimal(value)
    if amount is None:
        return str(value)
    symbol = CURRENCY_SYMBOLS.get(currency)
    text = _grouped(abs(amount), 2)
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def format_value(value: Any, unit: str, currency: str, language: str = "en") -> str:
    """One value as a reader of ``language`` expects it, by its unit ("" for none)."""
    if value is None or value == "":
        return ""
    if unit == "money":
        return money(value, currency)
    number = _decimal(value)
    if number is None:
        return str(value)
    if unit == "percent":
        return f"{_grouped(number, None)}%"
    if unit in _SPANS:
        text = _grouped(number, None)
        words = _SPANS[unit]["zh" if language.startswith("zh") else "en"]
        return words[0 if number == 1 else 1].format(n=text)
    if number == number.to_integral_value():
        return f"{int(number):,}"
    return f"{number.normalize():,f}"
