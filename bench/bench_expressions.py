"""Evaluations per second of compiled expressions against plain Python lambdas.

Run standalone: ``/work/venv/bin/python bench/bench_expressions.py``. The
lambdas do the same work on the same Decimals, so the ratio shows what the
safety (null propagation, coercion, the whitelist's closures) costs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.expressions import compile_expression  # noqa: E402

N = 100_000

RECORD: dict[str, Any] = {
    "amount": Decimal("12500.00"),
    "probability": 40,
    "stage": "signed",
    "kind": "company",
    "lines": [{"amount": Decimal("100.50")}, {"amount": Decimal("20")}, {"amount": 3}],
}

CASES: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("amount * probability / 100", lambda r: r["amount"] * r["probability"] / 100),
    ('stage == "signed" and amount > 0', lambda r: r["stage"] == "signed" and r["amount"] > 0),
    ("kind == 'company'", lambda r: r["kind"] == "company"),
    ("sum(lines.amount)", lambda r: sum(line["amount"] for line in r["lines"])),
    ("0 < probability <= 100", lambda r: 0 < r["probability"] <= 100),
]


def rate(function: Callable[[], Any]) -> float:
    """Best-of-three evaluations per second over N calls."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(N):
            function()
        best = min(best, time.perf_counter() - start)
    return N / best


def main() -> None:
    print(f"{N:,} evaluations per case, best of 3\n")
    print(f"{'expression':<36} {'compiled/s':>12} {'lambda/s':>12} {'ratio':>7}")
    for text, plain in CASES:
        expression = compile_expression(text)
        assert expression.evaluate(RECORD) == plain(RECORD), text
        evaluate = expression.evaluate
        compiled = rate(lambda evaluate=evaluate: evaluate(RECORD))
        baseline = rate(lambda plain=plain: plain(RECORD))
        print(f"{text:<36} {compiled:>12,.0f} {baseline:>12,.0f} {baseline / compiled:>6.1f}x")
    start = time.perf_counter()
    evaluate = compile_expression("amount * probability / 100").evaluate
    for _ in range(N):
        evaluate(RECORD)
    elapsed = time.perf_counter() - start
    print(f"\n'amount * probability / 100' x {N:,}: {elapsed:.3f} s")


if __name__ == "__main__":
    main()
