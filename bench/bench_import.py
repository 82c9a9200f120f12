"""Import and export: the validated import against raw Core ``executemany``, same rows, same run.

A generated 20-field entity (text, numbers, dates, choices by label, a
boolean as 是/否, a reference by name, a numbering field and a computed
one) is imported from a CSV of N rows (100,000 by default) through the
importer — every row read, translated, checked by the record service and
written with its number, computed value and audit row — and the same rows,
already typed, are inserted with one SQLAlchemy Core ``executemany``.
Both are printed with their ratio, by wall clock and by CPU time, next to
the goal of 10,000 validated rows per second; ``--repeat N`` keeps the
fastest of N runs of each (the least disturbed on a shared machine).

The dry run (a check, which reads only) is timed the same way, and so is
the check as it was done before, in the same run for comparison: each
batch written and rolled back in a write transaction, stepping aside for
SQLite's waiting writers between batches (:class:`WritingCheck`).

Export: the peak memory (tracemalloc) of streaming 10% of the rows and
all of them to CSV, to show it does not grow with the number of rows.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

from sqlalchemy import delete, func, insert, select

from bench.common import print_table, scratch_database, write_result
from engine.context import Actor
from engine.services.dataio.exporting import Exporter
from engine.services.dataio.importing import Importer
from engine.site import Site
from engine.storage.database import write_transaction
from tests.support import apply_migration, write_pack, write_site

PACK = {
    "entities/account.yaml": """
        entity: account
        title_field: name
        fields:
          name: {type: string, required: true, unique: true}
    """,
    "entities/lead.yaml": """
        entity: lead
        title_field: name
        fields:
          number: {type: sequence, sequence_pattern: "L-{######}"}
          name: {type: string, required: true, max_length: 120, label: {en: Name, zh: 名称}}
          email: {type: email, label: {en: E-mail, zh: 邮箱}}
          phone: {type: phone}
          city: {type: string, max_length: 60}
          notes: {type: text}
          website: {type: url}
          amount: {type: decimal, precision: 14, scale: 2, min: 0}
          discount: {type: decimal, precision: 5, scale: 2}
          quantity: {type: integer, min: 0}
          score: {type: integer, min: 0, max: 100, default: 50}
          due: {type: date}
          met_at: {type: datetime}
          kind: {type: choice, choices: {new: {en: New, zh: 新}, hot: {en: Hot, zh: 热}, cold: {en: Cold, zh: 冷}}}
          tier: {type: choice, choices: {a: A, b: B, c: C}}
          vip: {type: boolean, default: false}
          active: {type: boolean, default: true}
          account: {type: reference, to: account, on_delete: set_null}
          total: {type: computed, returns: decimal, expression: "amount * quantity"}
          region: {type: string, max_length: 40}
    """,
}
ACCOUNTS = 50
#: Validated rows per second an import should reach on SQLite (docs/import_export.md).
GOAL = 10_000


def csv_rows(count: int) -> bytes:
    """The file a consultant would bring: labels, 是/否, dates in several forms, names."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["名称", "邮箱", "phone", "city", "notes", "website", "amount", "discount",
                     "quantity", "score", "due", "met_at", "kind", "tier", "vip", "active",
                     "account", "region"])
    for i in range(count):
        writer.writerow([
            f"Lead {i}", f"lead{i}@example.com", f"+86 21 {5550000 + i}", "Shanghai",
            "Met at the fair", "https://example.com", f"{1000 + i % 997}.50", "5.00",
            str(i % 40), str(i % 101), f"2026/{1 + i % 12}/{1 + i % 28}",
            f"2026-03-{1 + i % 28:02d} 09:30", ["新", "Hot", "cold"][i % 3], "abc"[i % 3],
            "是" if i % 2 else "否", "yes", f"Account {i % ACCOUNTS}", "East",
        ])
    return out.getvalue().encode("utf-8-sig")


