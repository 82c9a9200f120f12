"""Record writes: the record service against hand-written SQLAlchemy Core, same table, same run.

Three comparisons on the same entity:
- single create, one transaction each: ``RecordService.create`` vs one Core ``INSERT``;
- bulk create of N records in one transaction: the service (validating,
  computing, numbering and auditing every record) vs Core ``executemany``;
- single get by id: the service vs a Core ``SELECT`` — all in one connection, and
  with a connection checked out per get, as each request of the UI or the API does
  (the service opens one per call).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert, select, update

from bench.common import print_table, scratch_database, write_result
from engine.context import Actor
from engine.site import Site
from engine.storage.database import write_transaction
from tests.support import apply_migration, write_pack, write_site

PACK = {
    "entities/deal.yaml": """
        entity: deal
        fields:
          name: {type: string, required: true, max_length: 120}
          amount: {type: decimal, precision: 14, scale: 2, min: 0}
          probability: {type: integer, min: 0, max: 100, default: 10}
          weighted: {type: computed, returns: decimal, expression: "amount * probability / 100"}
          stage: {type: choice, default: a, choices: {a: A, b: B, c: C}}
          due: {type: date}
          email: {type: email}
          done: {type: boolean, default: false}
    """
}


def payload(i: int) -> dict:
    return {"name": f"Deal {i}", "amount": Decimal(1000 + i), "probability": i % 100,
            "stage": "abc"[i % 3], "due": dt.date(2026, 1, 1) + dt.timedelta(days=i % 300),
            "email": f"buyer{i}@example.com"}


def raw_row(i: int, now: dt.datetime) -> dict:
    values = payload(i)
    values["weighted"] = values["amount"] * values["probability"] / 100
    values["done"] = False
    return {**values, "created_at": now, "updated_at": now, "version": 1, "archived": False}


def timed(func, count: int) -> float:
    start = time.perf_counter()
    func()
    return (time.perf_counter() - start) / count


def run(database_url: str | None = None, count: int = 2000) -> dict:
    with tempfile.TemporaryDirectory() as tmp, scratch_database(database_url, Path(tmp)) as url:
        base = Path(tmp)
        write_pack(base / "packs", "bench", PACK)
        root = write_site(base / "site", url, ["bench"], pack_paths=["../packs"])
        site = Site.open(root)
        apply_migration(site.engine, site.registry, site.schema)
        actor = Actor.system()
        table = site.schema.table("deal")
        now = dt.datetime.now(dt.UTC)
        singles = min(count, 500)

        def service_singles():
            for i in range(singles):
                site.records.create(actor, "deal", payload(i))

        def core_singles():
            for i in range(singles):
                with write_transaction(site.engine) as conn:
                    conn.execute(insert(table).values(**raw_row(i, now)))

        def service_bulk():
            with write_transaction(site.engine) as conn:
                for i in range(count):
                    site.records.create(actor, "deal", payload(i), conn=conn)

        def core_bulk():
            with write_transaction(site.engine) as conn:
                conn.execute(insert(table), [raw_row(i, now) for i in range(count)])

        ids = []

        def service_gets():
            for record_id in ids:
                site.records.get(actor, "deal", record_id)

        def core_gets():
            with site.engine.connect() as conn:
                for record_id in ids:
                    conn.execute(select(table).where(table.c.id == record_id)).mappings().first()

        def core_gets_each():
            """As a request does it: each get checks a connection out of the pool, then back."""
            for record_id in ids:
                with site.engine.connect() as conn:
                    conn.execute(select(table).where(table.c.id == record_id)).mappings().first()

        figures = {}
        rows = []
        for label, engine_fn, base_fn, n in (
            ("create, one per transaction", service_singles, core_singles, singles),
            (f"create {count} in one transaction", service_bulk, core_bulk, count),
        ):
            base_fn()  # warm up both paths once
            engine_fn()
            engine_s = min(timed(engine_fn, n) for _ in range(2))
            base_s = min(timed(base_fn, n) for _ in range(2))
            figures[label] = {"engine_per_record_ms": engine_s * 1000,
                              "core_per_record_ms": base_s * 1000, "ratio": engine_s / base_s,
                              "engine_records_per_s": 1 / engine_s}
            rows.append((label, f"{engine_s * 1e3:.3f}", f"{base_s * 1e3:.3f}",
                         f"{1 / engine_s:,.0f}", f"{engine_s / base_s:.2f}×"))
        with site.engine.connect() as conn:
            ids.extend(conn.execute(select(table.c.id).limit(singles)).scalars())
        engine_s = min(timed(service_gets, len(ids)) for _ in range(3))
        base_s = min(timed(core_gets, len(ids)) for _ in range(3))
        figures["get by id"] = {"engine_per_record_ms": engine_s * 1000,
                                "core_per_record_ms": base_s * 1000, "ratio": engine_s / base_s}
        rows.append(("get by id", f"{engine_s * 1e3:.3f}", f"{base_s * 1e3:.3f}",
                     f"{1 / engine_s:,.0f}", f"{engine_s / base_s:.2f}×"))
        each_s = min(timed(core_gets_each, len(ids)) for _ in range(3))
        figures["get by id, vs Core with a connection per get"] = {
            "engine_per_record_ms": engine_s * 1000, "core_per_record_ms": each_s * 1000,
            "ratio": engine_s / each_s}
        rows.append(("get by id, vs Core with a connection per get", f"{engine_s * 1e3:.3f}",
                     f"{each_s * 1e3:.3f}", f"{1 / engine_s:,.0f}", f"{engine_s / each_s:.2f}×"))
        flip = {"n": 0}

        def service_updates():
            flip["n"] += 1
            for record_id in ids:
                site.records.update(actor, "deal", record_id,
                                    {"probability": 20 + flip["n"] % 50})

        def core_updates():
            flip["n"] += 1
            for record_id in ids:
                with write_transaction(site.engine) as conn:
                    conn.execute(update(table).where(table.c.id == record_id).values(
                        probability=20 + flip["n"] % 50, version=table.c.version + 1,
                        updated_at=now))

        audit = site.schema.system("crm_audit")

        def core_audited_updates():
            """What an audited update with optimistic locking needs, by hand: read the row
            (its version and the old value), update it at that version, write the audit row."""
            flip["n"] += 1
            for record_id in ids:
                with write_transaction(site.engine) as conn:
                    old = conn.execute(select(table).where(table.c.id == record_id)
                                       ).mappings().one()
                    value = 20 + flip["n"] % 50
                    conn.execute(update(table).where(
                        table.c.id == record_id, table.c.version == old["version"]).values(
                        probability=value, version=old["version"] + 1, updated_at=now))
                    conn.execute(insert(audit).values(
                        at=now, actor_id=None, entity="deal", record_id=record_id,
                        action="update", field="probability", old_value=old["probability"],
                        new_value=value, change_id=uuid.uuid4().hex))

        engine_s = min(timed(service_updates, len(ids)) for _ in range(2))
        base_s = min(timed(core_updates, len(ids)) for _ in range(2))
        audited_s = min(timed(core_audited_updates, len(ids)) for _ in range(2))
        figures["update, one per transaction"] = {
            "engine_per_record_ms": engine_s * 1000, "core_per_record_ms": base_s * 1000,
            "ratio": engine_s / base_s}
        figures["update, one per transaction, vs read + update + audit by hand"] = {
            "engine_per_record_ms": engine_s * 1000, "core_per_record_ms": audited_s * 1000,
            "ratio": engine_s / audited_s}
        rows.append(("update, one per transaction", f"{engine_s * 1e3:.3f}",
                     f"{base_s * 1e3:.3f}", f"{1 / engine_s:,.0f}", f"{engine_s / base_s:.2f}×"))
        rows.append(("update, vs Core read + update + audit row", f"{engine_s * 1e3:.3f}",
                     f"{audited_s * 1e3:.3f}", f"{1 / engine_s:,.0f}",
                     f"{engine_s / audited_s:.2f}×"))
        backend = site.engine.dialect.name
        site.close()
    print_table(f"Record writes on {backend}", rows,
                ("operation", "service ms/record", "Core ms/record", "service records/s", "ratio"))
    write_result(f"records_{backend}", figures)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    run(args.database_url, args.count)


if __name__ == "__main__":
    main()
