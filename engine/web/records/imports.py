"""The upload page of an entity (check, then import) and the list's export links.

The page posts the file to the importer with the actor of the session, so
the rights and rules are the service's.  "Check" is a dry run showing the
same report as ``crm import --dry-run``; the report page then offers
"Import" with the file carried along in the form (the engine keeps no
uploads between requests).  Rejected rows of a "good rows" import come back
as a CSV download.  Export links carry the list's own query string, so the
file holds what the list shows: its filters, search and sort.

A file of :data:`~engine.services.dataio.importing.queue.BACKGROUND_ROWS` rows or
more is not read in the request at all: its check or import is queued for
``crm worker`` (:mod:`engine.services.dataio.importing.queue`) and the browser goes
to the run's page, where a progress bar follows the run (``imports.js``
polls the run's status; without scripts, the page's "Refresh" link) and
then shows the same report.  The file stays in the run's row, so "Import"
after a background check sends nothing again.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Response, jsonify, redirect, render_template, request, url_for

from engine.errors import NotFound, ValidationFailed
from engine.http.context import actor, language, login_required, site
from engine.http.downloads import export_response
from engine.services.dataio.exporting import Exporter
from engine.services.dataio.importing import Importer
from engine.services.dataio.importing.queue import (
    BACKGROUND_ROWS,
    MAX_FILE,
    ImportQueue,
    ImportRun,
    rows_estimate,
)
from engine.storage.queries import Sort
from engine.web.records.pages import _list_filters, bp, entity_and_views

#: The largest file checked in the request (the page carries it again, to import after the
#: check); larger files, up to the queue's MAX_FILE, are checked and imported in the background.
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
    "too_big": {"en": "The file is larger than {size} MB: import it with 'crm import "
                       "--background' or the API (background=true).",
                "zh": "文件超过 {size} MB:请使用 crm import --background 命令或 API"
                      "(background=true)导入。"},
    "big_file": {"en": "Files of {rows} rows or {mb} MB or more are checked and imported in "
                       "the background: you can leave the page and come back to it. At most "
                       "{max_mb} MB.",
                 "zh": "{rows} 行或 {mb} MB 及以上的文件将在后台检查和导入:您可以离开此页面,"
                       "稍后再回来查看。文件最大 {max_mb} MB。"},
    "run_title": {"en": "Import {number}: {file}", "zh": "导入 {number}:{file}"},
    "status_queued": {"en": "Waiting for a worker to start it…", "zh": "等待后台进程开始…"},
    "status_running": {"en": "Running: {done} of about {total} rows read",
                       "zh": "进行中:已读取 {done} 行,共约 {total} 行"},
    "status_running_plain": {"en": "Running…", "zh": "进行中…"},
    "status_failed": {"en": "The import failed", "zh": "导入失败"},
    "status_stalled": {
        "en": "Stalled: no word from its worker since {since} UTC ({done} rows read). The worker "
              "may have stopped; another worker takes the import over after {minutes} minutes, "
              "starting again from the first row. Nothing is written in the meantime.",
        "zh": "已停滞:自 UTC {since} 起未收到后台进程的消息(已读取 {done} 行)。后台进程可能已停止;"
              "{minutes} 分钟后将由其他后台进程从第一行重新开始。在此期间不会写入任何数据。"},
    "checking": {"en": "Checking the file", "zh": "正在检查文件"},
    "importing": {"en": "Importing the file", "zh": "正在导入文件"},
    "refresh": {"en": "Refresh", "zh": "刷新"},
    "no_worker": {"en": "If it stays waiting, no worker may be running: an administrator starts "
                        "one with 'crm worker'.",
                  "zh": "如果一直处于等待状态,可能没有运行后台进程:请管理员使用 crm worker 启动。"},
    "another": {"en": "Import another file", "zh": "导入其他文件"},
    "duplicates_warning": {
        "en": "{count} row(s) look like records already there or like earlier rows. They are "
              "not refused (the form, too, lets you save anyway): check them before importing, "
              "or update those records instead.",
        "zh": "有 {count} 行与已有记录或前面的行相似。这些行不会被拒绝(表单中也可以仍然保存):"
              "请在导入前核对,或改为更新这些记录。"},
    "looks_like": {"en": "Looks like", "zh": "相似于"},
    "file_line": {"en": "line {line} of this file", "zh": "本文件第 {line} 行"},
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
                           w=word, max_mb=MAX_FILE // (1024 * 1024),
                           background_mb=MAX_UPLOAD // (1024 * 1024),
                           background_rows=f"{BACKGROUND_ROWS:,}", **extra)


def upload_limit() -> int:
    """The largest request of the upload page: the largest file a background run takes."""
    return MAX_FILE + 64 * 1024


@bp.route("/r/<entity_key>/import", methods=["GET", "POST"])
@login_required
def import_records(entity_key: str) -> tuple[str, int] | Response:
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
        data, name = upload.read(MAX_FILE + 1), upload.filename
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
    if len(data) > MAX_FILE:
        return _render(entity, problem=word("too_big", size=MAX_FILE // (1024 * 1024)),
                       options=options), 413
    dry_run = form.get("action") != "import"
    if len(data) > MAX_UPLOAD or rows_estimate(data, name) >= BACKGROUND_ROWS:
        run = _queue().enqueue(me, entity.key, data, name, dry_run=dry_run,
                               upsert_on=options["upsert_on"], good_rows=options["good_rows"],
                               remember=options["remember"])
        return redirect(url_for("records.import_run", entity_key=entity.key, run_id=run.id),
                        303)
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


def _queue() -> ImportQueue:
    return ImportQueue.for_site(site())


def _run_of(entity_key: str, run_id: int) -> tuple[Any, ImportRun]:
    """The entity and the run, if the actor may see it and it imports into that entity."""
    entity, _ = entity_and_views(entity_key)
    run = _queue().get(actor(), run_id)
    if run.entity != entity.key:
        raise NotFound(word("run_title", number=run_id, file="?"))
    return entity, run


def _status(run: ImportRun) -> dict[str, Any]:
    """What the progress bar shows, for the page and for its script."""
    if run.status == "queued":
        text = word("status_queued")
    elif run.stalled:
        assert run.heartbeat_at is not None
        text = word("status_stalled", since=run.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S"),
                    done=f"{run.rows_done:,}",
                    minutes=int(_queue().takeover_after.total_seconds() // 60))
    elif run.status == "running":
        text = (word("status_running", done=f"{run.rows_done:,}", total=f"{run.rows_total:,}")
                if run.rows_total else word("status_running_plain"))
    else:
        text = word("status_failed") if run.status == "failed" else ""
    return {"status": run.shown_status, "rows_done": run.rows_done, "rows_total": run.rows_total,
            "percent": run.percent, "finished": run.finished, "text": text}


@bp.route("/r/<entity_key>/imports/<int:run_id>")
@login_required
def import_run(entity_key: str, run_id: int) -> tuple[str, int]:
    """A background check or import: its progress while it runs, then its report."""
    entity, run = _run_of(entity_key, run_id)
    report = run.import_report()
    status = 200
    if report is not None and not (report.ok or report.written):
        status = 422
    return render_template(
        "import_run.html", entity=entity, run=run, report=report, w=word, progress=_status(run),
        options=run.options, carried="", filename=run.file_name, rejected="",
        status_url=url_for("records.import_run_status", entity_key=entity.key, run_id=run.id),
    ), status


@bp.route("/r/<entity_key>/imports/<int:run_id>/status")
@login_required
def import_run_status(entity_key: str, run_id: int) -> Response:
    """The run's progress as JSON, for the page's script."""
    _, run = _run_of(entity_key, run_id)
    return jsonify(_status(run))


@bp.route("/r/<entity_key>/imports/<int:run_id>/rejected.csv")
@login_required
def import_run_rejected(entity_key: str, run_id: int) -> Response:
    """The rows a background import refused, with their reasons."""
    entity, run = _run_of(entity_key, run_id)
    text = _queue().rejected(actor(), run.id) or ""
    return Response("\ufeff" + text, content_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{entity.key}.rejected.csv"'})


@bp.route("/r/<entity_key>/imports/<int:run_id>/import", methods=["POST"])
@login_required
def import_checked(entity_key: str, run_id: int) -> Response:
    """"Import" after a background check: the kept file, queued for real."""
    entity, run = _run_of(entity_key, run_id)
    again = _queue().import_checked(actor(), run.id)
    return redirect(url_for("records.import_run", entity_key=entity.key, run_id=again.id), 303)


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


__all__ = ["export_records", "import_checked", "import_records", "import_rejected", "import_run",
           "import_run_rejected", "import_run_status"]
