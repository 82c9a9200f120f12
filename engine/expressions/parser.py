"""Parse, check and compile expressions into plain Python closures.

Why Python's own parser: it is correct, fast and maintained, and the
grammar consultants already half-know from examples. Why a whitelist: the
parser accepts far more than we want, so after ``ast.parse(text,
mode="eval")`` every node is checked against a short list of allowed node
types and anything else is refused with a message that says what to write
instead and the column where the problem is. Nothing is ever handed to
``eval``/``exec``, so there is no path from user text to Python builtins,
attributes or imports.

Why closures: the checked tree is turned once into nested functions
``f(values, now)``; evaluating is then a handful of direct calls, with
constant sub-expressions already folded, instead of a walk over the tree
on every record. :func:`compile_expression` is cached, so a definition
that appears on every row of a list view is compiled once per process.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from . import values as v
from .functions import ARITY, CLOCK_FUNCTIONS, FUNCTIONS, resolve_clock

MAX_LENGTH = 1000
"""Longest accepted expression text, in characters."""

MAX_NODES = 300
"""Most expression nodes (names, literals, operations, calls) in one expression."""

LITERAL_ALIASES: dict[str, Any] = {"true": True, "false": False, "null": None}
"""Lower-case spellings of Python's constants, for people who know JSON, not Python."""

Evaluator = Callable[[Mapping[str, Any], "datetime | None"], Any]


class ExpressionError(Exception):
    """Raised for text that does not parse or uses something not allowed."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Expression:
    """A checked, compiled expression; immutable and safe to share between threads."""

    source: str
    names: frozenset[str]
    paths: frozenset[tuple[str, ...]]
    _evaluator: Evaluator = field(repr=False, compare=False)
    _name_columns: Mapping[str, int] = field(repr=False, compare=False, default_factory=dict)

    def evaluate(self, values: Mapping[str, Any], *, now: datetime | None = None) -> Any:
        """The value of the expression for one record's ``values``.

        Missing names read as ``None``; data that does not fit an operation
        (nulls, division by zero, text where a number belongs) gives
        ``None`` instead of an exception, so one odd record cannot break a
        list view or a workflow. ``now`` is the clock behind ``now()`` and
        ``today()`` (default: the current UTC time).
        """
        try:
            return self._evaluator(values, now)
        except ExpressionError:
            raise
        except Exception:  # last line of defence for the "never raises" promise
            return None

    def check_names(self, known: Iterable[str]) -> list[str]:
        """One message per top-level name that is not in ``known``, for ``crm check``."""
        known_names = list(known)
        known_set = set(known_names)
        messages = []
        for name in sorted(self.names - known_set):
            message = f"unknown field '{name}'"
            column = self._name_columns.get(name)
            if column is not None:
                message += f" at column {column}"
            close = difflib.get_close_matches(name, known_names, n=1)
            if close:
                message += f"; did you mean '{close[0]}'?"
            elif name in FUNCTIONS:
                message += f"; to call the function, write {name}(...)"
            messages.append(message)
        return messages


def compile_expression(text: str) -> Expression:
    """Check and compile ``text``; the same text always gives the same object.

    Raises :class:`ExpressionError` (with a 1-based ``column`` when known)
    for anything that does not parse or is not part of the language.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, not {type(text).__name__}")
    return _compile_cached(text)


@lru_cache(maxsize=4096)
def _compile_cached(text: str) -> Expression:
    return _Compiler(text).compile()


compile_expression.cache_info = _compile_cached.cache_info  # type: ignore[attr-defined]
compile_expression.cache_clear = _compile_cached.cache_clear  # type: ignore[attr-defined]


# -- the whitelist ------------------------------------------------------------------

_BINARY = {
    ast.Add: v.add,
    ast.Sub: v.sub,
    ast.Mult: v.mul,
    ast.Div: v.truediv,
    ast.FloorDiv: v.floordiv,
    ast.Mod: v.mod,
}


def _in(item: Any, container: Any) -> bool | None:
    return v.contains(container, item)


def _not_in(item: Any, container: Any) -> bool | None:
    return v.not_contains(container, item)


