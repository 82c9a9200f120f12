"""Reading at scale: list pages, pipeline figures, the dashboard and the board as data grows.

``python -m bench.bench_scale [--scale 10000,100000] [--database-url URL]``

On the core pack's opportunities (``bench.scale_data``: built once per size
and cached), in the same run and on the same rows:

- **list page** — filter ``stage=proposal``, sorted by the view's default
  (``expected_close``), first page of 50, no total (as the list page asks):
  ``RecordService.list`` as a salesperson (scope ``own``) and as the owner
  (scope ``all``), and the web list page ``/r/opportunity?stage=proposal``
  through the Flask test client as both, against the hand-written
  SQLAlchemy Core query returning the same rows.  The figure to read is how
  p50 grows with the data: an indexed page stays flat;
- **weighted pipeline** — ``PipelineService.weighted_pipeline`` by stage and
  by owner as the owner, against a Core ``GROUP BY`` giving the same sums;
- **won/lost by month** — ``PipelineService.win_rates`` over twelve months
  against a hand-written ``GROUP BY`` of the same counts (checked equal);
- **sales dashboard** — the core pack's ``/dashboards/sales`` page as the
  owner (funnel, weighted pipeline by owner, won/lost for six months and the
  pack's report widgets), against the three hand-written queries of its
  pipeline widgets;
- **kanban board** — ``/r/opportunity/kanban`` as both, against the Core
  query of the board's 500 cards.

The figures over many records are ``GROUP BY`` queries in the database, so
they grow with the table as the hand-written ones do; ``--aggregate-max``
(default: every size) leaves them out above a size.  The peak memory of a
streaming export at 10% and 100% of the rows is measured by ``bench_import``
and not repeated here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Select, and_, case, delete, func, select, text

from bench.common import percentiles, print_table, write_result
from bench.scale_data import OWNER_LOGIN, PASSWORD, SALES_LOGIN, scale_site
from engine.services.views.dashboards import month_starts
from engine.site import Site
from engine.storage.database import write_transaction
from engine.storage.queries import Filter, Sort
from engine.web import create_app
from tests.web_support import login

CLOSED = ("won", "lost")
#: Months of the won/lost figure measured on its own, and on the core sales dashboard.
MONTHS = 12
DASHBOARD_MONTHS = 6
LIST_STAGE = "proposal"
LIST_SORT = "expected_close"
PAGE = 50
BOARD = 500


def paired(engine: Callable[[], Any], core: Callable[[], Any], count: int,
           budget_s: float) -> tuple[list[float], list[float]]:
    """Up to ``count`` timings (seconds) of each, taken in turn so both meet the same load
    of a shared machine; fewer when ``budget_s`` runs out (at least three)."""
    engine()  # warm up: caches, compiled statements, pages in memory
    core()
    timings: tuple[list[float], list[float]] = ([], [])
    spent = 0.0
    while len(timings[0]) < count and (len(timings[0]) < 3 or spent < budget_s):
        for call, into in ((engine, timings[0]), (core, timings[1])):
            start = time.perf_counter()
            call()
            into.append(time.perf_counter() - start)
            spent += into[-1]
    return timings


def list_query(site: Site, owner_id: int | None) -> Select:
    """The hand-written list page: what the record service's query does, for this one view."""
    table = site.schema.table("opportunity")
    where = [table.c.archived.is_(False), table.c.stage == LIST_STAGE]
    if owner_id is not None:
        where.insert(0, table.c.owner == owner_id)
    return (select(table).where(*where)
            .order_by(table.c[LIST_SORT].asc().nulls_last(), table.c.id.asc()).limit(PAGE + 1))


def board_query(site: Site, owner_id: int | None) -> Select:
    table = site.schema.table("opportunity")
    where = [table.c.archived.is_(False)]
    if owner_id is not None:
        where.insert(0, table.c.owner == owner_id)
    return select(table).where(*where).order_by(table.c.id.desc()).limit(BOARD + 1)


def pipeline_query(site: Site, by: str) -> Select:
    """Open value and weighted value by stage or owner, in one GROUP BY."""
    table = site.schema.table("opportunity")
    workflow = site.registry.workflows["opportunity_sales"]
    stages = workflow.pipeline(workflow.default_pipeline).stages
    open_stages = [k for k, s in stages.items() if not s.is_closed]
    chance = func.coalesce(table.c.probability, case(
        {k: stages[k].probability or 0 for k in open_stages}, value=table.c.stage, else_=0))
    value = func.coalesce(table.c.amount, 0)
    key = table.c.stage if by == "stage" else table.c.owner
    return (select(key, func.count(), func.sum(value), func.sum(value * chance / 100))
            .where(table.c.archived.is_(False), table.c.stage.in_(open_stages)).group_by(key))


