"""The upload page of an entity (check, then import) and the list's export links.

The page posts the file to the importer with the actor of the session, so
the rights and rules are the service's.  "Check" is a dry run showing the
same report as ``crm import --dry-run``; the report page then offers
"Import" with the file carried along in the form (the engine keeps no
uploads between requests).  Rejected rows of a "good rows" import come back
as a CSV download.  Export links carry the list's own query string, so the
file holds what the list shows: its filters, search and sort.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Response, render_template, request

from engine.errors import ValidationFailed
from engine.services.exporting import Exporter
from engine.services.importing import Importer
from engine.storage.queries import Sort
from engine.web.context import actor, language, login_required, site
from engine.web.downloads import export_response
from engine.web.records import _list_filters, bp, entity_and_views

#: The largest file the page takes (the form carries it again to import after a check).
MAX_UPLOAD = 2 * 1024 * 1024

WORDS: dict[str, dict[str, str]] = {
    "import": {"en": "Import", "zh": "导入"},
    "import_title": {"en": "Import {entity}", "zh": "导入{entity}"},
    "import_help": {
        "en": "A CSV (UTF-8 or GBK) or XLSX file whose first row names the columns by field "
              "label (English or Chinese) or key. References are found by number, unique "
              "field or name; choices by label. Check the file first: nothing is written "
              "until you import it.",
        "zh": "CSV(UTF-8 或 GBK)或 XLSX 文件,第一行为列名(字段的中文名、英文名或键)。"
              "关联记录按编号、唯一字段或名称查找,选项按名称匹配。请先检查文件:导入前不会写入任何数据。",
    },
    "file": {"en": "File", "zh": "文件"},
    "upsert_on": {"en": "Update records matching on", "zh": "按此字段更新已有记录"},
    "no_upsert": {"en": "(only create new records)", "zh": "(只新建记录)"},
    "good_rows": {"en": "Import the good rows, skip the others", "zh": "导入正确的行,跳过有误的行"},
    "remember": {"en": "Remember these column names", "zh": "记住这些列名"},
    "check": {"en": "Check the file", "zh": "检查文件"},
    "import_now": {"en": "Import", "zh": "导入"},
    "report": {"en": "Report", "zh": "检查结果"},
    "rows_read": {"en": "{rows} row(s) read", "zh": "已读取 {rows} 行"},
    "would_write": {"en": "{created} to create, {updated} to update, {rejected} refused",
                    "zh": "将新建 {created} 条,更新 {updated} 条,拒绝 {rejected} 行"},
    "written": {"en": "Imported: {created} created, {updated} updated, {rejected} refused",
                "zh": "已导入:新建 {created} 条,更新 {updated} 条,拒绝 {rejected} 行"},
    "nothing_written": {"en": "Nothing was written: fix the rows below, or import the good rows.",
                        "zh": "未写入任何数据:请修正以下各行,或选择只导入正确的行。"},
    "line": {"en": "Line", "zh": "行"},
    "column": {"en": "Column", "zh": "列"},
    "problem": {"en": "Problem", "zh": "问题"},
    "skipped": {"en": "Skipped columns", "zh": "跳过的列"},
    "columns": {"en": "Columns", "zh": "列对应"},
    "download_rejected": {"en": "Download the refused rows (CSV)", "zh": "下载被拒绝的行(CSV)"},
    "choose_file": {"en": "Choose a file to import.", "zh": "请选择要导入的文件。"},
    "too_big": {"en": "The file is larger than {size} MB: use 'crm import' for it.",
                "zh": "文件超过 {size} MB:请使用 crm import 命令导入。"},
    "export_csv": {"en": "Export CSV", "zh": "导出 CSV"},
    "export_xlsx": {"en": "Export Excel", "zh": "导出 Excel"},
}


def word(key: str, **params: Any) -> str:
    entry = WORDS[key]
    text = entry.get("zh" if language().startswith("zh") else "en") or entry["en"]
    return text.format(**params) if params else text


@bp.app_context_processor
def _transfer_io_globals() -> dict[str, Any]:
    """``io_word`` and ``io_links(entity)`` for the list page's import and export links."""

    def links(entity: Any) -> dict[str, bool]:
        me = actor()
        if me is None:
            return {"can_import": False, "can_export": False}
        policy = site().records.policy
        return {"can_import": policy.can(me, entity, "import"),
                "can_export": policy.can(me, entity, "export")}

    return {"io_word": word, "io_links": links}


