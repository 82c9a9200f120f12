"""Reports, dashboards and exports read from the read-only replica; everything else from the primary.

The replica here is a second database of this run's kind (another SQLite
file, or another PostgreSQL schema) holding a copy of the primary's rows
plus a customer and a deal that only it has — so every figure and export
shows which database it was read from.  Rights are the site's own: a
salesperson's export from the replica still holds only their rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import delete, insert, select, text

from engine.cli import main
from engine.context import FixedClock
from engine.errors import CrmError, DefinitionError
from engine.services.dataio.exporting import Exporter
from engine.services.views.dashboards import DashboardService
from engine.services.views.figures import ReportRequest
from engine.services.views.reports import ReportLoader
from engine.site import Site
from engine.storage.database import DEFINITIONS_OPTION, write_transaction
from engine.web import create_app
from tests.support import open_migrated, write_site
from tests.web_support import login

NOW = dt.datetime(2026, 6, 15, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse"
#: Salespeople may export their opportunities on this site (core lets only managers).
EXPORT_OVERLAY = {"sales_export.yaml": """
    roles:
      sales:
        entities:
          opportunity: {rights: [read, create, update, transition, export]}
    """}


@dataclass
class Replicated:
    site: Site      # the site under test: primary plus replica_url
    replica: Site   # a writable handle on the replica's database, to build it
    root: Path


def _set_database(root: Path, **settings: object) -> None:
    config = yaml.safe_load((root / "crm.yaml").read_text(encoding="utf-8"))
    config["database"] = {**config.get("database", {}), **settings}
    (root / "crm.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")


def _populate(site: Site) -> None:
    site.users.create("admin", password=PASSWORD, roles=["admin"], is_admin=True)
    for login_ in ("wang", "li"):
        site.users.create(login_, password=PASSWORD, roles=["sales"])
        seller = site.users.actor(login_)
        customer = site.records.create(seller, "customer", {"name": f"{login_.title()} Trading"})
        for name, amount in ((f"{login_} racks", "8000"), (f"{login_} servers", "12000")):
            site.records.create(seller, "opportunity", {"name": name, "customer": customer["id"],
                                                        "amount": amount})


def _copy_rows(source: Site, target: Site) -> None:
    """What replication does: the target holds exactly the source's rows."""
    tables = source.schema.metadata.sorted_tables
    with source.engine.connect() as read, write_transaction(target.engine) as write:
        for table in reversed(tables):
            write.execute(delete(table))
        for table in tables:
            rows = [dict(r._mapping) for r in read.execute(select(table))]
            if rows:
                write.execute(insert(table), rows)
        if write.dialect.name == "postgresql":  # serial ids carry on after the copied ones
            for table in tables:
                if "id" in table.c and table.c.id.autoincrement is True:
                    write.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"))


@pytest.fixture
def replicated(tmp_path: Path, db_url: str, other_db_url: str) -> Iterator[Replicated]:
    clock = FixedClock(NOW)
    root = write_site(tmp_path / "site", db_url, ["core"], overlays=EXPORT_OVERLAY)
    with open_migrated(root, clock=clock) as primary:
        _populate(primary)
        replica = open_migrated(write_site(tmp_path / "replica", other_db_url, ["core"],
                                           overlays=EXPORT_OVERLAY), clock=clock)
        _copy_rows(primary, replica)
    # The difference that tells the two apart: rows the primary does not have (yet).
    wang = replica.users.actor("wang")
    only = replica.records.create(wang, "customer", {"name": "Replica Only Ltd"})
    replica.records.create(wang, "opportunity", {"name": "replica deal", "customer": only["id"],
                                                 "amount": "777"})
    _set_database(root, replica_url=other_db_url)
    site = Site.open(root, clock=clock)
    yield Replicated(site, replica, root)
    site.close()
    replica.close()


def _names(rows: list[dict]) -> set[str]:
    return {r["name"] for r in rows}


