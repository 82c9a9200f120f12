"""Amounts in capital Chinese numerals (大写金额), as cheques and contracts need them.

Follows the People's Bank of China rules for writing amounts (《支付结算办法》):
sections of four digits (万, 亿); one 零 for any run of zeros inside the
number; 零 after 元 when the units digit is zero but 角 or 分 follow
(壹仟陆佰捌拾元零叁角贰分); 整 after 元 or 角 when no 分 follow; 分 ends
the amount.  Amounts are rounded half-up to the fen first.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

DIGITS = "零壹贰叁肆伍陆柒捌玖"
PLACES = ("", "拾", "佰", "仟")
SECTIONS = ("", "万", "亿", "万亿")


def _section(value: int) -> str:
    """1–9999 in words, without leading 零."""
    out, zero = "", False
    for place in range(3, -1, -1):
        digit = value // 10 ** place % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += DIGITS[digit] + PLACES[place]
    return out


def integer_in_words(value: int) -> str:
    """A whole number in capital numerals: 1001 → 壹仟零壹."""
    if value == 0:
        return "零"
    sections = []
    while value:
        sections.append(value % 10000)
        value //= 10000
    if len(sections) > len(SECTIONS):
        raise ValueError("amounts of ten thousand trillion and more cannot be written")
    out, gap = "", False
    for index in range(len(sections) - 1, -1, -1):
        part = sections[index]
        if part == 0:
            gap = bool(out)
            continue
        if out and (gap or part < 1000):
            out += "零"
        out += _section(part) + SECTIONS[index]
        gap = False
    return out


def amount_in_words(amount: Decimal | int | float | str) -> str:
    """An amount of money in capital numerals: 1234.5 → 壹仟贰佰叁拾肆元伍角整."""
    value = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "负" if value < 0 else ""
    fen_total = int(abs(value) * 100)
    yuan, jiao, fen = fen_total // 100, fen_total // 10 % 10, fen_total % 10
    if fen_total == 0:
        return "零元整"
    out = sign
    if yuan:
        out += integer_in_words(yuan) + "元"
    if jiao:
        if yuan and yuan % 10 == 0:
            out += "零"
        out += DIGITS[jiao] + "角"
    elif fen and yuan:
        out += "零"
    if fen:
        out += DIGITS[fen] + "分"
    else:
        out += "整"
    return out