def core_rows(count: int, now: dt.datetime, account_ids: list[int]) -> list[dict]:
    """The same rows, already typed, as a hand-written loader would insert them."""
    rows = []
    for i in range(count):
        amount = Decimal(f"{1000 + i % 997}.50")
        rows.append({
            "created_at": now, "updated_at": now, "version": 1, "archived": False,
            "number": f"L-{i + 1:06d}", "name": f"Lead {i}", "email": f"lead{i}@example.com",
            "phone": f"+86 21 {5550000 + i}", "city": "Shanghai", "notes": "Met at the fair",
            "website": "https://example.com", "amount": amount, "discount": Decimal("5.00"),
            "quantity": i % 40, "score": i % 101, "due": dt.date(2026, 1 + i % 12, 1 + i % 28),
            "met_at": now, "kind": ["new", "hot", "cold"][i % 3], "tier": "abc"[i % 3],
            "vip": bool(i % 2), "active": True, "account": account_ids[i % ACCOUNTS],
            "total": amount * (i % 40), "region": "East",
        })
    return rows


class _RolledBack(Exception):
    pass


class WritingCheck(Importer):
    """The check as it was: every batch written in a write transaction, rolled back, and
    the write lock left free after it for as long as the batch held it (at most 0.1 s)."""

    def _checked_batch(self, run, pending) -> None:  # noqa: ANN001 - the importer's own
        engine = self.records.engine
        began = time.monotonic()
        try:
            with write_transaction(engine) as conn:
                self._batch(conn, run, pending)
                raise _RolledBack
        except _RolledBack:
            pass
        if engine.dialect.name == "sqlite":
            time.sleep(min(0.1, time.monotonic() - began))


def _timed(repeat: int, action) -> tuple[float, float]:  # noqa: ANN001 - a callable
    """The fastest wall-clock and CPU seconds of ``repeat`` calls of ``action``."""
    wall = cpu = float("inf")
    for _ in range(max(1, repeat)):
        start, began = time.perf_counter(), time.process_time()
        action()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - began)
    return wall, cpu


def _clear(site: Site) -> None:
    table = site.schema.table("lead")
    with write_transaction(site.engine) as conn:
        conn.execute(delete(table))
        audit = site.schema.system("crm_audit")
        conn.execute(delete(audit).where(audit.c.entity == "lead"))
        sequences = site.schema.system("crm_sequence")
        conn.execute(delete(sequences).where(sequences.c.scope.like("lead.%")))


def export_peak(site: Site, actor: Actor, limit: int) -> tuple[float, float]:
    """Peak traced memory (MiB) and seconds of streaming the first ``limit`` leads to CSV."""
    exporter = Exporter(site.records)
    table = site.schema.table("lead")
    with site.engine.connect() as conn:
        bound = conn.execute(select(table.c.id).order_by(table.c.id).offset(limit - 1)
                             .limit(1)).scalar()
    from engine.storage.queries import Filter

    filters = [Filter("id", "le", bound)] if bound is not None else []

    def export() -> int:
        header, rows = exporter.rows(actor, "lead", filters=filters)
        return sum(len(chunk) for chunk in exporter.csv_chunks(header, rows))

    start = time.perf_counter()
    export()
    seconds = time.perf_counter() - start  # timed without tracemalloc, which slows Python
    tracemalloc.start()
    export()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, seconds


