"""Background imports: queued by the web, the API and the CLI, run by ``crm worker``.

A run lives in ``crm_import_run``; exactly one worker claims it, its rights
are checked again when it starts, its progress is written outside the
import's transaction, a dead worker's run is taken over, and a failed or
refused run leaves the database as it was.  Only its user (or an
administrator) sees it.
"""

from __future__ import annotations

import datetime as dt
import io
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, select, text

from engine.cli import main
from engine.context import FixedClock
from engine.errors import NotFound, PermissionDenied, ValidationFailed
from engine.notifications.worker import NotificationWorker
from engine.services.dataio.importing import Importer
from engine.services.dataio.importing.queue import (
    BACKGROUND_ROWS,
    MAX_ATTEMPTS,
    TAKEOVER_AFTER,
    ImportQueue,
)
from engine.site import Site
from engine.storage.migration import apply_migration, is_up_to_date
from engine.web import create_app
from tests.api_support import NOW, PASSWORD, api_for
from tests.support import open_migrated, write_pack, write_site
from tests.web_support import login, post

PACK = {
    "entities/account.yaml": """
        entity: account
        title_field: name
        label: {en: Account, zh: 客户}
        plural: {en: Accounts, zh: 客户}
        fields:
          number: {type: sequence, sequence_pattern: "A-{####}", label: {en: Number, zh: 编号}}
          name: {type: string, required: true, max_length: 40, label: {en: Name, zh: 名称}}
          code: {type: string, unique: true, label: {en: Code, zh: 代码}}
          budget: {type: decimal, precision: 12, scale: 2, label: {en: Budget, zh: 预算}}
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
          viewer:
            label: Viewer
            entities:
              "*": {rights: [read], scope: all}
    """,
}
GOOD = "名称,Code,Budget\nAcme,C-1,\"1,200.50\"\nBeta,C-2,30\n"
MIXED = "名称,Code,Budget\nAcme,C-1,12\n,C-2,3\nGamma,C-3,\"3,5\"\n"
TABLES = ("account", "crm_audit", "crm_sequence")


@pytest.fixture
def site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "shop", PACK)
    root = write_site(tmp_path / "site", db_url, ["shop"], pack_paths=["../packs"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    opened.users.create("admin", password=PASSWORD, roles=["boss"], is_admin=True)
    for login_name, role in (("rep", "sales"), ("other", "sales"), ("viewer", "viewer")):
        opened.users.create(login_name, password=PASSWORD, roles=[role])
    opened.users.create("li", password=PASSWORD, roles=["sales"], language="zh")
    yield opened
    opened.close()


def queue(site, **options) -> ImportQueue:
    return ImportQueue.for_site(site, **options)


def counts(site) -> dict[str, int]:
    with site.engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(
            site.schema.system(name) if name.startswith("crm_") else site.schema.table(name)
        )).scalar_one() for name in TABLES}


def names(site) -> list[str]:
    table = site.schema.table("account")
    with site.engine.connect() as conn:
        return list(conn.execute(select(table.c.name).order_by(table.c.id)).scalars())


