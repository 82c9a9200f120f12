"""Two people moving the same record at the same moment: one wins, the other is told.

Real threads against PostgreSQL (the production database), and against
SQLite, whose single writer lock must give the same guarantees.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from engine.errors import Conflict, TransitionRefused
from tests.workflow_pack import open_flow_site


@pytest.fixture(params=["postgresql", "sqlite"])
def site(request, tmp_path):
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    opened = open_flow_site(tmp_path, url)
    yield opened
    opened.close()


def stage_changes(site, record_id):
    history = site.schema.system("crm_stage_history")
    audit = site.schema.system("crm_audit")
    with site.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(history).where(
            history.c.record_id == record_id)).scalar_one()
        audited = conn.execute(select(func.count()).select_from(audit).where(
            audit.c.record_id == record_id, audit.c.field == "stage",
            audit.c.action != "refused")).scalar_one()
    return rows, audited


def race(site, record_id, moves, version):
    barrier = threading.Barrier(len(moves))

    def move(step):
        login, stage, values = step
        barrier.wait()
        try:
            site.workflows.transition(site.users.actor(login), "deal", record_id, stage, values,
                                      version=version)
            return "ok"
        except Conflict:
            return "conflict"
        except TransitionRefused as exc:
            return exc.reasons[0].code

    with ThreadPoolExecutor(len(moves)) as pool:
        return sorted(pool.map(move, moves))


def test_two_actors_move_one_record_at_once(site):
    li = site.users.actor("li")
    deal = site.records.create(li, "deal", {"name": "Contested", "amount": "100"})
    outcomes = race(site, deal["id"], [("li", "lost", {"lost_reason": "price"}),
                                       ("wang", "proposal", {})], version=deal["version"])
    assert outcomes == ["conflict", "ok"]
    final = site.records.get(li, "deal", deal["id"])
    assert final["version"] == deal["version"] + 1
    assert final["stage"] in ("lost", "proposal")
    assert stage_changes(site, deal["id"]) == (1, 1)


def test_without_a_version_the_second_sees_the_first_move(site):
    li = site.users.actor("li")
    deal = site.records.create(li, "deal", {"name": "Contested", "amount": "100"})
    outcomes = race(site, deal["id"], [("li", "proposal", {}), ("wang", "proposal", {})],
                    version=None)
    # the loser either read the record before the winner wrote (a conflict), or after it
    # (then the record is already there); never two moves
    assert outcomes in (["conflict", "ok"], ["already_in_stage", "ok"])
    assert stage_changes(site, deal["id"]) == (1, 1)
