"""The packs' printed documents, rendered from their demo data in English and Chinese.

Each pack's demo data is loaded into a migrated site; one record per print
format is printed to HTML and PDF in both languages, and the documents must
carry the record's number and party, the total in figures and in capital
numerals (大写金额) equal to ``amount_in_words`` of the record's own total,
the company seal where the document is signed, and — in the PDF — a CJK font
and the Chinese title.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from engine.cli import main
from engine.context import FixedClock
from engine.demo import load_demo
from engine.printing.amounts import amount_in_words
from engine.printing.documents import print_formats, render_html, render_pdf
from engine.storage.queries import Filter, Sort
from tests.support import open_migrated, write_site

import datetime as dt

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


def test_trading_prints_quotations_and_sales_orders(tmp_path, db_url):
    site, admin = _demo_site(tmp_path, db_url, ["core", "trading"])
    try:
        _check_prints(site, admin, TRADING)
    finally:
        site.close()


@pytest.mark.parametrize("pack", ["trading", "service_sales", "project_sales", "distribution",
                                  "membership"])
def test_every_pack_with_its_prints_checks_clean(tmp_path, pack):
    runner = CliRunner()
    result = runner.invoke(main, ["init", str(tmp_path / "s"), "--pack", pack,
                                  "--admin-password", "x12345678"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["--site", str(tmp_path / "s"), "check"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output.lower()
