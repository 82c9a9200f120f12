"""``via`` scopes through many-to-many and lines fields: "the records whose team I am on".

A project lists its team as lines (``team.member`` → a staff record) or as a
many-to-many field; a user linked to their staff record reaches the projects
they are on, and — one more hop — the records hanging off those projects.
"""

from __future__ import annotations

import datetime as dt

import pytest

from engine.context import Actor, FixedClock
from engine.errors import DefinitionError, NotFound, PermissionDenied
from engine.metadata.loader import load_registry
from tests.support import open_migrated, write_pack, write_site

SYSTEM = Actor.system()
NOW = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)

TEAMS = {
    "entities/staff.yaml": """
        entity: staff
        fields:
          name: {type: string, required: true}
    """,
    "entities/project.yaml": """
        entity: project
        fields:
          name: {type: string, required: true}
          team:
            type: lines
            fields:
              member: {type: reference, to: staff, required: true}
              role: {type: string}
          reviewers: {type: many_to_many, to: staff}
    """,
    "entities/task.yaml": """
        entity: task
        fields:
          title: {type: string, required: true}
          project: {type: reference, to: project, on_delete: cascade}
    """,
    "roles.yaml": """
        roles:
          sales:
            entities:
              staff: {rights: [read], scope: all}
              project:
                rights: [read, update]
                scope: [own, {via: team.member}, {via: reviewers}]
                write_scope: [own, {via: team.member}]
              task: {rights: [read], scope: [{via: project.team.member}, {via: project.owner}]}
    """,
}


@pytest.fixture
def site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "teams", TEAMS)
    root = write_site(tmp_path / "site", db_url, ["teams"], pack_paths=["../packs"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    yield opened
    opened.close()


def test_team_members_reach_projects_and_their_tasks(site):
    records, users = site.records, site.users
    ann = records.create(SYSTEM, "staff", {"name": "Ann"})
    bob = records.create(SYSTEM, "staff", {"name": "Bob"})
    users.create("ann", password="password-1", roles=["sales"])
    users.create("bob", password="password-1", roles=["sales"])
    users.link("ann", "staff", ann["id"])
    users.link("bob", "staff", bob["id"])
    on_team = records.create(SYSTEM, "project", {
        "name": "Ann is on the team",
        "team": [{"member": bob["id"], "role": "lead"}, {"member": ann["id"], "role": "pre-sales"}]})
    reviewing = records.create(SYSTEM, "project", {"name": "Ann reviews",
                                                   "reviewers": [ann["id"]]})
    elsewhere = records.create(SYSTEM, "project", {"name": "Bob only",
                                                   "team": [{"member": bob["id"]}]})
    records.create(SYSTEM, "task", {"title": "T1", "project": on_team["id"]})
    records.create(SYSTEM, "task", {"title": "T2", "project": elsewhere["id"]})
    records.create(SYSTEM, "task", {"title": "T3", "project": reviewing["id"]})

    a, b = users.actor("ann"), users.actor("bob")
    assert {r["name"] for r in records.list(a, "project").rows} == {"Ann is on the team",
                                                                     "Ann reviews"}
    assert records.count(a, "project") == 2
    assert {r["name"] for r in records.list(b, "project").rows} == {"Ann is on the team",
                                                                     "Bob only"}
    with pytest.raises(NotFound):
        records.get(a, "project", elsewhere["id"])
    # Tasks follow the project's team (two hops: a reference, then the lines).
    assert [r["title"] for r in records.list(a, "task").rows] == ["T1"]
    # The write scope leaves out the reviewers: Ann reads that project but cannot change it.
    records.update(a, "project", on_team["id"], {"name": "Renamed by Ann"})
    with pytest.raises(PermissionDenied):
        records.update(a, "project", reviewing["id"], {"name": "No"})

    # Taking Ann off the team takes the project (and its task) out of her reach at once.
    records.update(SYSTEM, "project", on_team["id"], {"team": [{"member": bob["id"]}]})
    assert {r["name"] for r in records.list(a, "project").rows} == {"Ann reviews"}
    assert records.count(a, "task") == 0


def test_a_user_linked_to_nothing_reaches_nothing_through_the_team(site):
    records, users = site.records, site.users
    staff = records.create(SYSTEM, "staff", {"name": "Cy"})
    records.create(SYSTEM, "project", {"name": "P", "team": [{"member": staff["id"]}]})
    users.create("cy", password="password-1", roles=["sales"])
    assert records.count(users.actor("cy"), "project") == 0


@pytest.mark.parametrize(("path", "message"), [
    ("team", "'team' is a lines field of project; name the reference inside its lines"),
    ("team.role", "'role' is a string field, not a reference of the team lines of project"),
    ("team.membr", "'membr' is no field of the team lines of project (did you mean 'member'?)"),
    ("name", "'name' is a string field, not a reference of project"),
    ("owner", "'owner' ends a path after a reference"),
    ("owner.team", "'owner' ends a path after a reference"),
])
def test_via_paths_through_lines_are_checked(tmp_path, path, message):
    files = dict(TEAMS)
    files["roles.yaml"] = f"""
        roles:
          sales:
            entities:
              project: {{rights: [read], scope: {{via: "{path}"}}}}
    """
    write_pack(tmp_path, "teams", files)
    with pytest.raises(DefinitionError) as caught:
        load_registry(["teams"], search_paths=[tmp_path])
    assert message in str(caught.value)


def test_a_path_ending_in_owner_reaches_the_records_of_the_projects_a_user_owns(site):
    records, users = site.records, site.users
    users.create("dan", password="password-1", roles=["sales"])
    dan = users.actor("dan")
    mine = records.create(SYSTEM, "project", {"name": "Dan's", "owner": dan.user_id})
    other = records.create(SYSTEM, "project", {"name": "Someone else's"})
    records.create(SYSTEM, "task", {"title": "On Dan's project", "project": mine["id"]})
    records.create(SYSTEM, "task", {"title": "Elsewhere", "project": other["id"]})
    # The tasks are not Dan's (the system owns them), his project is.
    assert [r["title"] for r in records.list(dan, "task").rows] == ["On Dan's project"]
    records.update(SYSTEM, "project", mine["id"], {"owner": None})
    assert records.count(dan, "task") == 0
