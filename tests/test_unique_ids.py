"""A deleted record's id is never given again, and nothing of it surfaces on another record.

Two salespeople on one site: the first records an activity, attaches a file
and deletes the activity; the second's next activity must get a new id and
show neither the first one's history nor its file.  Run on SQLite (where a
plain INTEGER PRIMARY KEY reuses the highest deleted id) and PostgreSQL.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text

from engine.backup import back_up, restore
from engine.site import Site
from engine.web import create_app
from tests.api_support import NOW, PASSWORD, api_for, core_site
from tests.web_support import csrf, login, post

SECRET = "Price floor 41% for Acme — do not share"


@pytest.fixture
def site(tmp_path, db_url):
    opened = core_site(tmp_path, db_url)
    yield opened
    opened.close()


def _upload(api, path: str, data: bytes, name: str):
    return api.call("POST", path, data={"files": [(io.BytesIO(data), name)]},
                    content_type="multipart/form-data")


def _texts(items: list[dict]) -> str:
    return repr(items)


def test_a_deleted_activity_leaves_nothing_to_the_next_one(site: Site, tmp_path: Path):
    rep, other, admin = api_for(site, "rep"), api_for(site, "other"), api_for(site, "admin")
    first = rep.post("/activity", {"subject": SECRET, "kind": "call"})
    assert first.status_code == 201, first.get_json()
    first_id = first.get_json()["id"]
    uploaded = _upload(rep, f"/activity/{first_id}/attachments", b"%PDF-1.4 floor", "floor.pdf")
    assert uploaded.status_code == 201, uploaded.get_json()
    key = uploaded.get_json()["items"][0]["key"]
    stored = tmp_path / "site" / "files" / key[:2] / key
    assert stored.read_bytes() == b"%PDF-1.4 floor"
    site.users.link("other", "activity", first_id)  # a link gives 'linked' scopes access
    version = rep.get(f"/activity/{first_id}").get_json()["version"]
    assert rep.delete(f"/activity/{first_id}", headers={"If-Match": f'"{version}"'}
                      ).status_code == 204
    assert site.users.links_of("other") == []

    second = other.post("/activity", {"subject": "Intro call", "kind": "call"})
    assert second.status_code == 201, second.get_json()
    second_id = second.get_json()["id"]
    assert second_id > first_id  # never the deleted one's
    history = other.get(f"/activity/{second_id}/history").get_json()["items"]
    assert [h["action"] for h in history] == ["create"] * len(history) and history
    assert SECRET not in _texts(history) and "floor" not in _texts(history)
    assert other.get(f"/activity/{second_id}/attachments").get_json()["items"] == []
    for who in (rep, other, admin):  # the file went with its record
        assert who.get(f"/attachments/{key}").status_code == 404
    assert not stored.exists()
    # The deletion itself stays in the audit trail, under the deleted record's id.
    audit = site.schema.system("crm_audit")
    with site.engine.connect() as conn:
        actions = conn.execute(select(audit.c.action).where(
            audit.c.entity == "activity", audit.c.record_id == first_id)).scalars().all()
        files = site.schema.system("crm_attachment")
        assert conn.execute(select(files.c.id).where(files.c.entity == "activity")).all() == []
    assert "create" in actions and "delete" in actions


def test_a_reused_id_shows_no_history_nor_files_of_the_deleted_record(site: Site):
    """Defence in depth: a row given an old id by hand (or an old backup) inherits nothing."""
    rep, admin = api_for(site, "rep"), api_for(site, "admin")
    first_id = rep.post("/activity", {"subject": SECRET, "kind": "call"}).get_json()["id"]
    assert _upload(rep, f"/activity/{first_id}/attachments", b"secret terms", "terms.txt"
                   ).status_code == 201
    rep_id = site.users.get("rep")["id"]
    version = rep.get(f"/activity/{first_id}").get_json()["version"]
    assert rep.delete(f"/activity/{first_id}", headers={"If-Match": f'"{version}"'}
                      ).status_code == 204
    table = site.schema.table("activity")
    with site.engine.begin() as conn:
        conn.execute(insert(table).values(id=first_id, subject="Hand-made", kind="call",
                                          created_at=NOW, updated_at=NOW, owner=rep_id))
    history = admin.get(f"/activity/{first_id}/history").get_json()["items"]
    assert history == []
    assert admin.get(f"/activity/{first_id}/attachments").get_json()["items"] == []


def test_ids_strictly_increase_after_deleting_the_highest(site: Site):
    admin = api_for(site, "admin")
    made = []
    for number in range(3):
        made.append(admin.post("/customer", {"name": f"Customer {number}", "kind": "client"}
                               ).get_json())
    for record in made[1:]:  # the two highest
        assert admin.delete(f"/customer/{record['id']}", headers={
            "If-Match": f'"{record["version"]}"'}).status_code == 204
    again = admin.post("/customer", {"name": "Later", "kind": "client"}).get_json()
    assert again["id"] > made[-1]["id"]


def test_every_table_that_generates_ids_never_reuses_them(site: Site):
    if site.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL sequences never go back")
    with site.engine.connect() as conn:
        sql = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
                                ).all())
        for name in ("activity", "customer", "crm_audit", "crm_attachment", "crm_user",
                     "crm_notification", "crm_outbox", "crm_stage_history"):
            assert "AUTOINCREMENT" in sql[name], name


def test_a_restored_site_does_not_give_a_deleted_records_id_again(site: Site, tmp_path: Path,
                                                                  other_db_url: str):
    rep = api_for(site, "rep")
    kept = rep.post("/activity", {"subject": "Kept", "kind": "call"}).get_json()
    gone = rep.post("/activity", {"subject": SECRET, "kind": "call"}).get_json()
    assert rep.delete(f"/activity/{gone['id']}", headers={"If-Match": f'"{gone["version"]}"'}
                      ).status_code == 204
    archive = tmp_path / "backup.zip"
    back_up(site, archive)
    restore(archive, tmp_path / "copy", database_url=other_db_url)
    with Site.open(tmp_path / "copy") as copy:
        again = api_for(copy, "rep").post("/activity", {"subject": "After restore", "kind": "call"})
        assert again.status_code == 201, again.get_json()
        assert again.get_json()["id"] > gone["id"] > kept["id"]
        history = api_for(copy, "rep").get(f"/activity/{again.get_json()['id']}/history")
        assert SECRET not in history.get_data(as_text=True)


def test_through_the_web_the_next_activity_shows_nothing_of_the_deleted_one(site: Site):
    rep, other = create_app(site, testing=True).test_client(), \
        create_app(site, testing=True).test_client()
    assert login(rep, "rep", PASSWORD).status_code == 302
    assert login(other, "other", PASSWORD).status_code == 302
    first = site.records.create(site.users.actor("rep"), "activity",
                                {"subject": SECRET, "kind": "call"})
    uploaded = rep.post(f"/r/activity/{first['id']}/files", data={
        "csrf_token": csrf(rep), "files": [(io.BytesIO(b"floor terms"), "floor.txt")]},
        content_type="multipart/form-data")
    assert uploaded.status_code in (200, 302, 303)
    [stored] = site.attachments.list(site.users.actor("rep"), "activity", first["id"])
    assert rep.get(f"/files/{stored.key}").data == b"floor terms"
    before = rep.get(f"/r/activity/{first['id']}").get_data(as_text=True)
    assert SECRET in before and "floor.txt" in before  # what must not reach the next one
    deleted = post(rep, f"/r/activity/{first['id']}/delete", {"version": str(first["version"])})
    assert deleted.status_code == 302
    second = site.records.create(site.users.actor("other"), "activity",
                                 {"subject": "Intro call", "kind": "call"})
    assert second["id"] > first["id"]
    page = other.get(f"/r/activity/{second['id']}")
    assert page.status_code == 200
    shown = page.get_data(as_text=True)
    assert SECRET not in shown and "floor.txt" not in shown and stored.key not in shown
    for client in (rep, other):
        assert client.get(f"/files/{stored.key}").status_code == 404
