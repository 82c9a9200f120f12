"""Opportunities at scale (10k, 100k, 1M) for the scale benchmarks, built once and cached.

The core pack's demo generator (``packs.core.demo_generator``) writes every
record through the record and workflow services — validation, numbering,
audit, transitions — at about 60 records/s on PostgreSQL and 200 on SQLite
on the benchmark machine (``bench_demo``): a million opportunities would
take hours.  So the rows here are written in bulk — SQLAlchemy Core
``executemany`` on SQLite, ``COPY`` on PostgreSQL (a million opportunities in
about five minutes on a loaded two-core machine) — into the site's own
tables, compiled from the core pack: the same
columns, valid values for every required field (a customer for every
opportunity, unique numbers with the sequence counter moved past them,
stage probabilities, lost reasons for lost deals, stored computed values)
and realistic spreads — a few dozen users in three teams, some selling far
more than others, stages weighted like a real funnel, two years of
creation dates, close dates after them, and a stage-history row for every
move along the way.  No audit rows are written: nothing benchmarked reads
them.

Cached per size and definitions (the hash of the compiled core pack): a
SQLite file ``bench/.cache/scale_<size>_<hash>.db`` (ignored by git with
every ``*.db``), or a PostgreSQL schema ``bench_scale_<size>_<hash>`` in the
given database.  A data set is built under a temporary name and renamed
when complete, so an interrupted build is never taken for a finished one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, func, insert, select, text

from engine.metadata.loader import load_registry
from engine.services.records.sequences import next_numbers
from engine.site import Site
from engine.storage.database import write_transaction
from engine.storage.migration.executor import apply_migration
from tests.support import write_site

CACHE_DIR = Path(__file__).parent / ".cache"
#: "Today" of every data set, so stale marks and ages are the same on each run.
TODAY = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
#: Passwords of the two users the web benchmarks log in as.
PASSWORD = "bench-scale-password"
OWNER_LOGIN = "boss"
SALES_LOGIN = "sales.east.1"
TEAMS = ("east", "south", "north")
SALES_PER_TEAM = 10
#: A funnel: where the opportunities are now (share of all of them).
STAGE_SHARES = {"initial": 0.20, "needs": 0.18, "proposal": 0.15, "negotiation": 0.10,
                "won": 0.20, "lost": 0.17}
#: The moves that lead to each stage from the first one.
PATHS = {
    "initial": [],
    "needs": [("confirm_needs", "initial", "needs")],
    "proposal": [("confirm_needs", "initial", "needs"), ("propose", "needs", "proposal")],
    "negotiation": [("propose", "initial", "proposal"), ("negotiate", "proposal", "negotiation")],
    "won": [("confirm_needs", "initial", "needs"), ("propose", "needs", "proposal"),
            ("negotiate", "proposal", "negotiation"), ("win", "negotiation", "won")],
    "lost": [("confirm_needs", "initial", "needs"), ("lose", "needs", "lost")],
}
LOST_REASONS = ("price", "competitor", "no_budget", "no_decision", "timing", "requirements")
REGIONS = ("上海", "北京", "广州", "深圳", "杭州", "南京", "成都", "武汉")
CHUNK = 10_000


def definitions_hash() -> str:
    return load_registry(["core"]).definitions_hash


def _schema_name(size: int, digest: str) -> str:
    return f"bench_scale_{size}_{digest[:10]}"


def _with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@contextlib.contextmanager
def scale_site(database_url: str | None, size: int, tmp: Path) -> Iterator[Site]:
    """An opened core site over the cached data set of ``size`` opportunities (built if new)."""
    digest = definitions_hash()
    if not database_url:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        final = CACHE_DIR / f"scale_{size}_{digest[:10]}.db"
        if not final.exists():
            building = final.with_suffix(".building.db")
            building.unlink(missing_ok=True)
            _build(f"sqlite:///{building}", size, tmp / "build")
            building.rename(final)
        url = f"sqlite:///{final}"
    else:
        schema = _schema_name(size, digest)
        admin = create_engine(database_url)
        try:
            with admin.begin() as conn:
                found = set(conn.execute(text(
                    "SELECT schema_name FROM information_schema.schemata "
                    "WHERE schema_name LIKE 'bench_scale_%'")).scalars())
                if schema + "_building" in found:
                    conn.execute(text(f'DROP SCHEMA "{schema}_building" CASCADE'))
                if schema not in found:
                    conn.execute(text(f'CREATE SCHEMA "{schema}_building"'))
            if schema not in found:
                _build(_with_schema(database_url, f"{schema}_building"), size, tmp / "build")
                with admin.begin() as conn:
                    conn.execute(text(f'ALTER SCHEMA "{schema}_building" RENAME TO "{schema}"'))
        finally:
            admin.dispose()
        url = _with_schema(database_url, schema)
    from engine.context import FixedClock

    root = write_site(tmp / "site", url, ["core"])
    site = Site.open(root, clock=FixedClock(TODAY))
    try:
        yield site
    finally:
        site.close()


def _build(url: str, size: int, tmp: Path) -> None:
    start = time.perf_counter()
    print(f"\nBuilding {size:,} opportunities at {url.split('?')[0]} (cached for later runs)",
          file=sys.stderr)
    site = Site.open(write_site(tmp, url, ["core"]))
    try:
        apply_migration(site.engine, site.registry, site.schema, applied_by="bench")
        owners = _users(site)
        rng = random.Random(size)
        customers = _customers(site, rng, owners, max(100, size // 10))
        _opportunities(site, rng, owners, customers, size)
        with site.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
            else:
                conn.execute(text("ANALYZE"))
                conn.commit()
    finally:
        site.close()
    print(f"  built in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def _users(site: Site) -> list[tuple[int, float]]:
    """The company: an owner, a manager and ten salespeople per team; (user id, weight) of sellers."""
    users = site.users
    users.create(OWNER_LOGIN, password=PASSWORD, display_name="Boss", roles=["owner"])
    sellers = []
    rng = random.Random(7)
    for team in TEAMS:
        users.create(f"manager.{team}", password=None, roles=["manager"])
        users.teams.create(team, manager=f"manager.{team}")
        for n in range(1, SALES_PER_TEAM + 1):
            login = f"sales.{team}.{n}"
            users.create(login, password=PASSWORD if login == SALES_LOGIN else None,
                         display_name=f"Sales {team} {n}", roles=["sales"])
            users.teams.add_member(team, login)
            # a few sell far more than the rest
            sellers.append((users.get(login)["id"], rng.paretovariate(1.5)))
    return sellers


def _pick_owner(rng: random.Random, owners: list[tuple[int, float]]) -> int:
    return rng.choices([o for o, _ in owners], weights=[w for _, w in owners])[0]


def _copy(conn, table, rows: list[dict]) -> None:
    """PostgreSQL's COPY: several times faster than INSERT for a million rows."""
    from psycopg import sql

    names = list(rows[0])
    types = [table.c[n].type for n in names]
    binds = [t.bind_processor(conn.dialect) if hasattr(t, "bind_processor") else None
             for t in types]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(n) for n in names))
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([b(row[n]) if b else row[n] for n, b in zip(names, binds, strict=True)])


