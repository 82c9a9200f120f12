"""Orchestrates the load test: set up the site, run each phase, check, report.

Phases run one after the other in the same run on the same database: first
gunicorn with the baseline number of workers (1), then with the production
number (4), during which another process migrates the site. Each phase
starts its own ``crm serve --workers N`` and ``crm worker`` processes,
runs the simulated users for a fixed time, lets the queue workers drain,
and stops them all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment

from bench.common import RESULTS_DIR, machine, scratch_database, write_result
from bench.load import checks
from bench.load.processes import migrate, redis_available, serving
from bench.load.site_setup import build_site, write_marker_overlay
from bench.load.users import Scenario, user_classes

#: The servers' logs are kept here for a look after the run (not among the results).
LOGS_DIR = Path(tempfile.gettempdir()) / "visioncrm-load-logs"
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--database-url",
                        default=os.environ.get("CRM_TEST_POSTGRES_URL", DEFAULT_DATABASE),
                        help="PostgreSQL database to run in (a scratch schema is made and "
                             "dropped); default: $CRM_TEST_POSTGRES_URL or %(default)s")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0",
                        help="Redis for the queue workers; 'none' to run them without")
    parser.add_argument("--users", type=int, default=50, help="simulated salespeople")
    parser.add_argument("--teams", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30, help="length of each phase")
    parser.add_argument("--think", type=float, nargs=2, default=(1.0, 3.0),
                        metavar=("MIN", "MAX"), help="a salesperson's pause between actions, s")
    parser.add_argument("--spawn-rate", type=float, default=10, help="users started per second")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers of the main phase")
    parser.add_argument("--baseline-workers", type=int, default=1)
    parser.add_argument("--queue-workers", type=int, default=2, help="'crm worker' processes")
    parser.add_argument("--contested", type=int, default=5,
                        help="customers the two admins edit at the same time")
    parser.add_argument("--migrate-at", type=float, default=0.3,
                        help="when the migration starts, as a fraction of the main phase; "
                             "0 for none")
    parser.add_argument("--after-migration", type=float, default=10,
                        help="seconds the users go on at least after the migration committed")
    parser.add_argument("--drain", type=float, default=20,
                        help="seconds to wait for the queue workers to deliver after a phase")
    return parser.parse_args(argv)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run_users(base: str, scenario: Scenario, args: argparse.Namespace,
              during: Any = None) -> tuple[Environment, float]:
    """The simulated users against ``base`` for ``args.seconds``; ``during`` runs meanwhile."""
    env = Environment(user_classes=user_classes(scenario), host=base)
    runner = env.create_local_runner()
    started = time.monotonic()
    runner.start(args.users + 1, spawn_rate=args.spawn_rate)
    side = gevent.spawn_later(args.seconds * args.migrate_at, during) if during else None

    def finish() -> None:
        gevent.sleep(args.seconds)
        if side is not None and not side.dead:  # the users go on until some time after the
            side.join()                          # migration committed, so writes follow it
            gevent.sleep(args.after_migration)
        runner.quit()

    gevent.spawn(finish)
    runner.greenlet.join()
    elapsed = time.monotonic() - started
    gevent.sleep(3)  # saves already sent finish and are recorded
    if side is not None:
        side.join()
    return env, elapsed


def action_figures(env: Environment, elapsed: float) -> dict[str, dict[str, Any]]:
    rows = {}
    entries = sorted(env.stats.entries.values(), key=lambda e: e.name)
    for entry in [*entries, env.stats.total]:
        if not entry.num_requests:
            continue
        rows[entry.name] = {
            "requests": entry.num_requests, "errors": entry.num_failures,
            "rps": round(entry.num_requests / elapsed, 2),
            **{f"p{q}_ms": entry.get_response_time_percentile(q / 100) for q in (50, 95, 99)},
        }
    return rows


def run_phase(site_root: Path, contested: list[int], scenario: Scenario, workers: int,
              args: argparse.Namespace, logs: Path, redis_url: str | None,
              with_migration: bool) -> tuple[dict[str, Any], list[checks.Check]]:
    phase = f"{workers} worker{'s' if workers > 1 else ''}"
    print(f"\n== {phase}: {args.users} salespeople + 2 admins for {args.seconds:.0f} s"
          + (", migration mid-run" if with_migration else ""), flush=True)
    versions_before = dict(checks.versions_now(site_root, contested))
    since = now()
    since_outbox = checks.max_outbox_id(site_root)
    migration: dict[str, Any] = {}

    def apply_migration() -> None:
        write_marker_overlay(site_root)
        migration["started"] = now()
        code, output = migrate(site_root, logs)
        migration.update(finished=now(), returncode=code, output=output)
        print(f"   migration applied by another process in "
              f"{(migration['finished'] - migration['started']).total_seconds():.1f} s "
              f"(exit {code})", flush=True)

    with serving(site_root, web_workers=workers, queue_workers=args.queue_workers,
                 redis_url=redis_url, logs=logs) as base:
        env, elapsed = run_users(base, scenario, args,
                                 apply_migration if with_migration else None)
        delivered = checks.wait_delivered(site_root, since_outbox, args.drain)
    found = checks.http_checks(scenario, phase, migration_expected=with_migration)
    found += checks.conflict_checks(scenario, site_root, versions_before, since, phase)
    found += checks.sequence_checks(site_root, phase)
    found += checks.delivery_checks(delivered, phase, logs.glob(f"worker-{workers}-*.log"))
    if with_migration:
        found += checks.migration_checks(site_root, migration["started"], migration["finished"],
                                         migration["returncode"], phase)
    figures = {
        "workers": workers, "seconds": round(elapsed, 1),
        "actions": action_figures(env, elapsed),
        "statuses": {f"{a} {s}": n for (a, s), n in sorted(scenario.statuses.items())},
        "documented_503": scenario.documented_503,
        "server_errors": scenario.server_errors[:20],
        "other_errors": scenario.other_errors[:20],
        "conflict_rounds": len(scenario.rounds),
        "outbox": delivered["by_state"],
    }
    if migration:
        figures["migration"] = {k: str(v) for k, v in migration.items() if k != "output"}
    return figures, found


def markdown(phases: list[dict[str, Any]]) -> str:
    lines = ["| action | gunicorn workers | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    actions = sorted({a for p in phases for a in p["actions"] if a != "Aggregated"})
    for action in [*actions, "Aggregated"]:
        for p in phases:
            row = p["actions"].get(action)
            if row:
                name = "**all**" if action == "Aggregated" else action
                lines.append(f"| {name} | {p['workers']} | {row['requests']} | {row['rps']} | "
                             f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['p99_ms']:.0f} | "
                             f"{row['errors']} |")
    return "\n".join(lines)


def keep_logs(logs: Path, kept: Path) -> None:
    """The servers' logs (their last 20 kB each) outlive the scratch folder, for a look after."""
    kept.mkdir(parents=True, exist_ok=True)
    for log in logs.glob("*.log"):
        text = log.read_text(encoding="utf-8", errors="replace")[-20000:]
        (kept / log.name).write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    redis_url = None if args.redis_url == "none" else args.redis_url
    if redis_url and not redis_available(redis_url):
        print(f"Redis does not answer at {redis_url}: the queue workers run without it.")
        redis_url = None
    results: dict[str, Any] = {"settings": {
        "users": args.users, "admins": 2, "teams": args.teams, "seconds": args.seconds,
        "think_s": list(args.think), "queue_workers": args.queue_workers,
        "redis": bool(redis_url), "migrate_at": args.migrate_at}}
    all_checks: list[checks.Check] = []
    phases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, \
            scratch_database(args.database_url, Path(tmp)) as url:
        if not url.startswith("postgresql"):
            raise SystemExit("the load test needs PostgreSQL (--database-url)")
        tmp_path = Path(tmp)
        logs = tmp_path / "logs"
        logs.mkdir()
        print(f"Setting up a site with {args.users} salespeople in {args.teams} teams...",
              flush=True)
        started = time.monotonic()
        site = build_site(tmp_path / "site", url, salespeople=args.users, teams=args.teams,
                          contested=args.contested)
        print(f"   ready in {time.monotonic() - started:.0f} s", flush=True)
        plan = [(args.baseline_workers, False), (args.workers, args.migrate_at > 0)]
        try:
            for workers, with_migration in plan:
                scenario = Scenario(sales_tokens=site.sales_tokens,
                                    admin_tokens=site.admin_tokens, contested=site.contested,
                                    think=tuple(args.think))
                figures, found = run_phase(site.root, site.contested, scenario, workers, args,
                                           logs, redis_url, with_migration)
                phases.append(figures)
                all_checks += found
        finally:
            keep_logs(logs, LOGS_DIR)
            print(f"Server logs: {LOGS_DIR}", flush=True)
    base, main_phase = phases[0]["actions"]["Aggregated"], phases[-1]["actions"]["Aggregated"]
    results["phases"] = phases
    results["throughput_ratio"] = round(main_phase["rps"] / base["rps"], 2) if base["rps"] else None
    results["checks"] = [{"check": n, "passed": ok, "detail": d} for n, ok, d in all_checks]
    table = markdown(phases)
    path = write_result("load", results)
    header = (f"# Load test\n\nMachine: {json.dumps(machine([args.database_url]))}\n\n"
              f"Settings: {json.dumps(results['settings'])}\n\n")
    verdicts = "\n".join(f"- {'PASS' if ok else 'FAIL'} {n}: {d}" for n, ok, d in all_checks)
    (RESULTS_DIR / "load.md").write_text(
        f"{header}{table}\n\nThroughput {phases[-1]['workers']} workers / "
        f"{phases[0]['workers']}: {results['throughput_ratio']}x\n\n{verdicts}\n",
        encoding="utf-8")
    print("\n" + table)
    print(f"\nThroughput, {phases[-1]['workers']} workers against {phases[0]['workers']}: "
          f"{results['throughput_ratio']}x  (2 CPU machines saturate early; see machine)")
    print()
    for name, ok, detail in all_checks:
        print(f"{'PASS' if ok else 'FAIL'} {name} — {detail}")
    print(f"\nWrote {path} and {RESULTS_DIR / 'load.md'}")
    if not all(ok for _, ok, _ in all_checks):
        raise SystemExit(1)