def test_dashboards_and_reports_read_the_replica(replicated: Replicated):
    site = replicated.site
    admin = site.users.actor("admin")
    assert site.report_engine is not site.engine
    dashboards = DashboardService(site)
    funnel = next(w.figure for w in dashboards.figures(admin, dashboards.get(admin, "sales"))
                  if w.widget.kind == "funnel")
    assert funnel is not None and sum(funnel.series[0].values) == 5  # 4 copied + 1 replica-only
    loader = ReportLoader(site.registry, site.config.overlay_dir)
    pipeline = loader.function("core.pipeline")(ReportRequest(site, admin, NOW))
    assert sum(pipeline.series[0].values) == Decimal("40777")
    new_customers = loader.function("core.new_customers")(
        ReportRequest(site, admin, NOW, {"period": "month", "periods": 1}))
    assert sum(new_customers.series[0].values) == 3
    # The same actor's record pages read the primary: no replica-only rows there.
    listed = site.records.list(admin, "opportunity", limit=100).rows
    assert len(listed) == 4 and "replica deal" not in _names(listed)
    assert "Replica Only Ltd" not in _names(site.records.list(admin, "customer").rows)


def test_the_dashboard_page_draws_replica_figures(replicated: Replicated):
    client = create_app(replicated.site, testing=True).test_client()
    assert login(client, "admin", PASSWORD).status_code == 302
    page = client.get("/dashboards/sales_analysis")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "40,777" in html  # the open value, including the replica's deal
    listing = client.get("/r/opportunity").get_data(as_text=True)
    assert "wang racks" in listing and "replica deal" not in listing


def test_writes_go_to_the_primary_and_never_to_the_replica(replicated: Replicated):
    site, replica = replicated.site, replicated.replica
    wang = site.users.actor("wang")
    customer = site.records.list(wang, "customer").rows[0]
    made = site.records.create(wang, "opportunity", {"name": "fresh", "customer": customer["id"],
                                                     "amount": "5"})
    assert site.records.get(wang, "opportunity", made["id"])["name"] == "fresh"
    copy = replica.records.list(replica.users.actor("wang"), "opportunity", limit=100).rows
    assert "fresh" not in _names(copy)  # until replication brings it
    # The replica's record service refuses before it connects...
    with pytest.raises(CrmError, match="read-only replica"):
        site.report_records.create(wang, "opportunity", {"name": "misrouted",
                                                         "customer": customer["id"]})
    # ...and the replica's sessions refuse a write that bypasses the services.
    table = site.schema.table("opportunity")
    with site.report_engine.connect() as conn, pytest.raises(Exception,
                                                             match="read-only|readonly"):
        conn.execute(table.update().values(name="changed"))
    assert "changed" not in _names(
        replica.records.list(replica.users.actor("admin"), "opportunity", limit=100).rows)