def _bulk(conn, table, rows: list[dict]) -> None:
    if conn.dialect.name == "postgresql":
        _copy(conn, table, rows)
    else:
        conn.execute(insert(table), rows)


def _insert_chunks(site: Site, table, rows_of, count: int, label: str) -> None:
    done = 0
    while done < count:
        batch = rows_of(done, min(count, done + CHUNK))
        with write_transaction(site.engine) as conn:
            _bulk(conn, table, batch)
        done = min(count, done + CHUNK)
        print(f"  {label}: {done:,}/{count:,}", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def _customers(site: Site, rng: random.Random, owners: list[tuple[int, float]],
               count: int) -> list[tuple[int, int]]:
    """``count`` customers; (id, owner) of each."""
    table = site.schema.table("customer")
    base = TODAY - dt.timedelta(days=900)
    with write_transaction(site.engine) as conn:
        codes = next_numbers(conn, site.schema.system("crm_sequence"), "customer.code",
                             site.registry.entities["customer"].fields["code"].sequence_pattern,
                             TODAY.date(), count)

    def rows(lo: int, hi: int) -> list[dict]:
        batch = []
        for i in range(lo, hi):
            at = base + dt.timedelta(minutes=rng.randrange(0, 900 * 24 * 60))
            batch.append({
                "created_at": at, "updated_at": at, "version": 1, "archived": False,
                "owner": _pick_owner(rng, owners), "code": codes[i],
                "name": f"Customer {i:07d} Co., Ltd.", "is_company": True,
                "kind": rng.choice(("prospect", "client", "client", "partner")),
                "source": rng.choice(("referral", "visit", "phone", "web", "campaign")),
                "phone": f"+86 21 {5000_0000 + i}", "email": None,
                "region": rng.choice(REGIONS), "industry": None,
                "value_tier": rng.choice("abcd"), "vip": rng.random() < 0.05,
                "credit_rating": None, "blacklisted": False,
            })
        return batch

    _insert_chunks(site, table, rows, count, "customers")
    with site.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table.c.id, table.c.owner)
                                               .order_by(table.c.id))]


