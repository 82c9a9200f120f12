"""``crm import`` and ``crm export``: spreadsheets in and out, through the record service.

Both act as a user (``--as LOGIN`` or ``$CRM_USER``; by default the site's
first administrator), so the rights, scopes and field rules are the same
as in the UI and the API.  ``crm import`` prints a report with every
refused row and exits 1 when anything was refused (nothing is written
then, unless ``--good-rows``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.cli import output
from engine.cli.main import echo_json, report_errors
from engine.cli.record_commands import as_option, cli_actor
from engine.cli.site_commands import open_site
from engine.services.dataio.exporting import FORMATS, Exporter
from engine.services.dataio.importing import Importer, ImportReport
from engine.services.dataio.importing.mapping import load_mapping_file
from engine.services.dataio.importing.queue import ImportQueue
from engine.storage.queries import Filter, Sort

#: Refused rows printed before "… and N more" (all of them are in --rejected).
SHOWN_ERRORS = 200


def print_report(report: ImportReport, limit: int = SHOWN_ERRORS) -> None:
    """The report as lines a person reads: counts, file problems, then a table of row errors."""
    mode = "dry run" if report.dry_run else ("good rows" if report.good_rows else "all or nothing")
    click.echo(f"{report.entity}: {report.rows} row(s) read ({mode}"
               f"{', ' + report.encoding if report.encoding else ''}).")
    if report.skipped_columns:
        click.echo(f"Skipped columns: {', '.join(report.skipped_columns)}")
    for text in report.file_errors:
        click.echo(f"Error: {text}", err=True)
    if report.row_errors:
        lines = [[str(e.line), column, text] for e in report.row_errors[:limit]
                 for column, text in e.messages()]
        for line in output.table(["line", "column", "problem"], lines):
            click.echo(line, err=True)
        if len(report.row_errors) > limit:
            click.echo(f"… and {len(report.row_errors) - limit} more refused row(s).", err=True)
    if report.likely_duplicates:
        click.echo(f"{len(report.likely_duplicates)} row(s) look like existing records or "
                   f"earlier rows (not refused; check them):")
        shown = [[str(d.line), ", ".join(
            [f"#{m['id']} {m.get('name') or ''}".strip() for m in d.records]
            + [f"line {m['line']}" for m in d.lines]),
            ", ".join(dict.fromkeys(r for m in d.records + d.lines for r in m["reasons"]))]
            for d in report.likely_duplicates[:limit]]
        for line in output.table(["line", "looks like", "matched on"], shown):
            click.echo(line)
        if len(report.likely_duplicates) > limit:
            click.echo(f"… and {len(report.likely_duplicates) - limit} more.")
    verb = "would be" if report.dry_run else ("were" if report.written else "would have been")
    click.echo(f"{report.created} created, {report.updated} updated {verb} written; "
               f"{report.rejected} row(s) refused.")
    if not report.written and not report.dry_run and (report.rejected or report.file_errors):
        click.echo("Nothing was written: fix the rows above (or use --good-rows).", err=True)


@click.command("import")
@click.argument("entity")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
@click.option("--upsert-on", "upsert_on", metavar="FIELD",
              help="Update the record whose FIELD (a unique field, a numbering field or id) "
                   "matches; create the others.")
@click.option("--mapping", "mapping_file", type=click.Path(exists=True, dir_okay=False),
              help="A YAML file mapping column headers to fields (docs/import_export.md).")
@click.option("--save-mapping", is_flag=True,
              help="Remember the --mapping columns for this entity's next imports.")
@click.option("--good-rows", "--skip-invalid", "good_rows", is_flag=True,
              help="Import the rows that pass and write the refused ones to --rejected.")
@click.option("--rejected", "rejected_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Where refused rows go with their reasons (default: FILE.rejected.csv "
                   "with --good-rows).")
@click.option("--background", is_flag=True,
              help="Queue the import for 'crm worker' and return at once (see 'crm imports').")
@as_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@report_errors
def import_cmd(ctx: click.Context, entity: str, file: Path, dry_run: bool, upsert_on: str | None,
               mapping_file: str | None, save_mapping: bool, good_rows: bool,
               rejected_file: Path | None, background: bool, login: str | None,
               as_json: bool) -> None:
    """Import a CSV or XLSX FILE into ENTITY: crm import customer customers.xlsx --dry-run"""
    with open_site(ctx) as site:
        actor = cli_actor(site, login)
        importer = Importer(site.records, timezone=site.config.timezone)
        importer.allow(actor, entity)
        mapping = load_mapping_file(mapping_file, entity, actor.language) if mapping_file else None
        if save_mapping and mapping:
            importer.save_mapping(actor, entity, mapping)
        data = file.read_bytes()
        if background:
            run = ImportQueue.for_site(site).enqueue(
                actor, entity, data, file.name, dry_run=dry_run, upsert_on=upsert_on,
                mapping=mapping, good_rows=good_rows)
            if as_json:
                echo_json(run.to_dict())
            else:
                click.echo(f"Import {run.id} queued: 'crm worker' runs it; follow it with "
                           f"'crm imports {run.id}'.")
            return
        with click.progressbar(length=1, label="Importing", file=sys.stderr) as bar:
            def advance(rows: int, total: int) -> None:
                bar.length = max(total, bar.pos + rows, 1)
                bar.update(rows)

            report = importer.run(actor, entity, data, file.name, dry_run=dry_run,
                                  upsert_on=upsert_on, mapping=mapping, good_rows=good_rows,
                                  progress=advance)
        if as_json:
            echo_json(report.to_dict())
        else:
            print_report(report)
        if report.row_errors and (good_rows or rejected_file):
            target = rejected_file or file.with_name(file.stem + ".rejected.csv")
            target.write_text(report.rejected_csv(actor.language), encoding="utf-8-sig")
            click.echo(f"Refused rows and their reasons: {target}", err=True)
        if not report.ok:
            sys.exit(1)


@click.command("imports")
@click.argument("run_id", type=int, required=False)
@click.option("--limit", default=20, show_default=True, help="How many runs to list.")
@as_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@report_errors
def imports_cmd(ctx: click.Context, run_id: int | None, limit: int, login: str | None,
                as_json: bool) -> None:
    """Background imports: the newest (yours; everyone's for an admin), or RUN_ID's report."""
    with open_site(ctx) as site:
        actor = cli_actor(site, login)
        queue = ImportQueue.for_site(site)
        if run_id is None:
            runs = queue.recent(actor, limit=limit)
            if as_json:
                echo_json([r.to_dict() for r in runs])
                return
            rows = [[str(r.id), r.entity, r.file_name, "check" if r.dry_run else "import",
                     r.shown_status, f"{r.rows_done}/{r.rows_total}",
                     r.created_at.strftime("%Y-%m-%d %H:%M")] for r in runs]
            for line in output.table(["ID", "ENTITY", "FILE", "KIND", "STATUS", "ROWS",
                                      "QUEUED (UTC)"], rows):
                click.echo(line)
            return
        run = queue.get(actor, run_id)
        if as_json:
            echo_json(run.to_dict())
            return
        click.echo(f"Import {run.id} of {run.file_name} into {run.entity}: {run.shown_status} "
                   f"({run.rows_done} of about {run.rows_total} rows read).")
        if run.stalled and run.heartbeat_at is not None:
            click.echo(f"No heartbeat from its worker since {run.heartbeat_at:%Y-%m-%d %H:%M:%S} "
                       "UTC: the worker may have stopped.", err=True)
        if run.error:
            click.echo(f"Error: {run.error}", err=True)
        report = run.import_report()
        if report is not None:
            print_report(report)


@click.command("export")
@click.argument("entity")
@click.option("--filter", "filters", multiple=True, metavar="FIELD__OP=VALUE",
              help="Only records matching (repeatable), as in 'crm record list'.")
@click.option("--sort", "sort", help="Fields, comma-separated; '-' for descending.")
@click.option("--search", "-q", help="Only records containing these words.")
@click.option("--archived", is_flag=True, help="Include archived records.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Default: from -o, else csv.")
@click.option("--keys", is_flag=True, help="Head columns with field keys instead of labels.")
@click.option("--lines", "lines", metavar="FIELD",
              help="A row per line of the lines field FIELD (the record's columns on the row "
                   "of its first line), as the importer reads it back.")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write (default: CSV on standard output).")
@as_option
@click.pass_context
@report_errors
def export_cmd(ctx: click.Context, entity: str, filters: tuple[str, ...], sort: str | None,
               search: str | None, archived: bool, fmt: str | None, keys: bool,
               lines: str | None, out: Path | None, login: str | None) -> None:
    """Export the records you may see to CSV or XLSX: crm export customer -o customers.xlsx"""
    try:
        parsed = [Filter.parse(f) for f in filters]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--filter") from None
    order = [Sort.parse(s) for s in (sort or "").split(",") if s.strip()]
    fmt = fmt or (out.suffix.lstrip(".").lower() if out and out.suffix.lower() in (
        ".csv", ".xlsx") else "csv")
    if fmt == "xlsx" and out is None:
        raise click.BadParameter("XLSX needs a file: give -o FILE.xlsx", param_hint="--format")
    with open_site(ctx) as site:
        actor = cli_actor(site, login)
        exporter = Exporter.for_site(site)
        header, rows = exporter.rows(actor, entity, filters=parsed, sort=order, search=search,
                                     include_archived=archived, keys=keys, typed=fmt == "xlsx",
                                     lines=lines)
        if fmt == "xlsx":
            assert out is not None
            with out.open("wb") as handle:
                exporter.write_xlsx(header, rows, handle, title=entity)
            return
        if out is None:
            stream = sys.stdout.buffer
            for chunk in exporter.csv_chunks(header, rows):
                stream.write(chunk)
            stream.flush()
            return
        with out.open("wb") as handle:
            for chunk in exporter.csv_chunks(header, rows):
                handle.write(chunk)


def register(group: click.Group) -> None:
    group.add_command(import_cmd)
    group.add_command(imports_cmd)
    group.add_command(export_cmd)
