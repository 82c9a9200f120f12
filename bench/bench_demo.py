"""The demo generator at benchmark sizes: records per second against plain creates.

``packs.core.demo_generator.generate`` builds a company of N customers
through the services (validation, numbering, audit, workflow transitions
with their stage history and actions).  Its speed is reported as records
per second and as a ratio against the record service creating simple
customers in one transaction, in the same site and run — so the figure
says what the workflows and the realistic mix cost, not how fast the
machine is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from bench.common import print_table, scratch_database, write_result
from engine.context import Actor, FixedClock
from engine.site import Site
from engine.storage.database import write_transaction
from packs.core.demo_generator import generate
from tests.support import apply_migration, write_site

TODAY = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


def run(database_url: str | None = None, size: int = 500) -> dict:
    with tempfile.TemporaryDirectory() as tmp, scratch_database(database_url, Path(tmp)) as url:
        root = write_site(Path(tmp) / "site", url, ["core"])
        site = Site.open(root, clock=FixedClock(TODAY))
        try:
            apply_migration(site.engine, site.registry, site.schema)
            baseline_count = 1000
            start = time.perf_counter()
            with write_transaction(site.engine) as conn:
                for i in range(baseline_count):
                    site.records.create(Actor.system(), "customer",
                                        {"name": f"Baseline {i}", "phone": f"+86 21 5000 {i:04d}"},
                                        conn=conn)
            baseline = baseline_count / (time.perf_counter() - start)
            # the twelve users first: hashing their passwords (Argon2, deliberately slow)
            # is a fixed cost that says nothing about writing records
            generate(site, 0, seed=1, today=TODAY)
            start = time.perf_counter()
            made = generate(site, size, seed=1, today=TODAY)
            seconds = time.perf_counter() - start
        finally:
            site.close()
    rate = made.total / seconds
    figures = {"database": "postgresql" if database_url else "sqlite", "customers": size,
               "records": made.total, "seconds": round(seconds, 2),
               "records_per_second": round(rate, 1),
               "baseline_creates_per_second": round(baseline, 1),
               "ratio_to_baseline": round(rate / baseline, 2), "counts": made.counts}
    print_table(f"Demo generator ({figures['database']}, {size} customers)", [
        ("generate (records/s)", f"{rate:.0f}", f"{made.total} records in {seconds:.1f} s"),
        ("plain customer creates (records/s)", f"{baseline:.0f}", "baseline, same run"),
        ("ratio", f"{rate / baseline:.2f}", "generator ÷ baseline"),
    ], ("measure", "value", "note"))
    write_result(f"demo_{figures['database']}", figures)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=500, help="generated customers")
    parser.add_argument("--database-url", help="PostgreSQL too (a scratch schema in it)")
    args = parser.parse_args()
    run(None, args.size)
    if args.database_url:
        run(args.database_url, args.size)


if __name__ == "__main__":
    main()