def _upsert_choices(entity: Any) -> list[tuple[str, str]]:
    hidden = site().records.hidden(actor(), entity)
    lang = language()
    found = [(f.key, f.label.get(lang)) for f in entity.fields.values()
             if (f.unique or f.type == "sequence") and f.key not in hidden]
    return [*found, ("id", "id")]


def _render(entity: Any, **extra: Any) -> str:
    return render_template("import.html", entity=entity, upsert_choices=_upsert_choices(entity),
                           w=word, max_mb=MAX_UPLOAD // (1024 * 1024), **extra)


@bp.route("/r/<entity_key>/import", methods=["GET", "POST"])
@login_required
def import_records(entity_key: str) -> tuple[str, int]:
    entity, _ = entity_and_views(entity_key)
    me = actor()
    opened = site()
    importer = Importer(opened.records, timezone=opened.config.timezone)
    importer.allow(me, entity.key)  # 403 before the form is even shown
    if request.method == "GET":
        return _render(entity), 200
    form = request.form
    upload = request.files.get("file")
    data, name = b"", ""
    if upload is not None and upload.filename:
        data, name = upload.read(MAX_UPLOAD + 1), upload.filename
    elif form.get("carried"):
        try:
            data = base64.b64decode(form["carried"], validate=True)
        except (binascii.Error, ValueError):
            data = b""
        name = form.get("filename", "upload.csv")
    options = {"upsert_on": form.get("upsert_on") or None,
               "good_rows": form.get("good_rows") == "1",
               "remember": form.get("remember") == "1"}
    if not data:
        return _render(entity, problem=word("choose_file"), options=options), 422
    if len(data) > MAX_UPLOAD:
        return _render(entity, problem=word("too_big", size=MAX_UPLOAD // (1024 * 1024)),
                       options=options), 413
    dry_run = form.get("action") != "import"
    report = importer.run(me, entity.key, data, name, dry_run=dry_run,
                          upsert_on=options["upsert_on"], good_rows=options["good_rows"])
    if options["remember"] and report.written and report.columns:
        importer.save_mapping(me, entity.key, report.columns)
    carried = base64.b64encode(data).decode("ascii") if dry_run else ""
    status = 200 if report.ok or report.written else 422
    return _render(entity, report=report, carried=carried, filename=name, options=options,
                   rejected=report.rejected_csv(language()) if report.row_errors else ""), status


@bp.route("/r/<entity_key>/import/rejected", methods=["POST"])
@login_required
def import_rejected(entity_key: str) -> Response:
    """The refused rows the report page holds, handed back as a CSV download."""
    entity, _ = entity_and_views(entity_key)
    Importer(site().records).allow(actor(), entity.key)
    text = request.form.get("rejected", "")
    return Response("\ufeff" + text, content_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{entity.key}.rejected.csv"'})


@bp.route("/r/<entity_key>/export")
@login_required
def export_records(entity_key: str) -> Response:
    """The list as a file: the same filters, search and sort as the list page's query string."""
    entity, views = entity_and_views(entity_key)
    me = actor()
    opened = site()
    hidden = opened.records.hidden(me, entity)
    filters, _ = _list_filters(entity, views, hidden)
    sort = request.args.get("sort", "").strip() or views.default_sort
    order = [Sort.parse(s) for s in sort.split(",") if s.strip()] if sort else []
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise ValidationFailed({"format": ["csv or xlsx"]})
    exporter = Exporter.for_site(opened)
    return export_response(exporter, me, entity.key, fmt=fmt, filters=filters, sort=order,
                           search=request.args.get("q", "").strip() or None,
                           include_archived=request.args.get("archived") == "1")


__all__ = ["export_records", "import_records", "import_rejected"]
