"""Printed documents: bilingual, letterhead and seal, capital amounts, tables over pages, CJK fonts."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from engine.cli import main
from engine.context import Actor
from engine.errors import DefinitionError, NotFound
from engine.printing.documents import formats_for, print_formats, render_html, render_pdf
from tests.support import open_migrated, write_pack, write_site

SYSTEM = Actor.system()
QUOTATION = """
    entity: quotation
    label: {en: Quotation, zh: 报价单}
    title_field: number
    fields:
      number: {type: string, required: true, label: {en: Number, zh: 编号}}
      customer_name: {type: string, label: {en: Customer, zh: 客户}}
      total: {type: decimal, label: {en: Total, zh: 合计}}
      internal_note: {type: text, label: {en: Internal note, zh: 内部备注}}
      items:
        type: lines
        label: {en: Items, zh: 明细}
        fields:
          item: {type: string, label: {en: Item, zh: 品名}}
          quantity: {type: integer, label: {en: Quantity, zh: 数量}}
          unit_price: {type: decimal, label: {en: Unit price, zh: 单价}}
    """
TEMPLATE = """{% extends "base_print.html" %}
{% block body %}
<p>{{ label('customer_name') }}: {{ show('customer_name') }} · {{ label('number') }}: {{ show('number') }}</p>
<table>
  <thead><tr><th>#</th><th>{{ label('item', lines['items'].fields) }}</th><th class="num">{{ label('quantity', lines['items'].fields) }}</th><th class="num">{{ label('unit_price', lines['items'].fields) }}</th></tr></thead>
  <tbody>{% for row in record['items'] %}<tr><td>{{ loop.index }}</td><td>{{ row.item }}</td><td class="num">{{ row.quantity }}</td><td class="num">{{ show('unit_price', row, lines['items'].fields) }}</td></tr>{% endfor %}</tbody>
</table>
<p class="capital">{{ '大写金额' if lang == 'zh' else 'In words' }}: {{ record.total | capital }} ({{ currency }} {{ show('total') }})</p>
<div class="signatures"><div>{{ company.name }}{% if company.seal %}<img class="seal" src="{{ company.seal }}" alt="">{% endif %}</div><div>{{ show('customer_name') }}</div></div>
{% endblock %}
"""


def _png(path: Path) -> None:
    """A small red square, enough to be a seal."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00\xff" * 8 for _ in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 6, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def site(tmp_path: Path, db_url: str):
    write_pack(tmp_path / "packs", "sales", {
        "entities/quotation.yaml": QUOTATION,
        "prints/quotation.html": TEMPLATE,
        "roles.yaml": """
            roles:
              sales:
                label: {en: Salesperson, zh: 销售员}
                entities:
                  quotation:
                    rights: [read, create, update]
                    scope: own
                    fields: {internal_note: hidden}
            """,
    })
    manifest = tmp_path / "packs" / "sales" / "pack.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + (
        "prints:\n  quotation:\n    entity: quotation\n    template: prints/quotation.html\n"
        "    label: {en: Quotation, zh: 报价单}\n"), encoding="utf-8")
    root = write_site(tmp_path / "site", db_url, ["sales"], pack_paths=["../packs"])
    _png(root / "letterhead" / "seal.png")
    (root / "crm.yaml").write_text((root / "crm.yaml").read_text(encoding="utf-8") + (
        "company:\n  name: {en: Acme Systems Ltd., zh: 艾克姆系统有限公司}\n"
        "  address: {en: \"88 Century Ave, Shanghai\", zh: 上海市世纪大道88号}\n"
        "  seal: letterhead/seal.png\n"), encoding="utf-8")
    opened = open_migrated(root)
    opened.users.create("wang", password="password-1", roles=["sales"])
    opened.users.create("li", password="password-1", roles=["sales"])
    yield opened
    opened.close()


def _quotation(site, lines: int = 3) -> int:
    wang = site.users.actor("wang")
    items = [{"item": f"智能 PDU 16A 第{i}项", "quantity": i, "unit_price": "1200.50"}
             for i in range(1, lines + 1)]
    return site.records.create(SYSTEM, "quotation", {
        "number": "QT-2026-0001", "customer_name": "华信科技有限公司", "total": "1234.50",
        "internal_note": "底价 1100", "items": items, "owner": wang.user_id})["id"]


