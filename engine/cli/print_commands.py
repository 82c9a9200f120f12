"""``crm print``: a record's printed document as a PDF (or HTML) file."""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli.main import report_errors
from engine.cli.record_commands import as_option, cli_actor
from engine.cli.site_commands import open_site
from engine.printing.documents import print_formats, render_html, render_pdf


@click.command(name="print")
@click.argument("template")
@click.argument("record_id", type=int)
@click.option("--entity", help="The record's entity (needed for the generic 'record' sheet; "
                               "otherwise the format's own).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write: .pdf, or .html for the preview.")
@click.option("--lang", type=click.Choice(["en", "zh"]), help="The document's language.")
@as_option
@click.pass_context
@report_errors
def print_command(ctx: click.Context, template: str, record_id: int, entity: str | None,
                  out: Path, lang: str | None, login: str | None) -> None:
    """Print RECORD_ID with the print format TEMPLATE into --out."""
    with open_site(ctx) as site:
        actor = cli_actor(site, login)
        if entity is None:
            fmt = print_formats(site).get(template)
            if fmt is None:
                raise click.BadParameter(f"no print format '{template}'; give --entity for the "
                                         "generic 'record' sheet", param_hint="TEMPLATE")
            entity = fmt.entity
        if out.suffix.lower() == ".html":
            _, html = render_html(site, actor, template, entity, record_id, language=lang)
            out.write_text(html, encoding="utf-8")
        else:
            _, pdf = render_pdf(site, actor, template, entity, record_id, language=lang)
            out.write_bytes(pdf)
    click.echo(f"{out} written.")


def register(group: click.Group) -> None:
    group.add_command(print_command)
