"""``POST /api/v1/<entity>/import``: the importer over HTTP, with the caller's rights.

The same report as ``crm import --json``; uploads and plain CSV bodies;
dry runs, all-or-nothing and good-rows imports, upserts and mappings;
problem+json for every refusal, and nothing written unless asked.
"""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner
from openpyxl import Workbook
from sqlalchemy import func, select

from engine.cli import main
from engine.context import FixedClock
from tests.api_support import NOW, PASSWORD, api_for
from tests.support import open_migrated, write_pack, write_site

PROBLEM = "application/problem+json"
PACK = {
    "entities/account.yaml": """
        entity: account
        title_field: name
        label: {en: Account, zh: 客户}
        fields:
          number: {type: sequence, sequence_pattern: "A-{####}", label: {en: Number, zh: 编号}}
          name: {type: string, required: true, max_length: 40, label: {en: Name, zh: 名称}}
          code: {type: string, unique: true, label: {en: Code, zh: 代码}}
          budget: {type: decimal, precision: 12, scale: 2, label: {en: Budget, zh: 预算}}
          secret: {type: string, label: {en: Secret, zh: 机密}}
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
              account: {fields: {secret: hidden}}
          viewer:
            label: Viewer
            entities:
              "*": {rights: [read], scope: all}
    """,
}
GOOD = "名称,Code,Budget\nAcme,C-1,\"1,200.50\"\nBeta,C-2,30\n"
MIXED = "名称,Code,Budget\nAcme,C-1,12\n,C-2,3\nGamma,C-3,\"3,5\"\n"


@pytest.fixture
def site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "shop", PACK)
    root = write_site(tmp_path / "site", db_url, ["shop"], pack_paths=["../packs"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    for login, role in (("boss", "boss"), ("rep", "sales"), ("viewer", "viewer")):
        opened.users.create(login, password=PASSWORD, roles=[role])
    yield opened
    opened.close()


def accounts(site) -> list[tuple[str, str]]:
    table = site.schema.table("account")
    with site.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(table.c.name, table.c.code).order_by(table.c.id))]


def audit_rows(site) -> int:
    table = site.schema.system("crm_audit")
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def upload(api, text: str | bytes, name: str = "accounts.csv", **params):
    data = {"file": (io.BytesIO(text.encode() if isinstance(text, str) else text), name)}
    data.update({k: v for k, v in params.items()})
    return api.call("POST", "/account/import", data=data, content_type="multipart/form-data")


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["code"] == code and body["detail"]
    return body


def test_the_report_is_the_one_crm_import_prints(site, tmp_path):
    rep = api_for(site, "rep")
    source = tmp_path / "mixed.csv"
    source.write_text(MIXED, encoding="utf-8")
    cli = CliRunner().invoke(main, ["--site", str(site.config.root), "import", "account",
                                    str(source), "--dry-run", "--json", "--as", "rep"],
                             catch_exceptions=False)
    expected = json.loads(cli.stdout[cli.stdout.index("{"):])
    answer = upload(rep, MIXED, dry_run="true")
    assert answer.status_code == 200 and answer.get_json() == expected
    report = answer.get_json()
    assert report["dry_run"] and not report["written"] and report["rows"] == 3
    assert {e["line"]: sorted(e["errors"]) for e in report["row_errors"]} == {
        3: ["名称"], 4: ["Budget"]}
    assert accounts(site) == []


def test_all_or_nothing_refuses_with_the_report_and_writes_nothing(site):
    rep = api_for(site, "rep")
    answer = rep.call("POST", "/account/import", data=MIXED.encode(),
                      content_type="text/csv")
    body = problem(answer, 422, "import_refused")
    assert body["report"]["rejected"] == 2 and body["report"]["written"] is False
    assert "2 row(s) refused" in body["detail"]
    assert accounts(site) == [] and audit_rows(site) == 0


def test_good_rows_and_a_plain_csv_body_write_with_audit(site):
    rep = api_for(site, "rep")
    answer = rep.call("POST", "/account/import?good_rows=true", data=MIXED.encode(),
                      content_type="text/csv; charset=utf-8")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    report = answer.get_json()
    assert report["written"] and report["created"] == 1 and report["rejected"] == 2
    assert accounts(site) == [("Acme", "C-1")]
    record = site.records.list(site.users.actor("rep"), "account").rows[0]
    assert record["owner"] == site.users.actor("rep").user_id and record["number"] == "A-0001"
    assert [h["action"] for h in site.records.history(site.users.actor("rep"), "account",
                                                      record["id"])] == ["create"]


def test_upsert_mapping_and_xlsx_upload(site):
    boss = api_for(site, "boss")
    assert upload(boss, GOOD).status_code == 200
    book = Workbook()
    sheet = book.active
    sheet.append(["旧编号", "Full name", "Budget"])
    sheet.append(["C-1", "Acme Ltd", 99])
    out = io.BytesIO()
    book.save(out)
    answer = upload(boss, out.getvalue(), "accounts.xlsx", upsert_on="code",
                    mapping=json.dumps({"旧编号": "code", "Full name": "name"}))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["updated"] == 1 and answer.get_json()["created"] == 0
    assert accounts(site) == [("Acme Ltd", "C-1"), ("Beta", "C-2")]


def test_refusals_are_problems(site):
    viewer, rep = api_for(site, "viewer"), api_for(site, "rep")
    problem(upload(viewer, GOOD), 403, "forbidden")
    # A hidden field is a column the caller cannot name: the file is refused as a whole.
    body = problem(upload(rep, "名称,Secret\nAcme,x\n"), 422, "import_refused")
    assert body["errors"]["file"] and body["report"]["file_errors"] == body["errors"]["file"]
    assert "mapping" in problem(upload(rep, GOOD, mapping="[1]"), 422,
                                "validation_failed")["errors"]
    assert "dry_run" in problem(upload(rep, GOOD, dry_run="perhaps"), 422,
                                "validation_failed")["errors"]
    problem(rep.post("/account/import", json={"rows": []}), 415, "unsupported_media_type")
    body = problem(rep.call("POST", "/account/import", data=b"x",
                            content_type="multipart/form-data; boundary=b"), 422,
                   "validation_failed")
    assert "file" in body["errors"]
    assert problem(upload(rep, GOOD, upsert_on="budget"), 422, "import_refused")[
        "report"]["file_errors"]
    problem(rep.call("POST", "/nothing/import", data=GOOD.encode(), content_type="text/csv"),
            404, "not_found")
    assert accounts(site) == [] and audit_rows(site) == 0


def test_the_openapi_document_describes_the_import(site):
    doc = api_for(site, "rep").get("/openapi.json").get_json()
    operation = doc["paths"]["/account/import"]["post"]
    assert set(operation["requestBody"]["content"]) >= {"multipart/form-data", "text/csv"}
    assert {p["name"] for p in operation["parameters"]} == {
        "dry_run", "upsert_on", "mapping", "good_rows", "background"}
    assert set(operation["responses"]) >= {"200", "202", "403", "422"}
    assert "ImportReport" in doc["components"]["schemas"]
    assert "/account/import" not in api_for(site, "viewer").get("/openapi.json").get_json()[
        "paths"]
