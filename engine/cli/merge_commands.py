"""``crm merge ENTITY KEEP_ID DROP_ID``: fold a duplicate record into the one kept."""

from __future__ import annotations

import click

from engine.cli.main import echo_json, report_errors
from engine.cli.output import table
from engine.cli.record_commands import cli_actor
from engine.cli.site_commands import open_site
from engine.services.records.merge import MergePlan, merge, plan_merge


def _print_plan(plan: MergePlan, entity_label: str, title_field: str | None) -> None:
    title = plan.kept.get(title_field or "id") or plan.kept["id"]
    other = plan.duplicate.get(title_field or "id") or plan.duplicate["id"]
    click.echo(f"Keep {entity_label} {plan.kept['id']} ({title}); "
               f"archive {plan.duplicate['id']} ({other}).")
    if plan.fills:
        click.echo("Empty fields filled from the duplicate:")
        for line in table(["field", "value"], [[k, str(v)] for k, v in plan.fills.items()]):
            click.echo("  " + line)
    if plan.moves:
        click.echo("Records moved to the kept one:")
        rows = [[m.where, str(len(m.record_ids)), " ".join(map(str, m.record_ids[:10]))
                 + (" …" if len(m.record_ids) > 10 else "")] for m in plan.moves]
        for line in table(["field", "records", "ids"], rows):
            click.echo("  " + line)
    else:
        click.echo("No record refers to the duplicate.")


@click.command("merge")
@click.argument("entity")
@click.argument("keep_id", type=int)
@click.argument("drop_id", type=int)
@click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
@click.option("--as", "login", envvar="CRM_USER",
              help="Act as this user (default: the first administrator).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@report_errors
def merge_command(ctx: click.Context, entity: str, keep_id: int, drop_id: int, dry_run: bool,
                  login: str | None, as_json: bool) -> None:
    """Merge record DROP_ID into KEEP_ID: everything referring to it moves, it is archived."""
    with open_site(ctx) as site:
        actor = cli_actor(site, login)
        plan = plan_merge(site.records, actor, keep_id, drop_id, entity=entity)
        target = site.records.entity(entity)
        label, title_field = target.label.get(actor.language), target.title_field
        if dry_run:
            if as_json:
                echo_json({"kept": plan.kept["id"], "merged": plan.duplicate["id"],
                           "fills": plan.fills, "moved": plan.moved, "dry_run": True})
            else:
                _print_plan(plan, label, title_field)
                click.echo("Dry run: nothing changed.")
            return
        result = merge(site.records, actor, keep_id, drop_id, entity=entity)
        if as_json:
            echo_json({"kept": result.kept["id"], "merged": result.merged_id,
                       "fills": plan.fills, "moved": result.moved,
                       "change_id": result.change_id})
            return
        _print_plan(plan, label, title_field)
        click.echo(f"Merged (change {result.change_id}).")


def register(group: click.Group) -> None:
    group.add_command(merge_command)
