"""The packs' printed documents, rendered from their demo data in English and Chinese.

Each pack's demo data is loaded into a migrated site; one record per print
format is printed to HTML and PDF in both languages, and the documents must
carry the record's number and party, the total in figures and in capital
numerals (大写金额) equal to ``amount_in_words`` of the record's own total,
the company seal where the document is signed, and — in the PDF — a CJK font
and the Chinese title.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from pypdf import PdfReader

from engine.cli import main
from engine.context import FixedClock
from engine.demo import load_demo
from engine.printing.amounts import amount_in_words
from engine.printing.documents import print_formats, render_html, render_pdf
from engine.storage.queries import Filter, Sort
from tests.support import open_migrated, write_site

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
CAPITAL = re.compile(r'<td class="capital-text">([^<]*)</td>')


@dataclass(frozen=True)
class Expect:
    """What one print format must show for the record it is tried on."""

    entity: str
    number: str  # the field that identifies the record on paper
    total: str  # the field whose amount is written in words
    party: tuple[tuple[str, str], ...]  # the path from the record to the customer
    title: dict[str, str]  # the document's title by language
    filters: tuple[Filter, ...] = ()
    signed: bool = True
    extra: Callable[[Any, dict[str, Any], str, str], None] | None = field(default=None)


def _png(path: Path) -> None:
    """A small red square, enough to be a seal."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00\xff" * 8 for _ in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 6, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _demo_site(tmp_path: Path, db_url: str, packs: list[str]):
    root = write_site(tmp_path / "site", db_url, packs)
    _png(root / "letterhead" / "seal.png")
    (root / "crm.yaml").write_text((root / "crm.yaml").read_text(encoding="utf-8") + (
        "company:\n  name: {en: Acme Systems Ltd., zh: 艾克姆系统有限公司}\n"
        "  address: {en: \"88 Century Ave, Shanghai\", zh: 上海市世纪大道88号}\n"
        "  phone: \"+86 21 5080 1234\"\n"
        "  seal: letterhead/seal.png\n"), encoding="utf-8")
    site = open_migrated(root, clock=FixedClock(NOW))
    site.users.create("root", password="password-1", roles=["admin"], is_admin=True)
    admin = site.users.actor("root")
    load_demo(site.records, admin, [Path(p.path) for p in site.registry.packs.values()],
              workflows=site.workflows)
    return site, admin


def _pick(site, actor, expect: Expect) -> dict[str, Any]:
    rows = site.records.list(actor, expect.entity, filters=list(expect.filters),
                             sort=[Sort("id")], limit=1, with_total=False).rows
    assert rows, f"the demo data has no {expect.entity} to print"
    return site.records.get(actor, expect.entity, rows[0]["id"])


def _party(site, actor, record: dict[str, Any], path: tuple[tuple[str, str], ...]) -> str:
    current = record
    for key, entity in path:
        current = site.records.get(actor, entity, current[key])
    return str(current[site.registry.entity(path[-1][1]).title_field])


def _pdf_text_and_fonts(pdf: bytes) -> tuple[str, set[str]]:
    reader = PdfReader(io.BytesIO(pdf))
    text = "".join(page.extract_text() for page in reader.pages)
    fonts = {str(font.get_object()["/BaseFont"])
             for page in reader.pages for font in page["/Resources"]["/Font"].values()}
    return re.sub(r"\s+", "", text), fonts


def _check_prints(site, actor, formats: dict[str, Expect]) -> None:
    declared = print_formats(site)  # raises on a declaration naming a missing entity or file
    assert set(formats) <= set(declared), sorted(declared)
    for key, expect in formats.items():
        assert declared[key].entity == expect.entity
        record = _pick(site, actor, expect)
        total = Decimal(str(record[expect.total] or 0))
        party = _party(site, actor, record, expect.party)
        for lang in ("en", "zh"):
            _, html = render_html(site, actor, key, expect.entity, record["id"], language=lang)
            where = f"{key} ({lang})"
            assert f"<h1>{expect.title[lang]}</h1>" in html, where
            assert str(record[expect.number]) in html, where
            assert party in html, where
            assert CAPITAL.findall(html) == [amount_in_words(total)], where
            assert f"{total:,.2f}" in html, where
            assert ("大写金额" if lang == "zh" else "Amount in words") in html, where
            assert ('class="seal" src="file://' in html) is expect.signed, where
            if expect.extra:
                expect.extra(site, record, html, lang)

            _, pdf = render_pdf(site, actor, key, expect.entity, record["id"], language=lang)
            text, fonts = _pdf_text_and_fonts(pdf)
            assert any("CJK" in name for name in fonts), (where, fonts)
            assert expect.title["zh"] in text if lang == "zh" else \
                re.sub(r"\s+", "", expect.title["en"]) in text, where
            assert amount_in_words(total) in text, where
            assert str(record[expect.number]) in text, where


def _no_costs(site, record, html: str, lang: str) -> None:
    """A customer's document never shows what the goods cost the company."""
    for word in ("Cost of goods", "Gross margin", "销售成本", "毛利"):
        assert word not in html


