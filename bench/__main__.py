"""Run every benchmark: ``python -m bench [--database-url URL]``.

Each prints its table and writes ``bench/results/<name>.json``; a summary
in Markdown goes to ``bench/results/SUMMARY.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys

from bench import (
    bench_api,
    bench_boot,
    bench_demo,
    bench_import,
    bench_records,
    bench_scale,
    bench_team_scope,
)
from bench.common import RESULTS_DIR, machine


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--database-url", action="append",
                        help="run the database benchmarks here too (repeatable); "
                             "SQLite in a temporary file always runs")
    parser.add_argument("--count", type=int, default=2000, help="records for the bulk benchmarks")
    parser.add_argument("--import-rows", type=int, default=100_000,
                        help="rows of the import benchmark's file")
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

    with contextlib.redirect_stdout(Tee()):
        print("# VisionCRM benchmarks\n")
        print("Machine: " + ", ".join(f"{k} {v}" for k, v in
                                      machine(args.database_url or []).items()))
        bench_boot.run()
        bench_records.run(None, args.count)
        for url in args.database_url or []:
            bench_records.run(url, args.count)
        bench_api.run(None)
        for url in args.database_url or []:
            bench_api.run(url)
        bench_team_scope.run(None)
        for url in args.database_url or []:
            bench_team_scope.run(url)
        bench_import.run(None, args.import_rows)
        for url in args.database_url or []:
            bench_import.run(url, args.import_rows)
        bench_demo.run(None, args.demo_customers)
        for url in args.database_url or []:
            bench_demo.run(url, args.demo_customers)
        sizes = bench_scale.parse_sizes(args.scale)
        if any(s <= 100_000 for s in sizes):
            bench_scale.run(None, tuple(s for s in sizes if s <= 100_000), args.scale_samples)
        for url in args.database_url or []:
            bench_scale.run(url, sizes, args.scale_samples)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "SUMMARY.md").write_text(out.getvalue(), encoding="utf-8")


if __name__ == "__main__":
    main()
