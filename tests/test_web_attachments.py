"""Files on the record page: upload several, download safely, nothing for those who may not see."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.web.app import create_app
from tests.support import open_migrated, write_site
from tests.web_support import csrf, login, post


@pytest.fixture
def site(tmp_path: Path, db_url: str):
    root = write_site(tmp_path / "site", db_url, ["core"])
    (root / "crm.yaml").write_text((root / "crm.yaml").read_text(encoding="utf-8")
                                   + "attachments: {max_size_mb: 1}\n", encoding="utf-8")
    opened = open_migrated(root)
    for login_name in ("wang", "li"):
        opened.users.create(login_name, password="password-1", roles=["sales"])
    yield opened
    opened.close()


def _client(site, name: str):
    client = create_app(site, testing=True).test_client()
    assert login(client, name, "password-1").status_code == 302
    return client


def _upload(client, customer: int, *files: tuple[bytes, str]):
    return client.post(f"/r/customer/{customer}/files", data={
        "csrf_token": csrf(client),
        "files": [(io.BytesIO(data), name) for data, name in files]},
        content_type="multipart/form-data")


def test_upload_several_then_download_as_attachments(site):
    wang = _client(site, "wang")
    customer = site.records.create(site.users.actor("wang"), "customer",
                                   {"name": "华信", "kind": "client"})["id"]
    answer = _upload(wang, customer, (b"%PDF-1.4 contract", "合同.pdf"),
                     (b"<html><script>alert(document.cookie)</script></html>", "evil.html"),
                     (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "x.svg"))
    assert answer.status_code == 302
    page = wang.get(f"/r/customer/{customer}").get_data(as_text=True)
    assert "合同.pdf" in page and "evil.html" in page and 'id="files"' in page
    files = {a.name: a for a in site.attachments.list(site.users.actor("wang"), "customer",
                                                     customer)}
    pdf = wang.get(f"/files/{files['合同.pdf'].key}")
    assert pdf.status_code == 200 and pdf.data == b"%PDF-1.4 contract"
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert "filename*=UTF-8''%E5%90%88%E5%90%8C.pdf" in pdf.headers["Content-Disposition"]
    for name in ("evil.html", "x.svg"):
        served = wang.get(f"/files/{files[name].key}")
        assert served.headers["Content-Disposition"].startswith("attachment;")
        assert served.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in served.headers["Content-Security-Policy"]

    li = _client(site, "li")
    assert li.get(f"/files/{files['合同.pdf'].key}").status_code == 404
    assert _upload(li, customer, (b"x", "x.txt")).status_code == 404
    assert post(li, f"/files/{files['合同.pdf'].key}/remove").status_code == 404
    assert len(site.attachments.list(site.users.actor("wang"), "customer", customer)) == 3

    assert post(wang, f"/files/{files['evil.html'].key}/remove").status_code == 302
    assert len(site.attachments.list(site.users.actor("wang"), "customer", customer)) == 2


def test_an_oversized_upload_gets_413_and_leaves_nothing(site):
    wang = _client(site, "wang")
    customer = site.records.create(site.users.actor("wang"), "customer",
                                   {"name": "Big files Ltd", "kind": "client"})["id"]
    answer = _upload(wang, customer, (b"x" * (1024 * 1024 + 10), "big.bin"))
    assert answer.status_code == 413
    assert site.attachments.list(site.users.actor("wang"), "customer", customer) == []
    files = site.config.root / "files"
    assert not files.exists() or [p for p in files.rglob("*") if p.is_file()] == []


def test_files_above_the_pages_usual_limit_upload_within_the_attachment_limit(tmp_path, db_url):
    """The request limit of the upload is the attachments' own (20 MB by default), not the
    4 MB of other pages: it is set before the CSRF check reads the form."""
    root = write_site(tmp_path / "site", db_url, ["core"])
    with open_migrated(root) as site:
        site.users.create("wang", password="password-1", roles=["sales"])
        wang = _client(site, "wang")
        customer = site.records.create(site.users.actor("wang"), "customer",
                                       {"name": "Scans Ltd", "kind": "client"})["id"]
        answer = _upload(wang, customer, (b"x" * (6 * 1024 * 1024), "scan.pdf"))
        assert answer.status_code == 302
        found = site.attachments.list(site.users.actor("wang"), "customer", customer)
        assert [(f.name, f.size) for f in found] == [("scan.pdf", 6 * 1024 * 1024)]