_COMPARE = {
    ast.Eq: v.eq,
    ast.NotEq: v.ne,
    ast.Lt: v.lt,
    ast.LtE: v.le,
    ast.Gt: v.gt,
    ast.GtE: v.ge,
    ast.In: _in,
    ast.NotIn: _not_in,
}

_ALLOWED = (
    ast.Constant,
    ast.Name,
    ast.Attribute,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.List,
    ast.Tuple,
)

_REFUSED_OPERATORS: dict[type, tuple[str, str]] = {
    ast.Pow: (
        "**",
        "'**' (power) is not allowed: powers can make numbers large enough to "
        "stall the server; multiply instead (x * x)",
    ),
    ast.BitAnd: ("&", "'&' is not allowed; to require both conditions write 'and'"),
    ast.BitOr: ("|", "'|' is not allowed; to accept either condition write 'or'"),
    ast.BitXor: ("^", "'^' (bitwise xor) is not allowed; it is not a power either"),
    ast.LShift: ("<<", "'<<' (bit shift) is not allowed"),
    ast.RShift: (">>", "'>>' (bit shift) is not allowed"),
    ast.MatMult: ("@", "'@' is not allowed"),
    ast.Invert: ("~", "'~' (bitwise not) is not allowed; to negate a condition write 'not'"),
    ast.Is: ("is", "'is' is not allowed; to test for a missing value write '== null'"),
    ast.IsNot: ("is", "'is not' is not allowed; to test for a present value write '!= null'"),
}

_REFUSED_NODES: dict[type, str] = {
    ast.Lambda: "'lambda' is not allowed: expressions cannot define functions",
    ast.ListComp: "comprehensions ('for' inside brackets) are not allowed; use sum(), count(), "
    "min(), max() or avg() on a dotted list such as lines.amount",
    ast.SetComp: "comprehensions ('for' inside braces) are not allowed",
    ast.DictComp: "comprehensions ('for' inside braces) are not allowed",
    ast.GeneratorExp: "generator expressions ('for' inside parentheses) are not allowed; use "
    "sum(), count(), min(), max() or avg() on a dotted list such as lines.amount",
    ast.Subscript: "indexing with [...] is not allowed; read fields with dots, e.g. customer.name",
    ast.Slice: "slices with [a:b] are not allowed",
    ast.JoinedStr: "f-strings are not allowed; build text with + and text(), "
    'e.g. "Deal " + text(amount)',
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "':=' (assignment) is not allowed; expressions cannot change values",
    ast.Dict: "dict literals {...} are not allowed",
    ast.Set: "set literals {...} are not allowed; use a list such as ['a', 'b'] with 'in'",
    ast.Starred: "'*' unpacking is not allowed; pass each value separately",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
}


def _function_list() -> str:
    return ", ".join(sorted(FUNCTIONS))