def big_csv(rows: int) -> bytes:
    lines = ["name,code,budget"] + [f"Account {i},K-{i},{i % 1000}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


# -- queue, claim, run -------------------------------------------------------------------------


def test_a_queued_import_is_run_by_the_worker_with_the_same_report(site):
    rep = site.users.actor("rep")
    run = queue(site).enqueue(rep, "account", MIXED.encode(), "accounts.csv", good_rows=True)
    assert run.status == "queued" and run.has_file and run.report is None
    assert names(site) == []  # nothing happens until a worker runs it
    outcome = NotificationWorker(site).run_once()["imports"]
    assert outcome == {str(run.id): "done"}
    done = queue(site).get(rep, run.id)
    assert done.status == "done" and done.finished and done.percent == 100
    assert done.started_at is not None and done.finished_at is not None
    assert not done.has_file  # a real import's file is dropped once it has run
    assert done.rows_done == 3 and done.rows_total == 3
    report = done.report
    assert report["written"] and report["created"] == 1 and report["rejected"] == 2
    assert [e["line"] for e in report["row_errors"]] == [3, 4]
    assert names(site) == ["Acme"]
    record = site.records.list(rep, "account").rows[0]
    assert record["owner"] == rep.user_id and record["number"] == "A-0001"
    rejected = queue(site).rejected(rep, run.id)
    assert rejected.splitlines()[0].startswith("名称,Code,Budget,line,errors")
    assert len(rejected.splitlines()) == 3
    # the same report as the importer gives in a request, on a fresh database state
    again = Importer(site.records, timezone=site.config.timezone).run(
        rep, "account", MIXED.encode(), "accounts.csv", good_rows=True, dry_run=True)
    assert {e.line: e.errors for e in again.row_errors}[4] == report["row_errors"][1]["errors"]
    # nothing left to do: the next poll runs nothing
    assert NotificationWorker(site).run_once()["imports"] == {}


def test_two_workers_racing_claim_each_run_exactly_once(site):
    rep = site.users.actor("rep")
    runs = [queue(site).enqueue(rep, "account", GOOD.encode(), f"a{i}.csv", dry_run=True).id
            for i in range(4)]
    other = Site.open(site.config.root, clock=site.clock)  # another process, its own pool
    try:
        claimed: dict[str, list[int]] = {"w1": [], "w2": []}
        start = threading.Barrier(2)
        problems: list[BaseException] = []

        def work(name: str, where) -> None:
            try:
                mine = queue(where)
                start.wait()
                while (run := mine.claim(name)) is not None:
                    claimed[name].append(run.id)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                problems.append(exc)

        threads = [threading.Thread(target=work, args=("w1", site)),
                   threading.Thread(target=work, args=("w2", other))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not problems, problems
        both = claimed["w1"] + claimed["w2"]
        assert sorted(both) == runs  # every run once, none twice
        for name, ids in claimed.items():
            for run_id in ids:
                run = queue(site).get(rep, run_id)
                assert run.status == "running" and run.claimed_by == name and run.attempts == 1
    finally:
        other.close()


def test_a_dead_workers_run_is_taken_over_and_imported_once(site):
    rep = site.users.actor("rep")
    run = queue(site).enqueue(rep, "account", GOOD.encode(), "accounts.csv")
    dead = queue(site).claim("dead")
    assert dead.id == run.id and dead.status == "running"
    assert queue(site).claim("alive") is None  # still within its time: nobody touches it
    site.clock.advance(seconds=TAKEOVER_AFTER.total_seconds() + 1)
    taken = queue(site).claim("alive")
    assert taken.id == run.id and taken.claimed_by == "alive" and taken.attempts == 2
    # the dead worker wakes up: its first progress report finds the run is no longer its own
    # and stops it, rolling its import back; its outcome is not recorded
    assert queue(site, progress_every=0).execute(dead, "dead").status == "running"
    assert names(site) == []
    done = queue(site).execute(taken, "alive")
    assert done.status == "done" and done.report["created"] == 2
    assert names(site) == ["Acme", "Beta"]


def test_a_run_that_keeps_killing_its_worker_fails_in_the_end(site):
    rep = site.users.actor("rep")
    run = queue(site).enqueue(rep, "account", GOOD.encode(), "accounts.csv")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        claimed = queue(site).claim(f"worker-{attempt}")
        assert claimed.id == run.id and claimed.attempts == attempt
        site.clock.advance(seconds=TAKEOVER_AFTER.total_seconds() + 1)
    assert queue(site).claim("last") is None
    failed = queue(site).get(rep, run.id)
    assert failed.status == "failed" and f"{MAX_ATTEMPTS} times" in failed.error
    assert not failed.has_file and names(site) == []


def test_the_right_is_checked_again_when_the_run_starts(site):
    rep, viewer = site.users.actor("rep"), site.users.actor("viewer")
    with pytest.raises(PermissionDenied):
        queue(site).enqueue(viewer, "account", GOOD.encode(), "accounts.csv")
    before = counts(site)
    run = queue(site).enqueue(rep, "account", GOOD.encode(), "accounts.csv")
    site.users.set_roles("rep", ["viewer"])  # the right taken away while it waits
    NotificationWorker(site).run_imports()
    failed = queue(site).get(rep, run.id)
    assert failed.status == "failed" and failed.error == "You may not import Accounts."
    assert failed.report is None and not failed.has_file
    assert counts(site) == before
    # a user deactivated in between: refused too, in the language they queued it in
    run = queue(site).enqueue(site.users.actor("li"), "account", GOOD.encode(), "a.csv")
    site.users.deactivate("li")
    NotificationWorker(site).run_imports()
    failed = queue(site).get(site.users.actor("admin"), run.id)
    assert failed.status == "failed" and "已停用" in failed.error
    assert counts(site) == before


def test_only_its_user_and_administrators_see_a_run(site):
    rep, other, admin = (site.users.actor(n) for n in ("rep", "other", "admin"))
    run = queue(site).enqueue(rep, "account", MIXED.encode(), "accounts.csv", good_rows=True)
    NotificationWorker(site).run_imports()
    with pytest.raises(NotFound):
        queue(site).get(other, run.id)
    with pytest.raises(NotFound):
        queue(site).rejected(other, run.id)
    with pytest.raises(NotFound):
        queue(site).get(rep, run.id + 100)
    assert queue(site).get(admin, run.id).status == "done"
    assert [r.id for r in queue(site).recent(rep)] == [run.id]
    assert queue(site).recent(other) == []
    assert [r.id for r in queue(site).recent(admin)] == [run.id]


def test_progress_is_written_outside_the_imports_transaction(site):
    rep = site.users.actor("rep")
    mine = queue(site, progress_every=0, batch_size=2)
    run = mine.enqueue(rep, "account", big_csv(7), "accounts.csv")
    claimed = mine.claim("w1")
    account = site.schema.table("account")
    seen: list[tuple[str, int, int, int]] = []
    looking = threading.local()
    outside = Site.open(site.config.root, clock=site.clock)  # another process looking

    def look(conn, cursor, statement, *args) -> None:
        if getattr(looking, "now", False) or "account" not in statement.lower():
            return
        looking.now = True
        try:
            state = queue(outside).get(rep, run.id)
            with outside.engine.connect() as reader:
                written = reader.execute(select(func.count()).select_from(account)).scalar_one()
            seen.append((state.status, state.rows_done, state.rows_total, written))
        finally:
            looking.now = False

    event.listen(site.engine, "before_cursor_execute", look)
    try:
        done = mine.execute(claimed, "w1")
    finally:
        event.remove(site.engine, "before_cursor_execute", look)
        outside.close()
    assert done.status == "done" and done.report["created"] == 7
    # while the import ran, others saw the rows done grow, and none of its records yet
    progress = sorted({rows for status, rows, _, written in seen
                       if status == "running" and written == 0})
    assert progress[:4] == [0, 2, 4, 6], seen
    assert all(total >= 7 for status, rows, total, _ in seen if rows)
    assert done.rows_done == 7 and names(site)[:1] == ["Account 0"]


def test_a_refused_import_leaves_the_database_unchanged(site):
    rep = site.users.actor("rep")
    site.records.create(rep, "account", {"name": "Kept", "code": "C-9"})
    before = counts(site)
    refused = queue(site).enqueue(rep, "account", MIXED.encode(), "accounts.csv")
    broken = queue(site).enqueue(rep, "account", b"Nothing,Like,This\n1,2,3\n", "bad.csv")
    unreadable = queue(site).enqueue(rep, "account", b"\x00\x01", "bad.pdf")
    NotificationWorker(site).run_imports()
    refused, broken, unreadable = (queue(site).get(rep, r.id)
                                   for r in (refused, broken, unreadable))
    assert refused.status == "done" and not refused.report["written"]
    assert refused.report["rejected"] == 2 and refused.has_rejected
    assert broken.status == "done" and broken.report["file_errors"]
    assert unreadable.status == "done" and unreadable.report["file_errors"]
    assert counts(site) == before and names(site) == ["Kept"]


def test_a_check_keeps_its_file_to_be_imported_without_a_second_upload(site):
    rep = site.users.actor("rep")
    check = queue(site).enqueue(rep, "account", GOOD.encode(), "accounts.csv", dry_run=True,
                                upsert_on="code")
    NotificationWorker(site).run_imports()
    check = queue(site).get(rep, check.id)
    assert check.status == "done" and check.report["dry_run"] and check.has_file
    assert names(site) == []
    with pytest.raises(NotFound):
        queue(site).import_checked(site.users.actor("other"), check.id)
    real = queue(site).import_checked(rep, check.id)
    assert real.options["upsert_on"] == "code" and not real.dry_run
    NotificationWorker(site).run_imports()
    assert queue(site).get(rep, real.id).report["created"] == 2
    with pytest.raises(ValidationFailed):
        queue(site).import_checked(rep, real.id)  # not a check
    # a day later the check's file is gone, a month later the runs
    site.clock.advance(days=2)
    queue(site).prune()
    assert not queue(site).get(rep, check.id).has_file
    with pytest.raises(ValidationFailed):
        queue(site).import_checked(rep, check.id)
    site.clock.advance(days=31)
    queue(site).prune()
    assert queue(site).recent(rep) == []


def test_an_existing_site_gains_the_table_without_losing_a_row(site):
    rep = site.users.actor("rep")
    site.records.create(rep, "account", {"name": "Old", "code": "O-1"})
    with site.engine.begin() as conn:  # a site made before background imports
        conn.execute(text("DROP TABLE crm_import_run"))
    assert not is_up_to_date(site.engine, site.registry)
    apply_migration(site.engine, site.registry, site.schema)
    assert is_up_to_date(site.engine, site.registry)
    assert names(site) == ["Old"]
    run = queue(site).enqueue(rep, "account", GOOD.encode(), "accounts.csv")
    NotificationWorker(site).run_imports()
    assert queue(site).get(rep, run.id).status == "done"
    assert names(site) == ["Old", "Acme", "Beta"]


# -- the API -----------------------------------------------------------------------------------


def upload(api, data: str | bytes, name: str = "accounts.csv", **params):
    body = {"file": (io.BytesIO(data.encode() if isinstance(data, str) else data), name)}
    body.update(params)
    return api.call("POST", "/account/import", data=body, content_type="multipart/form-data")


def test_the_api_queues_with_202_and_location_then_reports(site):
    rep, other, viewer = api_for(site, "rep"), api_for(site, "other"), api_for(site, "viewer")
    answer = upload(rep, MIXED, background="true", good_rows="true")
    assert answer.status_code == 202, answer.get_data(as_text=True)
    location = answer.headers["Location"]
    assert location.startswith("/api/v1/imports/")
    body = answer.get_json()
    assert body["status"] == "queued" and body["report"] is None and body["good_rows"]
    assert location.endswith(f"/imports/{body['id']}") and names(site) == []
    path = location.removeprefix("/api/v1")
    assert rep.get(path).get_json()["status"] == "queued"
    assert rep.get(path + "/rejected.csv").status_code == 404  # not run yet
    NotificationWorker(site).run_imports()
    done = rep.get(path).get_json()
    assert done["status"] == "done" and done["percent"] == 100
    assert done["report"]["created"] == 1 and done["report"]["rejected"] == 2
    assert done["rejected_url"] == f"/api/v1{path}/rejected.csv"
    csv_answer = rep.get(path + "/rejected.csv")
    assert csv_answer.status_code == 200 and csv_answer.mimetype == "text/csv"
    assert csv_answer.get_data(as_text=True).startswith("\ufeff名称,Code,Budget")
    assert names(site) == ["Acme"]
    # nobody else sees it; a user without the right cannot queue one
    assert other.get(path).status_code == 404
    assert other.get(path + "/rejected.csv").status_code == 404
    assert api_for(site, "admin").get(path).status_code == 200
    assert upload(viewer, GOOD, background="true").status_code == 403
    assert upload(rep, GOOD, background="perhaps").status_code == 422
    # without background=true the answer is the report, as before
    assert upload(rep, "名称,Code\nZed,Z-1\n").get_json()["created"] == 1


def test_the_openapi_document_describes_background_imports(site):
    doc = api_for(site, "rep").get("/openapi.json").get_json()
    operation = doc["paths"]["/account/import"]["post"]
    assert "background" in {p["name"] for p in operation["parameters"]}
    assert "202" in operation["responses"]
    assert doc["paths"]["/imports/{run_id}"]["get"]["responses"]["200"]
    assert "text/csv" in doc["paths"]["/imports/{run_id}/rejected.csv"]["get"][
        "responses"]["200"]["content"]
    assert "ImportRun" in doc["components"]["schemas"]


# -- the upload page ---------------------------------------------------------------------------


def test_the_upload_page_checks_and_imports_a_big_file_in_the_background(site):
    app = create_app(site, testing=True)
    client = app.test_client()
    login(client, "rep", PASSWORD)
    data = big_csv(BACKGROUND_ROWS)
    answer = post(client, "/r/account/import", {"action": "check",
                                                "file": (io.BytesIO(data), "many.csv")},
                  content_type="multipart/form-data")
    assert answer.status_code == 303, answer.get_data(as_text=True)
    page_url = answer.headers["Location"]
    assert "/r/account/imports/" in page_url
    page = client.get(page_url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "imports.js" in html and "<progress" in html
    assert "Waiting for a worker" in html
    status = client.get(page_url + "/status").get_json()
    assert status == {"status": "queued", "rows_done": 0, "rows_total": 0, "percent": 0,
                      "finished": False, "text": "Waiting for a worker to start it…"}
    NotificationWorker(site).run_imports()
    assert client.get(page_url + "/status").get_json()["finished"] is True
    html = client.get(page_url).get_data(as_text=True)
    assert f"{BACKGROUND_ROWS} row(s) read" in html and "<progress" not in html
    assert f"{BACKGROUND_ROWS} to create" in html and names(site) == []
    run_id = int(page_url.rsplit("/", 1)[1])
    answer = post(client, f"/r/account/imports/{run_id}/import")
    assert answer.status_code == 303
    NotificationWorker(site).run_imports()
    html = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert f"Imported: {BACKGROUND_ROWS} created" in html
    assert len(names(site)) == BACKGROUND_ROWS
    # someone else's run is not found; a small file is still imported in the request
    other = app.test_client()
    login(other, "other", PASSWORD)
    assert other.get(page_url).status_code == 404
    assert other.get(page_url + "/status").status_code == 404
    small = post(client, "/r/account/import", {"action": "import",
                                               "file": (io.BytesIO(GOOD.encode()), "a.csv")},
                 content_type="multipart/form-data")
    assert small.status_code == 200 and "Imported: 2 created" in small.get_data(as_text=True)


def test_a_failed_background_import_shows_why_in_chinese(site):
    app = create_app(site, testing=True)
    client = app.test_client()
    login(client, "li", PASSWORD)
    data = big_csv(BACKGROUND_ROWS)
    answer = post(client, "/r/account/import", {"action": "import",
                                                "file": (io.BytesIO(data), "many.csv")},
                  content_type="multipart/form-data")
    assert answer.status_code == 303
    html = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "等待后台进程开始" in html and "正在导入文件" in html
    site.users.set_roles("li", ["viewer"])
    NotificationWorker(site).run_imports()
    site.users.set_roles("li", ["sales"])
    html = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "导入失败" in html and "您无权导入客户" in html and "Traceback" not in html
    assert names(site) == []


# -- the CLI -----------------------------------------------------------------------------------


def test_crm_import_background_and_crm_imports(site, tmp_path):
    source = tmp_path / "accounts.csv"
    source.write_text(GOOD, encoding="utf-8")
    root = str(site.config.root)
    runner = CliRunner()
    queued = runner.invoke(main, ["--site", root, "import", "account", str(source),
                                  "--background", "--as", "rep"], catch_exceptions=False)
    assert queued.exit_code == 0, queued.output
    assert "queued" in queued.output and "crm imports" in queued.output
    listed = runner.invoke(main, ["--site", root, "imports", "--as", "rep"])
    assert listed.exit_code == 0 and "queued" in listed.output and "accounts.csv" in listed.output
    worker = runner.invoke(main, ["--site", root, "worker", "--once"], catch_exceptions=False)
    assert worker.exit_code == 0, worker.output
    shown = runner.invoke(main, ["--site", root, "imports", "1", "--as", "rep"])
    assert shown.exit_code == 0, shown.output
    assert "done" in shown.output and "2 created" in shown.output
    assert runner.invoke(main, ["--site", root, "imports", "1", "--as", "other"]).exit_code != 0
    assert names(site) == ["Acme", "Beta"]


def test_the_clock_of_a_run_is_the_sites(site):
    rep = site.users.actor("rep")
    run = queue(site).enqueue(rep, "account", GOOD.encode(), "accounts.csv")
    assert run.created_at == NOW
    site.clock.advance(minutes=5)
    NotificationWorker(site).run_imports()
    done = queue(site).get(rep, run.id)
    assert done.started_at == NOW + dt.timedelta(minutes=5) == done.finished_at


def test_what_a_run_records_commits_with_the_rows_or_not_at_all(site):
    """``before_commit`` runs inside the import's transaction: the background run's outcome
    and the imported rows commit together, so no worker's death can separate them."""
    rep = site.users.actor("rep")
    importer = Importer(site.records)
    before = counts(site)
    seen = []

    def refuse(conn, report):
        seen.append((report.written, report.created))
        raise RuntimeError("the run was taken over")

    with pytest.raises(RuntimeError):
        importer.run(rep, "account", GOOD.encode(), "accounts.csv", before_commit=refuse)
    assert seen == [(True, 2)] and counts(site) == before  # rolled back, rows and all

    run = queue(site).enqueue(rep, "account", GOOD.encode(), "accounts.csv")
    table = site.schema.system("crm_import_run")

    def record(conn, report):
        conn.execute(table.update().where(table.c.id == run.id).values(error="recorded"))

    report = importer.run(rep, "account", GOOD.encode(), "accounts.csv", before_commit=record)
    assert report.written and names(site) == ["Acme", "Beta"]
    assert queue(site).get(rep, run.id).error == "recorded"  # committed with the rows
    checked = importer.run(rep, "account", GOOD.encode(), "again.csv", dry_run=True,
                           before_commit=refuse)
    assert not checked.written and len(seen) == 1  # nothing to commit: never called


def test_the_upload_page_takes_files_up_to_the_queues_limit(site):
    """Above the page's usual 4 MB, a file goes to the background; above MAX_FILE it is refused
    with a message (413), before anything is queued."""
    from engine.services.dataio.importing.queue import MAX_FILE

    client = create_app(site, testing=True).test_client()
    login(client, "rep", PASSWORD)
    wide = ("name,code,budget\n" + "".join(
        f"{'Account with a long name ' * 4}{i},W-{i},1\n" for i in range(1000))).encode()
    assert len(wide) < 1024 * 1024 * 5 and wide.count(b"\n") < BACKGROUND_ROWS
    padded = wide + b" " * (5 * 1024 * 1024)  # 5 MB: few rows, but too big to carry back
    answer = post(client, "/r/account/import", {"action": "check",
                                                "file": (io.BytesIO(padded), "wide.csv")},
                  content_type="multipart/form-data")
    assert answer.status_code == 303 and "/r/account/imports/" in answer.headers["Location"]
    over = b"name\n" + b"x" * MAX_FILE
    refused = post(client, "/r/account/import", {"action": "check",
                                                 "file": (io.BytesIO(over), "huge.csv")},
                   content_type="multipart/form-data")
    assert refused.status_code == 413
    assert f"larger than {MAX_FILE // (1024 * 1024)} MB" in refused.get_data(as_text=True)
    assert len(queue(site).recent(site.users.actor("rep"))) == 1