def test_the_quotation_prints_in_chinese_with_capital_amount_and_seal(site):
    record = _quotation(site)
    wang = site.users.actor("wang")
    _, html = render_html(site, wang, "quotation", "quotation", record, language="zh")
    assert "艾克姆系统有限公司" in html and "上海市世纪大道88号" in html
    assert "壹仟贰佰叁拾肆元伍角整" in html and "1,234.50" in html
    assert 'class="seal" src="file://' in html
    assert "底价" not in html  # a hidden field is never printed

    _, pdf = render_pdf(site, wang, "quotation", "quotation", record, language="zh")
    reader = PdfReader(io.BytesIO(pdf))
    text = reader.pages[0].extract_text()
    assert "华信科技有限公司" in text and "壹仟贰佰叁拾肆元伍角整" in text
    fonts = {str(font.get_object()["/BaseFont"])
             for page in reader.pages for font in page["/Resources"]["/Font"].values()}
    assert any("CJK" in name for name in fonts), fonts
    assert "/XObject" in reader.pages[0]["/Resources"]  # the seal image


def test_english_and_the_generic_record_sheet(site):
    record = _quotation(site)
    wang = site.users.actor("wang")
    _, html = render_html(site, wang, "quotation", "quotation", record, language="en")
    assert "Acme Systems Ltd." in html and "In words" in html and "Unit price" in html
    assert [f.key for f in formats_for(site, "quotation")] == ["quotation", "record"]
    _, sheet = render_html(site, wang, "record", "quotation", record, language="zh")
    assert "记录单" in sheet and "智能 PDU 16A 第3项" in sheet and "内部备注" not in sheet


def test_a_table_of_200_lines_breaks_across_pages_with_its_header(site):
    record = _quotation(site, lines=200)
    _, pdf = render_pdf(site, site.users.actor("wang"), "quotation", "quotation", record,
                        language="zh")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 4
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text()
        assert "品名" in text and "单价" in text, f"page {number} lost the table header"
        assert f"第 {number} 页 / 共 {len(reader.pages)} 页" in text
    assert "第200项" in reader.pages[-1].extract_text()


def test_only_records_the_actor_may_see_are_printed(site):
    record = _quotation(site)
    with pytest.raises(NotFound):
        render_html(site, site.users.actor("li"), "quotation", "quotation", record)
    with pytest.raises(NotFound):
        render_html(site, site.users.actor("wang"), "no_such_format", "quotation", record)


def test_a_site_overrides_a_template_in_custom(site):
    record = _quotation(site)
    custom = site.config.overlay_dir / "prints"
    custom.mkdir(parents=True)
    (custom / "quotation.html").write_text(
        '{% extends "base_print.html" %}{% block body %}<p>客户专用格式 {{ show("number") }}</p>'
        "{% endblock %}", encoding="utf-8")
    _, html = render_html(site, site.users.actor("wang"), "quotation", "quotation", record)
    assert "客户专用格式 QT-2026-0001" in html


def test_a_print_declaration_naming_a_missing_template_is_reported(site):
    manifest = Path(site.registry.packs["sales"].path) / "pack.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(
        "prints/quotation.html", "prints/missing.html"), encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        print_formats(site)
    assert "pack.yaml" in str(caught.value) and "missing.html does not exist" in str(caught.value)


def test_crm_print_writes_the_pdf(site, tmp_path: Path):
    record = _quotation(site)
    out = tmp_path / "q.pdf"
    result = CliRunner().invoke(main, ["--site", str(site.config.root), "print", "quotation",
                                       str(record), "--entity", "quotation", "--out", str(out),
                                       "--as", "wang"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF")


def test_print_from_the_record_page_and_attach_the_pdf(site):
    from engine.web.app import create_app
    from tests.web_support import login, post

    record = _quotation(site)
    app = create_app(site, testing=True)
    wang = app.test_client()
    assert login(wang, "wang", "password-1").status_code == 302
    page = wang.get(f"/r/quotation/{record}").get_data(as_text=True)
    assert f"/r/quotation/{record}/print/quotation.pdf" in page
    preview = wang.get(f"/r/quotation/{record}/print/quotation")
    assert preview.status_code == 200 and "QT-2026-0001" in preview.get_data(as_text=True)
    assert "default-src 'none'" in preview.headers["Content-Security-Policy"]
    pdf = wang.get(f"/r/quotation/{record}/print/quotation.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert post(wang, f"/r/quotation/{record}/print/quotation/attach").status_code == 302
    (attached,) = site.attachments.list(site.users.actor("wang"), "quotation", record)
    assert attached.content_type == "application/pdf" and attached.name.endswith(".pdf")

    li = app.test_client()
    assert login(li, "li", "password-1").status_code == 302
    assert li.get(f"/r/quotation/{record}/print/quotation.pdf").status_code == 404