def _opportunities(site: Site, rng: random.Random, owners: list[tuple[int, float]],
                   customers: list[tuple[int, int]], count: int) -> None:
    table = site.schema.table("opportunity")
    history = site.schema.system("crm_stage_history")
    workflow = site.registry.workflows["opportunity_sales"]
    probability = {k: s.probability for k, s in workflow.pipeline(workflow.default_pipeline).stages.items()}
    stages = list(STAGE_SHARES)
    shares = list(STAGE_SHARES.values())
    pattern = site.registry.entities["opportunity"].fields["number"].sequence_pattern
    first = TODAY - dt.timedelta(days=730)
    plan = []  # (created_at, stage): numbered per year, in creation order
    for _ in range(count):
        plan.append((first + dt.timedelta(seconds=rng.randrange(0, 730 * 86400)),
                     rng.choices(stages, shares)[0]))
    plan.sort()
    numbers: list[str] = []
    with write_transaction(site.engine) as conn:
        sequences = site.schema.system("crm_sequence")
        for year in sorted({at.year for at, _ in plan}):
            on = dt.date(year, 1, 1)
            numbers += next_numbers(conn, sequences, "opportunity.number", pattern, on,
                                    sum(1 for at, _ in plan if at.year == year))
    moves: list[dict] = []

    def rows(lo: int, hi: int) -> list[dict]:
        batch = []
        for i in range(lo, hi):
            created, stage = plan[i]
            customer, customer_owner = customers[rng.randrange(len(customers))]
            owner = customer_owner if rng.random() < 0.9 else _pick_owner(rng, owners)
            amount = Decimal(int(rng.lognormvariate(11, 1.0)) // 100 * 100 + 1000)
            chance = probability.get(stage) or (100 if stage == "won" else 0)
            moved = created
            steps = PATHS[stage]
            for transition, from_stage, to_stage in steps:
                stay = dt.timedelta(hours=rng.randrange(12, 24 * 30))
                if moved + stay >= TODAY:
                    stay = (TODAY - moved) / 2
                moves.append({"entity": "opportunity", "record_id": i + 1,
                              "workflow": workflow.key, "pipeline": "default",
                              "transition": transition, "from_stage": from_stage,
                              "to_stage": to_stage, "actor_id": owner,
                              "at": moved + stay, "seconds_in_previous": int(stay.total_seconds())})
                moved += stay
            batch.append({
                "id": i + 1, "created_at": created, "updated_at": moved, "created_by": owner,
                "updated_by": owner, "owner": owner, "version": 1 + len(steps),
                "archived": False, "number": numbers[i],
                "name": f"Deal {i:07d} — {rng.choice(('ERP', 'CRM', 'MES', 'Fit-out', 'Supply'))}",
                "customer": customer, "amount": amount, "probability": chance,
                "weighted_amount": (amount * chance / 100).quantize(Decimal("0.01")),
                "expected_close": (created + dt.timedelta(days=rng.randrange(15, 180))).date(),
                "lost_reason": rng.choice(LOST_REASONS) if stage == "lost" else None,
                "lost_note": None, "lines_total": Decimal(0), "stage": stage,
            })
        return batch

    def with_moves(lo: int, hi: int) -> list[dict]:
        batch = rows(lo, hi)
        if moves:
            with write_transaction(site.engine) as conn:
                _bulk(conn, history, moves)
            moves.clear()
        return batch

    _insert_chunks(site, table, with_moves, count, "opportunities")
    # the history of the last chunk, and ids handed out from now on after ours
    with write_transaction(site.engine) as conn:
        if moves:
            _bulk(conn, history, moves)
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.setval(func.pg_get_serial_sequence(table.name, "id"),
                                            count)))
