"""``crm record transition`` and ``crm record transitions``: stage flows from the command line.

A stage changes only through a transition (``crm record update`` refuses
it), so these are the commands that move records, through the same
workflow service as every other door.
"""

from __future__ import annotations

import click

from engine.cli.main import echo_json, report_errors
from engine.cli.record_commands import as_option, cli_actor, json_option, parse_assignments, record
from engine.cli.site_commands import open_site


@click.command("transition")
@click.argument("entity")
@click.argument("record_id")
@click.argument("to_stage")
@click.argument("values", nargs=-1)
@click.option("--version", type=int, help="Refuse if the record is no longer at this version.")
@click.option("--comment", help="Why; kept in the stage history.")
@click.option("--yes", "-y", "assume_yes", is_flag=True,
              help="Do not ask when the transition wants a confirmation.")
@as_option
@json_option
@click.pass_context
@report_errors
def transition_cmd(
    ctx: click.Context, entity: str, record_id: str, to_stage: str, values: tuple[str, ...],
    version: int | None, comment: str | None, assume_yes: bool, login: str | None,
    as_json: bool,
) -> None:
    """Move a record to another stage: crm record transition opportunity 3 lost lost_reason=price"""
    given = parse_assignments(values)
    with open_site(ctx) as site:
        actor = cli_actor(site, login)
        before = site.records.get(actor, entity, record_id)
        workflow = site.workflows.workflow(actor, entity)
        option = next((o for o in site.workflows.available(actor, entity, record_id)
                       if o.to == to_stage), None)
        if option is not None and option.confirm and not assume_yes:
            click.confirm(option.confirm, abort=True)
        moved = site.workflows.transition(actor, entity, record_id, to_stage, given,
                                          version=version, comment=comment)
        if as_json:
            echo_json(moved)
            return
        language = actor.language
        old = workflow.stage_of(before).label.get(language)
        new = workflow.stage_of(moved).label.get(language)
        click.echo(f"Moved {entity} {moved['id']} from {old} to {new} "
                   f"(version {moved['version']}).")


@click.command("transitions")
@click.argument("entity")
@click.argument("record_id")
@as_option
@json_option
@click.pass_context
@report_errors
def transitions_cmd(ctx: click.Context, entity: str, record_id: str, login: str | None,
                    as_json: bool) -> None:
    """List the transitions a record can take now, and why the others cannot be taken."""
    with open_site(ctx) as site:
        actor = cli_actor(site, login)
        workflow = site.workflows.workflow(actor, entity)
        current = site.records.get(actor, entity, record_id)
        options = site.workflows.available(actor, entity, record_id)
        stage = workflow.stage_of(current)
        if as_json:
            echo_json({"stage": stage.key, "version": current["version"],
                       "transitions": [o.to_dict() for o in options]})
            return
        click.echo(f"{entity} {current['id']} is in {stage.label.get(actor.language)} "
                   f"({stage.key}, {stage.category}), version {current['version']}.")
        if not options:
            click.echo("No transition leaves this stage.")
        for option in options:
            mark = "+" if option.allowed else "-"
            click.echo(f"{mark} {option.to:<14} {option.label}   [{option.key}]")
            for reason in option.reasons:
                click.echo(f"    not available: {reason.message}")
            if option.fields:
                click.echo(f"    give on the way: {', '.join(option.fields)}")
            if option.confirm:
                click.echo(f"    asks: {option.confirm}")


def register(group: click.Group) -> None:
    """Add the commands to ``crm record`` (``group`` is the top-level ``crm`` group)."""
    record.add_command(transition_cmd)
    record.add_command(transitions_cmd)
