"""The scratch site of the load test: core pack, demo data, teams of salespeople, two admins.

Every simulated person gets their own API token, so row scopes, rights and
audit work as they do for real users; each salesperson starts with their
own customers and opportunities (their scope is ``own``). The two admins
share a set of customers nobody else touches, so every change of those
records in the run is one of theirs and can be counted in the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from engine.cli.site_commands import create_site
from engine.demo import load_demo
from engine.site import Site
from engine.storage.migration.executor import apply_migration

#: The field the mid-run migration adds (see :func:`write_marker_overlay`).
MARKER_FIELD = "load_marker"
MARKER_DEFAULT = "v2"


@dataclass
class LoadSite:
    root: Path
    database_url: str
    sales_tokens: list[str] = field(default_factory=list)
    admin_tokens: list[str] = field(default_factory=list)
    #: Customers only the two admins edit, for the optimistic-locking check.
    contested: list[int] = field(default_factory=list)


def build_site(root: Path, database_url: str, *, salespeople: int, teams: int,
               contested: int) -> LoadSite:
    """Create, migrate and fill the site; returns the tokens the simulated users log in with."""
    create_site(root, name="Load test", packs=["core"], database_url=database_url, locale="en")
    made = LoadSite(root=root, database_url=database_url)
    with Site.open(root) as site:
        apply_migration(site.engine, site.registry, site.schema, applied_by="load-test")
        for n in (1, 2):
            site.users.create(f"load.admin{n}", password=None, roles=["admin"], is_admin=True)
            made.admin_tokens.append(site.users.tokens.create(f"load.admin{n}", "load test")[0])
        admin = site.users.actor("load.admin1")
        load_demo(site.records, admin, [Path(p.path) for p in site.registry.packs.values()],
                  workflows=site.workflows)
        for t in range(teams):
            site.users.teams.create(f"load_team{t}", label=f"Load team {t}")
        close = (dt.date.today() + dt.timedelta(days=60)).isoformat()
        for s in range(salespeople):
            login = f"load.sales{s:03d}"
            site.users.create(login, password=None, roles=["sales"])
            site.users.teams.add_member(f"load_team{s % teams}", login)
            made.sales_tokens.append(site.users.tokens.create(login, "load test")[0])
            actor = site.users.actor(login)
            for c in range(2):
                customer = site.records.create(actor, "customer",
                                               {"name": f"Customer {s}-{c}", "is_company": True})
                for o in range(2):
                    deal = site.records.create(actor, "opportunity", {
                        "name": f"Deal {s}-{c}-{o}", "customer": customer["id"],
                        "amount": "25000.00", "expected_close": close})
                    # some deals start late in the process, so that the run wins some
                    # (a win notifies the owner: outbox messages for the queue workers)
                    for stage in ("needs", "proposal", "negotiation")[:c + 2 * o]:
                        site.workflows.transition(actor, "opportunity", deal["id"], stage, {})
        for c in range(contested):
            made.contested.append(
                site.records.create(admin, "customer", {"name": f"Shared account {c}",
                                                        "is_company": True})["id"])
    return made


def write_marker_overlay(root: Path) -> Path:
    """The definition change applied mid-run: a new activity field with a default."""
    path = root / "custom" / f"{MARKER_FIELD}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        "extend: activity\n"
        "fields:\n"
        f"  {MARKER_FIELD}:\n"
        "    type: string\n"
        "    max_length: 20\n"
        f"    default: \"{MARKER_DEFAULT}\"\n"
        "    label: {en: Load-test marker, zh: 负载测试标记}\n",
        encoding="utf-8")
    return path

