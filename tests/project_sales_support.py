"""A project-sales site for tests: people with their roles and employee records, and helpers
that take a project through its pre-sale flow the way a user would."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from engine.context import Actor, FixedClock
from engine.site import Site
from tests.support import open_migrated, write_site

SYSTEM = Actor.system()
# 10:00 in Shanghai on Tuesday 24 November 2026.
NOW = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
PEOPLE = {
    "boss": "owner",
    "mgr": "manager",
    "ann": "sales",
    "bob": "sales",
    "carl": "sales",
    "pm": "project_manager",
    "pat": "project_manager",
    "fin": "finance",
}


@dataclass
class ProjectSite:
    site: Site
    actors: dict[str, Actor]
    employees: dict[str, int]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.site, name)


def open_project_site(tmp_path: Any, db_url: str) -> ProjectSite:
    """A migrated site with the project_sales pack; every person linked to an employee record."""
    site = open_migrated(write_site(tmp_path / "site", db_url, ["project_sales"]),
                         clock=FixedClock(NOW))
    employees = {}
    for login, role in PEOPLE.items():
        site.users.create(login, password="password-1", roles=[role])
        employee = site.records.create(SYSTEM, "employee", {"name": login.title()})
        site.users.link(login, "employee", employee["id"])
        employees[login] = employee["id"]
    site.users.teams.create("east", manager="mgr")
    site.users.teams.add_member("east", "ann")
    actors = {login: site.users.actor(login) for login in PEOPLE}
    return ProjectSite(site, actors, employees)


def approved_proposal(site: Site, actor: Actor, project_id: int, version: int = 1) -> dict:
    proposal = site.records.create(actor, "proposal", {
        "project": project_id, "version_no": version, "title": f"Proposal v{version}",
        "lines": [{"item": "Solution", "quantity": 1, "unit_price": 1000}]})
    site.workflows.transition(actor, "proposal", proposal["id"], "submitted")
    return site.workflows.transition(actor, "proposal", proposal["id"], "approved")


def project_in_negotiation(site: Site, actor: Actor, name: str, value: int,
                           client: int, team: list[dict] | None = None) -> dict:
    """A project taken from lead to negotiation: requirements, an approved proposal, a sent quote."""
    project = site.records.create(actor, "project", {
        "name": name, "client": client, "estimated_value": value,
        "expected_signing": "2026-12-20", "requirements": "As discussed.",
        "team": team or []})
    site.workflows.transition(actor, "project", project["id"], "requirements")
    site.workflows.transition(actor, "project", project["id"], "proposal")
    approved_proposal(site, actor, project["id"])
    site.workflows.transition(actor, "project", project["id"], "quotation")
    quotation = site.records.create(actor, "quotation", {
        "project": project["id"], "version_no": 1, "title": f"{name} quotation",
        "lines": [{"item": "Everything", "quantity": 1, "unit_price": value}]})
    site.workflows.transition(actor, "quotation", quotation["id"], "sent")
    return site.workflows.transition(actor, "project", project["id"], "negotiation")
