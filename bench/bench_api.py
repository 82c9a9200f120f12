"""API calls through the whole WSGI app against a hand-written Flask view, same run.

The baseline is what a developer would write by hand for one table: a Flask
view that checks a bearer token with one query, reads the JSON, inserts or
selects with SQLAlchemy Core and answers JSON.  The engine's path adds
everything the metadata drives — token and actor, rights and scopes,
validation, computed fields, sequences, audit, redaction, problem+json —
and the ratio says what that costs per request.  Goal: at most 1.5×.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from flask import Flask, abort, jsonify, request
from sqlalchemy import insert, select

from bench.bench_records import PACK
from bench.common import percentiles, print_table, scratch_database, write_result
from engine.site import Site
from engine.storage.database import write_transaction
from engine.web import create_app
from tests.support import apply_migration, write_pack, write_site


def baseline_app(site: Site, token: str) -> Flask:
    """The hand-written equivalent: one table, one token, no metadata."""
    app = Flask("baseline")
    table = site.schema.table("deal")
    digest = hashlib.sha256(token.encode()).hexdigest()

    def authorised() -> None:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if hashlib.sha256(given.encode()).hexdigest() != digest:
            abort(401)

    def row_json(row) -> dict:
        return {k: (str(v) if isinstance(v, Decimal | dt.date) else v) for k, v in row.items()}

    @app.post("/deal")
    def create():
        authorised()
        data = request.get_json()
        now = dt.datetime.now(dt.UTC)
        amount = Decimal(str(data["amount"]))
        values = {"name": str(data["name"])[:120], "amount": amount,
                  "probability": int(data.get("probability", 10)),
                  "weighted": amount * int(data.get("probability", 10)) / 100,
                  "stage": data.get("stage", "a"), "done": False,
                  "created_at": now, "updated_at": now, "version": 1, "archived": False}
        with write_transaction(site.engine) as conn:
            new_id = conn.execute(insert(table).values(**values)).inserted_primary_key[0]
            row = conn.execute(select(table).where(table.c.id == new_id)).mappings().one()
        return jsonify(row_json(row)), 201

    @app.get("/deal")
    def listing():
        authorised()
        query = (select(table).where(table.c.stage == request.args.get("stage", "a"))
                 .order_by(table.c.amount.desc()).limit(int(request.args.get("limit", 50))))
        with site.engine.connect() as conn:
            rows = [row_json(r) for r in conn.execute(query).mappings()]
        return jsonify({"items": rows})

    return app


def _samples(call, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def run(database_url: str | None = None, count: int = 300) -> dict:
    with tempfile.TemporaryDirectory() as tmp, scratch_database(database_url, Path(tmp)) as url:
        base = Path(tmp)
        write_pack(base / "packs", "bench", PACK)
        root = write_site(base / "site", url, ["bench"], pack_paths=["../packs"])
        site = Site.open(root)
        apply_migration(site.engine, site.registry, site.schema)
        site.users.create("api", password="bench-password", roles=[], is_admin=True)
        token, _ = site.users.tokens.create("api", "bench")
        headers = {"Authorization": f"Bearer {token}"}
        engine_client = create_app(site).test_client()
        baseline_client = baseline_app(site, token).test_client()
        body = {"name": "Deal", "amount": "1234.50", "probability": 40, "stage": "a"}

        def engine_create():
            answer = engine_client.post("/api/v1/deal", json=body, headers=headers)
            assert answer.status_code == 201, answer.get_json()

        def baseline_create():
            assert baseline_client.post("/deal", json=body, headers=headers).status_code == 201

        def engine_list():
            answer = engine_client.get("/api/v1/deal?stage=a&sort=-amount&limit=50",
                                       headers=headers)
            assert answer.status_code == 200, answer.get_json()

        def baseline_list():
            assert baseline_client.get("/deal?stage=a&limit=50", headers=headers).status_code == 200

        figures, rows = {}, []
        for label, engine_fn, base_fn in (("API create", engine_create, baseline_create),
                                          ("API list (filter, sort, 50 rows)", engine_list,
                                           baseline_list)):
            for _ in range(20):  # warm both up
                engine_fn()
                base_fn()
            engine_p = percentiles(_samples(engine_fn, count))
            base_p = percentiles(_samples(base_fn, count))
            ratio = engine_p["p50"] / base_p["p50"]
            figures[label] = {"engine_ms": {k: v * 1000 for k, v in engine_p.items()},
                              "baseline_ms": {k: v * 1000 for k, v in base_p.items()},
                              "ratio_p50": ratio}
            rows.append((label, f"{engine_p['p50'] * 1e3:.2f}", f"{engine_p['p95'] * 1e3:.2f}",
                         f"{base_p['p50'] * 1e3:.2f}", f"{base_p['p95'] * 1e3:.2f}",
                         f"{ratio:.2f}×"))
        backend = site.engine.dialect.name
        site.close()
    print_table(f"API through the WSGI app on {backend} ({count} calls each)", rows,
                ("call", "engine p50 ms", "engine p95 ms", "hand-written p50 ms",
                 "hand-written p95 ms", "ratio (p50)"))
    write_result(f"api_{backend}", figures)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    run(args.database_url, args.count)


if __name__ == "__main__":
    main()
