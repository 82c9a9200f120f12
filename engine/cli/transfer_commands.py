"""``crm transfer …``: hand a user's customers (and what follows them) to colleagues."""

from __future__ import annotations

from typing import Any

import click

from engine.cli.main import echo_json, report_errors
from engine.cli.record_commands import cli_actor
from engine.cli.site_commands import open_site
from engine.services.records.transfer import RULES, TransferPlan


@click.group()
def transfer() -> None:
    """Customer resource transfer (客户资源转移): preview, run, list."""


def _options(command: Any) -> Any:
    for option in reversed([
        click.argument("from_login"),
        click.argument("to_logins", nargs=-1),
        click.option("--to", "extra_to", multiple=True, help="Another user to receive records."),
        click.option("--rule", type=click.Choice(RULES), default="round_robin",
                     show_default=True, help="How records are spread over several users."),
        click.option("--by", "by_field", help="The field by_field spreads by (e.g. region)."),
        click.option("--map", "mapping", multiple=True,
                     help="VALUE=LOGIN: records whose --by field is VALUE go to LOGIN."),
        click.option("--as", "login", envvar="CRM_USER",
                     help="Act as this administrator (default: the first admin)."),
        click.option("--json", "as_json", is_flag=True),
    ]):
        command = option(command)
    return command


def _mapping(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        value, sep, login = item.rpartition("=")
        if not sep or not login:
            raise click.BadParameter(f"expected VALUE=LOGIN, got '{item}'", param_hint="--map")
        out[value] = login
    return out


def _print_plan(plan: TransferPlan, *, verbose: bool) -> None:
    data = plan.to_data()
    click.echo(f"From {data['from']} to {', '.join(data['to'])} ({data['rule']}):")
    if not plan.moves:
        click.echo("  nothing to move.")
    for login, counts in data["per_user"].items():
        click.echo(f"  {login}: " + ", ".join(f"{n} {e}" for e, n in counts.items()))
    for entity, count in data["kept"].items():
        click.echo(f"  stays with {data['from']}: {count} {entity} (not matching the rule)")
    if verbose:
        for move in data["moves"]:
            follows = f"  (with {move['follows']})" if move.get("follows") else ""
            click.echo(f"    {move['entity']} {move['id']} {move['title'] or ''} → "
                       f"{move['to']}{follows}")


@transfer.command("preview")
@_options
@click.pass_context
@report_errors
def preview(ctx: click.Context, from_login: str, to_logins: tuple[str, ...],
            extra_to: tuple[str, ...], rule: str, by_field: str | None,
            mapping: tuple[str, ...], login: str | None, as_json: bool) -> None:
    """List what would move from FROM_LOGIN to TO_LOGINS, record by record."""
    rule = "by_field" if by_field and rule == "round_robin" else rule
    with open_site(ctx) as site:
        plan = site.transfers.preview(cli_actor(site, login), from_login,
                                      [*to_logins, *extra_to], rule=rule, by_field=by_field,
                                      mapping=_mapping(mapping))
    if as_json:
        echo_json(plan.to_data())
        return
    _print_plan(plan, verbose=True)


@transfer.command("run")
@_options
@click.option("--deactivate", is_flag=True, help="Also deactivate FROM_LOGIN (who is leaving).")
@click.option("--note", help="Why (kept with the transfer record).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@report_errors
def run(ctx: click.Context, from_login: str, to_logins: tuple[str, ...],
        extra_to: tuple[str, ...], rule: str, by_field: str | None, mapping: tuple[str, ...],
        login: str | None, as_json: bool, deactivate: bool, note: str | None,
        yes: bool) -> None:
    """Move everything FROM_LOGIN owns that the transfer rules name, in one transaction."""
    rule = "by_field" if by_field and rule == "round_robin" else rule
    targets = [*to_logins, *extra_to]
    with open_site(ctx) as site:
        actor = cli_actor(site, login)
        if not yes:
            plan = site.transfers.preview(actor, from_login, targets, rule=rule,
                                          by_field=by_field, mapping=_mapping(mapping))
            _print_plan(plan, verbose=False)
            click.confirm("Transfer these records?", abort=True)
        done = site.transfers.run(actor, from_login, targets, rule=rule, by_field=by_field,
                                  mapping=_mapping(mapping), deactivate=deactivate, note=note)
    if as_json:
        echo_json({k: v for k, v in done.items() if k != "plan"})
        return
    counts = ", ".join(f"{n} {e}" for e, n in done["counts"].items()) or "nothing"
    click.echo(f"Transfer {done['id']}: moved {counts} from {done['from']} to "
               f"{', '.join(done['to'])}.")
    if deactivate:
        click.echo(f"Deactivated {done['from']}.")


@transfer.command("list")
@click.option("--user", "user_login", help="Only transfers from or to this user.")
@click.option("--as", "login", envvar="CRM_USER", help="Act as this administrator.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@report_errors
def list_transfers(ctx: click.Context, user_login: str | None, login: str | None,
                   as_json: bool) -> None:
    """Past transfers: who, when, from, to, how many records."""
    with open_site(ctx) as site:
        rows = site.transfers.list(cli_actor(site, login), login=user_login)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        counts = ", ".join(f"{n} {e}" for e, n in r["counts"].items()) or "nothing"
        click.echo(f"{r['id']:>4}  {r['at']:%Y-%m-%d %H:%M}  by {r['by']:<12} "
                   f"{r['from']} → {', '.join(r['to'])}: {counts}")


def register(group: click.Group) -> None:
    group.add_command(transfer)
