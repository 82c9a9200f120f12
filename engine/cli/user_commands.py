"""``crm user …``: the people who log in."""

from __future__ import annotations

import click

from engine.cli.main import echo_json, report_errors
from engine.cli.site_commands import open_site
from engine.services.users import generate_password


@click.group()
def user() -> None:
    """Add and list users."""


@user.command("add")
@click.argument("login")
@click.option("--name", "display_name", help="Display name (default: the login).")
@click.option("--email")
@click.option("--language", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--role", "roles", multiple=True, help="A role (repeat for several).")
@click.option("--admin", "is_admin", is_flag=True, help="Give all rights.")
@click.option("--password", help="Default: generated and printed once.")
@click.pass_context
@report_errors
def add(
    ctx: click.Context, login: str, display_name: str | None, email: str | None, language: str,
    roles: tuple[str, ...], is_admin: bool, password: str | None,
) -> None:
    """Add a user."""
    secret = password or generate_password()
    with open_site(ctx) as site:
        site.users.create(login, password=secret, display_name=display_name, email=email,
                          language=language, roles=roles, is_admin=is_admin)
    click.echo(f"Added {login}.")
    if not password:
        click.echo(f"Password: {secret}   (shown once)")


@user.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@report_errors
def list_users(ctx: click.Context, as_json: bool) -> None:
    """List users."""
    with open_site(ctx) as site:
        users = site.users.list()
    if as_json:
        echo_json(users)
        return
    for u in users:
        flags = ("admin " if u["is_admin"] else "") + ("" if u["active"] else "inactive")
        click.echo(f"{u['id']:>4}  {u['login']:<20} {u['display_name']:<24} {u['language']}  {flags}")


def register(group: click.Group) -> None:
    group.add_command(user)