class _Const:
    """A value known at compile time; lets operators fold and specialise."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _as_evaluator(compiled: _Const | Evaluator) -> Evaluator:
    if not isinstance(compiled, _Const):
        return compiled
    value = compiled.value
    if isinstance(value, list):  # never hand out the shared folded list itself

        def fresh_list(values: Mapping[str, Any], now: datetime | None) -> Any:
            return list(value)

        return fresh_list

    def constant(values: Mapping[str, Any], now: datetime | None) -> Any:
        return value

    return constant


def _safe_call(function: Callable[..., Any], args: list[Any]) -> Any:
    try:
        return function(*args)
    except v.DATA_ERRORS:
        return None


class _Compiler:
    """One compilation: locate problems, then build the closures."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.text = source.lstrip()  # Python refuses leading spaces in eval mode
        self.shift = len(source) - len(self.text)
        self.lines = self.text.splitlines(keepends=True) or [""]
        self.line_starts = [0]
        for line in self.lines:
            self.line_starts.append(self.line_starts[-1] + len(line))
        self.names: set[str] = set()
        self.paths: set[tuple[str, ...]] = set()
        self.name_columns: dict[str, int] = {}

    # positions ---------------------------------------------------------------------

    def column_at(self, lineno: int, char_offset: int) -> int:
        """1-based column in the caller's text from a 1-based line and 0-based char offset."""
        lineno = max(1, min(lineno, len(self.lines)))
        return self.shift + self.line_starts[lineno - 1] + char_offset + 1

    def _chars(self, lineno: int, byte_offset: int) -> int:
        """ast reports UTF-8 byte offsets; columns count characters."""
        line = self.lines[lineno - 1] if lineno <= len(self.lines) else ""
        return len(line.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))

    def column(self, node: ast.AST) -> int:
        lineno = node.lineno  # type: ignore[attr-defined]
        return self.column_at(lineno, self._chars(lineno, node.col_offset))  # type: ignore[attr-defined]

    def _index(self, lineno: int, byte_offset: int) -> int:
        """0-based index into ``self.text``."""
        return self.line_starts[lineno - 1] + self._chars(lineno, byte_offset)

    def operator_column(self, before: ast.AST, after: ast.AST, symbol: str) -> int:
        """Column of the operator ``symbol`` written between two operands."""
        start = self._index(before.end_lineno, before.end_col_offset)  # type: ignore[attr-defined]
        end = self._index(after.lineno, after.col_offset)  # type: ignore[attr-defined]
        found = self.text.find(symbol, start, end)
        return self.shift + (found if found >= 0 else start) + 1

    def dot_column(self, node: ast.Attribute) -> int:
        """Column of the '.' that starts ``node.attr``."""
        start = self._index(node.value.end_lineno, node.value.end_col_offset)  # type: ignore[arg-type]
        found = self.text.find(".", start)
        return self.shift + (found if found >= 0 else start) + 1

    # entry point -------------------------------------------------------------------

    def compile(self) -> Expression:
        if not self.text.strip():
            raise ExpressionError("expression is empty", 1 if not self.source else None)
        if len(self.source) > MAX_LENGTH:
            raise ExpressionError(
                f"expression is too long ({len(self.source)} characters; "
                f"the limit is {MAX_LENGTH})",
                MAX_LENGTH + 1,
            )
        if "\x00" in self.source:
            raise ExpressionError(
                "expression contains a NUL character", self.source.index("\x00") + 1
            )
        tree = self.parse()
        count = sum(1 for node in ast.walk(tree) if isinstance(node, ast.expr))
        if count > MAX_NODES:
            raise ExpressionError(
                f"expression is too complex ({count} parts; the limit is {MAX_NODES}); "
                "split it into several computed fields"
            )
        self.check(tree)
        evaluator = _as_evaluator(self.visit(tree.body))
        return Expression(
            source=self.source,
            names=frozenset(self.names),
            paths=frozenset(self.paths),
            _evaluator=evaluator,
            _name_columns=self.name_columns,
        )

    def parse(self) -> ast.Expression:
        try:
            return ast.parse(self.text, mode="eval")
        except SyntaxError as exc:
            raise self.syntax_error(exc) from None
        except ValueError:  # e.g. a NUL character
            raise ExpressionError("expression contains a character that is not allowed") from None
        except (RecursionError, MemoryError):
            raise ExpressionError("expression is nested too deeply") from None

    def syntax_error(self, exc: SyntaxError) -> ExpressionError:
        """Turn Python's parser message into one a consultant can act on."""
        lineno = exc.lineno or 1
        offset = exc.offset or 0
        if lineno > len(self.lines) or offset <= 0:
            at_end = self.shift + len(self.text.rstrip()) + 1
            return ExpressionError(
                f"the expression ends too early at column {at_end}; something is missing", at_end
            )
        column = self.column_at(lineno, offset - 1)
        message = exc.msg or ""
        index = column - self.shift - 1
        here = self.text[index : index + 2]
        around = self.text[max(index - 1, 0) : index + 2]
        if "was never closed" in message:
            text = f"'{message[1]}' at column {column} is never closed"
        elif message.startswith("unmatched"):
            text = f"unmatched '{message[-2]}' at column {column}"
        elif message.startswith("unterminated"):
            text = f"text in quotes starting at column {column} is not closed"
        elif message.startswith("invalid character"):
            text = f"unexpected character {message.split()[2]} at column {column}"
        elif message.startswith("expected 'else'"):
            text = f"'if' at column {column} needs an 'else': write 'value if condition else other'"
        elif "&&" in around:
            text = f"unexpected '&&' at column {column}; write 'and'"
        elif "||" in around:
            text = f"unexpected '||' at column {column}; write 'or'"
        elif "<>" in around:
            text = f"unexpected '<>' at column {column}; write '!='"
        elif here[:1] == "!" and here != "!=":
            text = f"unexpected '!' at column {column}; write 'not'"
        elif here[:1] == "=" and here != "==":
            text = f"'=' at column {column} assigns; to compare, write '=='"
        elif lineno > 1 and not self.lines[lineno - 1][: offset - 1].strip():
            text = (
                f"unexpected line break before column {column}; keep the expression on "
                "one line or wrap it in parentheses"
            )
        else:
            text = f"unexpected text at column {column}"
        return ExpressionError(text, column)

    # the whitelist -----------------------------------------------------------------

    def check(self, tree: ast.Expression) -> None:
        """Raise for the leftmost refused construct (outermost first on a tie)."""
        problems: list[tuple[int, int, str]] = []
        for order, node in enumerate(ast.walk(tree)):
            found = self.problem(node)
            if found is not None:
                message, column = found
                problems.append((column, order, message))
        if problems:
            column, _, message = min(problems)
            raise ExpressionError(message, column)

    def problem(self, node: ast.AST) -> tuple[str, int] | None:
        """What is wrong with this one node, if anything, and where."""
        if not isinstance(node, ast.expr):
            return None  # operators, contexts, keywords: judged with their parent
        if type(node) in _REFUSED_NODES:
            return _REFUSED_NODES[type(node)], self.column(node)
        if not isinstance(node, _ALLOWED):
            return f"{type(node).__name__} is not allowed in expressions", self.column(node)
        if isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
            return self.operator_problem(node.op, node.left, node.right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
            return _REFUSED_OPERATORS[ast.Invert][1], self.column(node)
        if isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators, strict=True):
                if type(op) not in _COMPARE:
                    return self.operator_problem(op, left, right)
                left = right
        if isinstance(node, ast.Constant):
            return self.constant_problem(node)
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            return f"names starting with '_' are not allowed ('{node.id}')", self.column(node)
        if isinstance(node, ast.Attribute):
            return self.attribute_problem(node)
        if isinstance(node, ast.Call):
            return self.call_problem(node)
        return None

    def operator_problem(self, op: ast.AST, left: ast.AST, right: ast.AST) -> tuple[str, int]:
        symbol, message = _REFUSED_OPERATORS.get(
            type(op), ("", f"operator {type(op).__name__} is not allowed")
        )
        return message, self.operator_column(left, right, symbol)

    def constant_problem(self, node: ast.Constant) -> tuple[str, int] | None:
        value = node.value
        if isinstance(value, bytes):
            return "byte strings (b'...') are not allowed; use plain text", self.column(node)
        if isinstance(value, complex):
            return "imaginary numbers are not allowed", self.column(node)
        if value is Ellipsis:
            return "'...' is not allowed", self.column(node)
        return None

    def attribute_problem(self, node: ast.Attribute) -> tuple[str, int] | None:
        if node.attr.startswith("_"):
            return (
                f"names starting with '_' are not allowed ('.{node.attr}')",
                self.dot_column(node),
            )
        if not isinstance(node.value, ast.Name | ast.Attribute):
            return (
                f"'.{node.attr}' can only follow a field name (like customer.name), not a value",
                self.dot_column(node),
            )
        return None

    def call_problem(self, node: ast.Call) -> tuple[str, int] | None:
        func = node.func
        if isinstance(func, ast.Attribute):
            message = f"method calls like {ast.unparse(func)}() are not allowed"
            if func.attr in FUNCTIONS:
                message += f"; write {func.attr}({ast.unparse(func.value)}, ...)".replace(
                    ", ...)", ")" if not node.args else ", ...)"
                )
            else:
                message += f"; functions: {_function_list()}"
            return message, self.column(node)
        if not isinstance(func, ast.Name):
            return "only functions can be called, by name, e.g. sum(lines.amount)", self.column(
                node
            )
        name = func.id
        if name not in FUNCTIONS:
            message = f"function '{name}' is not available"
            close = difflib.get_close_matches(name, FUNCTIONS, n=1)
            if close:
                message += f" (did you mean '{close[0]}'?)"
            return message + f"; functions: {_function_list()}", self.column(node)
        for keyword in node.keywords:
            if keyword.arg is None:
                return "'**' unpacking is not allowed", self.column(keyword)
            return (
                f"keyword arguments like '{keyword.arg}=' are not allowed; pass values "
                f"by position, e.g. round(amount, 2)",
                self.column(keyword),
            )
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            return None  # the Starred node reports itself
        low, high = ARITY[name]
        given = len(node.args)
        if given < low or (high is not None and given > high):
            if high is None:
                wanted = f"at least {low}"
            elif low == high:
                wanted = f"{low}"
            else:
                wanted = f"{low} to {high}"
            plural = "" if wanted.endswith(" 1") or wanted == "1" else "s"
            return (f"{name}() takes {wanted} argument{plural}, got {given}", self.column(node))
        return None

    # compilation to closures -------------------------------------------------------

    def visit(self, node: ast.expr) -> _Const | Evaluator:
        method = getattr(self, "visit_" + type(node).__name__)
        return method(node)

    def visit_Constant(self, node: ast.Constant) -> _Const:
        value = node.value
        if isinstance(value, float):  # 0.1 means the decimal 0.1, not the nearest binary float
            segment = ast.get_source_segment(self.text, node) or repr(value)
            value = Decimal(segment.replace("_", ""))
        return _Const(value)

    def _record(self, node: ast.Name, path: tuple[str, ...]) -> None:
        self.names.add(node.id)
        self.paths.add(path)
        self.name_columns.setdefault(node.id, self.column(node))

    def visit_Name(self, node: ast.Name) -> _Const | Evaluator:
        key = node.id
        if key in LITERAL_ALIASES:
            return _Const(LITERAL_ALIASES[key])
        self._record(node, (key,))

        def name(values: Mapping[str, Any], now: datetime | None) -> Any:
            return values.get(key)

        return name

    def visit_Attribute(self, node: ast.Attribute) -> _Const | Evaluator:
        attrs: list[str] = []
        base: ast.expr = node
        while isinstance(base, ast.Attribute):
            attrs.append(base.attr)
            base = base.value
        assert isinstance(base, ast.Name)  # guaranteed by the whitelist
        attrs.reverse()
        key = base.id
        get_attr = v.get_attr
        if key in LITERAL_ALIASES:
            value = LITERAL_ALIASES[key]
            for attr in attrs:
                value = get_attr(value, attr)
            return _Const(value)
        self._record(base, (key, *attrs))
        if len(attrs) == 1:
            attr = attrs[0]

            def attribute(values: Mapping[str, Any], now: datetime | None) -> Any:
                return get_attr(values.get(key), attr)

            return attribute
        chain = tuple(attrs)

        def attribute_chain(values: Mapping[str, Any], now: datetime | None) -> Any:
            obj = values.get(key)
            for attr in chain:
                obj = get_attr(obj, attr)
            return obj

        return attribute_chain

    def visit_BinOp(self, node: ast.BinOp) -> _Const | Evaluator:
        op = _BINARY[type(node.op)]
        return self._binary(op, self.visit(node.left), self.visit(node.right))

    @staticmethod
    def _binary(
        op: Callable[[Any, Any], Any], left: _Const | Evaluator, right: _Const | Evaluator
    ) -> _Const | Evaluator:
        """``op(left, right)`` with constants folded or baked into the closure."""
        if isinstance(left, _Const) and isinstance(right, _Const):
            return _Const(op(left.value, right.value))
        if isinstance(right, _Const):
            constant = right.value

            def with_right_constant(values: Mapping[str, Any], now: datetime | None) -> Any:
                return op(left(values, now), constant)

            return with_right_constant
        if isinstance(left, _Const):
            constant = left.value

            def with_left_constant(values: Mapping[str, Any], now: datetime | None) -> Any:
                return op(constant, right(values, now))

            return with_left_constant

        def binary(values: Mapping[str, Any], now: datetime | None) -> Any:
            return op(left(values, now), right(values, now))

        return binary

    def visit_UnaryOp(self, node: ast.UnaryOp) -> _Const | Evaluator:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            if isinstance(operand, _Const):
                return _Const(not operand.value)

            def negation(values: Mapping[str, Any], now: datetime | None) -> bool:
                return not operand(values, now)

            return negation
        op = v.neg if isinstance(node.op, ast.USub) else v.pos
        if isinstance(operand, _Const):
            return _Const(op(operand.value))

        def unary(values: Mapping[str, Any], now: datetime | None) -> Any:
            return op(operand(values, now))

        return unary

    def visit_BoolOp(self, node: ast.BoolOp) -> _Const | Evaluator:
        is_and = isinstance(node.op, ast.And)
        parts = [_as_evaluator(self.visit(value)) for value in node.values]
        if len(parts) == 2:  # the usual case, without the loop
            first, second = parts
            if is_and:

                def both(values: Mapping[str, Any], now: datetime | None) -> Any:
                    result = first(values, now)
                    return second(values, now) if result else result

                return both

            def either(values: Mapping[str, Any], now: datetime | None) -> Any:
                result = first(values, now)
                return result if result else second(values, now)

            return either
        if is_and:

            def all_of(values: Mapping[str, Any], now: datetime | None) -> Any:
                result = None
                for part in parts:
                    result = part(values, now)
                    if not result:
                        return result
                return result

            return all_of

        def any_of(values: Mapping[str, Any], now: datetime | None) -> Any:
            result = None
            for part in parts:
                result = part(values, now)
                if result:
                    return result
            return result

        return any_of

    def visit_Compare(self, node: ast.Compare) -> _Const | Evaluator:
        ops = [_COMPARE[type(op)] for op in node.ops]
        operands = [self.visit(node.left), *(self.visit(c) for c in node.comparators)]
        if len(ops) == 1:
            return self._binary(ops[0], operands[0], operands[1])
        first = _as_evaluator(operands[0])
        steps = [
            (op, _as_evaluator(operand)) for op, operand in zip(ops, operands[1:], strict=True)
        ]

        def chain(values: Mapping[str, Any], now: datetime | None) -> Any:
            left = first(values, now)
            result: Any = True
            for op, operand in steps:
                right = operand(values, now)
                result = op(left, right)
                if not result:
                    return result
                left = right
            return result

        return chain

    def visit_IfExp(self, node: ast.IfExp) -> _Const | Evaluator:
        test = self.visit(node.test)
        body = self.visit(node.body)
        orelse = self.visit(node.orelse)
        if isinstance(test, _Const):
            return body if test.value else orelse
        when_true, when_false = _as_evaluator(body), _as_evaluator(orelse)

        def conditional(values: Mapping[str, Any], now: datetime | None) -> Any:
            return when_true(values, now) if test(values, now) else when_false(values, now)

        return conditional

    def visit_Call(self, node: ast.Call) -> _Const | Evaluator:
        name = node.func.id  # type: ignore[attr-defined]
        function = FUNCTIONS[name]
        if name in CLOCK_FUNCTIONS:

            def clock_call(values: Mapping[str, Any], now: datetime | None) -> Any:
                return function(resolve_clock(now))

            return clock_call
        args = [self.visit(arg) for arg in node.args]
        if all(isinstance(arg, _Const) for arg in args):
            return _Const(_safe_call(function, [arg.value for arg in args]))  # type: ignore[union-attr]
        evaluators = [_as_evaluator(arg) for arg in args]
        errors = v.DATA_ERRORS
        if len(evaluators) == 1:
            only = evaluators[0]

            def call_one(values: Mapping[str, Any], now: datetime | None) -> Any:
                try:
                    return function(only(values, now))
                except errors:
                    return None

            return call_one

        def call(values: Mapping[str, Any], now: datetime | None) -> Any:
            try:
                return function(*[arg(values, now) for arg in evaluators])
            except errors:
                return None

        return call

    def _sequence(self, node: ast.List | ast.Tuple, kind: type) -> _Const | Evaluator:
        items = [self.visit(element) for element in node.elts]
        if all(isinstance(item, _Const) for item in items):
            return _Const(kind(item.value for item in items))  # type: ignore[union-attr]
        evaluators = [_as_evaluator(item) for item in items]

        def sequence(values: Mapping[str, Any], now: datetime | None) -> Any:
            return kind([item(values, now) for item in evaluators])

        return sequence

    def visit_List(self, node: ast.List) -> _Const | Evaluator:
        return self._sequence(node, list)

    def visit_Tuple(self, node: ast.Tuple) -> _Const | Evaluator:
        return self._sequence(node, tuple)
