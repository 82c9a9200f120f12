"""Capital-numeral amounts (大写金额): the cases cheques and contracts meet."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.printing.amounts import amount_in_words, integer_in_words


@pytest.mark.parametrize(("amount", "words"), [
    ("0.05", "伍分"),
    ("0.50", "伍角整"),
    ("0", "零元整"),
    ("10", "壹拾元整"),
    ("1001", "壹仟零壹元整"),
    ("10000.50", "壹万元零伍角整"),
    ("100000000", "壹亿元整"),
    ("1234.5", "壹仟贰佰叁拾肆元伍角整"),
    ("1680.32", "壹仟陆佰捌拾元零叁角贰分"),
    ("1004.06", "壹仟零肆元零陆分"),
    ("105000", "壹拾万伍仟元整"),
    ("100010000", "壹亿零壹万元整"),
    ("100000001", "壹亿零壹元整"),
    ("800000", "捌拾万元整"),
    ("240000.00", "贰拾肆万元整"),
    ("1.005", "壹元零壹分"),  # rounded half-up to the fen
    ("-35.2", "负叁拾伍元贰角整"),
])
def test_amounts_in_capital_numerals(amount: str, words: str):
    assert amount_in_words(Decimal(amount)) == words


def test_integers_keep_one_zero_per_gap():
    assert integer_in_words(10010) == "壹万零壹拾"
    assert integer_in_words(1000001000) == "壹拾亿零壹仟"
    assert integer_in_words(0) == "零"
