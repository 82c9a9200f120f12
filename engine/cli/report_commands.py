"""``crm report NAME``: a pack's report (a figure) printed as a table, or as JSON."""

from __future__ import annotations

import click

from engine.cli.main import echo_json, report_errors
from engine.cli.output import table
from engine.cli.record_commands import cli_actor
from engine.cli.site_commands import open_site
from engine.errors import NotFound
from engine.pack_code import available_reports
from engine.services.views.figures import Figure, ReportRequest
from engine.services.views.reports import ReportLoader


def figure_lines(figure: Figure, language: str, currency: str = "CNY") -> list[str]:
    """The figure as a title, a table (a row per category, a column per series, each value
    written by its series' unit) and its note."""
    header = [""] + [s.name.get(language) or s.name.get("en", "") for s in figure.series]
    rows = [[category] + [figure.text(s, s.values[i], currency, language) for s in figure.series]
            for i, category in enumerate(figure.categories)]
    lines = [figure.title.get(language) or figure.title.get("en", "")]
    lines += table(header, rows) if rows else ["(nothing to show)"]
    if figure.note:
        lines.append(figure.note.get(language) or figure.note.get("en", ""))
    return lines


def _params(items: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got '{item}'", param_hint="--param")
        params[key] = value
    return params


@click.command("report")
@click.argument("name", required=False)
@click.option("--as", "login", envvar="CRM_USER",
              help="Whose figures: this user's scope (default: the first administrator).")
@click.option("--param", "params", multiple=True, help="KEY=VALUE passed to the report.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@report_errors
def report(ctx: click.Context, name: str | None, login: str | None, params: tuple[str, ...],
           as_json: bool) -> None:
    """Print report NAME (e.g. core.pipeline) as a table; without NAME, list the reports."""
    with open_site(ctx) as site:
        if name is None:
            for key, function in sorted(available_reports(site).items()):
                summary = (function.__doc__ or "").strip().splitlines()
                click.echo(f"{key:<36} {summary[0] if summary else ''}")
            return
        actor = cli_actor(site, login)
        known = available_reports(site)
        if name not in known and not name.startswith("site."):
            raise NotFound(f"There is no report '{name}'; the reports are: "
                           f"{', '.join(sorted(known)) or 'none'}.")
        function = ReportLoader(site.registry, site.config.overlay_dir).function(name)
        figure = function(ReportRequest(site, actor, site.clock.now(), _params(params)))
        if as_json:
            echo_json(figure.as_json(actor.language, site.config.currency))
            return
        for line in figure_lines(figure, actor.language, site.config.currency):
            click.echo(line)


def register(group: click.Group) -> None:
    group.add_command(report)
