"""``crm team …``, ``crm token …`` and ``crm role …``: teams, API tokens, what roles allow."""

from __future__ import annotations

import datetime as dt

import click

from engine.cli.main import echo_json, report_errors
from engine.cli.site_commands import open_site
from engine.metadata.roles import ACTIONS

# -- teams ---------------------------------------------------------------------------------


@click.group()
def team() -> None:
    """Teams (nested): a manager's 'team' scope covers their teams and all sub-teams."""


def _show_team(t: dict) -> None:
    parent = f" under {t['parent']}" if t["parent"] else ""
    manager = f", manager {t['manager']}" if t["manager"] else ""
    members = ", ".join(t["members"]) or "no members"
    click.echo(f"{t['name']:<16} {t['label']}{parent}{manager}: {members}")


@team.command("add")
@click.argument("name")
@click.option("--label", help="The name shown to users (default: NAME).")
@click.option("--parent", help="The team this one is part of.")
@click.option("--manager", help="The login of the team's manager.")
@click.pass_context
@report_errors
def team_add(ctx: click.Context, name: str, label: str | None, parent: str | None,
             manager: str | None) -> None:
    """Add a team."""
    with open_site(ctx) as site:
        _show_team(site.users.teams.create(name, label=label, parent=parent, manager=manager))


@team.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@report_errors
def team_list(ctx: click.Context, as_json: bool) -> None:
    """List teams with their parent, manager and members."""
    with open_site(ctx) as site:
        teams = site.users.teams.list()
    if as_json:
        echo_json(teams)
        return
    for t in teams:
        _show_team(t)


@team.command("add-member")
@click.argument("name")
@click.argument("logins", nargs=-1, required=True)
@click.pass_context
@report_errors
def team_add_member(ctx: click.Context, name: str, logins: tuple[str, ...]) -> None:
    """Add users to a team."""
    with open_site(ctx) as site:
        for login in logins:
            shown = site.users.teams.add_member(name, login)
    _show_team(shown)


@team.command("remove-member")
@click.argument("name")
@click.argument("logins", nargs=-1, required=True)
@click.pass_context
@report_errors
def team_remove_member(ctx: click.Context, name: str, logins: tuple[str, ...]) -> None:
    """Take users out of a team."""
    with open_site(ctx) as site:
        for login in logins:
            shown = site.users.teams.remove_member(name, login)
    _show_team(shown)


@team.command("set-parent")
@click.argument("name")
@click.argument("parent", required=False)
@click.pass_context
@report_errors
def team_set_parent(ctx: click.Context, name: str, parent: str | None) -> None:
    """Put a team under another (no PARENT: at the top)."""
    with open_site(ctx) as site:
        _show_team(site.users.teams.set_parent(name, parent))


@team.command("set-manager")
@click.argument("name")
@click.argument("login", required=False)
@click.pass_context
@report_errors
def team_set_manager(ctx: click.Context, name: str, login: str | None) -> None:
    """Give a team its manager (no LOGIN: none)."""
    with open_site(ctx) as site:
        _show_team(site.users.teams.set_manager(name, login))


@team.command("remove")
@click.argument("name")
@click.pass_context
@report_errors
def team_remove(ctx: click.Context, name: str) -> None:
    """Delete a team; its sub-teams move up, records are untouched."""
    with open_site(ctx) as site:
        site.users.teams.remove(name)
    click.echo(f"Removed team {name}.")


# -- tokens ---------------------------------------------------------------------------------


@click.group()
def token() -> None:
    """API tokens: shown once, stored hashed, expiring, revocable."""


@token.command("create")
@click.argument("login")
@click.option("--name", required=True, help="What the token is for (e.g. 'ERP sync').")
@click.option("--expires-in-days", type=click.IntRange(min=1),
              help="Days until it stops working (default: never).")
@click.pass_context
@report_errors
def token_create(ctx: click.Context, login: str, name: str, expires_in_days: int | None) -> None:
    """Create a token acting as LOGIN."""
    expires = dt.timedelta(days=expires_in_days) if expires_in_days else None
    with open_site(ctx) as site:
        secret, row = site.users.tokens.create(login, name, expires_in=expires)
    until = f", expires {row['expires_at']:%Y-%m-%d %H:%M} UTC" if row["expires_at"] else ""
    click.echo(f"Token {row['id']} for {login}{until}.")
    click.echo(f"Token: {secret}   (shown once — only its hash is kept)")


@token.command("list")
@click.option("--user", "login", help="Only this user's tokens.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@report_errors
def token_list(ctx: click.Context, login: str | None, as_json: bool) -> None:
    """List tokens (never the tokens themselves)."""
    with open_site(ctx) as site:
        rows = site.users.tokens.list(login)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        used = f"{r['last_used_at']:%Y-%m-%d}" if r["last_used_at"] else "never used"
        click.echo(f"{r['id']:>4}  {r['login']:<16} {r['name']:<24} {r['prefix']}…  "
                   f"{r['status']:<8} {used}")


@token.command("revoke")
@click.argument("token_id", type=int)
@click.pass_context
@report_errors
def token_revoke(ctx: click.Context, token_id: int) -> None:
    """Revoke a token: it stops working at once."""
    with open_site(ctx) as site:
        site.users.tokens.revoke(token_id)
    click.echo(f"Revoked token {token_id}.")


# -- roles ----------------------------------------------------------------------------------


@click.group()
def role() -> None:
    """The roles the definitions declare (change them in roles YAML, see docs/permissions.md)."""


@role.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@report_errors
def role_list(ctx: click.Context, as_json: bool) -> None:
    """List the roles."""
    with open_site(ctx) as site:
        roles = site.registry.roles
    if as_json:
        echo_json({k: r.to_data() for k, r in roles.items()})
        return
    for key, r in roles.items():
        admin = " (administrator)" if r.admin else ""
        click.echo(f"{key:<16} {r.label.en} / {r.label.zh or r.label.en}{admin}")


@role.command("show")
@click.argument("key")
@click.pass_context
@report_errors
def role_show(ctx: click.Context, key: str) -> None:
    """What a role may do with each entity: rights, scope, field rules."""
    with open_site(ctx) as site:
        found = site.registry.roles.get(key)
        if found is None:
            raise click.ClickException(f"There is no role '{key}'; roles: "
                                       + ", ".join(site.registry.roles))
        for entity in site.registry.entities:
            access = found.for_entity(entity)
            rights = " ".join(a for a in ACTIONS if a in access.rights) or "-"
            data = access.to_data()
            scope = ", ".join(str(s) for s in data["scope"])
            extra = f"; write: {', '.join(map(str, data['write_scope']))}" \
                if "write_scope" in data else ""
            rules = "; " + ", ".join(f"{k} {v}" for k, v in data["fields"].items()) \
                if data.get("fields") else ""
            click.echo(f"{entity:<16} {rights:<52} {scope}{extra}{rules}")


def register(group: click.Group) -> None:
    from engine.cli import transfer_commands

    for command in (team, token, role):
        group.add_command(command)
    transfer_commands.register(group)