TRADING = {
    "quotation": Expect("quotation", "number", "total", (("customer", "customer"),),
                        {"en": "Quotation", "zh": "报价单"},
                        filters=(Filter("stage", "eq", "accepted"),)),
    "sales_order": Expect("sales_order", "number", "total", (("customer", "customer"),),
                          {"en": "Sales order", "zh": "销售订单"}, extra=_no_costs),
}


def _a_long_quotation_repeats_its_header_on_every_page(site, admin) -> None:
    customer = site.records.list(admin, "customer", sort=[Sort("id")], limit=1).rows[0]
    products = site.records.list(admin, "product", sort=[Sort("id")], limit=120).rows
    quotation = site.records.create(admin, "quotation", {
        "customer": customer["id"], "valid_until": "2026-12-31",
        "lines": [{"product": p["id"], "quantity": 2, "unit_price": "10.50"} for p in products]})
    _, pdf = render_pdf(site, admin, "quotation", "quotation", quotation["id"], language="zh")
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 3
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text()
        assert "产品" in text and "单价" in text, f"page {number} lost the table header"
        assert f"第 {number} 页 / 共 {len(reader.pages)} 页" in text
    assert amount_in_words(Decimal("21.00") * len(products)) in reader.pages[-1].extract_text()


def test_trading_prints_quotations_and_sales_orders(tmp_path, db_url):
    site, admin = _demo_site(tmp_path, db_url, ["core", "trading"])
    try:
        _check_prints(site, admin, TRADING)
        _a_long_quotation_repeats_its_header_on_every_page(site, admin)
    finally:
        site.close()


def _payment_schedule(site, record, html: str, lang: str) -> None:
    for plan in site.records.list(site.users.actor("root"), "payment_plan",
                                  filters=[Filter("contract", "eq", record["id"])]).rows:
        assert plan["name"] in html and amount_in_words(plan["amount"]) in html
    assert ("三、付款方式" if lang == "zh" else "3. Payment") in html


def test_service_sales_prints_the_contract_with_its_payment_schedule(tmp_path, db_url):
    site, admin = _demo_site(tmp_path, db_url, ["service_sales"])
    try:
        contract = site.records.list(admin, "contract", sort=[Sort("id")], limit=1).rows[0]
        for name, share in (("签约款 50%", "0.5"), ("报告验收款 50%", "0.5")):
            site.records.create(admin, "payment_plan", {
                "name": name, "contract": contract["id"], "due_date": "2027-01-31",
                "amount": str(Decimal(str(contract["total"])) * Decimal(share))})
        _check_prints(site, admin, {
            "contract": Expect("contract", "number", "total", (("customer", "customer"),),
                               {"en": "Service contract", "zh": "服务合同"},
                               filters=(Filter("id", "eq", contract["id"]),),
                               extra=_payment_schedule)})
    finally:
        site.close()


def _accepted_scope_and_instalments(site, record, html: str, lang: str) -> None:
    admin = site.users.actor("root")
    project = site.records.get(admin, "project", record["project"])
    (accepted,) = [q for q in site.records.list(admin, "quotation", filters=[
        Filter("project", "eq", project["id"])]).rows if q["version_no"] == project["accepted_version"]]
    quote = site.records.get(admin, "quotation", accepted["id"])
    assert quote["lines"] and all(line["item"] in html for line in quote["lines"])
    instalments = site.records.list(admin, "instalment", filters=[
        Filter("project", "eq", project["id"])]).rows
    assert instalments and all(i["name"] in html for i in instalments)
    for word in ("Unit cost", "单位成本", "Margin", "毛利"):
        assert word not in html


def _no_unit_costs(site, record, html: str, lang: str) -> None:
    assert ("客户已确认" if lang == "zh" else "accepted by the client") in html
    for word in ("Unit cost", "单位成本", "Margin", "毛利"):
        assert word not in html


def test_project_sales_prints_the_contract_and_the_accepted_quotation(tmp_path, db_url):
    site, admin = _demo_site(tmp_path, db_url, ["project_sales"])
    try:
        _check_prints(site, admin, {
            "project_contract": Expect(
                "project_contract", "number", "contract_value", (("client", "customer"),),
                {"en": "Project contract", "zh": "项目合同"},
                filters=(Filter("client", "isnull", False),), extra=_accepted_scope_and_instalments),
            "project_quotation": Expect(
                "quotation", "title", "total", (("project", "project"), ("client", "customer")),
                {"en": "Quotation", "zh": "报价单"},
                filters=(Filter("stage", "eq", "accepted"),), extra=_no_unit_costs)})
    finally:
        site.close()


def test_distribution_prints_the_shipment_note(tmp_path, db_url):
    site, admin = _demo_site(tmp_path, db_url, ["core", "distribution"])
    try:
        _check_prints(site, admin, {
            "shipment": Expect("shipment", "number", "total", (("dealer", "customer"),),
                               {"en": "Shipment note", "zh": "发货单"},
                               extra=lambda site, record, html, lang: _no_credit(html))})
    finally:
        site.close()


