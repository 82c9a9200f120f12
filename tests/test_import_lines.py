"""Lines and many-to-many links in spreadsheets, the shape ERPNext and Odoo use.

A small pack: quotes with a customer, tags (many-to-many) and lines (a
product found by code or name, a quantity with a default, a price, a
computed amount, a note) summed into a computed total, plus cost lines
hidden from salespeople.  Exports write a row per line; imports read that
shape back and create each record with all its lines through the record
service, reporting each problem on the line of the file it is about.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from decimal import Decimal

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import func, select

from engine.cli import main
from engine.context import Actor, FixedClock
from engine.errors import ValidationFailed
from engine.services.dataio.exporting import Exporter
from engine.services.dataio.importing import Importer
from engine.storage.queries import Sort
from engine.web import create_app
from tests.support import open_migrated, write_pack, write_site
from tests.web_support import login

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse"
PACK = {
    "entities/account.yaml": """
        entity: account
        title_field: name
        label: {en: Account, zh: 客户}
        fields:
          name: {type: string, required: true, label: {en: Name, zh: 名称}}
    """,
    "entities/tag.yaml": """
        entity: tag
        title_field: name
        label: {en: Tag, zh: 标签}
        fields:
          name: {type: string, required: true, label: {en: Name, zh: 名称}}
    """,
    "entities/product.yaml": """
        entity: product
        title_field: name
        label: {en: Product, zh: 产品}
        fields:
          code: {type: string, unique: true, label: {en: Code, zh: 代码}}
          name: {type: string, required: true, label: {en: Name, zh: 名称}}
    """,
    "entities/quote.yaml": """
        entity: quote
        title_field: title
        label: {en: Quote, zh: 报价单}
        fields:
          number: {type: sequence, sequence_pattern: "Q-{####}", label: {en: Number, zh: 编号}}
          title: {type: string, required: true, label: {en: Title, zh: 标题}}
          customer: {type: reference, to: account, label: {en: Customer, zh: 客户}}
          tags: {type: many_to_many, to: tag, label: {en: Tags, zh: 标签}}
          lines:
            type: lines
            label: {en: Lines, zh: 报价明细}
            fields:
              product: {type: reference, to: product, required: true,
                        label: {en: Product, zh: 产品}}
              quantity: {type: decimal, precision: 12, scale: 2, min: 0, default: 1,
                         label: {en: Quantity, zh: 数量}}
              unit_price: {type: decimal, precision: 12, scale: 2, min: 0, required: true,
                           label: {en: Unit price, zh: 单价}}
              amount: {type: computed, returns: decimal, expression: "quantity * unit_price",
                       label: {en: Amount, zh: 金额}}
              note: {type: string, max_length: 20, label: {en: Note, zh: 备注}}
          total: {type: computed, returns: decimal, expression: "sum(lines.amount)",
                  label: {en: Total, zh: 合计}}
          costs:
            type: lines
            label: {en: Costs, zh: 成本明细}
            fields:
              what: {type: string, label: {en: What, zh: 项目}}
              cost: {type: decimal, precision: 12, scale: 2, label: {en: Cost, zh: 成本}}
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
              "*": {rights: [read, create, update, import, export], scope: all}
              tag: {rights: [read, create], scope: own}
              quote:
                rights: [read, create, update, import, export]
                scope: own
                fields: {costs: hidden}
    """,
}


@pytest.fixture
def site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "shop", PACK)
    root = write_site(tmp_path / "site", db_url, ["shop"], pack_paths=["../packs"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    opened.users.create("boss", password=PASSWORD, roles=["boss"])
    opened.users.create("rep", password=PASSWORD, roles=["sales"])
    opened.users.create("other", password=PASSWORD, roles=["sales"])
    boss = opened.users.actor("boss")
    for name in ("Acme", "Globex"):
        opened.records.create(boss, "account", {"name": name})
    for code, name in (("W-1", "Widget"), ("G-1", "Gadget"), ("S-1", "Sprocket")):
        opened.records.create(boss, "product", {"code": code, "name": name})
    yield opened
    opened.close()


def actor(site, login_name: str) -> Actor:
    return site.users.actor(login_name)


def ids(site, entity: str, field: str = "name") -> dict[str, int]:
    rows = site.records.list(actor(site, "boss"), entity, limit=1000).rows
    return {r[field]: r["id"] for r in rows}


def quotes(site, who: str = "boss") -> list[dict]:
    """The quotes the user sees, whole (their lines and links too)."""
    someone = actor(site, who)
    rows = site.records.list(someone, "quote", sort=[Sort("title")], limit=1000).rows
    return [site.records.get(someone, "quote", r["id"]) for r in rows]


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8")


def exported(site, who: str, **options) -> list[list]:
    header, rows = Exporter(site.records).rows(actor(site, who), "quote", **options)
    return [header, *rows]


def count(site, table_name: str) -> int:
    table = site.schema.table(table_name)
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def line_count(site) -> int:
    table = site.schema.child("quote", "lines")
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


QUOTE_FILE = [
    ["Title", "Customer", "Tags", "Lines / Product", "Lines / Quantity", "Lines / Unit price",
     "Lines / Note"],
    ["First", "Acme", "hot, big", "W-1", "2", "10.50", "rush"],
    ["", "", "", "Gadget", "", "3", ""],          # a further line; quantity takes its default
    ["", "", "", "#{sprocket}", "4", "1", ""],   # a product by its id
    ["Second", "Globex", "", "G-1", "1", "100", ""],
    ["Third", "Acme", "hot", "", "", "", ""],      # a quote without lines
]


def quote_file(site) -> bytes:
    sprocket = ids(site, "product")["Sprocket"]
    return csv_bytes([[c.format(sprocket=sprocket) for c in row] for row in QUOTE_FILE])


def seed_tags(site, who: str = "boss") -> dict[str, int]:
    someone = actor(site, who)
    return {name: site.records.create(someone, "tag", {"name": name})["id"]
            for name in ("hot", "big")}


# -- many-to-many ------------------------------------------------------------------------------


def test_many_to_many_round_trip_keeps_the_links(site):
    boss = actor(site, "boss")
    tags = seed_tags(site)
    odd = site.records.create(boss, "tag", {"name": "a, b"})["id"]  # a separator in its name
    site.records.create(boss, "quote", {"title": "Tagged", "tags": [tags["hot"], tags["big"], odd]})
    site.records.create(boss, "quote", {"title": "Bare"})
    table = exported(site, "boss", keys=True)
    header = table[0]
    assert "tags" in header
    cells = {r[header.index("title")]: r[header.index("tags")] for r in table[1:]}
    assert cells["Tagged"] == f"hot, big, #{odd}" and cells["Bare"] == ""
    before = {q["title"]: sorted(q["tags"]) for q in quotes(site)}
    for record in quotes(site):
        site.records.delete(boss, "quote", record["id"])
    data = csv_bytes([[h for h in header if h != "number"],
                      *[[c for h, c in zip(header, row, strict=True) if h != "number"]
                        for row in table[1:]]])
    report = Importer(site.records).run(boss, "quote", data, "q.csv")
    assert report.ok and report.created == 2, report.to_dict()
    assert "total" in report.skipped_columns  # computed: read, never imported
    assert {q["title"]: sorted(q["tags"]) for q in quotes(site)} == before


def test_many_to_many_titles_the_actor_cannot_read_are_ids(site):
    rep = actor(site, "rep")
    theirs = seed_tags(site, "other")  # tags are 'own' for salespeople
    mine = site.records.create(rep, "tag", {"name": "mine"})["id"]
    site.records.create(actor(site, "boss"), "quote", {
        "title": "Rep's", "owner": rep.user_id, "tags": [theirs["hot"], mine]})
    table = exported(site, "rep")
    header = table[0]
    cell = table[1][header.index("Tags")]
    assert cell == f"#{theirs['hot']}, mine" and "hot" not in cell


# -- export with lines -------------------------------------------------------------------------


def _two_quotes(site) -> None:
    boss, rep, other = actor(site, "boss"), actor(site, "rep"), actor(site, "other")
    products = ids(site, "product")
    site.records.create(rep, "quote", {"title": "Rep's", "lines": [
        {"product": products["Widget"], "quantity": "2", "unit_price": "10"},
        {"product": products["Gadget"], "quantity": "1", "unit_price": "5", "note": "spare"},
    ]})
    site.records.create(rep, "quote", {"title": "Rep's empty"})
    site.records.create(other, "quote", {"title": "Other's", "lines": [
        {"product": products["Widget"], "quantity": "9", "unit_price": "1"}]})
    for record in quotes(site):
        site.records.update(boss, "quote", record["id"], {"costs": [{"what": "freight",
                                                                     "cost": "99"}]})


def test_export_with_lines_writes_a_row_per_line(site):
    _two_quotes(site)
    table = exported(site, "rep", lines="lines", sort=[Sort("title")])
    header = table[0]
    assert header[-5:] == ["Lines / Product", "Lines / Quantity", "Lines / Unit price",
                           "Lines / Amount", "Lines / Note"]
    assert "Costs" not in str(header) and "freight" not in str(table)  # hidden from sales
    title, product, amount = (header.index(h) for h in ("Title", "Lines / Product",
                                                         "Lines / Amount"))
    assert [(r[title], r[product], r[amount]) for r in table[1:]] == [
        ("Rep's", "Widget", "20.00"), (None, "Gadget", "5.00"), ("Rep's empty", None, None)]
    continuation = table[2]
    assert all(c is None for c in continuation[:header.index("Owner") + 1])
    assert continuation[header.index("Lines / Note")] == "spare"
    assert "Other's" not in str(table)  # a salesperson exports their own quotes only
    # Keys, and Chinese headers for a Chinese-speaking user.
    keyed = exported(site, "rep", lines="lines", keys=True)[0]
    assert keyed[-5:] == ["lines/product", "lines/quantity", "lines/unit_price", "lines/amount",
                          "lines/note"]
    chinese = dataclasses.replace(actor(site, "rep"), language="zh")
    assert Exporter(site.records).rows(chinese, "quote", lines="lines")[0][-1] == "报价明细 / 备注"
    # A lines field hidden from the actor is no lines field at all.
    with pytest.raises(ValidationFailed) as refused:
        Exporter(site.records).rows(actor(site, "rep"), "quote", lines="costs")
    assert "costs" in str(refused.value.errors["lines"])
    boss_table = exported(site, "boss", lines="costs")
    assert boss_table[0][-2:] == ["Costs / What", "Costs / Cost"] and len(boss_table) == 4


def test_export_with_lines_through_cli_api_and_list_page(site, tmp_path):
    _two_quotes(site)
    runner = CliRunner()
    out = tmp_path / "quotes.xlsx"
    result = runner.invoke(main, ["--site", str(site.config.root), "export", "quote", "--lines",
                                  "lines", "--sort", "title", "-o", str(out), "--as", "rep"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    cells = [list(r) for r in load_workbook(out, read_only=True).worksheets[0]
             .iter_rows(values_only=True)]
    assert cells[0][-1] == "Lines / Note" and len(cells) == 4
    assert cells[1][cells[0].index("Lines / Quantity")] == Decimal("2") or \
        cells[1][cells[0].index("Lines / Quantity")] == 2
    result = runner.invoke(main, ["--site", str(site.config.root), "export", "quote", "--lines",
                                  "costs", "--as", "rep"])
    assert result.exit_code != 0 and "costs" in result.output
    app = create_app(site, testing=True)
    token, _ = site.users.tokens.create("rep", "tests")
    client = app.test_client()
    answer = client.get("/api/v1/quote/export?lines=lines&keys=1&sort=title",
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][-1] == "lines/note" and [r[rows[0].index("lines/product")]
                                            for r in rows[1:]] == ["Widget", "Gadget", ""]
    answer = client.get("/api/v1/quote/export?lines=costs",
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422
    spec = client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {token}"})
    params = spec.get_json()["paths"]["/quote/export"]["get"]["parameters"]
    assert next(p for p in params if p["name"] == "lines")["schema"]["enum"] == ["lines"]
    browser = app.test_client()
    login(browser, "rep", PASSWORD)
    page = browser.get("/r/quote").get_data(as_text=True)
    assert "lines=lines" in page and "lines=costs" not in page
    answer = browser.get("/r/quote/export?format=xlsx&lines=lines")
    sheet = load_workbook(io.BytesIO(answer.data), read_only=True).worksheets[0]
    assert list(sheet.iter_rows(values_only=True))[0][-1] == "Lines / Note"


def test_export_with_lines_reads_lines_a_page_at_a_time(site):
    boss = actor(site, "boss")
    widget = ids(site, "product")["Widget"]
    site.records.create_many(boss, "quote", [
        {"title": f"Q{i}", "lines": [{"product": widget, "unit_price": str(i)}] * 3}
        for i in range(10)])
    from sqlalchemy import event

    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        if "quote__lines" in statement or "FROM quote" in statement:
            statements.append(statement)

    event.listen(site.engine, "before_cursor_execute", seen)
    try:
        header, rows = Exporter(site.records, page_size=4).rows(boss, "quote", lines="lines")
        checked = len(statements)
        first = [next(rows) for _ in range(3)]  # the three lines of the first quote
        assert [r[header.index("Title")] for r in first] == ["Q0", None, None]
        line_reads = [s for s in statements[checked:] if "lines" in s and "SELECT" in s]
        assert len(line_reads) == 1 and "IN" in line_reads[0].upper()  # the first page only
        assert len(list(rows)) == 27
    finally:
        event.remove(site.engine, "before_cursor_execute", seen)


# -- import with lines -------------------------------------------------------------------------


def test_import_with_lines_creates_each_record_with_its_lines_and_totals(site):
    seed_tags(site, "rep")
    rep = actor(site, "rep")
    before = line_count(site)
    report = Importer(site.records).run(rep, "quote", quote_file(site), "q.csv")
    assert report.ok and report.written and report.created == 3, [e.to_dict() for e in report.row_errors]
    assert report.rows == 5
    assert report.columns["Lines / Product"] == "lines/product"
    products, accounts, tags = ids(site, "product"), ids(site, "account"), ids(site, "tag")
    assert len(tags) == 2
    found = {q["title"]: q for q in quotes(site, "rep")}
    first = found["First"]
    assert first["customer"] == accounts["Acme"] and sorted(first["tags"]) == sorted(tags.values())
    assert [(line["product"], line["quantity"], line["unit_price"], line["note"])
            for line in first["lines"]] == [
        (products["Widget"], Decimal("2.00"), Decimal("10.50"), "rush"),
        (products["Gadget"], Decimal("1.00"), Decimal("3.00"), None),
        (products["Sprocket"], Decimal("4.00"), Decimal("1.00"), None)]
    assert first["total"] == Decimal("28.00")
    assert found["Second"]["total"] == Decimal("100.00") and len(found["Second"]["lines"]) == 1
    assert found["Third"]["lines"] == [] and found["Third"]["owner"] == rep.user_id
    assert line_count(site) == before + 4
    history = site.records.history(rep, "quote", first["id"])
    assert [h["action"] for h in history] == ["create"]


def test_import_reads_chinese_headers_and_keys_and_small_batches(site):
    boss = actor(site, "boss")
    data = csv_bytes([
        ["标题", "报价明细 / 产品", "lines/quantity", "报价明细/单价"],
        ["甲", "Widget", "1", "2"], ["", "Gadget", "2", "3"],
        ["乙", "Gadget", "1", "1"], ["", "Widget", "1", "1"], ["", "Widget", "1", "1"],
        ["丙", "Widget", "5", "5"],
    ])
    report = Importer(site.records, batch_size=1).run(boss, "quote", data, "q.csv")
    assert report.ok and report.created == 3, report.to_dict()
    totals = {q["title"]: (len(q["lines"]), q["total"]) for q in quotes(site)}
    assert totals == {"甲": (2, Decimal("8.00")), "乙": (3, Decimal("3.00")),
                      "丙": (1, Decimal("25.00"))}


def test_export_with_lines_imports_back_as_it_was(site):
    _two_quotes(site)
    boss = actor(site, "boss")
    header, rows = Exporter(site.records).rows(boss, "quote", lines="lines", typed=True)
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("quote")
    keep = [i for i, h in enumerate(header) if h != "Number"]
    sheet.append([header[i] for i in keep])
    for row in rows:
        sheet.append([row[i] for i in keep])
    buffer = io.BytesIO()
    book.save(buffer)

    def shape(records):
        return sorted((q["title"], q["total"], [(line["product"], line["quantity"],
                                                 line["unit_price"], line["note"])
                                                for line in q["lines"]]) for q in records)

    before = shape(quotes(site))
    for record in quotes(site):
        site.records.delete(boss, "quote", record["id"])
    report = Importer(site.records).run(boss, "quote", buffer.getvalue(), "q.xlsx")
    assert report.ok and report.created == 3, report.to_dict()
    assert "Lines / Amount" in report.skipped_columns
    assert shape(quotes(site)) == before


def test_a_bad_line_is_reported_on_its_line_and_nothing_is_written(site):
    rep = actor(site, "rep")
    before = (count(site, "quote"), line_count(site))
    data = csv_bytes([
        ["Title", "Lines / Product", "Lines / Quantity", "Lines / Unit price", "Lines / Note"],
        ["Good", "Widget", "1", "1", ""],
        ["Bad", "Widget", "1", "1", ""],               # 3: the record's first row is fine
        ["", "Gadget", "lots", "1", ""],               # 4: not a number
        ["", "Nothing", "1", "", "x" * 21],            # 5: unknown product, no price, too long
        ["Also good", "Gadget", "1", "2", ""],
    ])
    report = Importer(site.records).run(rep, "quote", data, "q.csv")
    assert not report.written and not report.ok
    errors = {e.line: e.errors for e in report.row_errors}
    assert set(errors) == {4, 5}, errors
    assert set(errors[4]) == {"Lines / Quantity"}
    assert set(errors[5]) == {"Lines / Product", "Lines / Unit price", "Lines / Note"}
    assert "Nothing" in errors[5]["Lines / Product"][0]
    assert (count(site, "quote"), line_count(site)) == before
    assert report.created == 2  # checked and counted, then rolled back
    # Good rows: the other records are written; the refused one goes whole to the rejected file.
    report = Importer(site.records).run(rep, "quote", data, "q.csv", good_rows=True)
    assert report.written and report.created == 2
    assert [q["title"] for q in quotes(site, "rep")] == ["Also good", "Good"]
    rejected = list(csv.reader(io.StringIO(report.rejected_csv())))
    assert [r[0] for r in rejected[1:]] == ["Bad", "", ""]
    assert [r[-2] for r in rejected[1:]] == ["3", "4", "5"]
    assert "line 3" in rejected[1][-1] and "Lines / Quantity" in rejected[2][-1]


def test_a_continuation_row_before_any_record_is_an_error(site):
    boss = actor(site, "boss")
    data = csv_bytes([["Title", "Lines / Product", "Lines / Unit price"],
                      ["", "Widget", "1"], ["Fine", "Widget", "1"]])
    report = Importer(site.records).run(boss, "quote", data, "q.csv")
    assert not report.written and [e.line for e in report.row_errors] == [2]
    assert "no record comes before it" in report.row_errors[0].errors["row"][0]
    assert quotes(site) == []


def test_dry_run_with_lines_checks_everything_and_writes_nothing(site):
    seed_tags(site, "rep")
    rep = actor(site, "rep")
    before = (count(site, "quote"), line_count(site))
    report = Importer(site.records).run(rep, "quote", quote_file(site), "q.csv", dry_run=True)
    assert report.ok and not report.written and report.created == 3
    assert (count(site, "quote"), line_count(site)) == before
    result = CliRunner().invoke(main, ["--site", str(site.config.root), "import", "quote",
                                       str(_write(site, quote_file(site))), "--dry-run", "--as",
                                       "rep"], catch_exceptions=False)
    assert result.exit_code == 0 and "3 created" in result.output, result.output
    assert (count(site, "quote"), line_count(site)) == before


def _write(site, data: bytes):
    path = site.config.root / "quotes.csv"
    path.write_bytes(data)
    return path


def test_upsert_with_lines_replaces_the_records_lines(site):
    boss = actor(site, "boss")
    products = ids(site, "product")
    kept = site.records.create(boss, "quote", {"title": "Kept lines", "lines": [
        {"product": products["Widget"], "unit_price": "7"}]})
    changed = site.records.create(boss, "quote", {"title": "Old", "lines": [
        {"product": products["Widget"], "unit_price": "1"},
        {"product": products["Gadget"], "unit_price": "1"}]})
    data = csv_bytes([
        ["Number", "Title", "Lines / Product", "Lines / Unit price"],
        [changed["number"], "New", "Sprocket", "3"], ["", "", "Sprocket", "4"],
        [kept["number"], "Kept lines, renamed", "", ""],
    ])
    report = Importer(site.records).run(boss, "quote", data, "q.csv", upsert_on="number")
    assert report.ok and report.updated == 2, report.to_dict()
    after = site.records.get(boss, "quote", changed["id"])
    assert after["title"] == "New" and after["total"] == Decimal("7.00")
    assert [(line["product"], line["unit_price"]) for line in after["lines"]] == [
        (products["Sprocket"], Decimal("3.00")), (products["Sprocket"], Decimal("4.00"))]
    untouched = site.records.get(boss, "quote", kept["id"])
    assert untouched["title"] == "Kept lines, renamed" and len(untouched["lines"]) == 1
    assert untouched["total"] == Decimal("7.00")


def test_line_columns_of_a_hidden_or_unknown_lines_field_stop_the_import(site):
    rep = actor(site, "rep")
    data = csv_bytes([["Title", "Costs / What"], ["A", "freight"]])
    report = Importer(site.records).run(rep, "quote", data, "q.csv")
    assert report.file_errors and report.rows == 0
    assert "Costs / What" in report.file_errors[0]
    report = Importer(site.records).run(actor(site, "boss"), "quote", data, "q.csv")
    assert report.ok and report.created == 1
    data = csv_bytes([["Title", "Lines"], ["A", "Widget"]])  # the lines field as one column
    report = Importer(site.records).run(rep, "quote", data, "q.csv")
    assert report.file_errors and "Lines / Product" in report.file_errors[0]
    data = csv_bytes([["Title", "Item", "Price"], ["A", "Widget", "2"]])
    report = Importer(site.records).run(rep, "quote", data, "q.csv",
                                        mapping={"Item": "lines/product",
                                                 "Price": "lines.unit_price"})
    assert report.ok, [e.to_dict() for e in report.row_errors]
    assert quotes(site, "rep")[0]["lines"][0]["product"] == ids(site, "product")[
        "Widget"]
