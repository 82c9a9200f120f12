"""Import and export: as strict as the form, all or nothing, and only what the actor may see.

A small pack (accounts with numbers, deals with a unique code, a decimal, a
date, a choice, a boolean, a reference and a field hidden from salespeople)
is imported from CSV (UTF-8, UTF-8 with BOM, GBK) and XLSX, through the
service, the CLI and the upload page, and exported through the service,
the CLI, the API and the list page's link.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
import yaml
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook
from sqlalchemy import event, func, select

from engine.cli import main
from engine.context import Actor, FixedClock
from engine.errors import PermissionDenied
from engine.services.dataio.exporting import Exporter
from engine.services.dataio.importing import Importer
from engine.storage.queries import Filter, Sort
from engine.web import create_app
from tests.support import open_migrated, write_pack, write_site
from tests.web_support import login, post

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse"
PACK = {
    "entities/account.yaml": """
        entity: account
        title_field: name
        label: {en: Account, zh: 客户}
        fields:
          number: {type: sequence, sequence_pattern: "A-{####}", label: {en: Number, zh: 编号}}
          name: {type: string, required: true, max_length: 80, label: {en: Name, zh: 名称}}
    """,
    "entities/deal.yaml": """
        entity: deal
        title_field: title
        label: {en: Deal, zh: 商机}
        fields:
          code: {type: string, unique: true, max_length: 20, label: {en: Code, zh: 代码}}
          title: {type: string, required: true, max_length: 40, label: {en: Title, zh: 标题}}
          amount: {type: decimal, precision: 12, scale: 2, label: {en: Amount, zh: 金额}}
          closes: {type: date, label: {en: Closes on, zh: 预计成交日期}}
          kind:
            type: choice
            label: {en: Kind, zh: 类型}
            choices:
              new: {en: New business, zh: 新业务}
              renewal: {en: Renewal, zh: 续约}
          hot: {type: boolean, default: false, label: {en: Hot, zh: 重点}}
          account: {type: reference, to: account, on_delete: set_null, label: {en: Account, zh: 客户}}
          secret: {type: string, label: {en: Secret, zh: 机密}}
    """,
    "roles.yaml": """
        roles:
          boss:
            label: {en: Boss, zh: 老板}
            entities:
              "*": {rights: all, scope: all}
          sales:
            label: {en: Sales, zh: 销售}
            entities:
              "*": {rights: [read, create, update, import, export], scope: own}
              account: {rights: [read, create, update, import, export], scope: all}
              deal: {fields: {secret: hidden}}
          viewer:
            label: {en: Viewer, zh: 访客}
            entities:
              "*": {rights: [read], scope: all}
    """,
}
TABLES = ("account", "deal", "crm_audit", "crm_sequence")


@pytest.fixture
def site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "shop", PACK)
    root = write_site(tmp_path / "site", db_url, ["shop"], pack_paths=["../packs"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    opened.users.create("boss", password=PASSWORD, roles=["boss"])
    opened.users.create("rep", password=PASSWORD, roles=["sales"])
    opened.users.create("other", password=PASSWORD, roles=["sales"])
    opened.users.create("viewer", password=PASSWORD, roles=["viewer"])
    yield opened
    opened.close()


def actor(site, login_name: str) -> Actor:
    return site.users.actor(login_name)


def importer(site, **kwargs) -> Importer:
    return Importer(site.records, timezone="Asia/Shanghai", **kwargs)


def counts(site) -> dict[str, int]:
    with site.engine.connect() as conn:
        found = {}
        for name in TABLES:
            table = site.schema.system(name) if name.startswith("crm_") else site.schema.table(name)
            found[name] = conn.execute(select(func.count()).select_from(table)).scalar_one()
        return found


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


def seed(site) -> dict[str, int]:
    boss = actor(site, "boss")
    ids = {}
    for name in ("Acme", "Globex", "Twin", "Twin"):
        ids[name] = site.records.create(boss, "account", {"name": name})["id"]
    return ids


def deals(site, who: str = "boss") -> list[dict]:
    return site.records.list(actor(site, who), "deal", sort=[Sort("code")], limit=1000).rows


# -- a bad file: a complete report, and nothing written ----------------------------------------


def test_a_bad_file_gets_a_complete_report_and_changes_nothing(site):
    seed(site)
    boss = actor(site, "boss")
    site.records.create(boss, "deal", {"code": "D-OLD", "title": "Existing"})
    before = counts(site)
    lines = [
        "code,title,amount,closes,kind,hot,account",
        "D-1,Good one,100.50,2026-03-01,New business,yes,Acme",        # 2: fine
        "D-2,Wrong types,abc,2026-13-45,New business,maybe,Acme",      # 3: three bad cells
        "D-3,Unknown account,1,,renewal,no,Nobody Ltd",                 # 4: unknown reference
        "D-1,Duplicate in file,1,,,,",                                  # 5: D-1 again
        "D-OLD,Duplicate of the database,1,,,,",                        # 6: taken already
        f"D-7,{'x' * 41},1,,,,",                                        # 7: over-long
        "D-8,Ambiguous,1,,,,Twin",                                      # 8: two accounts 'Twin'
    ]
    data = "\n".join(lines).encode("utf-8")
    data += b"\nD-9,Bad \xff\xfe bytes,1,,,,\n"                         # 9: not UTF-8
    data += b"D-10,Unknown choice,1,,someday,,\n"               # 10
    report = importer(site).run(boss, "deal", data, "deals.csv")
    assert not report.written and not report.ok
    errors = {e.line: e.errors for e in report.row_errors}
    assert set(errors) == {3, 4, 5, 6, 7, 8, 9, 10}, errors
    assert set(errors[3]) == {"amount", "closes", "hot"}
    assert "Nobody Ltd" in errors[4]["account"][0]
    assert "line 2" in errors[5]["code"][0]
    assert "D-OLD" in errors[6]["code"][0]
    assert "40" in errors[7]["title"][0]
    assert "2" in errors[8]["account"][0] and "Twin" in errors[8]["account"][0]
    assert "UTF-8" in errors[9]["row"][0].upper()
    assert "someday" in errors[10]["kind"][0]
    assert report.rows == 9 and report.created == 1  # checked, then rolled back
    assert counts(site) == before


def test_unknown_columns_and_lines_stop_the_import_before_any_row(site):
    boss = actor(site, "boss")
    data = csv_bytes([["title", "colour", "secret"], ["A", "red", "s"]])
    report = importer(site).run(boss, "deal", data, "d.csv")
    assert report.file_errors and "colour" in report.file_errors[0]
    assert report.rows == 0 and not report.written
    # The same column names a hidden field for a salesperson: unknown, never revealed.
    report = importer(site).run(actor(site, "rep"), "deal",
                                csv_bytes([["title", "secret"], ["A", "s"]]), "d.csv")
    assert any("secret" in text for text in report.file_errors)


# -- encodings, labels, choices, references ------------------------------------------------------


def test_gbk_csv_with_chinese_labels_choices_and_booleans(site):
    ids = seed(site)
    boss = actor(site, "boss")
    data = csv_bytes([
        ["代码", "标题", "金额", "预计成交日期", "类型", "重点", "客户"],
        ["D-1", "华为项目", "￥1,200.50", "2026年3月1日", "新业务", "是", "Acme"],
        ["D-2", "阿里续约", "88", "2026/4/2", "续约", "否", "A-0002"],
        ["D-3", "按编号", "", "", "", "", f"#{ids['Twin']}"],
    ], "gbk")
    report = importer(site).run(boss, "deal", data, "商机.csv")
    assert report.ok and report.written and report.created == 3, report.to_dict()
    assert report.encoding in ("gb18030", "gbk")
    rows = {r["code"]: r for r in deals(site)}
    assert rows["D-1"]["title"] == "华为项目" and rows["D-1"]["amount"] == Decimal("1200.50")
    assert rows["D-1"]["closes"] == dt.date(2026, 3, 1) and rows["D-1"]["kind"] == "new"
    assert rows["D-1"]["hot"] is True and rows["D-1"]["account"] == ids["Acme"]
    assert rows["D-2"]["kind"] == "renewal" and rows["D-2"]["hot"] is False
    assert rows["D-2"]["account"] == ids["Globex"]  # by its number A-0002
    assert rows["D-3"]["account"] == ids["Twin"]


def test_utf8_bom_csv_and_semicolons(site):
    boss = actor(site, "boss")
    data = "\ufeffcode;title;amount\nD-1;Müller GmbH;3.5\nD-2;Ünal, Öz & Co;x\n".encode()
    report = importer(site).run(boss, "deal", data, "d.csv")
    assert report.encoding == "utf-8" and report.rows == 2
    assert [e.line for e in report.row_errors] == [3] and "amount" in report.row_errors[0].errors
    report = importer(site).run(boss, "deal", data, "d.csv", good_rows=True)
    assert report.written and report.created == 1
    assert deals(site)[0]["title"] == "Müller GmbH"
    assert deals(site)[0]["amount"] == Decimal("3.50")


def test_xlsx_round_trip_through_export_and_import(site):
    seed(site)
    boss = actor(site, "boss")
    originals = [
        {"code": "D-1", "title": "First", "amount": "10.00", "closes": "2026-02-03",
         "kind": "new", "hot": True, "account": None},
        {"code": "D-2", "title": "第二", "amount": None, "closes": None, "kind": "renewal",
         "hot": False, "account": None},
    ]
    site.records.create(boss, "deal", {**originals[0], "account": None})
    site.records.create(boss, "deal", originals[1])
    acme = site.records.list(boss, "account", filters=[Filter("name", "eq", "Acme")]).rows[0]
    site.records.update(boss, "deal", deals(site)[0]["id"], {"account": acme["id"]})
    before = [{k: r[k] for k in ("code", "title", "amount", "closes", "kind", "hot", "account")}
              for r in deals(site)]
    exporter = Exporter(site.records, timezone="Asia/Shanghai")
    header, rows = exporter.rows(boss, "deal", typed=True)
    buffer = io.BytesIO()
    exporter.write_xlsx(header, rows, buffer)
    for record in deals(site):
        site.records.delete(boss, "deal", record["id"])
    report = importer(site).run(boss, "deal", buffer.getvalue(), "deals.xlsx")
    assert report.ok and report.created == 2, report.to_dict()
    assert "id" in report.skipped_columns
    after = [{k: r[k] for k in ("code", "title", "amount", "closes", "kind", "hot", "account")}
             for r in deals(site)]
    assert after == before


def test_xlsx_cells_keep_their_types(site):
    seed(site)
    book = Workbook()
    sheet = book.active
    sheet.append(["Code", "Title", "Amount", "Closes on", "Hot", "Account"])
    sheet.append(["D-1", "Typed", 12.5, dt.datetime(2026, 5, 6), True, "Globex"])
    sheet.append([1001, "A number as code", 3, dt.date(2026, 5, 7), False, None])
    buffer = io.BytesIO()
    book.save(buffer)
    report = importer(site).run(actor(site, "boss"), "deal", buffer.getvalue(), "x.xlsx")
    assert report.ok, report.to_dict()
    rows = {r["code"]: r for r in deals(site)}
    assert rows["D-1"]["amount"] == Decimal("12.50")
    assert rows["D-1"]["closes"] == dt.date(2026, 5, 6)
    assert rows["1001"]["hot"] is False


# -- mappings ----------------------------------------------------------------------------------------


def test_mapping_file_and_the_mapping_saved_for_the_site(site, tmp_path):
    boss = actor(site, "boss")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(yaml.safe_dump({"entity": "deal", "columns": {
        "Deal name": "title", "Legacy id": None}}, allow_unicode=True), encoding="utf-8")
    from engine.services.dataio.importing.mapping import load_mapping_file

    columns = load_mapping_file(mapping, "deal")
    data = csv_bytes([["Deal name", "Legacy id", "code"], ["Mapped", "77", "D-1"]])
    imp = importer(site)
    report = imp.run(boss, "deal", data, "d.csv", mapping=columns)
    assert report.ok and report.skipped_columns == ["Legacy id"]
    imp.save_mapping(boss, "deal", columns)
    # Another import (another process would see the same: it is in the database).
    data = csv_bytes([["Deal name", "Legacy id", "code"], ["Saved", "78", "D-2"]])
    report = Importer(site.records).run(boss, "deal", data, "d.csv")
    assert report.ok and report.created == 1
    with pytest.raises(Exception, match="account"):
        load_mapping_file(mapping, "account")


# -- upsert ------------------------------------------------------------------------------------------


def test_upsert_updates_through_the_update_path_and_respects_scopes(site):
    rep, other = actor(site, "rep"), actor(site, "other")
    mine = site.records.create(rep, "deal", {"code": "D-1", "title": "Mine", "amount": "1"})
    site.records.create(other, "deal", {"code": "D-2", "title": "Theirs", "amount": "2"})
    data = csv_bytes([["code", "title", "amount"], ["D-1", "Mine, renamed", ""],
                      ["D-3", "New", "3"], ["D-3", "Twice", "4"]])
    report = importer(site).run(rep, "deal", data, "d.csv", upsert_on="code")
    assert report.ok is False  # D-3 twice in the file
    assert [e.line for e in report.row_errors] == [4]
    report = importer(site).run(rep, "deal", data, "d.csv", upsert_on="code", good_rows=True)
    assert report.written and report.updated == 1 and report.created == 1
    record = site.records.get(rep, "deal", mine["id"])
    assert record["title"] == "Mine, renamed" and record["amount"] == Decimal("1.00")
    assert record["version"] == 2  # updated, not replaced
    # D-2 is someone else's: not found for rep, so it would be a new record with a taken code.
    report = importer(site).run(rep, "deal", csv_bytes([["code", "title"], ["D-2", "Steal"]]),
                                "d.csv", upsert_on="code")
    assert not report.written and "code" in report.row_errors[0].errors
    theirs = site.records.list(other, "deal", filters=[Filter("code", "eq", "D-2")]).rows[0]
    assert theirs["title"] == "Theirs"


def test_upsert_on_a_numbering_field_only_updates(site):
    boss = actor(site, "boss")
    seed(site)
    data = csv_bytes([["number", "name"], ["A-0001", "Acme Renamed"], ["A-0099", "Ghost"]])
    report = importer(site).run(boss, "account", data, "a.csv", upsert_on="number")
    assert [e.line for e in report.row_errors] == [3]
    assert "A-0099" in report.row_errors[0].errors["number"][0]
    report = importer(site).run(boss, "account", data, "a.csv", upsert_on="name")
    assert report.file_errors  # a plain field cannot identify records


# -- good rows, failures ----------------------------------------------------------------------------


def test_good_rows_mode_imports_the_rest_and_writes_the_rejected_file(site, tmp_path):
    data = csv_bytes([["code", "title", "amount"], ["D-1", "Good", "1"], ["D-2", "", "2"],
                      ["D-3", "Bad amount", "x"], ["D-4", "Good too", "4"]])
    source = tmp_path / "deals.csv"
    source.write_bytes(data)
    runner = CliRunner()
    result = runner.invoke(main, ["--site", str(site.config.root), "import", "deal", str(source),
                                  "--good-rows", "--as", "boss"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "2 created" in result.output
    assert [r["code"] for r in deals(site)] == ["D-1", "D-4"]
    rejected = (tmp_path / "deals.rejected.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(rejected)))
    assert rows[0][:3] == ["code", "title", "amount"]
    assert [r[0] for r in rows[1:]] == ["D-2", "D-3"]
    assert "title" in rows[1][-1] and "amount" in rows[2][-1]


def test_cli_all_or_nothing_dry_run_and_progress(site, tmp_path):
    source = tmp_path / "deals.csv"
    source.write_bytes(csv_bytes([["code", "title"], ["D-1", "One"], ["D-2", ""]]))
    runner = CliRunner()
    base = ["--site", str(site.config.root), "import", "deal", str(source), "--as", "boss"]
    result = runner.invoke(main, base, catch_exceptions=False)
    assert result.exit_code == 1 and "Nothing was written" in result.output
    assert deals(site) == []
    source.write_bytes(csv_bytes([["code", "title"], ["D-1", "One"]]))
    result = runner.invoke(main, [*base, "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0 and "would be written" in result.output and deals(site) == []
    result = runner.invoke(main, base, catch_exceptions=False)
    assert result.exit_code == 0 and [r["code"] for r in deals(site)] == ["D-1"]


def test_a_failure_in_the_middle_rolls_everything_back(site, monkeypatch):
    boss = actor(site, "boss")
    before = counts(site)
    calls = {"n": 0}
    real = site.records.create_many

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(site.records, "create_many", failing)
    data = csv_bytes([["code", "title"], *[[f"D-{i}", f"Deal {i}"] for i in range(10)]])
    with pytest.raises(RuntimeError):
        importer(site, batch_size=2).run(boss, "deal", data, "d.csv", good_rows=True)
    assert calls["n"] == 3
    assert counts(site) == before


def test_import_needs_the_import_right(site):
    data = csv_bytes([["name"], ["Acme"]])
    with pytest.raises(PermissionDenied):
        importer(site).run(actor(site, "viewer"), "account", data, "a.csv")
    runner = CliRunner()
    source = site.config.root / "a.csv"
    source.write_bytes(data)
    result = runner.invoke(main, ["--site", str(site.config.root), "import", "account",
                                  str(source), "--as", "viewer"])
    assert result.exit_code == 1 and "may not import" in result.output


def test_imported_records_are_created_like_the_form_creates_them(site):
    rep = actor(site, "rep")
    report = importer(site).run(rep, "account", csv_bytes([["name"], ["New one"]]), "a.csv")
    assert report.ok
    record = site.records.list(rep, "account", filters=[Filter("name", "eq", "New one")]).rows[0]
    assert record["number"] == "A-0001" and record["owner"] == rep.user_id
    history = site.records.history(rep, "account", record["id"])
    assert [h["action"] for h in history] == ["create"]


# -- export ------------------------------------------------------------------------------------------


def _sales_deals(site) -> None:
    rep, other = actor(site, "rep"), actor(site, "other")
    site.records.create(rep, "deal", {"code": "R-1", "title": "Rep one", "amount": "5"})
    site.records.create(rep, "deal", {"code": "R-2", "title": "Rep two"})
    site.records.create(other, "deal", {"code": "O-1", "title": "Other's", "amount": "7"})
    boss = actor(site, "boss")
    for record in deals(site):
        site.records.update(boss, "deal", record["id"], {"secret": f"secret-{record['code']}"})


def test_a_salespersons_export_has_only_their_rows_and_no_hidden_field(site, tmp_path):
    _sales_deals(site)
    rep = actor(site, "rep")
    header, rows = Exporter(site.records).rows(rep, "deal")
    table = [header, *rows]
    assert [r[header.index("Code")] for r in table[1:]] == ["R-1", "R-2"]
    assert "Secret" not in header and not any("secret-" in str(c) for r in table for c in r)
    # CLI, CSV and XLSX
    runner = CliRunner()
    out = tmp_path / "deals.xlsx"
    result = runner.invoke(main, ["--site", str(site.config.root), "export", "deal", "-o",
                                  str(out), "--as", "rep", "--sort", "-code"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    sheet = load_workbook(out, read_only=True).worksheets[0]
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert [r[cells[0].index("Code")] for r in cells[1:]] == ["R-2", "R-1"]
    assert "Secret" not in cells[0] and "secret-R-1" not in str(cells)
    result = runner.invoke(main, ["--site", str(site.config.root), "export", "deal", "--keys",
                                  "--filter", "amount__isnull=false", "--as", "rep"],
                           catch_exceptions=False)
    lines = list(csv.reader(io.StringIO(result.output.lstrip("\ufeff"))))
    assert lines[0][:3] == ["id", "code", "title"] and [r[1] for r in lines[1:]] == ["R-1"]
    assert "secret" not in lines[0]


def test_api_and_list_page_exports_respect_scopes_filters_and_hidden_fields(site):
    _sales_deals(site)
    app = create_app(site, testing=True)
    token, _ = site.users.tokens.create("rep", "tests")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    answer = client.get("/api/v1/deal/export?sort=-code&keys=1", headers=auth)
    assert answer.status_code == 200 and answer.content_type.startswith("text/csv")
    lines = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert [r[1] for r in lines[1:]] == ["R-2", "R-1"] and "secret" not in lines[0]
    assert "secret-" not in answer.get_data(as_text=True)
    answer = client.get("/api/v1/deal/export?format=xlsx&code=R-1", headers=auth)
    sheet = load_workbook(io.BytesIO(answer.data), read_only=True).worksheets[0]
    assert [r[1] for r in sheet.iter_rows(min_row=2, values_only=True)] == ["R-1"]
    answer = client.get("/api/v1/deal/export?colour=red", headers=auth)
    assert answer.status_code == 422 and answer.content_type == "application/problem+json"
    viewer_token, _ = site.users.tokens.create("viewer", "tests")
    answer = client.get("/api/v1/deal/export", headers={"Authorization": f"Bearer {viewer_token}"})
    assert answer.status_code == 403
    spec = client.get("/api/v1/openapi.json", headers=auth).get_json()
    assert "/deal/export" in spec["paths"]
    # The list page links to the export with its own query string.
    browser = app.test_client()
    login(browser, "rep", PASSWORD)
    page = browser.get("/r/deal?q=Rep&sort=-code").get_data(as_text=True)
    assert "/r/deal/export?" in page and "/r/deal/import" in page
    answer = browser.get("/r/deal/export?q=two&sort=-code&format=csv")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "R-2" in text and "R-1" not in text
    assert "O-1" not in text and "secret-" not in text


def test_export_sorted_with_empty_values_pages_like_the_list(site):
    boss = actor(site, "boss")
    amounts = ["3", None, "1", "3", None, "2", "5", None]
    for i, amount in enumerate(amounts):
        site.records.create(boss, "deal", {"code": f"D-{i}", "title": f"T{i}", "amount": amount})
    for sort in ([Sort("amount")], [Sort("amount", True)], [Sort("amount"), Sort("code", True)]):
        expected = [r["code"] for r in site.records.list(boss, "deal", sort=sort).rows]
        exported = [r["code"] for r in site.records.export(boss, "deal", sort=sort, batch=2)]
        assert exported == expected, sort


def test_export_is_a_generator_that_reads_pages_as_it_goes(site):
    boss = actor(site, "boss")
    site.records.create_many(boss, "deal", [{"code": f"D-{i}", "title": f"T{i}"}
                                            for i in range(12)])
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if "FROM deal" in statement and "count(" not in statement:
            statements.append(statement)

    event.listen(site.engine, "before_cursor_execute", count)
    try:
        header, rows = Exporter(site.records, page_size=3).rows(boss, "deal")
        checked = len(statements)  # the up-front check of filters and sort
        first = next(rows)
        assert first[header.index("Code")] == "D-0"
        assert len(statements) == checked + 1  # one page read, not the table
        rest = list(rows)
        assert len(rest) == 11
        assert len(statements) >= checked + 4  # the other pages, read as they were needed
    finally:
        event.remove(site.engine, "before_cursor_execute", count)


# -- the upload page ---------------------------------------------------------------------------------


def test_upload_page_checks_then_imports_with_the_same_report(site):
    app = create_app(site, testing=True)
    client = app.test_client()
    login(client, "rep", PASSWORD)
    assert client.get("/r/deal/import").status_code == 200
    bad = csv_bytes([["标题", "金额"], ["好的", "1"], ["", "2"]], "gbk")
    answer = post(client, "/r/deal/import", {"action": "check",
                                             "file": (io.BytesIO(bad), "deals.csv")},
                  content_type="multipart/form-data")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and "标题" in page and "3" in page
    assert deals(site, "rep") == []
    good = csv_bytes([["title", "amount"], ["Fine", "1"]])
    answer = post(client, "/r/deal/import", {"action": "check",
                                             "file": (io.BytesIO(good), "deals.csv")},
                  content_type="multipart/form-data")
    assert answer.status_code == 200 and 'name="carried"' in answer.get_data(as_text=True)
    assert deals(site, "rep") == []
    import base64

    answer = post(client, "/r/deal/import", {"action": "import",
                                             "carried": base64.b64encode(good).decode(),
                                             "filename": "deals.csv"})
    assert answer.status_code == 200
    assert [r["title"] for r in deals(site, "rep")] == ["Fine"]
    viewer = app.test_client()
    login(viewer, "viewer", PASSWORD)
    assert viewer.get("/r/deal/import").status_code == 403
    assert "/r/deal/import" not in viewer.get("/r/deal").get_data(as_text=True)


def test_a_row_outside_the_actors_scope_is_refused_alone(site):
    rep = actor(site, "rep")
    data = csv_bytes([["code", "title", "Owner"], ["D-1", "For me", "rep"],
                      ["D-2", "For someone else", "other"], ["D-3", "Unowned", ""]])
    report = importer(site).run(rep, "deal", data, "d.csv")
    assert not report.written and [e.line for e in report.row_errors] == [3]
    assert "Owner" in report.row_errors[0].errors
    report = importer(site).run(rep, "deal", data, "d.csv", good_rows=True)
    assert report.written and report.created == 2
    assert [r["code"] for r in deals(site, "rep")] == ["D-1", "D-3"]
    assert [r["code"] for r in deals(site, "other")] == []
    numbers = [h["action"] for r in deals(site, "rep")
               for h in site.records.history(rep, "deal", r["id"])]
    assert numbers == ["create", "create"]


def test_create_many_makes_records_exactly_as_create_does(site):
    from engine.errors import ValidationFailed

    rep = actor(site, "rep")
    values = {"code": "D-1", "title": "Alone", "amount": "12.5", "kind": "new"}
    one = site.records.create(rep, "deal", values)
    outcome = site.records.create_many(rep, "deal", [{**values, "code": "D-2"}])
    assert outcome.ok and outcome.ids[0] is not None
    many = site.records.get(rep, "deal", outcome.ids[0])
    ignore = {"id", "code"}
    assert {k: v for k, v in many.items() if k not in ignore} == {
        k: v for k, v in one.items() if k not in ignore}
    first, second = (site.records.history(rep, "deal", i) for i in (one["id"], many["id"]))
    assert [(h["action"], h["field"]) for h in first] == [(h["action"], h["field"]) for h in second]
    assert {k: v for k, v in second[0]["new_value"].items() if k != "code"} == {
        k: v for k, v in first[0]["new_value"].items() if k != "code"}
    # Without a caller's transaction a batch is all or nothing, its messages per row.
    before = counts(site)
    with pytest.raises(ValidationFailed) as refused:
        site.records.create_many(rep, "deal", [{"code": "D-3", "title": "Fine"},
                                               {"code": "D-1", "title": ""}])
    assert set(refused.value.errors) == {"2.code", "2.title"}
    assert counts(site) == before
