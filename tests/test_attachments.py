"""Files attached to records: stored whole or not at all, shown only to who may read the record."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from engine.context import Actor
from engine.errors import NotFound, PermissionDenied, TooLarge
from engine.services.records.attachments import clean_name, sniff_content_type
from tests.support import open_migrated, write_site

SYSTEM = Actor.system()
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


@pytest.fixture(params=["folder", "database"])
def site(request, tmp_path: Path, db_url: str):
    root = write_site(tmp_path / "site", db_url, ["core"])
    config = (root / "crm.yaml").read_text(encoding="utf-8")
    (root / "crm.yaml").write_text(config + f"attachments: {{store: {request.param}, "
                                            "max_size_mb: 1}\n", encoding="utf-8")
    opened = open_migrated(root)
    for login in ("wang", "li"):
        opened.users.create(login, password="password-1", roles=["sales"])
    yield opened
    opened.close()


def _customer(site, login: str) -> int:
    actor = site.users.actor(login)
    return site.records.create(actor, "customer", {"name": f"{login}'s customer",
                                                   "kind": "client"})["id"]


def test_a_file_round_trips_with_its_name_type_and_checksum(site):
    wang = site.users.actor("wang")
    customer = _customer(site, "wang")
    stored = site.attachments.attach(wang, "customer", customer, "../../合同 扫描件.pdf",
                                     io.BytesIO(PDF))
    assert stored.name == "合同 扫描件.pdf"
    assert stored.content_type == "application/pdf"
    assert stored.size == len(PDF) and stored.sha256 == hashlib.sha256(PDF).hexdigest()
    assert [a.key for a in site.attachments.list(wang, "customer", customer)] == [stored.key]
    found, chunks = site.attachments.content(wang, stored.key)
    assert b"".join(chunks) == PDF and found.name == "合同 扫描件.pdf"
    site.attachments.remove(wang, stored.key)
    assert site.attachments.list(wang, "customer", customer) == []
    with pytest.raises(NotFound):
        site.attachments.find(wang, stored.key)


def test_another_salesperson_can_neither_list_nor_fetch_nor_attach(site):
    wang, li = site.users.actor("wang"), site.users.actor("li")
    customer = _customer(site, "wang")
    stored = site.attachments.attach(wang, "customer", customer, "quote.pdf", io.BytesIO(PDF))
    with pytest.raises(NotFound):
        site.attachments.list(li, "customer", customer)
    with pytest.raises(NotFound):
        site.attachments.content(li, stored.key)
    with pytest.raises((NotFound, PermissionDenied)):
        site.attachments.attach(li, "customer", customer, "x.txt", io.BytesIO(b"x"))
    with pytest.raises(NotFound):
        site.attachments.remove(li, stored.key)
    with pytest.raises(NotFound):  # a made-up or malformed key says nothing either
        site.attachments.find(wang, "../../crm.yaml")


def test_an_oversized_upload_is_refused_and_leaves_nothing(site):
    wang = site.users.actor("wang")
    customer = _customer(site, "wang")
    with pytest.raises(TooLarge) as refused:
        site.attachments.attach(wang, "customer", customer, "big.bin",
                                io.BytesIO(b"x" * (1024 * 1024 + 1)))
    assert refused.value.status == 413
    assert site.attachments.list(wang, "customer", customer) == []
    files = site.config.root / "files"
    assert not files.exists() or [p for p in files.rglob("*") if p.is_file()] == []


def test_a_failure_while_recording_leaves_no_file_behind(site, monkeypatch):
    wang = site.users.actor("wang")
    customer = _customer(site, "wang")
    calls = {"n": 0}
    real = site.records.require_writable

    def fail_inside_the_transaction(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the check made inside the write transaction
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(site.records, "require_writable", fail_inside_the_transaction)
    with pytest.raises(RuntimeError):
        site.attachments.attach(wang, "customer", customer, "a.pdf", io.BytesIO(PDF))
    monkeypatch.undo()
    assert site.attachments.list(wang, "customer", customer) == []
    files = site.config.root / "files"
    assert not files.exists() or [p for p in files.rglob("*") if p.is_file()] == []


def test_names_are_cleaned_and_types_come_from_the_bytes():
    assert clean_name("C:\\Users\\x\\报价单.xlsx") == "报价单.xlsx"
    assert clean_name("a\x00b\x1fc.txt") == "abc.txt"
    assert clean_name("..") == "file" and clean_name("") == "file"
    assert len(clean_name("长" * 300 + ".pdf")) <= 200 and clean_name("长" * 300 + ".pdf").endswith(".pdf")
    assert sniff_content_type(b"<html><script>alert(1)</script>", "evil.html") == \
        "text/plain; charset=utf-8"
    assert sniff_content_type(b'<svg xmlns="http://www.w3.org/2000/svg"/>', "x.svg") == \
        "text/plain; charset=utf-8"
    assert sniff_content_type(b"\x89PNG\r\n\x1a\n....", "photo.jpg") == "image/png"
    assert sniff_content_type(b"PK\x03\x04rest", "a.docx").endswith("wordprocessingml.document")
    assert sniff_content_type(b"\x00\x01\x02", "a.txt") == "application/octet-stream"
    assert sniff_content_type("中文".encode()[:-1], "cut.txt") == "text/plain; charset=utf-8"


def test_the_file_commands(site, tmp_path: Path):
    from click.testing import CliRunner

    from engine.cli import main

    customer = _customer(site, "wang")
    source = tmp_path / "现场照片.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    runner = CliRunner()
    base = ["--site", str(site.config.root)]
    result = runner.invoke(main, [*base, "file", "attach", "customer", str(customer), str(source),
                                  "--as", "wang"])
    assert result.exit_code == 0, result.output
    key = result.output.split()[0]
    listed = runner.invoke(main, [*base, "file", "list", "customer", str(customer), "--as", "wang"])
    assert "现场照片.png" in listed.output and "image/png" in listed.output
    refused = runner.invoke(main, [*base, "file", "get", key, "--as", "li"])
    assert refused.exit_code == 1 and "no such file" in refused.output
    out = tmp_path / "copy.png"
    fetched = runner.invoke(main, [*base, "file", "get", key, "-o", str(out), "--as", "wang"])
    assert fetched.exit_code == 0, fetched.output
    assert out.read_bytes() == source.read_bytes()


def test_files_follow_a_merge_and_a_transfer(site):
    from engine.services.records.merge import merge

    wang = site.users.actor("wang")
    keep, duplicate = _customer(site, "wang"), _customer(site, "wang")
    stored = site.attachments.attach(wang, "customer", duplicate, "营业执照.pdf", io.BytesIO(PDF))
    merge(site.records, SYSTEM, keep, duplicate)
    assert [a.key for a in site.attachments.list(wang, "customer", keep)] == [stored.key]

    site.transfers.run(SYSTEM, "wang", ["li"])  # the customer now belongs to li, and its files
    li = site.users.actor("li")
    assert [a.key for a in site.attachments.list(li, "customer", keep)] == [stored.key]
    with pytest.raises(NotFound):
        site.attachments.find(wang, stored.key)