def won_lost_query(site: Site, months: int = MONTHS) -> Select:
    """Won and lost deals per month by hand: the month a deal closed is its newest move
    into won or lost (its creation when it never moved)."""
    table = site.schema.table("opportunity")
    history = site.schema.system("crm_stage_history")
    moves = (select(history.c.record_id, func.max(history.c.at).label("at"))
             .where(history.c.entity == "opportunity", history.c.to_stage.in_(CLOSED))
             .group_by(history.c.record_id).subquery())
    closed_at = func.coalesce(moves.c.at, table.c.created_at)
    starts = month_starts(site.clock.now(), site.config.timezone, months)
    month = case(*[(and_(closed_at >= s, closed_at < u), i)
                   for i, (s, u) in enumerate(zip(starts, starts[1:], strict=False))])
    rows = (select(month.label("month"), table.c.stage)
            .select_from(table.outerjoin(moves, moves.c.record_id == table.c.id))
            .where(table.c.archived.is_(False), table.c.stage.in_(CLOSED),
                   closed_at >= starts[0], closed_at < starts[-1]).subquery())
    return select(rows.c.month, rows.c.stage, func.count()).group_by(rows.c.month, rows.c.stage)


def dashboard_queries(site: Site) -> list[Select]:
    """What the sales dashboard's pipeline widgets show, written by hand: the funnel and
    the weighted pipeline by owner (one GROUP BY each) and won/lost by month."""
    return [pipeline_query(site, "stage"), pipeline_query(site, "owner"),
            won_lost_query(site, DASHBOARD_MONTHS)]