def run(database_url: str | None = None, count: int = 100_000, repeat: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as tmp, scratch_database(database_url, Path(tmp)) as url:
        base = Path(tmp)
        write_pack(base / "packs", "bench_import", PACK)
        root = write_site(base / "site", url, ["bench_import"], pack_paths=["../packs"])
        site = Site.open(root)
        apply_migration(site.engine, site.registry, site.schema)
        actor = Actor.system()
        site.records.create_many(actor, "account", [{"name": f"Account {i}"}
                                                    for i in range(ACCOUNTS)])
        with site.engine.connect() as conn:
            account_table = site.schema.table("account")
            account_ids = list(conn.execute(select(account_table.c.id)
                                            .order_by(account_table.c.id)).scalars())
        data = csv_rows(count)
        importer = Importer(site.records)
        table = site.schema.table("lead")

        import_s = import_cpu = float("inf")
        for attempt in range(max(1, repeat)):
            if attempt:
                _clear(site)
            start, cpu = time.perf_counter(), time.process_time()
            report = importer.run(actor, "lead", data, "leads.csv")
            import_s = min(import_s, time.perf_counter() - start)
            import_cpu = min(import_cpu, time.process_time() - cpu)
            assert report.ok and report.created == count, report.to_dict()["file_errors"] or \
                report.row_errors[:3]

        def check(checker: Importer) -> None:
            report = checker.run(actor, "lead", data, "leads.csv", dry_run=True)
            assert report.ok and report.created == count and not report.written

        dry_s, dry_cpu = _timed(repeat, lambda: check(importer))
        old_dry_s, old_dry_cpu = _timed(repeat, lambda: check(WritingCheck(site.records)))

        # Export peaks, while the rows are there.
        small_mib, small_s = export_peak(site, actor, max(1, count // 10))
        large_mib, large_s = export_peak(site, actor, count)

        core_s = core_cpu = float("inf")
        for _ in range(max(1, repeat)):
            _clear(site)
            rows = core_rows(count, dt.datetime.now(dt.UTC), account_ids)
            start, cpu = time.perf_counter(), time.process_time()
            with write_transaction(site.engine) as conn:
                conn.execute(insert(table), rows)
            core_s = min(core_s, time.perf_counter() - start)
            core_cpu = min(core_cpu, time.process_time() - cpu)
        with site.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == count
        backend = site.engine.dialect.name
        site.close()
    figures = {
        "rows": count,
        "fields": 20,
        "import_rows_per_s": count / import_s,
        "dry_run_rows_per_s": count / dry_s,
        "ratio_dry_run_to_core": dry_s / core_s,
        "writing_check_rows_per_s": count / old_dry_s,
        "ratio_writing_check_to_core": old_dry_s / core_s,
        "dry_run_rows_per_cpu_s": count / dry_cpu,
        "writing_check_rows_per_cpu_s": count / old_dry_cpu,
        "core_executemany_rows_per_s": count / core_s,
        "ratio_import_to_core": import_s / core_s,
        # CPU time of this process: steadier than the wall clock on a shared machine (on
        # SQLite it includes the database's own work; on PostgreSQL the server's is not in it).
        "import_rows_per_cpu_s": count / import_cpu,
        "core_rows_per_cpu_s": count / core_cpu,
        "ratio_import_to_core_cpu": import_cpu / core_cpu,
        "export_peak_mib": {str(max(1, count // 10)): small_mib, str(count): large_mib},
        "export_rows_per_s": {str(max(1, count // 10)): max(1, count // 10) / small_s,
                              str(count): count / large_s},
    }
    print_table(f"Import and export of a 20-field entity on {backend} ({count:,} rows)", [
        ("import (read, translate, validate, write, audit)", f"{import_s:.2f}",
         f"{count / import_s:,.0f}", f"{import_s / core_s:.2f}×"),
        ("dry run (the same checks, reading only)", f"{dry_s:.2f}", f"{count / dry_s:,.0f}",
         f"{dry_s / core_s:.2f}×"),
        ("check as before (written and rolled back per batch)", f"{old_dry_s:.2f}",
         f"{count / old_dry_s:,.0f}", f"{old_dry_s / core_s:.2f}×"),
        ("Core executemany of the typed rows", f"{core_s:.2f}", f"{count / core_s:,.0f}", "1.00×"),
    ], ("operation", "seconds", "rows/s", "ratio"))
    print(f"\nCPU time of this process: import {count / import_cpu:,.0f} rows/s, Core "
          f"{count / core_cpu:,.0f} rows/s, ratio {import_cpu / core_cpu:.2f}×; dry run "
          f"{count / dry_cpu:,.0f} rows/s, check as before {count / old_dry_cpu:,.0f} rows/s")
    if backend == "sqlite":
        verdict = {True: "met", False: "not met"}
        print(f"Goal {GOAL:,} validated rows/s: {verdict[count / import_s >= GOAL]} by the wall "
              f"clock, {verdict[count / import_cpu >= GOAL]} by CPU time")
    print_table(f"Streaming export to CSV on {backend}", [
        (f"{max(1, count // 10):,} rows", f"{small_mib:.1f}", f"{small_s:.2f}"),
        (f"{count:,} rows", f"{large_mib:.1f}", f"{large_s:.2f}"),
    ], ("export", "peak MiB (tracemalloc)", "seconds"))
    write_result(f"import_{backend}", figures)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1,
                        help="time the import and the Core insert N times, keep the fastest")
    args = parser.parse_args()
    run(args.database_url, args.count, args.repeat)


if __name__ == "__main__":
    main()
