"""What must hold after a phase, read back from the database (not from the answers alone).

Each check returns ``(name, passed, detail)``; run.py prints them as PASS/FAIL lines.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.load.site_setup import MARKER_DEFAULT, MARKER_FIELD
from bench.load.users import Scenario
from engine.site import Site

Check = tuple[str, bool, str]


def http_checks(scenario: Scenario, phase: str, *, migration_expected: bool) -> list[Check]:
    """No 5xx; the documented 503 (definitions changed) only in a phase with a migration."""
    errors = Counter((e["action"], e["status"]) for e in scenario.server_errors)
    return [(f"{phase}: no 5xx (other than documented 503s during the migration)",
             not scenario.server_errors and (migration_expected or not scenario.documented_503),
             f"{len(scenario.server_errors)} 5xx {dict(errors) or ''}; "
             f"{scenario.documented_503} documented 503 definitions_changed")]


def conflict_checks(scenario: Scenario, root: Path, before: dict[int, int],
                    since: dt.datetime, phase: str) -> list[Check]:
    """Each pair of concurrent saves of one version: one 200, one 409; the table and the
    audit log agree with the answers (no save lost, none counted twice)."""
    clean = [r for r in scenario.rounds if set(r["statuses"]) <= {200, 409}]
    wrong = [r for r in clean if sorted(r["statuses"]) != [200, 409]]
    checks: list[Check] = [(
        f"{phase}: every conflicting edit ends in one 200 and one 409",
        bool(clean) and not wrong,
        f"{len(clean)} rounds, {len(wrong)} not 200+409"
        + (f" (e.g. {wrong[0]})" if wrong else "")
        + f"; {len(scenario.rounds) - len(clean)} rounds with another answer (e.g. 503)")]
    saved: Counter = Counter()
    last_value: dict[int, str] = {}
    for r in scenario.rounds:
        for status, value in zip(r["statuses"], r["values"], strict=True):
            if status == 200:
                saved[r["record"]] += 1
                last_value[r["record"]] = value
    with Site.open(root) as site:
        table = site.schema.table("customer")
        audit = site.schema.system("crm_audit")
        with site.engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(
                select(table.c.id, table.c.version, table.c.notes)
                .where(table.c.id.in_(list(before))))}
            audited = dict(conn.execute(
                select(audit.c.record_id, func.count(func.distinct(audit.c.change_id)))
                .where(audit.c.entity == "customer", audit.c.action == "update",
                       audit.c.record_id.in_(list(before)), audit.c.at >= since)
                .group_by(audit.c.record_id)).all())
    lost = [rid for rid in before if rows[rid].version - before[rid] != saved[rid]]
    miscount = [rid for rid in before if audited.get(rid, 0) != saved[rid]]
    wrong_value = [rid for rid, value in last_value.items() if rows[rid].notes != value]
    checks.append((
        f"{phase}: 0 lost updates (versions, audit rows and values match the 200s)",
        not (lost or miscount or wrong_value),
        f"{sum(saved.values())} saves on {len(before)} records; version mismatch {lost}, "
        f"audit mismatch {miscount}, last value mismatch {wrong_value}"))
    return checks


def sequence_checks(root: Path, phase: str) -> list[Check]:
    checks = []
    with Site.open(root) as site, site.engine.connect() as conn:
        numbered = [(entity, name) for entity in ("customer", "opportunity")
                    for name, f in site.registry.entities[entity].fields.items()
                    if f.type == "sequence"]
        for entity, name in numbered:
            table = site.schema.table(entity)
            number = table.c[name]
            duplicates = conn.execute(
                select(number, func.count()).group_by(number).having(func.count() > 1)).all()
            missing = conn.execute(select(func.count()).select_from(table)
                                   .where(number.is_(None))).scalar()
            total = conn.execute(select(func.count()).select_from(table)).scalar()
            checks.append((f"{phase}: unique sequence numbers of {entity}.{name}",
                           not duplicates and not missing,
                           f"{total} rows, duplicates {duplicates[:5]}, without number {missing}"))
    return checks


def outbox_state(root: Path, since_id: int) -> dict[str, Any]:
    with Site.open(root) as site, site.engine.connect() as conn:
        outbox = site.schema.system("crm_outbox")
        inbox = site.schema.system("crm_notification")
        by_state = Counter({f"{c}:{s}": n for c, s, n in conn.execute(
            select(outbox.c.channel, outbox.c.status, func.count())
            .where(outbox.c.id > since_id).group_by(outbox.c.channel, outbox.c.status))})
        inbox_rows = conn.execute(
            select(inbox.c.outbox_id, func.count()).where(inbox.c.outbox_id > since_id)
            .group_by(inbox.c.outbox_id)).all()
        sent_in_app = {r.id for r in conn.execute(
            select(outbox.c.id).where(outbox.c.id > since_id, outbox.c.channel == "in_app",
                                      outbox.c.status == "sent"))}
        duplicate_keys = conn.execute(
            select(outbox.c.key).where(outbox.c.id > since_id).group_by(outbox.c.key)
            .having(func.count() > 1)).all()
    return {"by_state": dict(by_state), "inbox": dict(inbox_rows), "sent_in_app": sent_in_app,
            "duplicate_keys": len(duplicate_keys)}


def max_outbox_id(root: Path) -> int:
    with Site.open(root) as site, site.engine.connect() as conn:
        outbox = site.schema.system("crm_outbox")
        return conn.execute(select(func.coalesce(func.max(outbox.c.id), 0))).scalar()


def wait_delivered(root: Path, since_id: int, timeout: float) -> dict[str, Any]:
    """Let the queue workers drain the in-app messages of the phase (they run meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        state = outbox_state(root, since_id)
        waiting = sum(n for k, n in state["by_state"].items()
                      if k.split(":")[1] in ("pending", "sending"))
        if not waiting or time.monotonic() > deadline:
            return state
        time.sleep(1)


def delivery_checks(state: dict[str, Any], phase: str, worker_logs: Iterable[Path]
                    ) -> list[Check]:
    by_state = state["by_state"]
    stale = sum(log.read_text(encoding="utf-8", errors="replace").count("SchemaOutOfDate")
                for log in worker_logs)
    in_app = sum(n for k, n in by_state.items() if k.startswith("in_app:"))
    undelivered = {k: n for k, n in by_state.items()
                   if k.startswith("in_app:") and not k.endswith(":sent")}
    inbox = state["inbox"]
    twice = [k for k, n in inbox.items() if n != 1]
    orphan = set(inbox) - state["sent_in_app"]
    missing = state["sent_in_app"] - set(inbox)
    return [(f"{phase}: every in-app message delivered exactly once",
             in_app > 0 and not undelivered and not twice and not orphan and not missing
             and not state["duplicate_keys"],
             f"{in_app} in-app messages; not sent {undelivered}; inbox rows twice {len(twice)}, "
             f"without message {len(orphan)}, missing {len(missing)}; duplicate keys "
             f"{state['duplicate_keys']}; all states {by_state}; queue workers' jobs refused "
             f"for stale definitions: {stale}")]


def migration_checks(root: Path, started: dt.datetime, finished: dt.datetime,
                     returncode: int, phase: str) -> list[Check]:
    """No activity row written after the migration committed lacks the new field's default."""
    with Site.open(root) as site, site.engine.connect() as conn:
        table = site.schema.table("activity")
        marker = table.c[MARKER_FIELD]
        after = conn.execute(select(marker, func.count()).where(table.c.created_at > finished)
                             .group_by(marker)).all()
        during = conn.execute(select(func.count()).select_from(table).where(
            table.c.created_at.between(started, finished))).scalar()
    counts = {value: n for value, n in after}
    stale = sum(n for value, n in after if value != MARKER_DEFAULT)
    return [(f"{phase}: migration applied by another process",
             returncode == 0, f"crm migrate exited {returncode}"),
            (f"{phase}: no row written under the old definitions after the migration",
             stale == 0 and sum(counts.values()) > 0,
             f"activities created after the commit: {sum(counts.values())} "
             f"(by {MARKER_FIELD}: {counts}); created while it ran: {during}")]


def versions_now(root: Path, ids: list[int]) -> dict[int, int]:
    with Site.open(root) as site, site.engine.connect() as conn:
        table = site.schema.table("customer")
        return defaultdict(int, {r.id: r.version for r in conn.execute(
            select(table.c.id, table.c.version).where(table.c.id.in_(ids)))})