def plan(site: Site, query: Select) -> str:
    """The database's plan for ``query`` (EXPLAIN, or EXPLAIN QUERY PLAN on SQLite)."""
    compiled = query.compile(site.engine, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN " if site.engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with site.engine.connect() as conn:
        rows = conn.execute(text(prefix + str(compiled))).all()
    return "\n".join(str(r[-1]) for r in rows)


def _core(site: Site, *queries: Select) -> Callable[[], Any]:
    def call() -> list[dict]:
        with site.engine.connect() as conn:
            return [dict(r) for query in queries for r in conn.execute(query).mappings()]
    return call


def _page(client, path: str) -> Callable[[], Any]:
    def call() -> None:
        answer = client.get(path)
        assert answer.status_code == 200, answer.status_code
    return call


def _progress(size: int, label: str) -> None:
    """Where the run is, on stderr (the summary keeps to stdout)."""
    print(f"  {size:,} opportunities: {label}", file=sys.stderr, flush=True)


def _figure(engine: list[float], core: list[float]) -> dict[str, Any]:
    found: dict[str, Any] = {"engine_ms": {k: v * 1000 for k, v in percentiles(engine).items()},
                             "core_ms": {k: v * 1000 for k, v in percentiles(core).items()},
                             "samples": len(engine)}
    found["ratio_p50"] = found["engine_ms"]["p50"] / found["core_ms"]["p50"]
    return found


def measure_size(site: Site, size: int, count: int, budget_s: float,
                 aggregates: bool) -> dict[str, Any]:
    owner = site.users.actor(OWNER_LOGIN)
    seller = site.users.actor(SALES_LOGIN)
    readers = (("salesperson (own)", seller, seller.user_id, SALES_LOGIN),
               ("owner (all)", owner, None, OWNER_LOGIN))
    figures: dict[str, Any] = {}
    filters, sort = [Filter("stage", "eq", LIST_STAGE)], [Sort(LIST_SORT)]
    app = create_app(site, testing=True)
    # The site's clock stands still (stale marks stay the same run after run), so the
    # login throttle's window never passes: start each run with no attempts counted.
    with write_transaction(site.engine) as conn:
        for name in ("crm_login_guard", "crm_login_attempt"):
            conn.execute(delete(site.schema.system(name)))
    for label, actor, owner_id, login_name in readers:
        baseline = list_query(site, owner_id)
        core_rows = _core(site, baseline)()
        page = site.records.list(actor, "opportunity", filters=filters, sort=sort, limit=PAGE,
                                 with_total=False)
        assert [r["id"] for r in page.rows] == [r["id"] for r in core_rows[:PAGE]], \
            "the service and the hand-written query disagree"
        service, core = paired(lambda a=actor: site.records.list(
            a, "opportunity", filters=filters, sort=sort, limit=PAGE, with_total=False),
            _core(site, baseline), count, budget_s)
        figures[f"list · service · {label}"] = _figure(service, core)
        _progress(size, f"list · service · {label}")
        client = app.test_client()
        answer = login(client, login_name, PASSWORD)
        assert answer.status_code == 302, f"logging in as {login_name}: {answer.status_code}"
        web, core = paired(_page(client, f"/r/opportunity?stage={LIST_STAGE}"),
                           _core(site, baseline), count, budget_s)
        figures[f"list · web page · {label}"] = _figure(web, core)
        _progress(size, f"list · web page · {label}")
        figures[f"list · plan · {label}"] = plan(site, baseline)
        if aggregates:
            board, board_core = paired(_page(client, "/r/opportunity/kanban"),
                                       _core(site, board_query(site, owner_id)), count, budget_s)
            figures[f"kanban · web page · {label}"] = _figure(board, board_core)
            _progress(size, f"kanban · web page · {label}")
    if aggregates:
        for by in ("stage", "owner"):
            query = pipeline_query(site, by)
            engine_groups = site.pipeline.weighted_pipeline(owner, "opportunity", by=by)
            with site.engine.connect() as conn:
                core_counts = {k: n for k, n, _, _ in conn.execute(query)}
            assert {g.key: g.count for g in engine_groups} == core_counts, \
                "the pipeline service and the hand-written GROUP BY disagree"
            service, core = paired(lambda b=by: site.pipeline.weighted_pipeline(
                owner, "opportunity", by=b), _core(site, query), count, budget_s)
            figures[f"weighted pipeline by {by} · owner"] = _figure(service, core)
            _progress(size, f"weighted pipeline by {by}")
        starts = month_starts(site.clock.now(), site.config.timezone, MONTHS)
        periods = list(zip(starts, starts[1:], strict=False))
        rates = site.pipeline.win_rates(owner, "opportunity", periods)
        with site.engine.connect() as conn:
            by_hand = {(m, stage): n for m, stage, n in conn.execute(won_lost_query(site))}
        assert [(r.won, r.lost) for r in rates] == [
            (by_hand.get((i, "won"), 0), by_hand.get((i, "lost"), 0))
            for i in range(MONTHS)], "the win rates and the hand-written GROUP BY disagree"
        service, core = paired(lambda: site.pipeline.win_rates(owner, "opportunity", periods),
                               _core(site, won_lost_query(site)), count, budget_s)
        figures[f"won/lost by month ({MONTHS}) · owner"] = _figure(service, core)
        _progress(size, "won/lost by month")
        client = app.test_client()
        login(client, OWNER_LOGIN, PASSWORD)
        page, core = paired(_page(client, "/dashboards/sales"),
                            _core(site, *dashboard_queries(site)), count, budget_s)
        figures["sales dashboard · web page · owner (all)"] = _figure(page, core)
        _progress(size, "sales dashboard")
    return figures


def run(database_url: str | None = None, sizes: tuple[int, ...] = (10_000, 100_000),
        count: int = 30, budget_s: float = 8.0, aggregate_max: int | None = None) -> dict:
    results: dict[str, Any] = {}
    backend = "postgresql" if database_url else "sqlite"
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp, \
                scale_site(database_url, size, Path(tmp)) as site:
            results[str(size)] = measure_size(site, size, count, budget_s,
                                              aggregates=aggregate_max is None
                                              or size <= aggregate_max)
    smallest = str(min(sizes))
    rows = []
    for size, figures in results.items():
        for label, figure in figures.items():
            if not isinstance(figure, dict):
                continue
            first = results[smallest].get(label)
            growth = figure["engine_ms"]["p50"] / first["engine_ms"]["p50"] if first else None
            figure["growth_vs_smallest"] = growth
            rows.append((f"{int(size):,}", label, f"{figure['engine_ms']['p50']:.2f}",
                         f"{figure['engine_ms']['p95']:.2f}",
                         f"{figure['core_ms']['p50']:.2f}", f"{figure['ratio_p50']:.2f}×",
                         f"{growth:.2f}×" if growth is not None else "—"))
    print_table(f"Opportunities at scale on {backend}: list page, weighted pipeline, kanban",
                rows, ("records", "measure", "p50 ms", "p95 ms", "Core p50 ms",
                       "ratio to Core", f"p50 vs {int(smallest):,}"))
    largest = str(max(sizes))
    for label, text_plan in results[largest].items():
        if isinstance(text_plan, str):
            print(f"\nPlan of the {label.split(' · ')[-1]} list query at {int(largest):,}:\n")
            print("    " + text_plan.replace("\n", "\n    "))
    write_result(f"scale_{backend}", {"sizes": list(sizes), "by_size": results})
    return results


def parse_sizes(text_sizes: str) -> tuple[int, ...]:
    return tuple(int(s.replace("_", "")) for s in text_sizes.split(",") if s.strip())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL (cached schemas in it); "
                                               "default: cached SQLite files in bench/.cache")
    parser.add_argument("--scale", default="10000,100000", help="opportunities, comma-separated")
    parser.add_argument("--samples", type=int, default=30, help="timings per measure (at most)")
    parser.add_argument("--aggregate-max", type=int, default=None,
                        help="largest size the figures and the board run at (default: all)")
    args = parser.parse_args()
    run(args.database_url, parse_sizes(args.scale), args.samples,
        aggregate_max=args.aggregate_max)


if __name__ == "__main__":
    main()
