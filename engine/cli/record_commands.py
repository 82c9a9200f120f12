"""``crm record …``: records from the command line, through the record service.

Values are given as ``field=value`` (text, converted by the field's type) or
``field:=JSON`` for structured values such as lines
(``lines:='[{"item": "Setup", "quantity": 1, "unit_price": 500}]'``).
The CLI acts as a user (``--as LOGIN`` or ``$CRM_USER``; by default the
site's first administrator), so the same rules hold as in the UI and API.
"""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import select

from engine.cli import output
from engine.cli.main import echo_json, report_errors
from engine.cli.site_commands import open_site
from engine.context import Actor
from engine.errors import NotFound
from engine.metadata.values import to_json
from engine.site import Site
from engine.storage.queries import Filter, Sort


def parse_assignments(items: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        if ":=" in item and item.index(":=") < item.index("=") + 1:
            key, raw = item.split(":=", 1)
            try:
                values[key.strip()] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise click.BadParameter(f"{key}: not valid JSON ({exc.msg})") from None
        elif "=" in item:
            key, raw = item.split("=", 1)
            values[key.strip()] = raw
        else:
            raise click.BadParameter(f"expected field=value or field:=JSON, got '{item}'")
    return values


def cli_actor(site: Site, login: str | None) -> Actor:
    if login:
        return site.users.actor(login)
    users = site.schema.system("crm_user")
    with site.engine.connect() as conn:
        first_admin = conn.execute(
            select(users.c.login)
            .where(users.c.is_admin.is_(True), users.c.active.is_(True))
            .order_by(users.c.id)
            .limit(1)
        ).scalar()
    if first_admin is None:
        raise NotFound("This site has no active administrator; give --as LOGIN.")
    return site.users.actor(first_admin)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(to_json(value), ensure_ascii=False)
    return str(to_json(value))


def _show(site: Site, entity_key: str, record: dict[str, Any], as_json: bool) -> None:
    """One record as `label (key)  value` lines, in the site's language."""
    if as_json:
        echo_json(record)
        return
    entity = site.registry.entity(entity_key)
    locale = site.config.locale
    rows = [
        [f"{entity.fields[k].label.get(locale)} ({k})" if k in entity.fields else k, _cell(v)]
        for k, v in record.items()
    ]
    for line in output.table(["field", "value"], rows)[1:]:
        click.echo(line)


def _table(site: Site, entity_key: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    for line in output.table(columns, [[_cell(r.get(c)) for c in columns] for r in rows]):
        click.echo(line)


as_option = click.option("--as", "login", envvar="CRM_USER", help="Act as this user (default: the first admin).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def record() -> None:
    """Create, read, update, list, archive and delete records."""


@record.command("create")
@click.argument("entity")
@click.argument("values", nargs=-1)
@as_option
@json_option
@click.pass_context
@report_errors
def create_cmd(ctx: click.Context, entity: str, values: tuple[str, ...], login: str | None, as_json: bool) -> None:
    """Create a record: crm record create customer name="Acme Ltd" kind=client"""
    with open_site(ctx) as site:
        created = site.records.create(cli_actor(site, login), entity, parse_assignments(values))
        _show(site, entity, created, as_json)


@record.command("get")
@click.argument("entity")
@click.argument("record_id")
@as_option
@json_option
@click.pass_context
@report_errors
def get_cmd(ctx: click.Context, entity: str, record_id: str, login: str | None, as_json: bool) -> None:
    """Show one record."""
    with open_site(ctx) as site:
        _show(site, entity, site.records.get(cli_actor(site, login), entity, record_id), as_json)


@record.command("update")
@click.argument("entity")
@click.argument("record_id")
@click.argument("values", nargs=-1)
@click.option("--version", type=int, help="Refuse if the record is no longer at this version.")
@as_option
@json_option
@click.pass_context
@report_errors
def update_cmd(
    ctx: click.Context, entity: str, record_id: str, values: tuple[str, ...], version: int | None,
    login: str | None, as_json: bool,
) -> None:
    """Change fields of a record: crm record update customer 3 phone="+86 10 1234 5678" """
    with open_site(ctx) as site:
        updated = site.records.update(
            cli_actor(site, login), entity, record_id, parse_assignments(values), version=version
        )
        _show(site, entity, updated, as_json)


@record.command("list")
@click.argument("entity")
@click.option("--filter", "filters", multiple=True,
              help="field__op=value; ops: eq ne lt le gt ge in contains between isnull.")
@click.option("--search", help="Text to find in the searchable fields.")
@click.option("--sort", "sorts", multiple=True, help="Field to sort by; -field for descending.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@click.option("--include-archived", is_flag=True)
@click.option("--columns", help="Comma-separated fields to show.")
@as_option
@json_option
@click.pass_context
@report_errors
def list_cmd(
    ctx: click.Context, entity: str, filters: tuple[str, ...], search: str | None,
    sorts: tuple[str, ...], limit: int, offset: int, include_archived: bool,
    columns: str | None, login: str | None, as_json: bool,
) -> None:
    """List records: crm record list opportunity --filter amount__gt=10000 --sort -amount"""
    try:
        parsed = [Filter.parse(f) for f in filters]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--filter") from None
    with open_site(ctx) as site:
        page = site.records.list(
            cli_actor(site, login), entity, filters=parsed, search=search,
            sort=[Sort.parse(s) for s in sorts], limit=limit, offset=offset,
            include_archived=include_archived,
        )
        if as_json:
            echo_json({"total": page.total, "limit": page.limit, "offset": page.offset,
                       "rows": page.rows})
            return
        definition = site.registry.entity(entity)
        shown = columns.split(",") if columns else ["id"] + [
            f.key for f in definition.fields.values() if f.has_column and f.type != "json"
        ][:6]
        _table(site, entity, page.rows, shown)
        click.echo(f"({len(page.rows)} of {page.total})")


def _simple(name: str, method: str, summary: str) -> None:
    @record.command(name, help=summary)
    @click.argument("entity")
    @click.argument("record_id")
    @click.option("--version", type=int, help="Refuse if the record is no longer at this version.")
    @as_option
    @click.pass_context
    @report_errors
    def command(ctx: click.Context, entity: str, record_id: str, version: int | None, login: str | None) -> None:
        with open_site(ctx) as site:
            getattr(site.records, method)(cli_actor(site, login), entity, record_id, version=version)
            click.echo(f"{name.capitalize()}d {entity} {record_id}.")


_simple("archive", "archive", "Archive a record (hidden from lists, kept with its history).")
_simple("restore", "restore", "Bring an archived record back.")
_simple("delete", "delete", "Delete a record for good (references follow their on-delete rule).")


@record.command("history")
@click.argument("entity")
@click.argument("record_id")
@as_option
@json_option
@click.pass_context
@report_errors
def history_cmd(ctx: click.Context, entity: str, record_id: str, login: str | None, as_json: bool) -> None:
    """Show the audit trail of a record."""
    with open_site(ctx) as site:
        rows = site.records.history(cli_actor(site, login), entity, record_id)
        if as_json:
            echo_json(rows)
            return
        for row in rows:
            change = "" if row["field"] in (None, "*") else (
                f" {row['field']}: {json.dumps(row['old_value'], ensure_ascii=False)} → "
                f"{json.dumps(row['new_value'], ensure_ascii=False)}"
            )
            click.echo(f"{to_json(row['at'])}  user {row['actor_id']}  {row['action']}{change}")


def register(group: click.Group) -> None:
    group.add_command(record)
