"""Several sites on one installation: each host sees its own site and nothing of the others."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug.test import Client

from engine.cli import main
from engine.context import Actor
from engine.errors import DefinitionError
from engine.web.sites import SiteDispatcher, load_installation
from tests.support import open_migrated, write_pack, write_site

SYSTEM = Actor.system()


@pytest.fixture
def installation(tmp_path: Path, db_url: str, other_db_url: str) -> Path:
    write_pack(tmp_path / "packs", "notes", {"entities/note.yaml": """
        entity: note
        label: {en: Note, zh: 笔记}
        fields:
          title: {type: string, required: true}
        """})
    write_pack(tmp_path / "packs", "parts", {"entities/part.yaml": """
        entity: part
        label: {en: Part, zh: 零件}
        fields:
          code: {type: string, required: true}
        """})
    for name, url, pack, login in (("acme", db_url, "notes", "alice"),
                                   ("beta", other_db_url, "parts", "bob")):
        site = open_migrated(write_site(tmp_path / name, url, [pack], pack_paths=["../packs"]))
        site.users.create(login, password="password-1", roles=[], is_admin=True)
        if pack == "notes":
            site.records.create(SYSTEM, "note", {"title": "acme's secret"})
        site.close()
    path = tmp_path / "crm-sites.yaml"
    path.write_text("sites:\n"
                    "  - {path: acme, hosts: [acme.example.com, crm.acme.cn]}\n"
                    "  - {path: beta, hosts: [beta.example.com]}\n", encoding="utf-8")
    return path


def _client(dispatcher: SiteDispatcher) -> Client:
    return Client(dispatcher)


def _login(client: Client, host: str, login: str):
    page = client.get("/login", headers={"Host": host})
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    return client.post("/login", headers={"Host": host},
                       data={"login": login, "password": "password-1", "csrf_token": token})


def test_each_host_reaches_its_own_site_only(installation: Path):
    dispatcher = SiteDispatcher(load_installation(installation))
    try:
        client = _client(dispatcher)
        assert _login(client, "acme.example.com", "alice").status_code == 302
        page = client.get("/r/note", headers={"Host": "acme.example.com"})
        assert page.status_code == 200
        assert "acme&#39;s secret" in page.get_data(as_text=True)
        # the same browser, the other host: alice's session means nothing there
        other = client.get("/r/note", headers={"Host": "beta.example.com"})
        assert other.status_code in (302, 404)
        assert "secret" not in other.get_data(as_text=True)
        # bob cannot log in on acme, alice cannot on beta
        assert _login(_client(dispatcher), "acme.example.com", "bob").status_code == 401
        assert _login(_client(dispatcher), "beta.example.com", "alice").status_code == 401
        # beta's definitions do not know acme's entity, and its API shows no notes
        bob = _client(dispatcher)
        assert _login(bob, "beta.example.com", "bob").status_code == 302
        assert bob.get("/r/note", headers={"Host": "beta.example.com"}).status_code == 404
        api = bob.get("/api/v1/note", headers={"Host": "beta.example.com"})
        assert api.status_code == 404
        # the second host name of acme is the same site; unknown hosts get nothing
        assert client.get("/healthz", headers={"Host": "crm.acme.cn:8443"}).status_code == 200
        unknown = client.get("/login", headers={"Host": "gamma.example.com"})
        assert unknown.status_code == 404
    finally:
        dispatcher.close()


def test_a_broken_site_leaves_the_others_serving(installation: Path, tmp_path: Path):
    dispatcher = SiteDispatcher(load_installation(installation))
    try:
        (tmp_path / "beta" / "crm.yaml").write_text("name: beta\npacks: [nosuchpack]\n",
                                                    encoding="utf-8")
        client = _client(dispatcher)
        assert client.get("/healthz", headers={"Host": "beta.example.com"}).status_code == 503
        assert client.get("/healthz", headers={"Host": "acme.example.com"}).status_code == 200
    finally:
        dispatcher.close()


def test_installation_mistakes_name_their_line(tmp_path: Path, installation: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n"
                   "  - {path: acme, hosts: [a.example.com]}\n"
                   "  - {path: nowhere, hosts: [a.example.com]}\n", encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_installation(bad)
    text = str(caught.value)
    assert "bad.yaml:3" in text and "holds no crm.yaml" in text
    assert "already served by site 1" in text


def test_crm_sites_lists_hosts_and_state(installation: Path):
    result = CliRunner().invoke(main, ["sites", "--file", str(installation)])
    assert result.exit_code == 0, result.output
    assert "acme.example.com, crm.acme.cn" in result.output
    assert result.output.count("ready") == 2


@pytest.mark.parametrize("variable", ["CRM_SECRET_KEY", "CRM_DATABASE_URL"])
def test_one_secret_for_every_site_is_refused(installation: Path, variable: str, monkeypatch):
    """Set for the web unit, it would reach every site: one database, or one session key."""
    monkeypatch.setenv(variable, "shared-by-mistake")
    with pytest.raises(DefinitionError) as caught:
        load_installation(installation)
    assert f"{variable} is set in the environment" in str(caught.value)
    assert "crm-sites.yaml:2" in str(caught.value)
    result = CliRunner().invoke(main, ["sites", "--file", str(installation)])
    assert result.exit_code == 2 and variable in result.output
