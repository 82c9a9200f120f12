"""Reading "the projects whose team I am on": a ``via`` scope through lines against ``own``.

``python -m bench.bench_team_scope [--database-url URL] [--count N]``

N projects, each with a three-member team (lines pointing at staff
records); one salesperson owns a tenth of them and is on the team of
another tenth. In the same run and on the same rows, the salesperson's
list (first page with its total) and count are timed with the scope
``own`` and with ``[own, {via: team.member}]`` (twice the rows reached,
through the lines table and the user's links), and the administrator's
(no condition at all) as the baseline.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import best_of, print_table, scratch_database, write_result
from engine.context import Actor
from engine.site import Site
from engine.storage.database import write_transaction
from tests.support import apply_migration, write_pack, write_site

PACK = {
    "entities/staff.yaml": """
        entity: staff
        fields:
          name: {type: string, required: true}
    """,
    "entities/project.yaml": """
        entity: project
        fields:
          name: {type: string, required: true, searchable: true}
          team:
            type: lines
            fields:
              member: {type: reference, to: staff, required: true}
              role: {type: string}
    """,
    "roles.yaml": """
        roles:
          own_only:
            entities:
              project: {rights: [read], scope: own}
          team_member:
            entities:
              project: {rights: [read], scope: [own, {via: team.member}]}
    """,
}


def run(database_url: str | None = None, count: int = 5000) -> dict:
    with tempfile.TemporaryDirectory() as tmp, scratch_database(database_url, Path(tmp)) as url:
        base = Path(tmp)
        write_pack(base / "packs", "bench_team", PACK)
        site = Site.open(write_site(base / "site", url, ["bench_team"], pack_paths=["../packs"]))
        apply_migration(site.engine, site.registry, site.schema)
        system = Actor.system()
        site.users.create("seller", password="bench-password-1", roles=["team_member"])
        site.users.create("solo", password="bench-password-1", roles=["own_only"])
        seller_id = site.users.get("seller")["id"]
        solo_id = site.users.get("solo")["id"]
        with write_transaction(site.engine) as conn:
            staff = [site.records.create(system, "staff", {"name": f"S{i}"}, conn=conn)["id"]
                     for i in range(30)]
            for i in range(count):
                owner = seller_id if i % 10 == 0 else solo_id if i % 10 == 5 else None
                # Staff 0 is the seller's record; they are on every tenth project's team.
                members = [staff[0] if i % 10 == 3 else staff[1 + i % 29], staff[(i + 7) % 29 + 1],
                           staff[(i + 13) % 29 + 1]]
                site.records.create(system, "project", {
                    "name": f"Project {i}", "owner": owner,
                    "team": [{"member": m, "role": "engineer"} for m in members]}, conn=conn)
        site.users.link("seller", "staff", staff[0])
        seller, solo = site.users.actor("seller"), site.users.actor("solo")
        expected = {"admin": count, "own": count // 10, "team": 2 * (count // 10)}
        assert site.records.count(system, "project") == expected["admin"]
        assert site.records.count(solo, "project") == expected["own"]
        assert site.records.count(seller, "project") == expected["team"]
        rows = []
        figures = {}
        for label, actor in (("admin (no scope)", system), ("own", solo),
                             ("own + via team.member", seller)):
            listed = best_of(lambda a=actor: site.records.list(a, "project", limit=50))
            counted = best_of(lambda a=actor: site.records.count(a, "project"))
            figures[label] = {"list_ms": listed * 1000, "count_ms": counted * 1000}
            rows.append((label, f"{listed * 1000:.2f}", f"{counted * 1000:.2f}"))
        baseline = figures["admin (no scope)"]
        for row_index, (label, _list, _count) in enumerate(rows):
            ratio_list = figures[label]["list_ms"] / baseline["list_ms"]
            ratio_count = figures[label]["count_ms"] / baseline["count_ms"]
            rows[row_index] = (*rows[row_index], f"{ratio_list:.2f}×", f"{ratio_count:.2f}×")
        dialect = site.engine.dialect.name
        print_table(f"Team scope through lines, {count} projects × 3 members ({dialect})", rows,
                    ("reader", "list 50 + total (ms)", "count (ms)", "list vs admin",
                     "count vs admin"))
        site.close()
        write_result(f"team_scope_{dialect}", {"count": count, **figures})
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_team_scope",
                                     description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    run(args.database_url, args.count)


if __name__ == "__main__":
    main()
