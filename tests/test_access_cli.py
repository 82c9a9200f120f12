"""``crm user``, ``team``, ``token``, ``transfer`` and ``role`` end to end through click."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from engine.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def crm(runner, site, *args, ok=True, input=None):
    result = runner.invoke(main, ["--site", str(site), *map(str, args)], input=input,
                           catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def site(tmp_path, runner, db_url):
    folder = tmp_path / "acme"
    result = runner.invoke(main, ["init", str(folder), "--database-url", db_url,
                                  "--ask-password"], input="s3cret-pass\ns3cret-pass\n",
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "s3cret-pass" not in result.output and "Password:   " not in result.output
    return folder


def test_init_generates_and_prints_the_password_once(tmp_path, runner, sqlite_url):
    result = runner.invoke(main, ["init", str(tmp_path / "s"), "--database-url", sqlite_url],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count("(shown once") == 1
    password = re.search(r"Password:\s+(\S+)", result.output).group(1)
    from engine.site import Site
    with Site.open(tmp_path / "s") as site:
        assert site.users.authenticate("admin", password)["is_admin"]
        assert site.users.get("admin")["roles"] == ["admin"]


def test_users_roles_and_deactivation(runner, site):
    out = crm(runner, site, "user", "add", "alice", "--role", "sales", "--name", "Alice Wang",
              "--language", "zh").output
    assert "Password:" in out and "shown once" in out
    crm(runner, site, "user", "add", "bob", "--role", "sales", "--password", "bob-password")
    bad = crm(runner, site, "user", "add", "carol", "--role", "seles", ok=False)
    assert bad.exit_code == 1 and "did you mean 'sales'" in bad.output
    out = crm(runner, site, "user", "set-role", "bob", "sales", "manager").output
    assert "manager, sales" in out
    crm(runner, site, "user", "remove-role", "bob", "manager")
    listed = json.loads(crm(runner, site, "user", "list", "--json").output)
    assert {u["login"]: u["roles"] for u in listed} == {"admin": ["admin"], "alice": ["sales"],
                                                       "bob": ["sales"]}
    assert all("password_hash" not in u for u in listed)
    crm(runner, site, "record", "create", "customer", "name=Alice Co", "--as", "alice")
    crm(runner, site, "record", "create", "customer", "name=Bob Co", "--as", "bob")
    alice_sees = json.loads(crm(runner, site, "record", "list", "customer", "--as", "alice",
                                "--json").output)
    assert [r["name"] for r in alice_sees["rows"]] == ["Alice Co"] and alice_sees["total"] == 1
    refused = crm(runner, site, "record", "delete", "customer", "1", "--as", "alice", ok=False)
    assert refused.exit_code == 1 and "may not delete" in refused.output
    out = crm(runner, site, "user", "deactivate", "alice").output
    assert "Deactivated alice" in out
    assert "deactivated" in crm(runner, site, "user", "list").output
    assert "Alice Co" in crm(runner, site, "record", "list", "customer").output  # kept
    out = crm(runner, site, "user", "reset-password", "bob").output
    assert "Password:" in out
    shown = crm(runner, site, "user", "show", "bob").output
    assert "roles" in shown and "sales" in shown


def test_teams_tokens_and_roles(runner, site):
    for login in ("lead", "rep"):
        crm(runner, site, "user", "add", login, "--role", "manager", "--password",
            "long-password")
    crm(runner, site, "team", "add", "sales", "--label", "Sales", "--manager", "lead")
    crm(runner, site, "team", "add", "east", "--parent", "sales")
    out = crm(runner, site, "team", "add-member", "east", "rep").output
    assert "east" in out and "rep" in out
    listed = crm(runner, site, "team", "list").output
    assert "east" in listed and "under sales" in listed and "manager lead" in listed
    loop = crm(runner, site, "team", "set-parent", "sales", "east", ok=False)
    assert loop.exit_code == 1 and "cannot be under itself" in loop.output
    assert "sales" in crm(runner, site, "user", "show", "lead").output

    out = crm(runner, site, "token", "create", "rep", "--name", "ERP", "--expires-in-days",
              "7").output
    token = re.search(r"Token: (crm_\S+)", out).group(1)
    listed = crm(runner, site, "token", "list").output
    assert token not in listed and token[:12] in listed and "active" in listed
    crm(runner, site, "token", "revoke", "1")
    assert "revoked" in crm(runner, site, "token", "list", "--user", "rep").output

    roles = crm(runner, site, "role", "list").output
    assert "sales" in roles and "销售员" in roles and "(administrator)" in roles
    shown = crm(runner, site, "role", "show", "sales").output
    assert re.search(r"customer\s+read create update transition\s+own", shown)
    assert "owner readonly" in shown


def test_transfer_preview_run_and_list(runner, site):
    for login in ("alice", "bob", "carol"):
        crm(runner, site, "user", "add", login, "--role", "sales", "--password", "long-password")
    for name in ("One", "Two"):
        crm(runner, site, "record", "create", "customer", f"name={name}", "--as", "alice")
    crm(runner, site, "record", "create", "contact", "name=Wang", "customer=1", "--as", "alice")
    preview = crm(runner, site, "transfer", "preview", "alice", "bob", "--to", "carol").output
    assert "bob: 1 customer" in preview and "customer 1 One → bob" in preview
    assert "contact 1 Wang → bob  (with customer 1)" in preview
    as_json = json.loads(crm(runner, site, "transfer", "preview", "alice", "bob",
                             "--json").output)
    assert as_json["counts"] == {"customer": 2, "contact": 1}
    refused = crm(runner, site, "transfer", "preview", "alice", "bob", "--as", "carol", ok=False)
    assert "You may not transfer customers" in refused.output
    aborted = crm(runner, site, "transfer", "run", "alice", "bob", input="n\n", ok=False)
    assert aborted.exit_code == 1
    assert crm(runner, site, "transfer", "list").output == ""
    out = crm(runner, site, "transfer", "run", "alice", "bob", "--deactivate", "--yes").output
    assert "moved 2 customer, 1 contact from alice to bob" in out and "Deactivated alice" in out
    listed = crm(runner, site, "transfer", "list").output
    assert "alice → bob: 2 customer, 1 contact" in listed
    bob_sees = json.loads(crm(runner, site, "record", "list", "customer", "--as", "bob",
                              "--json").output)
    assert bob_sees["total"] == 2


def test_unlock_and_end_sessions(runner, site):
    """An administrator lifts a login's slow-down, or an address's, and logs a user out."""
    import datetime as dt

    from engine.context import FixedClock
    from engine.errors import Throttled
    from engine.site import Site

    clock = FixedClock(dt.datetime.now(dt.UTC))  # the waits do not run out while hashing

    def slowed(opened, source: str) -> bool:
        try:
            return opened.users.authenticate("bob", "bob-password", source=source) is None
        except Throttled:
            return True

    crm(runner, site, "user", "add", "bob", "--password", "bob-password")
    with Site.open(site, clock=clock) as opened:
        for source in ("10.0.0.1", "10.0.0.2"):
            for _ in range(4):
                assert opened.users.authenticate("bob", "guess-guess", source=source) is None
        for n in range(31):
            opened.users.authenticate(f"ghost{n}", "guess-guess", source="203.0.113.9")
        epoch = opened.users.get("bob")["session_epoch"]
        assert slowed(opened, "10.0.0.1") and slowed(opened, "10.0.0.2")
        assert slowed(opened, "203.0.113.9")  # new there, and the address sprayed
    out = crm(runner, site, "user", "unlock", "bob").output
    assert "from any address" in out
    out = crm(runner, site, "user", "unlock", "--address", "203.0.113.9").output
    assert "203.0.113.9" in out
    with Site.open(site, clock=clock) as opened:
        for source in ("10.0.0.1", "10.0.0.2", "203.0.113.9"):
            assert opened.users.authenticate("bob", "bob-password", source=source) is not None
    assert crm(runner, site, "user", "unlock", "nobody", ok=False).exit_code == 1
    assert crm(runner, site, "user", "unlock", ok=False).exit_code == 2
    crm(runner, site, "user", "end-sessions", "bob")
    with Site.open(site) as opened:
        assert opened.users.get("bob")["session_epoch"] == epoch + 1
