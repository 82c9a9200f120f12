"""The generated demo company: deterministic, valid, in every stage, printed logins."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.context import Actor, FixedClock
from engine.metadata.values import to_json
from packs.core.demo_generator import DEMO_PASSWORD, generate
from tests.support import open_migrated, write_site

TODAY = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
#: Fields that differ between two databases for reasons other than the data.
LOCAL = {"created_by", "updated_by"}


def _site(root, db_url):
    return open_migrated(write_site(root, db_url, ["core"]), clock=FixedClock(TODAY))


def _snapshot(site) -> dict[str, list[dict]]:
    system = Actor.system()
    found = {}
    for entity in sorted(site.registry.entities):
        rows = []
        offset = 0
        while True:
            page = site.records.list(system, entity, limit=1000, offset=offset,
                                     with_total=False, include_archived=True,
                                     with_children=True)
            rows += [to_json({k: v for k, v in r.items() if k not in LOCAL}) for r in page.rows]
            if not page.has_more:
                break
            offset += 1000
        found[entity] = rows
    return found


@pytest.fixture
def generated(tmp_path, db_url):
    site = _site(tmp_path / "a", db_url)
    calls = []
    made = generate(site, 40, seed=7, today=TODAY,
                    progress=lambda done, total: calls.append((done, total)))
    yield site, made, calls
    site.close()


def test_the_same_seed_gives_the_same_company(generated, tmp_path):
    """A second site (on SQLite, whichever database the first is on) gets the same records."""
    site, made, calls = generated
    assert calls[0] == (1, 40) and calls[-1] == (40, 40) and len(calls) == 40
    again = _site(tmp_path / "b", f"sqlite:///{tmp_path / 'b.db'}")
    try:
        same = generate(again, 40, seed=7, today=TODAY)
        assert same.users == made.users and same.counts == made.counts
        assert _snapshot(again) == _snapshot(site)
    finally:
        again.close()
    other = _site(tmp_path / "c", f"sqlite:///{tmp_path / 'c.db'}")
    try:
        generate(other, 40, seed=8, today=TODAY)
        names = {r["name"] for r in _snapshot(other)["customer"]}
        assert names != {r["name"] for r in _snapshot(site)["customer"]}
    finally:
        other.close()


def test_a_believable_company(generated):
    site, made, _ = generated
    roles = Counter(u.role for u in made.users)
    assert len(made.users) == 12 and roles == {"owner": 1, "manager": 3, "sales": 8}
    assert len({u.login for u in made.users}) == 12
    for user in made.users:  # every printed login works with the printed password
        assert site.users.authenticate(user.login, DEMO_PASSWORD)["login"] == user.login
    assert {t["name"] for t in site.users.teams.list()} == {"east", "south", "north"}
    system = Actor.system()
    counts = made.counts
    assert counts["customer"] == 40 and counts["activity"] >= 200
    assert counts["contact"] >= 40 and counts["product"] >= 10 and counts["sales_target"] >= 9
    customers = site.records.list(system, "customer", limit=1000).rows
    names = [c["name"] for c in customers]
    assert any(n.isascii() for n in names) and any(not n.isascii() for n in names)
    assert {c["is_company"] for c in customers} == {True, False}
    created = [c["created_at"] for c in customers]
    assert min(created) < TODAY - dt.timedelta(days=60) and max(created) <= TODAY
    owners = {c["owner"] for c in customers}
    assert len(owners) >= 6  # spread over the salespeople


def test_deals_and_cases_went_through_their_workflows(generated):
    site, _, _ = generated
    system = Actor.system()
    deals = site.records.list(system, "opportunity", limit=1000).rows
    stages = Counter(d["stage"] for d in deals)
    assert {"initial", "needs", "proposal", "won", "lost"} <= set(stages)
    assert all(d["lost_reason"] for d in deals if d["stage"] == "lost")
    assert all(d["amount"] and d["expected_close"] for d in deals if d["stage"] == "won")
    won = next(d for d in deals if d["stage"] == "won")
    moves = [h["to_stage"] for h in site.workflows.history(system, "opportunity", won["id"])]
    assert moves[-4:] == ["needs", "proposal", "negotiation", "won"]
    assert site.pipeline.cycle_times(system, "opportunity").average_won_seconds > 86400
    activities = site.records.list(system, "activity", limit=1000).rows
    kinds = Counter(a["kind"] for a in activities)
    assert {"visit", "call", "task"} <= set(kinds)
    visits = [a for a in activities if a["kind"] == "visit"]
    assert any(a["done"] and a["outcome"] for a in visits)
    assert any(not a["done"] and a["due_at"] > TODAY for a in visits)  # planned
    assert site.pipeline.overdue(system, "complaint")  # some complaints are late


def test_crm_demo_size_generates_and_prints_the_logins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["demo", "--no-serve", "--size", "6", "--seed", "3"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Generated" in result.output and "Generated users" in result.output
    assert result.output.count(f"/ {DEMO_PASSWORD}") == 12 + 1  # and the admin
    from engine.site import Site

    with Site.open(tmp_path / "crm-demo") as site:
        assert site.records.count(Actor.system(), "customer") == 8 + 6  # curated + generated
        login = next(u["login"] for u in site.users.list() if "sales" in u["roles"])
        assert site.records.count(site.users.actor(login), "customer") < 8 + 6
