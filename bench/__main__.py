"""Run every benchmark: ``python -m bench [--database-url URL]``.

Each prints its table and writes ``bench/results/<name>.json``; a summary
in Markdown goes to ``bench/results/SUMMARY.md``.

Every benchmark runs in a fresh Python process (as pyperf runs its
workers), so none inherits the heap, caches or open engines of the ones
before it: an import measured after a million-row scale run was 15–25 %
slower than the same import in a process of its own — a real ``crm import``
is such a process — while its Core baseline, measured in the same process,
moved far less.  Each benchmark still compares the engine with its baseline
inside its own process.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from typing import Any

from sqlalchemy.engine import make_url

from bench import (
    bench_api,
    bench_boot,
    bench_demo,
    bench_import,
    bench_records,
    bench_scale,
    bench_team_scope,
)
from bench.common import RESULTS_DIR, isolated, machine, print_table
from bench.goals import goal_rows


def _backend(url: str | None) -> str:
    return "sqlite" if url is None else make_url(url).get_backend_name()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--database-url", action="append",
                        help="run the database benchmarks here too (repeatable); "
                             "SQLite in a temporary file always runs")
    parser.add_argument("--count", type=int, default=2000, help="records for the bulk benchmarks")
    parser.add_argument("--import-rows", type=int, default=100_000,
                        help="rows of the import benchmark's file")
    parser.add_argument("--import-repeat", type=int, default=3,
                        help="time the import (and its Core baseline) N times and keep the "
                             "fastest of each: the least disturbed on a shared machine")
    parser.add_argument("--demo-customers", type=int, default=300,
                        help="customers of the demo generator benchmark")
    parser.add_argument("--scale", default="10000,100000",
                        help="opportunities of the scale benchmark, comma-separated (cached "
                             "between runs); sizes over 100000 run on PostgreSQL only")
    parser.add_argument("--scale-samples", type=int, default=30,
                        help="timings per measure of the scale benchmark (at most)")
    args = parser.parse_args()
    out = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, text: str) -> int:
            sys.__stdout__.write(text)
            return out.write(text)

    results: dict[tuple[str, str], Any] = {}
    urls = args.database_url or []

    def each(name: str, run: Any, *options: Any) -> None:
        """Run a database benchmark on SQLite, then on every URL given."""
        for url in (None, *urls):
            results[(name, _backend(url))] = isolated(run, url, *options)

    with contextlib.redirect_stdout(Tee()):
        print("# VisionCRM benchmarks\n")
        print("Machine: " + ", ".join(f"{k} {v}" for k, v in machine(urls).items()))
        isolated(bench_boot.run)
        each("records", bench_records.run, args.count)
        each("api", bench_api.run)
        each("team_scope", bench_team_scope.run)
        each("import", bench_import.run, args.import_rows, args.import_repeat)
        each("demo", bench_demo.run, args.demo_customers)
        sizes = bench_scale.parse_sizes(args.scale)
        if any(s <= 100_000 for s in sizes):
            results[("scale", "sqlite")] = {"by_size": isolated(
                bench_scale.run, None, tuple(s for s in sizes if s <= 100_000),
                args.scale_samples)}
        for url in urls:
            results[("scale", _backend(url))] = {"by_size": isolated(
                bench_scale.run, url, sizes, args.scale_samples)}
        print_table("Goals", goal_rows(results), ("measure", "goal", "found", "verdict"))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "SUMMARY.md").write_text(out.getvalue(), encoding="utf-8")


if __name__ == "__main__":
    main()
