"""Tests for engine.expressions: the one safe expression language of the engine."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.expressions import FUNCTIONS, Expression, ExpressionError, compile_expression
from engine.expressions.functions import ARITY, format_decimal
from engine.expressions.parser import MAX_LENGTH, MAX_NODES

DOCS = Path(__file__).resolve().parent.parent / "docs" / "expressions.md"
NOW = datetime(2024, 6, 15, 10, 30, tzinfo=UTC)


def ev(text: str, now: datetime | None = NOW, **values: Any) -> Any:
    return compile_expression(text).evaluate(values, now=now)


def refused(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    return info.value


def same(result: Any, expected: Any) -> None:
    """Equal *and* of the same type: 3 == Decimal(3) == 3.0 would hide bugs."""
    assert result == expected
    assert type(result) is type(expected), (result, expected)


# -- literals -----------------------------------------------------------------------


class TestLiterals:
    def test_int(self) -> None:
        same(ev("42"), 42)
        same(ev("1_000"), 1000)

    def test_float_literal_is_decimal_from_source_text(self) -> None:
        same(ev("0.1"), Decimal("0.1"))
        same(ev("12.50"), Decimal("12.50"))
        same(ev("1e3"), Decimal("1E+3"))
        same(ev("1_000.5"), Decimal("1000.5"))

    def test_strings_in_both_quotes(self) -> None:
        same(ev("'abc'"), "abc")
        same(ev('"abc"'), "abc")

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("True", True),
            ("False", False),
            ("None", None),
            ("true", True),
            ("false", False),
            ("null", None),
        ],
    )
    def test_constants_and_lowercase_aliases(self, text: str, expected: Any) -> None:
        assert ev(text) is expected

    def test_aliases_are_not_names(self) -> None:
        expression = compile_expression("x == null or flag == true or other != false")
        assert expression.names == frozenset({"x", "flag", "other"})

    def test_list_and_tuple_literals(self) -> None:
        same(ev("[1, 'a', x]", x=2), [1, "a", 2])
        same(ev("(1, 2)"), (1, 2))
        same(ev("[1, 2]"), [1, 2])

    def test_constant_list_result_is_not_shared(self) -> None:
        expression = compile_expression("[1, 2]")
        first = expression.evaluate({})
        first.append(3)
        assert expression.evaluate({}) == [1, 2]


# -- arithmetic ---------------------------------------------------------------------


class TestArithmetic:
    def test_int_operations_stay_int(self) -> None:
        same(ev("a + b", a=7, b=2), 9)
        same(ev("a - b", a=7, b=2), 5)
        same(ev("a * b", a=7, b=2), 14)
        same(ev("a // b", a=7, b=2), 3)
        same(ev("a % b", a=7, b=2), 1)

    def test_true_division_always_decimal(self) -> None:
        same(ev("7 / 2"), Decimal("3.5"))
        same(ev("a / b", a=6, b=3), Decimal("2"))
        same(ev("1 / 3"), Decimal("0.3333333333333333333333333333"))

    def test_decimal_exactness(self) -> None:
        assert ev("0.1 + 0.2 == 0.3") is True
        same(ev("0.1 + 0.2"), Decimal("0.3"))
        same(ev("a + b", a=0.1, b=0.2), Decimal("0.3"))  # floats via str(), not binary

    def test_mixing_int_decimal_float_gives_decimal(self) -> None:
        same(ev("a * b", a=Decimal("10.5"), b=2), Decimal("21.0"))
        same(ev("a * b", a=Decimal("10"), b=1.5), Decimal("15.0"))
        same(ev("a + b", a=1, b=0.5), Decimal("1.5"))
        same(ev("a - b", a=2.5, b=0.5), Decimal("2.0"))
        same(
            ev("amount * probability / 100", amount=Decimal("1000.50"), probability=25),
            Decimal("250.125"),
        )

    def test_floor_division_and_modulo_follow_int_rules_for_decimals(self) -> None:
        same(ev("-7 // 2"), -4)
        same(ev("-7 % 2"), 1)
        same(ev("-7 // 2.0"), Decimal("-4"))
        same(ev("-7 % 2.0"), Decimal("1.0"))
        same(ev("7.5 // 2"), Decimal("3"))
        same(ev("7.5 % 2"), Decimal("1.5"))
        same(ev("7 % -2.0"), Decimal("-1.0"))

    @pytest.mark.parametrize("text", ["a / 0", "a // 0", "a % 0", "a / 0.0", "0 / 0", "a % 0.0"])
    def test_division_by_zero_is_null(self, text: str) -> None:
        assert ev(text, a=5) is None
        assert ev(text, a=Decimal("5")) is None

    def test_unary(self) -> None:
        same(ev("-a", a=3), -3)
        same(ev("-a", a=Decimal("1.5")), Decimal("-1.5"))
        same(ev("-a", a=0.5), Decimal("-0.5"))
        same(ev("+a", a=0.5), Decimal("0.5"))
        same(ev("+a", a=4), 4)
        assert ev("-a", a="x") is None
        assert ev("-a") is None
        assert ev("+a", a="x") is None
        same(ev("-days(2)"), timedelta(days=-2))

    def test_booleans_are_not_numbers(self) -> None:
        assert ev("a + 1", a=True) is None
        assert ev("a * 2", a=False) is None

    def test_string_concatenation(self) -> None:
        same(ev("a + ' ' + b", a="Ada", b="Lovelace"), "Ada Lovelace")
        assert ev("a + 1", a="x") is None
        assert ev("1 + a", a="x") is None
        assert ev("'3' + 1") is None
        assert ev("a * 3", a="ab") is None  # no string repetition
        assert ev("a - 'b'", a="ab") is None
        same(ev("'Deal ' + text(a)", a=Decimal("1E+3")), "Deal 1000")

    def test_overflow_and_nan_give_null(self) -> None:
        assert ev("a * a", a=Decimal("1E+999999")) is None
        assert ev("a * 2", a=float("nan")) is None
        assert ev("a + 1", a=Decimal("NaN")).is_nan()  # a stored Decimal NaN stays NaN
        assert ev("a > 1", a=Decimal("NaN")) is None

    def test_decimal_context_of_the_host_is_ignored(self) -> None:
        import decimal

        with decimal.localcontext() as context:
            context.prec = 3
            same(ev("1 / 3"), Decimal("0.3333333333333333333333333333"))
            same(ev("a / 3", a=1), Decimal("0.3333333333333333333333333333"))


# -- null propagation ---------------------------------------------------------------


class TestNull:
    @pytest.mark.parametrize("op", ["+", "-", "*", "/", "//", "%"])
    def test_arithmetic_with_null_is_null(self, op: str) -> None:
        assert ev(f"a {op} b", a=None, b=1) is None
        assert ev(f"a {op} b", a=1, b=None) is None
        assert ev(f"a {op} 2", a=None) is None
        assert ev(f"missing {op} 2") is None

    def test_missing_name_is_null(self) -> None:
        assert ev("nothing") is None
        assert ev("nothing == null") is True

    def test_equality_with_null(self) -> None:
        assert ev("a == b", a=None, b=None) is True
        assert ev("a == null", a=None) is True
        assert ev("a != null", a=None) is False
        assert ev("a == null", a=0) is False
        assert ev("a != null", a="") is True

    @pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
    def test_ordering_with_null_is_false(self, op: str) -> None:
        assert ev(f"a {op} 1", a=None) is False
        assert ev(f"1 {op} a", a=None) is False
        assert ev(f"a {op} b") is False

    def test_guard_with_missing_amount_is_false(self) -> None:
        assert ev('stage == "signed" and amount > 0', stage="signed") is False
        assert ev('stage == "signed" and amount > 0', stage="signed", amount=5) is True

    def test_not_null(self) -> None:
        assert ev("not a") is True


# -- comparisons --------------------------------------------------------------------


class TestComparisons:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("a == 1", True),
            ("a != 1", False),
            ("a < 2", True),
            ("a <= 1", True),
            ("a > 1", False),
            ("a >= 1", True),
            ("a > 0", True),
            ("a < 1", False),
        ],
    )
    def test_each_operator(self, text: str, expected: bool) -> None:
        assert ev(text, a=1) is expected

    def test_numbers_of_different_types_compare_by_value(self) -> None:
        assert ev("a == 0.1", a=0.1) is True  # float field against decimal literal
        assert ev("a == b", a=Decimal("2.0"), b=2) is True
        assert ev("a < b", a=Decimal("1.5"), b=2) is True
        assert ev("a > b", a=0.3, b=Decimal("0.2")) is True
        assert ev("a != 0.1", a=0.1) is False

    def test_chained_comparisons(self) -> None:
        text = "0 < x <= 10"
        assert ev(text, x=5) is True
        assert ev(text, x=10) is True
        assert ev(text, x=0) is False
        assert ev(text, x=11) is False
        assert ev(text) is False
        assert ev("1 < 2 < 3 < 4") is True
        assert ev("a == b == c", a=1, b=1, c=2) is False
        assert ev("a == b == c", a=1, b=1, c=1) is True

    def test_text_ordering_and_mismatches(self) -> None:
        assert ev("'a' < 'b'") is True
        assert ev("a < 1", a="x") is None  # no answer, which is falsy
        assert ev("a == 1", a="1") is False

    def test_dates_compare_with_iso_text(self) -> None:
        assert ev('closed_on > "2024-01-01"', closed_on=date(2024, 3, 1)) is True
        assert ev('closed_on > "2024-01-01"', closed_on=date(2023, 3, 1)) is False
        assert ev('"2024-01-01" < closed_on', closed_on=date(2024, 3, 1)) is True
        assert ev('closed_on == "2024-03-01"', closed_on=date(2024, 3, 1)) is True
        assert ev('closed_on > "not a date"', closed_on=date(2024, 3, 1)) is None
        assert ev('closed_on == "not a date"', closed_on=date(2024, 3, 1)) is False
        assert ev("closed_on < x", closed_on=date(2024, 3, 1), x="2" * 100) is None
        assert ev('closed_on >= " 2024-03-01 "', closed_on=date(2024, 3, 1)) is True

    def test_datetimes_compare_with_text_dates_and_each_other(self) -> None:
        at = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
        assert ev('at >= "2024-01-01"', at=at) is True
        assert ev('at < "2024-01-01T08:00:00"', at=at) is False
        assert ev('at > "2024-01-01T08:00:00+00:00"', at=at) is True
        assert ev("at > d", at=at, d=date(2024, 1, 1)) is True
        assert ev("d < at", at=at, d=date(2024, 1, 1)) is True
        assert ev("at > naive", at=at, naive=datetime(2024, 1, 1, 8, 0)) is True
        assert ev("at == naive", at=at, naive=datetime(2024, 1, 1, 9, 0)) is True
        assert ev("at - naive", at=at, naive=datetime(2024, 1, 1, 8, 0)) == timedelta(hours=1)

    def test_in_and_not_in(self) -> None:
        assert ev("stage in ['won', 'lost']", stage="won") is True
        assert ev("stage in ('won', 'lost')", stage="open") is False
        assert ev("stage not in ['won', 'lost']", stage="open") is True
        assert ev("'ell' in name", name="hello") is True
        assert ev("'z' not in name", name="hello") is True
        assert ev("x in tags", x="b", tags=["a", "b"]) is True
        assert ev("0.1 in values", values=[0.1, 0.2]) is True
        assert ev("x in [1, 2]", x=Decimal("2.0")) is True
        assert ev("d in ['2024-01-01']", d=date(2024, 1, 1)) is True

    def test_in_with_null_container(self) -> None:
        assert ev("x in tags", x="a") is False
        assert ev("x not in tags", x="a") is True
        assert ev("1 in name", name="abc") is None

    def test_in_with_dynamic_list_literal(self) -> None:
        assert ev("x in [a, b]", x=2, a=1, b=2) is True
        assert ev("x in [a, b]", x=3, a=1, b=2) is False


# -- logic --------------------------------------------------------------------------


class TestLogic:
    def test_and_or_return_operands_like_python(self) -> None:
        same(ev("nickname or first_name", first_name="Ada"), "Ada")
        same(ev("nickname or first_name", nickname="A", first_name="Ada"), "A")
        same(ev("a and b", a=1, b="x"), "x")
        same(ev("a and b", a=0, b="x"), 0)
        same(ev("a or b or c", a=0, b="", c=3), 3)
        same(ev("a and b and c", a=1, b=2, c=3), 3)
        same(ev("a and b and c", a=1, b=None, c=3), None)
        same(ev("a or b or c", a=0, b="", c=None), None)

    def test_short_circuit_skips_the_right_side(self) -> None:
        # the right side would be "no answer"; short-circuit keeps the left result
        assert ev("x == null or x > 0") is True
        assert ev("x != null and x / 0 > 1") is False

    def test_not(self) -> None:
        assert ev("not a", a=True) is False
        assert ev("not a", a=0) is True
        assert ev("not a", a=[]) is True
        assert ev("not true") is False

    def test_truthiness_of_decimal_zero(self) -> None:
        assert ev("'yes' if a else 'no'", a=Decimal("0.00")) == "no"

    def test_conditional_expression(self) -> None:
        text = "'big' if amount > 10000 else 'small'"
        assert ev(text, amount=20000) == "big"
        assert ev(text, amount=5) == "small"
        assert ev(text) == "small"
        assert ev("1 if true else 2") == 1
        assert ev("1 if false else 2") == 2


# -- dates --------------------------------------------------------------------------


class TestDates:
    def test_date_plus_and_minus_days(self) -> None:
        same(ev("d + days(30)", d=date(2024, 1, 15)), date(2024, 2, 14))
        same(ev("days(1) + d", d=date(2024, 1, 15)), date(2024, 1, 16))
        same(ev("d - days(15)", d=date(2024, 1, 15)), date(2023, 12, 31))
        at = datetime(2024, 1, 1, 12, tzinfo=UTC)
        same(ev("at + days(1)", at=at), datetime(2024, 1, 2, 12, tzinfo=UTC))

    def test_date_minus_date_is_timedelta(self) -> None:
        same(ev("a - b", a=date(2024, 3, 1), b=date(2024, 2, 1)), timedelta(days=29))
        same(ev("a - '2024-02-01'", a=date(2024, 3, 1)), timedelta(days=29))
        same(ev("days(3) - days(1)"), timedelta(days=2))

    def test_date_arithmetic_mismatches(self) -> None:
        assert ev("d + 1", d=date(2024, 1, 1)) is None
        assert ev("days(1) - d", d=date(2024, 1, 1)) is None
        assert ev("d + days(1)", d=date(9999, 12, 31)) is None  # overflow


# -- attribute access ---------------------------------------------------------------


class TestAttributes:
    def test_mapping_attribute(self) -> None:
        assert ev("customer.name", customer={"name": "ACME"}) == "ACME"
        assert ev("customer.city") is None
        assert ev("customer.city", customer={"name": "ACME"}) is None
        assert ev("customer.address.city", customer={"address": {"city": "Lyon"}}) == "Lyon"
        assert ev("customer.address.city", customer={"address": None}) is None

    def test_list_of_mappings(self) -> None:
        lines = [{"amount": 1}, {"amount": Decimal("2.5")}, {"other": 3}]
        assert ev("lines.amount", lines=lines) == [1, Decimal("2.5"), None]
        same(ev("sum(lines.amount)", lines=lines), Decimal("3.5"))

    def test_nested_lists_flatten(self) -> None:
        orders = [
            {"lines": [{"amount": 1}, {"amount": 2}]},
            {"lines": [{"amount": 3}]},
            {"lines": None},
        ]
        assert ev("orders.lines.amount", orders=orders) == [1, 2, 3, None]
        same(ev("sum(orders.lines.amount)", orders=orders), 6)

    def test_no_attributes_on_other_objects(self) -> None:
        class Thing:
            name = "secret"

        assert ev("x.name", x=Thing()) is None
        assert ev("x.real", x=5) is None
        assert ev("x.upper", x="abc") is None

    def test_attribute_on_literal_alias(self) -> None:
        assert ev("null.x") is None

    def test_paths_and_names(self) -> None:
        expression = compile_expression(
            "sum(lines.amount) + customer.address.zip + total + count(lines)"
        )
        assert expression.names == frozenset({"lines", "customer", "total"})
        assert expression.paths == frozenset(
            {("lines", "amount"), ("customer", "address", "zip"), ("total",), ("lines",)}
        )

    def test_function_names_are_not_names_but_bare_field_of_same_name_is(self) -> None:
        assert compile_expression("sum(x) + today()").names == frozenset({"x"})
        assert compile_expression("count + 1").names == frozenset({"count"})
        assert ev("count + 1", count=2) == 3


# -- functions ----------------------------------------------------------------------


class TestFunctions:
    def test_sum(self) -> None:
        same(ev("sum(x)", x=[1, 2, None, 3]), 6)
        same(ev("sum(x)", x=[1, Decimal("0.5"), 0.25]), Decimal("1.75"))
        same(ev("sum(x)", x=[]), 0)
        same(ev("sum(x)"), 0)
        assert ev("sum(x)", x=[1, "a"]) is None
        assert ev("sum(x)", x=5) is None
        assert ev("sum(x)", x=[True]) is None

    def test_count(self) -> None:
        same(ev("count(x)", x=[1, None, 0, ""]), 3)
        same(ev("count(x)"), 0)
        assert ev("count(x)", x="abc") is None

    def test_len(self) -> None:
        same(ev("len(x)", x="abcd"), 4)
        same(ev("len(x)", x=[1, None]), 2)
        same(ev("len(x)", x={"a": 1}), 1)
        same(ev("len(x)"), 0)
        assert ev("len(x)", x=5) is None

    def test_min_max(self) -> None:
        same(ev("min(x)", x=[3, None, 1, 2]), 1)
        same(ev("max(x)", x=[3, None, Decimal("3.5"), 2]), Decimal("3.5"))
        same(ev("min(a, b, 30)", a=None, b=40), 30)
        same(ev("max(a, b)", a=Decimal("1.5"), b=1), Decimal("1.5"))
        assert ev("min(x)", x=[None, None]) is None
        assert ev("max(a, b)") is None
        assert ev("min(x)", x=[]) is None
        assert ev("min(x)") is None
        same(ev("min(x)", x=7), 7)
        same(ev("max(x)", x=[0.5, 0.25]), Decimal("0.5"))
        same(ev("max(x)", x=["b", "a"]), "b")
        assert ev("max(x)", x=[1, "a"]) is None
        same(ev("max(a, '2024-01-01')", a=date(2024, 5, 1)), date(2024, 5, 1))

    def test_avg(self) -> None:
        same(ev("avg(x)", x=[1, 2]), Decimal("1.5"))
        same(ev("avg(x)", x=[1, None, 2, 3]), Decimal("2"))
        same(ev("avg(x)", x=[0.1, 0.2]), Decimal("0.15"))
        assert ev("avg(x)", x=[]) is None
        assert ev("avg(x)", x=[None]) is None
        assert ev("avg(x)") is None
        assert ev("avg(x)", x=["a"]) is None

    def test_round_half_up(self) -> None:
        same(ev("round(2.5)"), Decimal("3"))
        same(ev("round(-2.5)"), Decimal("-3"))
        same(ev("round(0.125, 2)"), Decimal("0.13"))
        same(ev("round(x, 2)", x=1.005), Decimal("1.01"))  # str(1.005) is "1.005"
        same(ev("round(x, 2)", x=Decimal("12.345")), Decimal("12.35"))
        same(ev("round(x)", x=7), 7)
        same(ev("round(x, -2)", x=1250), 1300)
        same(ev("round(x, -2)", x=Decimal("1249.9")), Decimal("1.2E+3"))
        assert ev("text(round(x, -2))", x=Decimal("1249.9")) == "1200"
        assert ev("round(x, 2)") is None
        assert ev("round(x, 2.5)", x=1) is None
        assert ev("round(x, 'a')", x=1) is None
        assert ev("round(x)", x="1.5") is None
        same(ev("round(x, 2.0)", x=Decimal("1.234")), Decimal("1.23"))

    def test_abs(self) -> None:
        same(ev("abs(x)", x=-3), 3)
        same(ev("abs(x)", x=Decimal("-1.5")), Decimal("1.5"))
        same(ev("abs(x)", x=-0.5), Decimal("0.5"))
        same(ev("abs(days(-2))"), timedelta(days=2))
        assert ev("abs(x)") is None
        assert ev("abs(x)", x="a") is None

    def test_coalesce(self) -> None:
        same(ev("coalesce(a, b, 0)", b=5), 5)
        same(ev("coalesce(a, b, 0)"), 0)
        same(ev("coalesce(a, 1)", a=""), "")
        same(ev("coalesce(a)", a=0.5), Decimal("0.5"))
        assert ev("coalesce(a, b)") is None

    def test_today_and_now_use_the_given_clock(self) -> None:
        same(ev("today()"), date(2024, 6, 15))
        same(ev("now()"), NOW)
        assert ev("due_on < today()", due_on=date(2024, 6, 14)) is True
        paris = timezone(timedelta(hours=2))
        late = datetime(2024, 6, 15, 23, 30, tzinfo=paris)
        same(ev("today()", now=late), date(2024, 6, 15))

    def test_clock_defaults_to_utc_now(self) -> None:
        before = datetime.now(UTC)
        result = ev("now()", now=None)
        after = datetime.now(UTC)
        assert result.tzinfo is not None
        assert before <= result <= after
        assert ev("today()", now=None) in {before.date(), after.date()}

    def test_naive_clock_is_taken_as_utc(self) -> None:
        same(ev("now()", now=datetime(2024, 1, 1, 12)), datetime(2024, 1, 1, 12, tzinfo=UTC))

    def test_clock_functions_are_not_constant_folded(self) -> None:
        expression = compile_expression("today()")
        assert expression.evaluate({}, now=NOW) == date(2024, 6, 15)
        assert expression.evaluate({}, now=NOW + timedelta(days=1)) == date(2024, 6, 16)

    def test_days(self) -> None:
        same(ev("days(3)"), timedelta(days=3))
        same(ev("days(1.5)"), timedelta(days=1, hours=12))
        same(ev("days(n)", n=2), timedelta(days=2))
        assert ev("days(n)") is None
        assert ev("days('x')") is None
        assert ev("days(10 * 1000000000)") is None

    def test_days_between(self) -> None:
        same(ev("days_between(a, b)", a=date(2024, 1, 1), b=date(2024, 3, 1)), 60)
        same(ev("days_between(b, a)", a=date(2024, 1, 1), b=date(2024, 3, 1)), -60)
        late = datetime(2024, 1, 1, 23, 0, tzinfo=UTC)
        early = datetime(2024, 1, 2, 1, 0, tzinfo=UTC)
        same(ev("days_between(a, b)", a=late, b=early), 1)
        same(ev("days_between(a, '2024-01-11')", a=date(2024, 1, 1)), 10)
        same(ev("days_between(created, today())", created=date(2024, 6, 1)), 14)
        assert ev("days_between(a, b)", a=date(2024, 1, 1)) is None
        assert ev("days_between(a, b)", b=date(2024, 1, 1)) is None

    def test_year_month_day(self) -> None:
        d = date(2024, 3, 9)
        same(ev("year(d)", d=d), 2024)
        same(ev("month(d)", d=d), 3)
        same(ev("day(d)", d=d), 9)
        same(ev("year(d)", d=datetime(2023, 5, 1, tzinfo=UTC)), 2023)
        same(ev("month('2024-12-01')"), 12)
        assert ev("year(d)") is None
        assert ev("day(d)", d="soon") is None
        assert ev("month(d)", d=5) is None

    def test_date(self) -> None:
        same(ev("date('2024-03-31')"), date(2024, 3, 31))
        same(ev("date(x)", x="2024-03-31T10:00:00"), date(2024, 3, 31))
        same(ev("date(x)", x=datetime(2024, 3, 31, 10, tzinfo=UTC)), date(2024, 3, 31))
        assert ev("date('31/03/2024')") is None
        assert ev("date(x)") is None
        assert ev("date(5)") is None

    def test_lower_upper_trim(self) -> None:
        same(ev("lower(x)", x="AbC"), "abc")
        same(ev("upper(x)", x="AbC"), "ABC")
        same(ev("trim(x)", x="  a b  "), "a b")
        for name in ("lower", "upper", "trim"):
            assert ev(f"{name}(x)") is None
            assert ev(f"{name}(x)", x=5) is None

    def test_text(self) -> None:
        same(ev("text(x)", x=Decimal("1E+3")), "1000")
        same(ev("text(x)", x=Decimal("12.50")), "12.50")
        same(ev("text(x)", x=Decimal("-0.00")), "0.00")
        same(ev("text(x)", x=0.1), "0.1")
        same(ev("text(x)", x=42), "42")
        same(ev("text(x)", x=True), "true")
        same(ev("text(x)", x=False), "false")
        same(ev("text(x)", x=date(2024, 1, 2)), "2024-01-02")
        same(ev("text(x)", x=datetime(2024, 1, 2, 3, 4, tzinfo=UTC)), "2024-01-02T03:04:00+00:00")
        same(ev("text(x)", x="a"), "a")
        assert ev("text(x)") is None
        same(ev("text(1 / 4)"), "0.25")

    def test_format_decimal_keeps_absurd_exponents_short(self) -> None:
        assert format_decimal(Decimal("1E+5000")) == "1E+5000"
        assert format_decimal(Decimal("Infinity")) == "Infinity"

    def test_number(self) -> None:
        same(ev("number(x)", x="3.50"), Decimal("3.50"))
        same(ev("number(x)", x=" 42 "), Decimal("42"))
        same(ev("number(x)", x=7), Decimal("7"))
        same(ev("number(x)", x=0.1), Decimal("0.1"))
        same(ev("number(x)", x=Decimal("2")), Decimal("2"))
        assert ev("number(x)", x="abc") is None
        assert ev("number(x)", x="") is None
        assert ev("number(x)", x="nan") is None
        assert ev("number(x)", x="Infinity") is None
        assert ev("number(x)", x=True) is None
        assert ev("number(x)") is None
        same(ev("number(score) + 1", score="2"), Decimal("3"))

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, True),
            ("", True),
            ("   ", True),
            ([], True),
            ((), True),
            ({}, True),
            ("a", False),
            ([None], False),
            (0, False),
            (False, False),
        ],
    )
    def test_is_empty(self, value: Any, expected: bool) -> None:
        assert ev("is_empty(x)", x=value) is expected

    def test_contains(self) -> None:
        assert ev("contains(email, '@example.com')", email="a@example.com") is True
        assert ev("contains(email, '@x.org')", email="a@example.com") is False
        assert ev("contains(tags, 'vip')", tags=["new", "vip"]) is True
        assert ev("contains(tags, 'vip')", tags=["new"]) is False
        assert ev("contains(values, 0.5)", values=[Decimal("0.5")]) is True
        assert ev("contains(x, 'a')") is False
        assert ev("contains('abc', x)") is False
        assert ev("contains(5, 5)") is False

    def test_startswith(self) -> None:
        assert ev("startswith(phone, '+33')", phone="+33 1 23") is True
        assert ev("startswith(phone, '+44')", phone="+33 1 23") is False
        assert ev("startswith(phone, '+33')") is False
        assert ev("startswith(123, '1')") is False

    def test_constant_calls_are_folded_and_right(self) -> None:
        same(ev("sum([1, 2, 3])"), 6)
        same(ev("upper('abc') + lower('DEF')"), "ABCdef")

    def test_every_function_is_tested_here(self) -> None:
        source = Path(__file__).read_text(encoding="utf-8")
        for name in FUNCTIONS:
            assert re.search(rf"\b{name}\(", source), name

    def test_arity_table(self) -> None:
        assert ARITY["round"] == (1, 2)
        assert ARITY["min"] == (1, None)
        assert ARITY["coalesce"] == (1, None)
        assert ARITY["today"] == (0, 0)
        assert ARITY["days_between"] == (2, 2)
        assert set(ARITY) == set(FUNCTIONS)


# -- refusals -----------------------------------------------------------------------


class TestRefusals:
    @pytest.mark.parametrize(
        ("text", "column", "fragment"),
        [
            ("lambda: 1", 1, "'lambda' is not allowed"),
            ("[l for l in lines]", 1, "comprehensions"),
            ("{l for l in lines}", 1, "comprehensions"),
            ("{l: 1 for l in lines}", 1, "comprehensions"),
            ("sum(l for l in lines)", 4, "generator expressions"),
            ("amount ** 2", 8, "'**' (power) is not allowed"),
            ("round(x, ndigits=2)", 10, "keyword arguments like 'ndigits='"),
            ("max(**x)", 5, "'**' unpacking"),
            ("sum(*x)", 5, "'*' unpacking"),
            ("lines[0]", 1, "indexing"),
            ("name[1:3]", 1, "indexing"),
            ('f"{amount} EUR"', 1, "f-strings"),
            ("(x := 1)", 2, "':='"),
            ("x.upper()", 1, "method calls like x.upper() are not allowed; write upper(x)"),
            ("x.startswith('a')", 1, "write startswith(x, ...)"),
            ("x.strip()", 1, "functions: abs, avg"),
            ("{'a': 1}", 1, "dict literals"),
            ("{1, 2}", 1, "set literals"),
            ("a & b", 3, "write 'and'"),
            ("a | b", 3, "write 'or'"),
            ("a ^ b", 3, "'^'"),
            ("a << 1", 3, "'<<'"),
            ("a >> 1", 3, "'>>'"),
            ("a @ b", 3, "'@'"),
            ("~a", 1, "write 'not'"),
            ("owner is None", 7, "write '== null'"),
            ("owner is not None", 7, "write '!= null'"),
            ("_secret", 1, "names starting with '_'"),
            ("a + _b", 5, "names starting with '_'"),
            ("x.__class__", 2, "names starting with '_'"),
            ("x . _y", 3, "names starting with '_'"),
            ('"x".upper', 4, "can only follow a field name"),
            ("(a + b).c", 8, "can only follow a field name"),
            ("b'x'", 1, "byte strings"),
            ("1j", 1, "imaginary numbers"),
            ("...", 1, "'...'"),
            ("await x", 1, "'await'"),
            ("(a)(1)", 1, "function 'a' is not available"),
            ("sum(x)(1)", 1, "only functions can be called"),
            ("round(1, 2, 3)", 1, "round() takes 1 to 2 arguments, got 3"),
            ("sum()", 1, "sum() takes 1 argument, got 0"),
            ("today(1)", 1, "today() takes 0 arguments, got 1"),
            ("min()", 1, "min() takes at least 1 argument, got 0"),
            ("x + coalesce()", 5, "coalesce() takes at least 1 argument, got 0"),
        ],
    )
    def test_refused_with_message_and_column(self, text: str, column: int, fragment: str) -> None:
        error = refused(text)
        assert fragment in error.message
        assert error.column == column
        assert str(error) == error.message

    def test_unknown_function_lists_the_available_ones(self) -> None:
        error = refused("open('/etc/passwd')")
        assert error.message == (
            "function 'open' is not available; functions: " + ", ".join(sorted(FUNCTIONS))
        )
        assert error.column == 1

    def test_unknown_function_suggests_a_close_name(self) -> None:
        error = refused("1 + summ(x)")
        assert error.message.startswith("function 'summ' is not available (did you mean 'sum'?)")
        assert error.column == 5

    @pytest.mark.parametrize(
        "text",
        [
            "__import__('os')",
            "x.__class__.__mro__",
            "getattr(x, 'y')",
            "eval('1')",
            "exec('1')",
            "open('f')",
            "().__class__",
            "[].__class__",
        ],
    )
    def test_classic_escapes_are_refused(self, text: str) -> None:
        refused(text)

    def test_power_column_points_at_the_operator(self) -> None:
        assert refused("(a) ** 2").column == 5
        assert refused("  a ** b").column == 5

    def test_leftmost_problem_is_reported(self) -> None:
        error = refused("a ** 2 + b[0]")
        assert error.column == 3
        assert "'**'" in error.message

    def test_columns_count_characters_not_bytes(self) -> None:
        error = refused("'éé' + _x")
        assert error.column == 8

    def test_empty(self) -> None:
        for text in ("", "   ", "\n"):
            assert refused(text).message == "expression is empty"

    def test_not_text(self) -> None:
        assert "must be text" in refused(5).message  # type: ignore[arg-type]
        assert "must be text" in refused(None).message  # type: ignore[arg-type]

    def test_too_long(self) -> None:
        text = "a + " * 250 + "b"
        assert len(text) > MAX_LENGTH
        error = refused(text)
        assert error.message == (
            f"expression is too long ({len(text)} characters; the limit is {MAX_LENGTH})"
        )
        assert error.column == MAX_LENGTH + 1
        compile_expression("x" * MAX_LENGTH)  # exactly at the limit is fine

    def test_too_many_nodes(self) -> None:
        text = "+".join(["1"] * 400)
        assert len(text) < MAX_LENGTH
        error = refused(text)
        assert "too complex (" in error.message
        assert f"the limit is {MAX_NODES}" in error.message
        compile_expression("+".join(["a"] * (MAX_NODES // 2)))

    def test_deep_unary_nesting_is_refused_not_crashing(self) -> None:
        assert "too complex" in refused("-" * 900 + "1").message

    def test_nul_character(self) -> None:
        error = refused("a\x00")
        assert error.column == 2
        assert "NUL" in error.message


class TestSyntaxErrors:
    @pytest.mark.parametrize(
        ("text", "column", "message"),
        [
            ("a +", 4, "the expression ends too early at column 4; something is missing"),
            ("a b", 3, "unexpected text at column 3"),
            ("1 +* 2", 4, "unexpected text at column 4"),
            ("(a + 1", 1, "'(' at column 1 is never closed"),
            ("sum(x", 4, "'(' at column 4 is never closed"),
            ("a + 1)", 6, "unmatched ')' at column 6"),
            ("'abc", 1, "text in quotes starting at column 1 is not closed"),
            ("amount €", 8, "unexpected character '€' at column 8"),
            ("a = 1", 3, "'=' at column 3 assigns; to compare, write '=='"),
            ("a && b", 4, "unexpected '&&' at column 4; write 'and'"),
            ("a || b", 4, "unexpected '||' at column 4; write 'or'"),
            ("a <> b", 3, "unexpected '<>' at column 3; write '!='"),
            ("!a", 1, "unexpected '!' at column 1; write 'not'"),
            ("a if b", 1, "'if' at column 1 needs an 'else'"),
            ("  a b", 5, "unexpected text at column 5"),
            ("import os", 1, "unexpected text at column 1"),
        ],
    )
    def test_friendly_message_and_column(self, text: str, column: int, message: str) -> None:
        error = refused(text)
        assert error.column == column
        assert error.message.startswith(message)
        assert "SyntaxError" not in error.message
        assert "invalid syntax" not in error.message

    def test_line_break_outside_parentheses(self) -> None:
        error = refused("a\n+ b")
        assert error.column == 3
        assert "line break" in error.message

    def test_line_breaks_inside_parentheses_are_fine(self) -> None:
        assert compile_expression("(a\n + b)").evaluate({"a": 1, "b": 2}) == 3

    def test_leading_and_trailing_spaces_are_fine(self) -> None:
        assert compile_expression("  a + 1  \n").evaluate({"a": 1}) == 2


# -- the Expression object ----------------------------------------------------------


class TestExpressionObject:
    def test_caching_returns_the_same_object(self) -> None:
        first = compile_expression("amount * probability / 100")
        assert compile_expression("amount * probability / 100") is first
        assert compile_expression("amount * probability / 100 ") is not first
        info = compile_expression.cache_info()  # type: ignore[attr-defined]
        assert info.maxsize == 4096
        assert info.hits >= 1

    def test_expression_is_frozen_and_hashable(self) -> None:
        expression = compile_expression("a + 1")
        assert isinstance(expression, Expression)
        assert expression.source == "a + 1"
        with pytest.raises(AttributeError):
            expression.source = "b"  # type: ignore[misc]
        assert hash(expression) == hash(compile_expression("a + 1"))

    def test_names_and_paths_of_a_plain_expression(self) -> None:
        expression = compile_expression("amount * probability / 100")
        assert expression.names == frozenset({"amount", "probability"})
        assert expression.paths == frozenset({("amount",), ("probability",)})

    def test_constant_expression_has_no_names(self) -> None:
        expression = compile_expression("1 + 2")
        assert expression.names == frozenset()
        assert expression.evaluate({}) == 3

    def test_check_names_reports_unknown_with_suggestion(self) -> None:
        expression = compile_expression("amout * probability + zzz")
        assert expression.check_names(["amount", "probability"]) == [
            "unknown field 'amout' at column 1; did you mean 'amount'?",
            "unknown field 'zzz' at column 23",
        ]

    def test_check_names_accepts_any_iterable(self) -> None:
        expression = compile_expression("a + b")
        assert expression.check_names(name for name in ["a", "b"]) == []
        assert expression.check_names(iter(["a"])) == ["unknown field 'b' at column 5"]

    def test_check_names_hints_at_a_forgotten_call(self) -> None:
        messages = compile_expression("due_on < today").check_names(["due_on"])
        assert messages == [
            "unknown field 'today' at column 10; to call the function, write today(...)"
        ]

    def test_evaluate_does_not_raise_on_odd_values(self) -> None:
        expression = compile_expression("a.b + c")
        assert expression.evaluate(None) is None  # type: ignore[arg-type]
        assert compile_expression("a < b").evaluate({"a": Decimal("NaN"), "b": 1}) is None

    def test_values_may_be_any_mapping(self) -> None:
        from types import MappingProxyType

        values = MappingProxyType({"a": 2, "c": {"d": 3}})
        assert compile_expression("a * c.d").evaluate(values) == 6

    def test_docs_list_every_function(self) -> None:
        text = DOCS.read_text(encoding="utf-8")
        missing = [name for name in FUNCTIONS if f"`{name}(" not in text]
        assert missing == []


class TestCompilation:
    """Speed itself is measured in bench/bench_expressions.py, not asserted here."""

    def test_compiled_once_into_closures(self) -> None:
        # the evaluator is a closure, not something that walks the AST on each call
        expression = compile_expression("amount * probability / 100")
        evaluator = expression._evaluator
        assert callable(evaluator)
        assert evaluator.__closure__ is not None
        assert not any(
            type(cell.cell_contents).__module__ == "ast" for cell in evaluator.__closure__
        )
