"""Run every benchmark: ``python -m bench [--database-url URL]``.

Each prints its table and writes ``bench/results/<name>.json``; a summary
in Markdown goes to ``bench/results/SUMMARY.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys

from bench import bench_boot, bench_records
from bench.common import RESULTS_DIR, machine


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--database-url", action="append",
                        help="run the database benchmarks here too (repeatable); "
                             "SQLite in a temporary file always runs")
    parser.add_argument("--count", type=int, default=2000, help="records for the bulk benchmarks")
    args = parser.parse_args()
    out = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, text: str) -> int:
            sys.__stdout__.write(text)
            return out.write(text)

    with contextlib.redirect_stdout(Tee()):
        print("# VisionCRM benchmarks\n")
        print("Machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()))
        bench_boot.run()
        bench_records.run(None, args.count)
        for url in args.database_url or []:
            bench_records.run(url, args.count)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "SUMMARY.md").write_text(out.getvalue(), encoding="utf-8")


if __name__ == "__main__":
    main()