def _no_credit(html: str) -> None:
    for word in ("Credit available", "发货前可用额度", "Over credit limit", "超出信用额度"):
        assert word not in html


def _points(site, record, html: str, lang: str) -> None:
    admin = site.users.actor("root")
    balance = site.ledgers.balance(admin, "points_entry", member=record["member"]).quantity
    assert record["points_earned"] > 0
    assert f'<td class="num points-earned">{record["points_earned"]}</td>' in html
    assert f'<td class="num points-balance">{balance}</td>' in html
    assert "@page" in html and "size: A5" in html


def test_membership_prints_the_member_receipt_on_a5(tmp_path, db_url):
    site, admin = _demo_site(tmp_path, db_url, ["membership"])
    try:
        _check_prints(site, admin, {
            "purchase_receipt": Expect(
                "purchase", "receipt", "total", (("member", "member"),),
                {"en": "Member receipt", "zh": "会员消费小票"}, signed=False,
                filters=(Filter("payment_method", "eq", "alipay"),), extra=_points)})
    finally:
        site.close()


def test_fetch_and_related_show_only_what_the_printing_user_may_read(tmp_path, db_url):
    from engine.context import Actor
    from tests.support import write_pack

    write_pack(tmp_path / "packs", "deals", {
        "entities/partner.yaml": """
            entity: partner
            label: {en: Partner, zh: 合作方}
            title_field: name
            fields:
              name: {type: string, label: {en: Name, zh: 名称}}
            """,
        "entities/deal.yaml": """
            entity: deal
            label: {en: Deal, zh: 交易}
            title_field: name
            fields:
              name: {type: string, label: {en: Name, zh: 名称}}
              partner: {type: reference, to: partner, label: {en: Partner, zh: 合作方}}
            """,
        "entities/payment.yaml": """
            entity: payment
            label: {en: Payment, zh: 付款}
            title_field: name
            fields:
              name: {type: string, label: {en: Name, zh: 名称}}
              deal: {type: reference, to: deal, label: {en: Deal, zh: 交易}}
            """,
        "prints/deal.html": """{% extends "base_print.html" %}{% block body %}
            <p>{{ show('name') }} / {{ fetch('partner', record.partner).get('name', 'no partner') }}</p>
            <ul>{% for p in related('payment', 'deal') %}<li>{{ p.name }}</li>{% endfor %}</ul>
            <p>{{ label('name', fields_of('payment')) }}</p>{% endblock %}""",
        "roles.yaml": """
            roles:
              rep:
                label: {en: Rep, zh: 销售}
                entities:
                  deal: {rights: [read], scope: own}
                  partner: {rights: none}
                  payment: {rights: none}
            """,
    })
    manifest = tmp_path / "packs" / "deals" / "pack.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + (
        "prints:\n  deal:\n    entity: deal\n    template: prints/deal.html\n"
        "    label: {en: Deal sheet, zh: 交易单}\n"), encoding="utf-8")
    site = open_migrated(write_site(tmp_path / "site", db_url, ["deals"], pack_paths=["../packs"]))
    try:
        system = Actor.system()
        rep = site.users.create("rep", password="password-1", roles=["rep"])
        partner = site.records.create(system, "partner", {"name": "瑞丰机电"})["id"]
        deal = site.records.create(system, "deal", {"name": "机房扩容", "partner": partner,
                                                    "owner": rep["id"]})["id"]
        for name in ("预付款", "尾款"):
            site.records.create(system, "payment", {"name": name, "deal": deal})
        _, full = render_html(site, system, "deal", "deal", deal, language="zh")
        assert "机房扩容 / 瑞丰机电" in full and "<li>预付款</li><li>尾款</li>" in full
        assert "<p>名称</p>" in full
        _, limited = render_html(site, site.users.actor("rep"), "deal", "deal", deal, language="zh")
        assert "机房扩容 / no partner" in limited and "<li>" not in limited
    finally:
        site.close()


def test_crm_check_reports_a_print_declaration_naming_a_missing_template(tmp_path):
    from tests.support import write_pack

    write_pack(tmp_path / "packs", "sales", {
        "entities/deal.yaml": """
            entity: deal
            label: {en: Deal, zh: 交易}
            fields:
              name: {type: string, label: {en: Name, zh: 名称}}
            """,
    })
    manifest = tmp_path / "packs" / "sales" / "pack.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + (
        "prints:\n  deal:\n    entity: deal\n    template: prints/missing.html\n"
        "    label: {en: Deal sheet, zh: 交易单}\n"), encoding="utf-8")
    root = write_site(tmp_path / "site", f"sqlite:///{tmp_path / 'crm.db'}", ["sales"],
                      pack_paths=["../packs"])
    result = CliRunner().invoke(main, ["--site", str(root), "check"])
    assert result.exit_code != 0
    assert "pack.yaml" in result.output and "missing.html does not exist" in result.output
