"""Working documents through the API: files, printed PDFs and the calendar, scoped as in the UI."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from engine.context import FixedClock
from engine.errors import ValidationFailed
from engine.web import create_app
from tests.api_support import NOW, PASSWORD, Api
from tests.support import open_migrated, write_site

PROBLEM = "application/problem+json"


@pytest.fixture
def site(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"])
    (root / "crm.yaml").write_text((root / "crm.yaml").read_text(encoding="utf-8")
                                   + "attachments: {max_size_mb: 1}\n", encoding="utf-8")
    opened = open_migrated(root, clock=FixedClock(NOW))
    for login in ("rep", "other"):
        opened.users.create(login, password=PASSWORD, roles=["sales"])
    yield opened
    opened.close()


@pytest.fixture
def app(site):
    return create_app(site, testing=True)


def _api(site, app, login: str) -> Api:
    token, _ = site.users.tokens.create(login, "tests")
    return Api(app, token)


@pytest.fixture
def rep(site, app):
    return _api(site, app, "rep")


@pytest.fixture
def other(site, app):
    return _api(site, app, "other")


def _customer(api: Api, name: str = "华信科技") -> int:
    created = api.post("/customer", {"name": name, "kind": "client"})
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"]


def _upload(api: Api, path: str, *files: tuple[bytes, str]):
    return api.call("POST", path, data={"files": [(io.BytesIO(data), name)
                                                  for data, name in files]},
                    content_type="multipart/form-data")


def _problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    data = response.get_json()
    assert data["status"] == status and data["detail"]
    if code:
        assert data["code"] == code
    return data


def _stored(site, customer: int) -> list:
    return site.attachments.list(site.users.actor("rep"), "customer", customer)


def test_upload_list_download_delete_round_trip(site, rep):
    customer = _customer(rep)
    uploaded = _upload(rep, f"/customer/{customer}/attachments",
                       (b"%PDF-1.4 contract", "合同.pdf"),
                       (b"<html><script>alert(1)</script></html>", "evil.html"))
    assert uploaded.status_code == 201, uploaded.get_json()
    items = uploaded.get_json()["items"]
    assert [i["name"] for i in items] == ["合同.pdf", "evil.html"]
    assert items[0]["content_type"] == "application/pdf" and items[0]["size"] == 17
    listed = rep.get(f"/customer/{customer}/attachments")
    assert listed.status_code == 200
    by_name = {i["name"]: i for i in listed.get_json()["items"]}
    assert set(by_name) == {"合同.pdf", "evil.html"}
    pdf = rep.get(by_name["合同.pdf"]["url"].removeprefix("/api/v1"))
    assert pdf.status_code == 200 and pdf.data == b"%PDF-1.4 contract"
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%E5%90%88%E5%90%8C.pdf" in pdf.headers["Content-Disposition"]
    assert pdf.headers["X-Content-Type-Options"] == "nosniff"
    html = rep.get(f"/attachments/{by_name['evil.html']['key']}")
    assert html.headers["Content-Type"] == "text/plain; charset=utf-8"  # never served as HTML
    assert html.headers["Content-Disposition"].startswith("attachment;")
    assert rep.delete(f"/attachments/{by_name['evil.html']['key']}").status_code == 204
    assert [i["name"] for i in rep.get(f"/customer/{customer}/attachments").get_json()["items"]
            ] == ["合同.pdf"]
    _problem(rep.get(f"/attachments/{by_name['evil.html']['key']}"), 404, "not_found")


def test_another_salesperson_gets_404_for_list_download_print_and_delete(site, rep, other):
    customer = _customer(rep)
    key = _upload(rep, f"/customer/{customer}/attachments",
                  (b"secret terms", "terms.txt")).get_json()["items"][0]["key"]
    _problem(other.get(f"/customer/{customer}/attachments"), 404)
    _problem(other.get(f"/attachments/{key}"), 404)
    _problem(other.delete(f"/attachments/{key}"), 404)
    _problem(_upload(other, f"/customer/{customer}/attachments", (b"x", "x.txt")), 404)
    _problem(other.get(f"/customer/{customer}/prints"), 404)
    _problem(other.get(f"/customer/{customer}/prints/record.pdf"), 404)
    _problem(other.post(f"/customer/{customer}/prints/record/attach"), 404)
    assert [a.name for a in _stored(site, customer)] == ["terms.txt"]


def test_oversized_upload_is_413_and_nothing_is_stored(site, rep):
    customer = _customer(rep)
    too_big = b"a" * (1024 * 1024 + 1)
    answer = _upload(rep, f"/customer/{customer}/attachments",
                     (b"small and fine", "fine.txt"), (too_big, "big.txt"))
    assert "big.txt" in _problem(answer, 413, "too_large")["detail"]
    assert _stored(site, customer) == []
    # A body beyond what any upload may be is refused before it is read.
    huge = _upload(rep, f"/customer/{customer}/attachments", (b"b" * (11 * 1024 * 1024), "h"))
    _problem(huge, 413, "too_large")
    assert _stored(site, customer) == []
    folder = site.config.root / "files"
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]


def test_a_failure_midway_keeps_no_file_of_the_upload(site, rep, monkeypatch):
    customer = _customer(rep)
    real_attach = site.attachments.attach
    calls = []

    def failing_second(actor, entity, record_id, name, stream):
        calls.append(name)
        if len(calls) == 2:
            raise ValidationFailed({"files": ["refused for the test"]})
        return real_attach(actor, entity, record_id, name, stream)

    monkeypatch.setattr(site.attachments, "attach", failing_second)
    answer = _upload(rep, f"/customer/{customer}/attachments", (b"one", "1.txt"),
                     (b"two", "2.txt"), (b"three", "3.txt"))
    _problem(answer, 422, "validation_failed")
    assert calls == ["1.txt", "2.txt"] and _stored(site, customer) == []


def test_bad_uploads_are_4xx(site, rep):
    customer = _customer(rep)
    _problem(rep.post(f"/customer/{customer}/attachments", {"files": "x"}), 415)
    _problem(_upload(rep, f"/customer/{customer}/attachments", (b"", "empty.txt")), 422)
    _problem(rep.call("POST", f"/customer/{customer}/attachments", data={"note": "no file"},
                      content_type="multipart/form-data"), 422)
    _problem(_upload(rep, f"/customer/{customer + 100}/attachments", (b"x", "x.txt")), 404)
    assert _stored(site, customer) == []


def test_prints_pdf_and_attach(site, rep):
    customer = _customer(rep)
    formats = rep.get(f"/customer/{customer}/prints")
    assert formats.status_code == 200
    items = formats.get_json()["items"]
    assert items[-1]["key"] == "record" and items[-1]["label"] == {"en": "Record sheet",
                                                                   "zh": "记录单"}
    for lang in ("en", "zh"):
        pdf = rep.get(f"/customer/{customer}/prints/record.pdf?lang={lang}")
        assert pdf.status_code == 200, pdf.get_data(as_text=True)[:300]
        assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
        assert pdf.headers["Content-Disposition"].startswith("attachment;")
    _problem(rep.get(f"/customer/{customer}/prints/record.pdf?lang=fr"), 422)
    _problem(rep.get(f"/customer/{customer}/prints/no_such_format.pdf"), 404)
    attached = rep.post(f"/customer/{customer}/prints/record/attach?lang=zh")
    assert attached.status_code == 201, attached.get_json()
    found = attached.get_json()
    assert found["name"] == f"记录单-{customer}.pdf" and found["content_type"] == "application/pdf"
    assert [a.key for a in _stored(site, customer)] == [found["key"]]
    assert rep.get(f"/attachments/{found['key']}").data.startswith(b"%PDF")


def _visit(site, login: str, subject: str, when: dt.datetime) -> dict:
    actor = site.users.actor(login)
    customer = site.records.create(actor, "customer", {"name": f"{subject} Co", "kind": "client"})
    return site.records.create(actor, "activity", {
        "subject": subject, "kind": "visit", "customer": customer["id"],
        "due_at": when.isoformat()})


def test_calendar_holds_only_the_callers_events(site, rep, other):
    mine = _visit(site, "rep", "拜访华信", NOW + dt.timedelta(days=1))
    _visit(site, "other", "Other's visit", NOW + dt.timedelta(days=2))
    _visit(site, "rep", "Next month", NOW + dt.timedelta(days=40))
    week = rep.get("/calendar?start=2026-06-01&end=2026-06-08&entity=activity")
    assert week.status_code == 200, week.get_json()
    data = week.get_json()
    assert [(e["entity"], e["id"], e["title"]) for e in data["items"]] == [
        ("activity", mine["id"], "拜访华信")]
    assert data["items"][0]["version"] == mine["version"]
    assert "activity" in {s["entity"] for s in data["sources"]}
    default = rep.get("/calendar").get_json()  # the coming week
    assert [e["title"] for e in default["items"] if e["entity"] == "activity"] == ["拜访华信"]
    theirs = other.get("/calendar?start=2026-06-01&end=2026-06-08&entity=activity").get_json()
    assert [e["title"] for e in theirs["items"]] == ["Other's visit"]
    _problem(rep.get("/calendar?start=tomorrow"), 422)
    _problem(rep.get("/calendar?start=2026-06-08&end=2026-06-01"), 422)
    _problem(rep.get("/calendar?start=2026-01-01&end=2028-01-01"), 422)
    _problem(rep.get("/calendar?entity=no_such_thing"), 422)


def test_moving_an_event(site, rep, other):
    visit = _visit(site, "rep", "Move me", NOW + dt.timedelta(days=1))
    path = f"/calendar/activity/{visit['id']}/move"
    moved = rep.post(path, {"start": "2026-06-03T15:00:00+08:00", "version": visit["version"]})
    assert moved.status_code == 200, moved.get_json()
    data = moved.get_json()
    assert data["version"] == visit["version"] + 1
    assert dt.datetime.fromisoformat(data["start"]) == dt.datetime(2026, 6, 3, 7, 0, tzinfo=dt.UTC)
    stale = rep.post(path, {"start": "2026-06-04T15:00:00+08:00", "version": visit["version"]})
    _problem(stale, 409, "conflict")
    _problem(rep.post(path, {"start": "not a date", "version": data["version"]}), 422)
    _problem(rep.post(path, {"start": "2026-06-04T15:00:00+08:00"}), 428)
    _problem(other.post(path, {"start": "2026-06-04T15:00:00+08:00",
                               "version": data["version"]}), 404)
    _problem(rep.post(f"/calendar/customer/{visit['customer']}/move",
                      {"start": "2026-06-04", "version": 1}), 404)
    again = site.records.get(site.users.actor("rep"), "activity", visit["id"])
    assert again["version"] == data["version"]
    assert again["due_at"] == dt.datetime(2026, 6, 3, 7, 0, tzinfo=dt.UTC)


def test_openapi_describes_the_new_operations(rep):
    doc = rep.get("/openapi.json").get_json()
    paths = doc["paths"]
    upload = paths["/customer/{id}/attachments"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert "413" in paths["/customer/{id}/attachments"]["post"]["responses"]
    pdf = paths["/customer/{id}/prints/{format}.pdf"]["get"]["responses"]["200"]["content"]
    assert list(pdf) == ["application/pdf"]
    download = paths["/attachments/{key}"]["get"]["responses"]["200"]["content"]
    assert "application/octet-stream" in download
    assert "/calendar" in paths and "/calendar/{entity}/{id}/move" in paths