def test_a_salespersons_export_from_the_replica_holds_only_their_rows(replicated: Replicated):
    site = replicated.site
    header, rows = Exporter.for_site(site).rows(site.users.actor("wang"), "opportunity",
                                                keys=True)
    names = sorted(row[header.index("name")] for row in rows)
    assert names == ["replica deal", "wang racks", "wang servers"]
    # The CLI's export reads there too, under the same rights.
    result = CliRunner().invoke(main, ["--site", str(replicated.root), "export", "opportunity",
                                       "--keys", "--as", "li"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = list(csv.reader(io.StringIO(result.output.lstrip("\ufeff"))))
    assert sorted(r[lines[0].index("name")] for r in lines[1:]) == ["li racks", "li servers"]
    # And the API's.
    token, _ = site.users.tokens.create("wang", "tests")
    client = create_app(site, testing=True).test_client()
    answer = client.get("/api/v1/opportunity/export?keys=1",
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert "replica deal" in answer.get_data(as_text=True)
    assert "li racks" not in answer.get_data(as_text=True)


def test_replica_reads_ignore_the_definitions_guard(replicated: Replicated):
    """The guard is for writes: a replica a migration has not reached yet still serves reads."""
    site, replica = replicated.site, replicated.replica
    assert DEFINITIONS_OPTION not in site.report_engine.get_execution_options()
    definitions = site.schema.system("crm_definitions")
    with write_transaction(replica.engine) as conn:
        latest = conn.execute(select(definitions).order_by(definitions.c.id.desc())).first()
        row = dict(latest._mapping)
        row.update(id=row["id"] + 1, definitions_hash="from-a-newer-migration")
        conn.execute(insert(definitions), [row])
    header, rows = Exporter.for_site(site).rows(site.users.actor("admin"), "opportunity")
    assert len(list(rows)) == 5
    site.records.create(site.users.actor("admin"), "customer", {"name": "Still writable"})


def test_without_a_replica_everything_reads_the_primary(tmp_path: Path, db_url: str):
    root = write_site(tmp_path / "site", db_url, ["core"])
    with open_migrated(root) as site:
        assert site.config.replica_url is None
        assert site.report_engine is site.engine and site.report_records is site.records
        assert site.pipeline.records is site.records
        assert Exporter.for_site(site).records is site.records


def test_a_bad_replica_url_names_crm_yaml_and_the_key(tmp_path: Path, db_url: str,
                                                      monkeypatch: pytest.MonkeyPatch):
    root = write_site(tmp_path / "site", db_url, ["core"])
    _set_database(root, replica_url="not a url at all")
    with pytest.raises(DefinitionError) as bad:
        Site.open(root)
    assert "crm.yaml" in bad.value.message and "database.replica_url" in bad.value.message
    _set_database(root, replica_url="mysql://reader:s3cret-pw@replica/crm")
    with pytest.raises(DefinitionError, match="replica_url") as bad:
        Site.open(root)
    assert "s3cret-pw" not in bad.value.message  # the URL's password is never repeated
    # The environment wins over crm.yaml, and is checked the same way.
    other = "sqlite:///x.db" if db_url.startswith("postgresql") else "postgresql://r:pw@h/crm"
    monkeypatch.setenv("CRM_DATABASE_REPLICA_URL", other)
    with pytest.raises(DefinitionError, match="CRM_DATABASE_REPLICA_URL") as bad:
        Site.open(root)
    assert "same kind of database" in bad.value.message and ":pw@" not in bad.value.message


def test_the_environment_names_the_replica(tmp_path: Path, db_url: str, other_db_url: str,
                                           monkeypatch: pytest.MonkeyPatch):
    root = write_site(tmp_path / "site", db_url, ["core"])
    open_migrated(root).close()
    open_migrated(write_site(tmp_path / "replica", other_db_url, ["core"])).close()
    monkeypatch.setenv("CRM_DATABASE_REPLICA_URL", other_db_url)
    site = Site.open(root)
    try:
        assert site.config.replica_url == other_db_url
        assert site.report_engine is not site.engine
        with site.report_engine.connect() as conn:
            conn.execute(select(site.schema.table("customer").c.id)).all()
        assert site.report_engine.pool.checkedin() == 1
    finally:
        site.close()
    assert site.report_engine.pool.checkedin() == 0  # closed with the site


def test_replica_sessions_are_read_only_with_the_same_pool_and_timeout(tmp_path: Path,
                                                                       pg_url: str):
    """PostgreSQL: every replica session starts read-only, pooled and bounded like the primary."""
    from tests.conftest import fresh_pg_schema

    with fresh_pg_schema() as replica_url:
        root = write_site(tmp_path / "site", pg_url, ["core"])
        open_migrated(root).close()
        open_migrated(write_site(tmp_path / "replica", replica_url, ["core"])).close()
        _set_database(root, replica_url=replica_url, pool_size=3, statement_timeout_ms=1500)
        with Site.open(root) as site:
            assert site.report_engine.pool.size() == 3
            with site.report_engine.connect() as conn:
                assert conn.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "1500ms"
                replica_schema = conn.execute(text("SELECT current_schema()")).scalar()
            with site.engine.connect() as conn:
                assert conn.execute(text("SHOW default_transaction_read_only")).scalar() == "off"
                primary_schema = conn.execute(text("SELECT current_schema()")).scalar()
            # the replica URL's own options (its search_path) are kept beside the settings
            assert replica_schema.startswith("t_") and replica_schema != primary_schema


def test_reminders_are_decided_on_the_primary(replicated: Replicated):
    """The worker's SLA and idle scans must not see a lagging replica's stages."""
    from engine.notifications.worker import NotificationWorker

    site = replicated.site
    assert site.pipeline.records is site.report_records  # dashboards: the replica
    worker = NotificationWorker(site)
    assert worker.scheduler.pipeline.records is site.records
    assert worker.scheduler.pipeline.engine is site.engine


def test_a_replica_that_does_not_answer_leaves_the_dashboard_standing(
        tmp_path: Path, db_url: str, other_db_url: str):
    """A replica without tables (or down) fails its widgets, not the page or record pages."""
    root = write_site(tmp_path / "site", db_url, ["core"])
    with open_migrated(root, clock=FixedClock(NOW)) as primary:
        _populate(primary)
    _set_database(root, replica_url=other_db_url)  # never migrated: every read fails
    with Site.open(root, clock=FixedClock(NOW)) as site:
        client = create_app(site, testing=True).test_client()
        assert login(client, "admin", PASSWORD).status_code == 302
        page = client.get("/")
        assert page.status_code == 200
        assert "These figures cannot be read right now" in page.get_data(as_text=True)
        assert "wang racks" in client.get("/r/opportunity").get_data(as_text=True)


def test_the_replica_environment_variable_is_refused_for_several_sites(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch):
    """One replica for every site of an installation would show one client another's data."""
    from engine.web.sites import load_installation

    write_site(tmp_path / "acme", db_url, ["core"])
    installation = tmp_path / "crm-sites.yaml"
    installation.write_text("sites:\n  - {path: acme, hosts: [acme.example.com]}\n",
                            encoding="utf-8")
    assert [s.hosts for s in load_installation(installation)] == [("acme.example.com",)]
    monkeypatch.setenv("CRM_DATABASE_REPLICA_URL", db_url)
    with pytest.raises(DefinitionError) as refused:
        load_installation(installation)
    assert "CRM_DATABASE_REPLICA_URL is set in the environment" in refused.value.message
    assert "database.replica_url" in refused.value.message


def test_each_site_of_an_installation_reads_its_own_replica(replicated: Replicated,
                                                            tmp_path: Path):
    """Served by host name beside a site without a replica, each reads its own database."""
    from werkzeug.test import Client

    from engine.web.sites import SiteDispatcher, load_installation

    beta = write_site(tmp_path / "beta", f"sqlite:///{tmp_path / 'beta.db'}", ["core"])
    with open_migrated(beta) as opened:
        opened.users.create("bob", password=PASSWORD, roles=["admin"], is_admin=True)
        bob_token, _ = opened.users.tokens.create("bob", "tests")
    wang_token, _ = replicated.site.users.tokens.create("wang", "tests")
    installation = tmp_path / "crm-sites.yaml"
    installation.write_text(f"sites:\n  - {{path: {replicated.root}, hosts: [acme.example.com]}}\n"
                            f"  - {{path: {beta}, hosts: [beta.example.com]}}\n",
                            encoding="utf-8")
    dispatcher = SiteDispatcher(load_installation(installation))
    try:
        client = Client(dispatcher)
        acme = client.get("/api/v1/opportunity/export?keys=1", headers={
            "Host": "acme.example.com", "Authorization": f"Bearer {wang_token}"})
        assert acme.status_code == 200 and "replica deal" in acme.get_data(as_text=True)
        other = client.get("/api/v1/opportunity/export?keys=1", headers={
            "Host": "beta.example.com", "Authorization": f"Bearer {bob_token}"})
        assert other.status_code == 200
        assert other.get_data(as_text=True).lstrip("\ufeff").splitlines()[1:] == []
    finally:
        dispatcher.close()


def test_readyz_reports_the_replica_without_depending_on_it(replicated: Replicated,
                                                             tmp_path: Path):
    answer = create_app(replicated.site, testing=True).test_client().get("/readyz")
    assert answer.status_code == 200
    assert answer.get_json()["checks"]["replica"] == "ok"

    gone = (tmp_path / "no such folder" / "replica.db").as_posix()
    bad = ("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
           if replicated.site.engine.dialect.name == "postgresql" else f"sqlite:///{gone}")
    _set_database(replicated.root, replica_url=bad)
    with Site.open(replicated.root) as site:
        answer = create_app(site, testing=True).test_client().get("/readyz")
    body = answer.get_json()
    assert answer.status_code == 200 and body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["replica"].startswith("unreachable: ")
    assert "127.0.0.1" not in body["checks"]["replica"] and gone not in str(body)
