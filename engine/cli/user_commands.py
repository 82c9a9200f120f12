"""``crm user …``: the people who log in, their roles and the records they are linked to.

The commands act as the site's operator (whoever may run ``crm`` on the
server); the ``team``, ``token``, ``transfer`` and ``role`` groups are
registered from here too.
"""

from __future__ import annotations

import click

from engine.cli.main import echo_json, report_errors
from engine.cli.site_commands import open_site
from engine.services.access.users import generate_password


@click.group()
def user() -> None:
    """Add users, give them roles, deactivate them."""


def _show_user(u: dict) -> str:
    flags = " ".join(f for f in ("admin" if u["is_admin"] else "",
                                 "" if u["active"] else "deactivated") if f)
    roles = ",".join(u.get("roles") or []) or "-"
    return (f"{u['id']:>4}  {u['login']:<20} {u['display_name']:<24} {u['language']:<3} "
            f"{roles:<24} {flags}").rstrip()


@user.command("add")
@click.argument("login")
@click.option("--name", "display_name", help="Display name (default: the login).")
@click.option("--email")
@click.option("--language", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--role", "roles", multiple=True, help="A role (repeat for several).")
@click.option("--admin", "is_admin", is_flag=True, help="Give all rights.")
@click.option("--password", help="Default: generated and printed once.")
@click.option("--ask-password", is_flag=True, help="Type the password (hidden, asked twice).")
@click.pass_context
@report_errors
def add(
    ctx: click.Context, login: str, display_name: str | None, email: str | None, language: str,
    roles: tuple[str, ...], is_admin: bool, password: str | None, ask_password: bool,
) -> None:
    """Add a user."""
    if ask_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    secret = password or generate_password()
    with open_site(ctx) as site:
        site.users.create(login, password=secret, display_name=display_name, email=email,
                          language=language, roles=roles, is_admin=is_admin)
    click.echo(f"Added {login}.")
    if not password:
        click.echo(f"Password: {secret}   (shown once)")


@user.command("list")
@click.option("--active", "active_only", is_flag=True, help="Only users who can log in.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@report_errors
def list_users(ctx: click.Context, active_only: bool, as_json: bool) -> None:
    """List users with their roles."""
    with open_site(ctx) as site:
        users = site.users.list(include_inactive=not active_only)
    if as_json:
        echo_json(users)
        return
    for u in users:
        click.echo(_show_user(u))


@user.command("show")
@click.argument("login")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@report_errors
def show(ctx: click.Context, login: str, as_json: bool) -> None:
    """Show a user: roles, teams (with sub-teams), links and tokens."""
    with open_site(ctx) as site:
        data = {k: v for k, v in site.users.get(login).items() if k != "password_hash"}
        data["teams"] = [t["name"] for t in site.users.teams.list()
                         if login in t["members"] or t["manager"] == login]
        data["links"] = [f"{e} {r}" for e, r in site.users.links_of(login)]
        data["tokens"] = [f"{t['id']} {t['name']} ({t['status']})"
                          for t in site.users.tokens.list(login)]
    if as_json:
        echo_json(data)
        return
    for key in ("login", "display_name", "email", "language", "active", "is_admin", "roles",
                "teams", "links", "tokens"):
        value = data.get(key)
        shown = ", ".join(value) if isinstance(value, list) else value
        click.echo(f"{key:<13} {shown if shown not in (None, '') else '-'}")


@user.command("set-role")
@click.argument("login")
@click.argument("roles", nargs=-1)
@click.pass_context
@report_errors
def set_role(ctx: click.Context, login: str, roles: tuple[str, ...]) -> None:
    """Replace a user's roles: crm user set-role alice sales (none given: no roles)."""
    with open_site(ctx) as site:
        updated = site.users.set_roles(login, roles)
    click.echo(f"{login}: {', '.join(updated['roles']) or 'no roles'}.")


@user.command("add-role")
@click.argument("login")
@click.argument("role")
@click.pass_context
@report_errors
def add_role(ctx: click.Context, login: str, role: str) -> None:
    """Give a user one more role."""
    with open_site(ctx) as site:
        current = site.users.get(login)["roles"]
        updated = site.users.set_roles(login, [*current, role])
    click.echo(f"{login}: {', '.join(updated['roles'])}.")


@user.command("remove-role")
@click.argument("login")
@click.argument("role")
@click.pass_context
@report_errors
def remove_role(ctx: click.Context, login: str, role: str) -> None:
    """Take one role away from a user."""
    with open_site(ctx) as site:
        current = site.users.get(login)["roles"]
        updated = site.users.set_roles(login, [r for r in current if r != role])
    click.echo(f"{login}: {', '.join(updated['roles']) or 'no roles'}.")


@user.command("deactivate")
@click.argument("login")
@click.pass_context
@report_errors
def deactivate(ctx: click.Context, login: str) -> None:
    """Stop a user from logging in and end their sessions; records and history stay."""
    with open_site(ctx) as site:
        site.users.deactivate(login)
    click.echo(f"Deactivated {login}; their records keep them as owner until transferred "
               f"(crm transfer preview {login} TO).")


@user.command("activate")
@click.argument("login")
@click.pass_context
@report_errors
def activate(ctx: click.Context, login: str) -> None:
    """Let a deactivated user log in again."""
    with open_site(ctx) as site:
        site.users.activate(login)
    click.echo(f"Activated {login}.")


@user.command("reset-password")
@click.argument("login")
@click.option("--password", help="Default: generated and printed once.")
@click.option("--ask-password", is_flag=True, help="Type the password (hidden, asked twice).")
@click.pass_context
@report_errors
def reset_password(ctx: click.Context, login: str, password: str | None,
                   ask_password: bool) -> None:
    """Set a new password, end the user's sessions and lift the slow-down of their logins."""
    if ask_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with open_site(ctx) as site:
        secret = site.users.reset_password(login, password)
    click.echo(f"New password set for {login}.")
    if not password:
        click.echo(f"Password: {secret}   (shown once)")


@user.command("unlock")
@click.argument("login", required=False)
@click.option("--address", help="Lift an address's own slow-down instead (many logins failed from it).")
@click.pass_context
@report_errors
def unlock(ctx: click.Context, login: str | None, address: str | None) -> None:
    """Lift the slow-down of failed logins: crm user unlock alice (from every address)."""
    if bool(login) == bool(address):
        raise click.UsageError("Give a login, or --address ADDRESS.")
    with open_site(ctx) as site:
        if address:
            site.users.throttle.unlock_address(address)
            click.echo(f"Failed logins from {address} no longer slow it down.")
            return
        site.users.get(login)  # an unknown login is an error, not a silent no-op
        site.users.unlock(login)
    click.echo(f"Failed logins of {login} no longer slow it down, from any address.")


@user.command("end-sessions")
@click.argument("login")
@click.pass_context
@report_errors
def end_sessions(ctx: click.Context, login: str) -> None:
    """Log a user out everywhere: every session of theirs ends at its next request."""
    with open_site(ctx) as site:
        site.users.end_sessions(login)
    click.echo(f"Every session of {login} has ended.")


@user.command("link")
@click.argument("login")
@click.argument("entity")
@click.argument("record_id", type=int)
@click.pass_context
@report_errors
def link(ctx: click.Context, login: str, entity: str, record_id: int) -> None:
    """Link a user to a record (a dealer's staff to the dealer) for linked/via scopes."""
    with open_site(ctx) as site:
        site.users.link(login, entity, record_id)
    click.echo(f"Linked {login} to {entity} {record_id}.")


@user.command("unlink")
@click.argument("login")
@click.argument("entity")
@click.argument("record_id", type=int)
@click.pass_context
@report_errors
def unlink(ctx: click.Context, login: str, entity: str, record_id: int) -> None:
    """Remove a link between a user and a record."""
    with open_site(ctx) as site:
        site.users.unlink(login, entity, record_id)
    click.echo(f"Unlinked {login} from {entity} {record_id}.")


def register(group: click.Group) -> None:
    from engine.cli import access_commands

    group.add_command(user)
    access_commands.register(group)
