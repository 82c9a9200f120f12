"""Dashboard filters and click-through: the list behind a bar holds exactly its records.

On a generated company (teams, an owner, managers and salespeople), the
sales dashboard is read through the web as each role, unfiltered and
narrowed by period, team and owner; every linked bar's list is opened with
the same login and its count compared with the figure behind the bar.  Won/lost
columns open the deals closed in their month.  The
weighted pipeline by stage agrees with ``crm report core.weighted_pipeline``,
and a filter the actor may not pick is refused.
"""

from __future__ import annotations

import json
import re
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.context import Actor
from engine.services.views.dashboard_filters import DashboardFilter, period_bounds, team_owners
from engine.services.views.dashboards import DashboardService
from engine.web import create_app
from packs.core.demo_generator import DEMO_PASSWORD, generate
from tests.support import open_migrated, write_site
from tests.web_support import login

LINK = re.compile(r'<a href="(/r/opportunity\?[^"]+)" aria-label="([^"]+)">')


@pytest.fixture
def company(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"])
    site = open_migrated(root)
    made = generate(site, 40, seed=11)
    logins = {"owner": next(u.login for u in made.users if u.role == "owner")}
    logins["manager"] = next(u.login for u in made.users if u.role == "manager")
    team = next(u.team for u in made.users if u.login == logins["manager"])
    logins["sales"] = next(u.login for u in made.users if u.role == "sales" and u.team == team)
    logins["other_sales"] = next(u.login for u in made.users
                                 if u.role == "sales" and u.team != team)
    _close_some(site)
    yield site, logins, team
    site.close()


def _close_some(site) -> None:
    """Win and lose a few deals of every owner, so the won/lost columns have records."""
    system = Actor.system()
    deals = site.records.list(system, "opportunity", limit=1000).rows
    by_owner: dict = {}
    for deal in deals:
        by_owner.setdefault(deal["owner"], []).append(deal)
    won = [("proposal", {}), ("negotiation", {"expected_close": "2026-12-31"}), ("won", {})]
    lost = [("lost", {"lost_reason": "price"})]
    for owned in by_owner.values():
        for deal, path in zip(owned, [won, lost, won], strict=False):
            for stage, values in path:
                site.workflows.transition(system, "opportunity", deal["id"], stage, values)

def _client(site, who):
    client = create_app(site, testing=True).test_client()
    assert login(client, who, DEMO_PASSWORD).status_code == 302
    return client


def _total(client, link: str) -> int:
    page = client.get(unescape(link))
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    found = re.search(r'data-total="(\d+)"', page.get_data(as_text=True))
    assert found, f"{link} shows no count"
    return int(found.group(1))


def _narrowed(site, narrowed: DashboardFilter):
    return site.pipeline.within(narrowed.conditions) if narrowed.active else site.pipeline


def _team_id(site, name: str) -> int:
    return site.users.teams.get(name)["id"]


def _check_links(site, client, actor, narrowed: DashboardFilter, query: str) -> int:
    """Every bar of the funnel, the weighted pipeline by stage and (for managers) by owner
    links to a list whose count equals the records behind the bar."""
    html = client.get(f"/dashboards/sales{query}").get_data(as_text=True)
    groups = _narrowed(site, narrowed).weighted_pipeline(actor, "opportunity")
    service = DashboardService(site)
    shown = service.figures(actor, service.get(actor, "sales"), narrowed)
    won_lost = next(w.figure for w in shown if w.widget.kind == "won_lost" and w.figure)
    closed = {link: won + lost for link, won, lost in
              zip(won_lost.links, *(s.values for s in won_lost.series), strict=True) if link}
    assert closed, "some deals were won or lost in the months shown"
    by_owner = _narrowed(site, narrowed).weighted_pipeline(actor, "opportunity", by="owner")
    counts = {g.label: g.count for g in groups}
    checked = 0
    for escaped, label in LINK.findall(html):
        link = unescape(escaped)
        name = unescape(label).split(":")[0]
        total = _total(client, link)
        if "closed__ge" in link:
            assert total == closed[link], link
        elif "owner=" in link and "stage__in" in link:
            owner = int(re.search(r"[?&]owner=(\d+)", link).group(1))
            assert total == next(g.count for g in by_owner if g.key == owner), link
        else:
            assert total == counts[name], (link, name)
        checked += 1
    owners_shown = actor.roles & {"manager", "owner", "admin"}
    assert checked == 2 * len(groups) + len(closed) + (
        len([g for g in by_owner if g.key is not None]) if owners_shown else 0)
    return checked


@pytest.mark.parametrize("role", ["owner", "manager", "sales"])
def test_every_bar_opens_the_list_of_exactly_its_records(company, role):
    site, logins, team = company
    actor = site.users.actor(logins[role])
    client = _client(site, logins[role])
    today = site.clock.now().astimezone(ZoneInfo(site.config.timezone)).date()
    since, until = period_bounds("year", today)
    cases = [(DashboardFilter(timezone=site.config.timezone), ""),
             (DashboardFilter("year", since, until, timezone=site.config.timezone),
              "?period=year")]
    if role != "sales":
        team_id = _team_id(site, team)
        members = team_owners(site.engine, site.schema, team_id)
        cases.append((DashboardFilter(team=team_id, team_owners=members,
                                      timezone=site.config.timezone), f"?team={team_id}"))
    sales_id = site.users.actor(logins["sales"]).user_id
    cases.append((DashboardFilter(owner=sales_id, timezone=site.config.timezone),
                  f"?owner={sales_id}"))
    checked = sum(_check_links(site, client, actor, narrowed, query)
                  for narrowed, query in cases)
    assert checked >= 4


def test_filters_change_the_figures_and_stay_in_scope(company):
    site, logins, team = company
    owner = _client(site, logins["owner"])
    everything = owner.get("/dashboards/sales").get_data(as_text=True)
    team_id = _team_id(site, team)
    narrowed = owner.get(f"/dashboards/sales?team={team_id}").get_data(as_text=True)
    funnel = re.compile(r'aria-label="([^":]+): (\d+)"')
    assert funnel.findall(everything) and funnel.findall(narrowed) != funnel.findall(everything)
    assert f'<option value="{team_id}" selected>' in narrowed


def test_a_salesperson_cannot_pick_another_team_or_person(company):
    site, logins, team = company
    other_team = next(t for t in site.users.teams.list() if t["name"] != team)
    sales = _client(site, logins["sales"])
    page = sales.get("/dashboards/sales")
    assert page.status_code == 200 and 'name="team"' not in page.get_data(as_text=True)
    refused = sales.get(f"/dashboards/sales?team={other_team['id']}")
    assert refused.status_code == 422
    assert "may not see this team" in refused.get_data(as_text=True)
    stranger = site.users.actor(logins["other_sales"]).user_id
    assert sales.get(f"/dashboards/sales?owner={stranger}").status_code == 422
    manager = _client(site, logins["manager"])
    shown = manager.get("/dashboards/sales").get_data(as_text=True)
    offered = re.search(r'<select name="team">(.*?)</select>', shown, re.S).group(1)
    assert f'value="{other_team["id"]}"' not in offered
    assert f'value="{_team_id(site, team)}"' in offered
    assert manager.get(f"/dashboards/sales?team={other_team['id']}").status_code == 422
    assert manager.get("/dashboards/sales?period=decade").status_code == 422
    assert manager.get("/dashboards/sales?period=custom&from=2026-13-01").status_code == 422


def test_weighted_pipeline_by_stage_agrees_with_the_cli_report(company, tmp_path):
    site, logins, _ = company
    for role in ("owner", "manager", "sales"):
        actor = site.users.actor(logins[role])
        dashboard = site_dashboards(site).get(actor, "sales")
        widget = next(w for w in site_dashboards(site).figures(actor, dashboard)
                      if w.widget.kind == "weighted_pipeline" and w.widget.by == "stage")
        result = CliRunner().invoke(main, ["--site", str(tmp_path / "site"), "report",
                                           "core.weighted_pipeline", "--as", logins[role],
                                           "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["categories"] == list(widget.figure.categories)
        weighted = {s["name"]["en"]: s["values"] for s in report["series"]}
        ours = {s.name["en"]: [str(v) for v in s.values] for s in widget.figure.series}
        assert ours["Weighted value"] == weighted["Weighted value"]
        assert ours["Open value"] == weighted["Open value"]


def site_dashboards(site):
    return DashboardService(site)


def test_the_api_takes_the_same_filters_and_refuses_the_same(company):
    site, logins, team = company
    app = create_app(site, testing=True)
    headers = {}
    for role in ("owner", "sales"):
        token, _ = site.users.tokens.create(logins[role], "dash")
        headers[role] = {"Authorization": f"Bearer {token}"}
    api = app.test_client()
    team_id = _team_id(site, team)

    def funnel(answer):
        return next(w for w in answer["widgets"] if w["kind"] == "funnel")["figure"]

    everyone = api.get("/api/v1/dashboards/sales", headers=headers["owner"]).get_json()
    narrowed = api.get(f"/api/v1/dashboards/sales?team={team_id}",
                       headers=headers["owner"]).get_json()
    assert narrowed["filter"] == {"team": str(team_id)}
    owner = site.users.actor(logins["owner"])
    members = team_owners(site.engine, site.schema, team_id)
    expected = _narrowed(site, DashboardFilter(team=team_id, team_owners=members)
                         ).weighted_pipeline(owner, "opportunity")
    assert funnel(narrowed)["series"][0]["values"] == [g.count for g in expected]
    assert funnel(narrowed) != funnel(everyone)
    other_team = next(t for t in site.users.teams.list() if t["name"] != team)
    refused = api.get(f"/api/v1/dashboards/sales?team={other_team['id']}",
                      headers=headers["sales"])
    assert refused.status_code == 422 and "team" in refused.get_json()["errors"]
