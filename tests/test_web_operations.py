"""Probes and metrics: what a load balancer and Prometheus ask of a running site."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import CrmError
from engine.storage.migration import apply_migration
from engine.web.app import create_app
from tests.support import open_migrated, write_pack, write_site

PACK = {"entities/note.yaml": """
    entity: note
    label: {en: Note, zh: 笔记}
    fields:
      title: {type: string, required: true}
    """}


TOKEN = "scraper-token-0123456789abcdef"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}


def _site(tmp_path: Path, db_url: str, metrics: str = f"{{token: {TOKEN}}}"):
    write_pack(tmp_path / "packs", "notes", PACK)
    root = write_site(tmp_path / "site", db_url, ["notes"], pack_paths=["../packs"])
    with (root / "crm.yaml").open("a", encoding="utf-8") as config:
        config.write(f"metrics: {metrics}\n")
    return open_migrated(root)


def test_probes_answer_without_a_session(tmp_path: Path, db_url: str):
    with _site(tmp_path, db_url) as site:
        client = create_app(site, testing=True).test_client()
        assert client.get("/healthz").get_json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.get_json()["checks"]["database"] == "ok"
        assert ready.get_json()["checks"]["definitions"] == site.registry.definitions_hash[:12]


def test_a_process_behind_the_database_definitions_is_not_ready(tmp_path: Path, db_url: str):
    """After another process migrates, this one (old definitions) leaves the rotation."""
    with _site(tmp_path, db_url) as site:
        client = create_app(site, testing=True).test_client()
        write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": """
            entity: note
            label: {en: Note, zh: 笔记}
            fields:
              title: {type: string, required: true}
              body: {type: text}
            """})
        with open_migrated(tmp_path / "site") as newer:
            apply_migration(newer.engine, newer.registry, newer.schema)
            assert newer.registry.definitions_hash != site.registry.definitions_hash
            newer_hash = newer.registry.definitions_hash
        watch = client.application.extensions["visioncrm_definitions_watch"]
        watch.interval = 3600  # it has not looked yet
        watch.checked = float("inf")
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "the database holds" in ready.get_json()["checks"]["definitions"]
        # it looks (-inf: time.monotonic() is below the interval on a machine up < 1 hour):
        # its files hold the new definitions, so it reloads
        watch.checked = float("-inf")
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.get_json()["checks"]["definitions"] == newer_hash[:12]


def test_metrics_count_requests_by_route(tmp_path: Path, db_url: str):
    with _site(tmp_path, db_url) as site:
        client = create_app(site, testing=True).test_client()
        client.get("/healthz")
        client.get("/healthz")
        client.get("/no-such-page")
        text = client.get("/metrics", headers=SCRAPER).get_data(as_text=True)
        name = site.config.name
        assert ('visioncrm_request_seconds_count{method="GET",route="/healthz",'
                f'site="{name}",status="200"}} 2.0') in text
        assert f'route="(unmatched)",site="{name}",status="404"' in text
        assert "visioncrm_outbox_messages" in text


def test_metrics_need_the_token_or_an_administrators_api_token(tmp_path: Path, db_url: str,
                                                               monkeypatch):
    monkeypatch.delenv("CRM_METRICS_TOKEN", raising=False)
    with _site(tmp_path, db_url) as site:
        site.users.create("boss", password="correct-horse", is_admin=True)
        site.users.create("clerk", password="correct-horse")
        admin_token, _ = site.users.tokens.create("boss", "prometheus")
        clerk_token, _ = site.users.tokens.create("clerk", "mine")
        client = create_app(site, testing=True).test_client()
        client.get("/healthz")
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "},
                        {"Authorization": f"Bearer {clerk_token}"}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
            assert "visioncrm" not in refused.get_data(as_text=True)  # no figure leaks
        for token in (TOKEN, admin_token):
            answer = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200 and "visioncrm_request_seconds" in answer.text
        monkeypatch.setenv("CRM_METRICS_TOKEN", "from-the-environment-0123456789")
        assert client.get("/metrics", headers=SCRAPER).status_code == 401  # the env wins
        assert client.get("/metrics", headers={
            "Authorization": "Bearer from-the-environment-0123456789"}).status_code == 200


def test_metrics_without_any_token_are_closed_unless_declared_open(tmp_path: Path, db_url: str,
                                                                    monkeypatch):
    monkeypatch.delenv("CRM_METRICS_TOKEN", raising=False)
    with _site(tmp_path / "closed", db_url, metrics="{}") as site:
        assert create_app(site, testing=True).test_client().get("/metrics").status_code == 401
    with _site(tmp_path / "open", db_url, metrics="{open: true}") as site:
        answer = create_app(site, testing=True).test_client().get("/metrics")
        assert answer.status_code == 200 and "visioncrm_outbox_messages" in answer.text


def test_two_apps_keep_their_own_figures(tmp_path: Path, db_url: str, other_db_url: str):
    with _site(tmp_path / "a", db_url) as one, _site(tmp_path / "b", other_db_url) as two:
        first = create_app(one, testing=True).test_client()
        second = create_app(two, testing=True).test_client()
        first.get("/healthz")
        text = second.get("/metrics", headers=SCRAPER).get_data(as_text=True)
        assert 'route="/healthz"' not in text


def test_every_answer_carries_a_request_id_that_logs_share(tmp_path: Path, db_url: str):
    import io
    import json
    import logging

    from engine.web.admin.operations import JsonLines, RequestIdFilter

    with _site(tmp_path, db_url) as site:
        app = create_app(site, testing=True)

        @app.get("/log-something")
        def log_something():
            logging.getLogger("engine.test").warning("looked at 笔记")
            return "ok"

        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(JsonLines())
        logger = logging.getLogger("engine.test")
        logger.addHandler(handler)
        try:
            client = app.test_client()
            given = client.get("/log-something", headers={"X-Request-Id": "proxy-id-1234"})
            assert given.headers["X-Request-Id"] == "proxy-id-1234"
            made = client.get("/log-something", headers={"X-Request-Id": "bad id <script>"})
            assert made.headers["X-Request-Id"] != "bad id <script>"
            assert len(made.headers["X-Request-Id"]) == 32
        finally:
            logger.removeHandler(handler)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["request_id"] for line in lines] == ["proxy-id-1234",
                                                          made.headers["X-Request-Id"]]
        assert lines[0]["message"] == "looked at 笔记" and lines[0]["level"] == "WARNING"


def _failed_login_sources(app, site, headers: dict[str, str]) -> list[str | None]:
    """Fail one login through ``app`` with ``headers``; the sources the login history holds."""
    from sqlalchemy import select

    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post("/login", headers=headers,
                         data={"login": "nobody", "password": "wrong-guess", "csrf_token": token},
                         environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert answer.status_code == 401
    log = site.schema.system("crm_login_attempt")
    with site.engine.connect() as conn:
        return list(conn.execute(select(log.c.source).order_by(log.c.id)).scalars())


def test_behind_a_proxy_the_client_address_counts(tmp_path: Path, db_url: str, monkeypatch):
    """nginx forwards every request from 127.0.0.1: login throttling needs the client's address."""
    from flask import request

    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    with _site(tmp_path, db_url) as site:
        # no proxy declared: the header is anyone's to forge, so it is not believed
        assert _failed_login_sources(create_app(site, testing=True), site,
                                     forwarded) == ["127.0.0.1"]
        monkeypatch.setenv("CRM_PROXIES", "1")
        app = create_app(site, testing=True)

        @app.get("/seen-as")
        def seen_as():
            return f"{request.scheme} {request.remote_addr}"

        seen = app.test_client().get("/seen-as", headers=forwarded,
                                     environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert seen.get_data(as_text=True) == "https 203.0.113.9"
        assert _failed_login_sources(app, site, forwarded) == ["127.0.0.1", "203.0.113.9"]
        monkeypatch.setenv("CRM_PROXIES", "nginx")
        with pytest.raises(CrmError, match="number of proxies"):
            create_app(site, testing=True)
