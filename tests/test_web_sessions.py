"""Ending sessions: a copied session cookie stops working everywhere once its sessions end.

Two apps on two opened sites share the database, as two worker processes do
(the gunicorn test in test_serve_workers.py does the same with real processes).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text

from engine.context import FixedClock
from engine.site import Site
from engine.storage.migration import apply_migration, is_up_to_date
from engine.web import create_app
from tests.support import open_migrated, write_site
from tests.web_support import login, post

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse"
COOKIE = "visioncrm_session"


@pytest.fixture
def site(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    opened.users.create("alice", password=PASSWORD, roles=["sales"])
    yield opened
    opened.close()


@pytest.fixture
def other(site):
    """A second process: the same site opened again, with its own engine."""
    opened = Site.open(site.config.root, clock=site.clock)
    yield opened
    opened.close()


def _thief(app, victim):
    """A client on ``app`` holding a copy of ``victim``'s session cookie."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, victim.get_cookie(COOKIE).value)
    return thief


def _logged_in(client) -> bool:
    page = client.get("/")
    assert page.status_code in (200, 302)
    api = client.get("/api/v1/meta")
    assert api.status_code == (200 if page.status_code == 200 else 401)
    return page.status_code == 200


def _log_out_everywhere(site, client):
    assert post(client, "/profile", {"action": "sessions"}).status_code == 302


def _change_password(site, client):
    answer = post(client, "/profile", {"action": "password", "current_password": PASSWORD,
                                       "new_password": "battery-staple"})
    assert answer.status_code == 302


def _admin_reset(site, client):
    site.users.reset_password("alice")  # crm user reset-password, another process


def _deactivate_and_activate(site, client):
    site.users.deactivate("alice")
    site.users.activate("alice")  # the old sessions do not come back with the user


def _log_out(site, client):
    assert post(client, "/logout").status_code == 302


def _end_sessions(site, client):
    site.users.end_sessions("alice")  # crm user end-sessions alice


@pytest.mark.parametrize("end, user_stays", [
    (_log_out_everywhere, True), (_change_password, True), (_admin_reset, False),
    (_deactivate_and_activate, False), (_log_out, False), (_end_sessions, False),
])
def test_a_copied_cookie_stops_working_in_every_process(site, other, end, user_stays):
    first, second = create_app(site, testing=True), create_app(other, testing=True)
    alice = first.test_client()
    assert login(alice, "alice", PASSWORD).status_code == 302
    thieves = [_thief(first, alice), _thief(second, alice)]
    assert all(_logged_in(t) for t in thieves)  # the copy works, in both processes
    end(site, alice)
    assert [_logged_in(t) for t in thieves] == [False, False]
    assert _logged_in(alice) is user_stays  # this browser carries on under a new session
    if user_stays:  # and the new session is not the copy's
        assert _logged_in(_thief(second, alice))
        assert not _logged_in(thieves[0])


def test_a_session_without_an_epoch_is_not_accepted(site):
    """A cookie signed before sessions carried the epoch (or forged without it): log in again."""
    client = create_app(site, testing=True).test_client()
    with client.session_transaction() as session:
        session["login"] = "alice"
    assert not _logged_in(client)
    for forged in ("0", None, 0.0, True):
        with client.session_transaction() as session:
            session["login"], session["epoch"] = "alice", forged
        assert not _logged_in(client), forged


def test_an_existing_site_gains_the_session_epoch_without_losing_a_user(site):
    with site.engine.begin() as conn:  # a site made before sessions could be ended
        conn.execute(text("ALTER TABLE crm_user DROP COLUMN session_epoch"))
    assert not is_up_to_date(site.engine, site.registry)
    plan = apply_migration(site.engine, site.registry, site.schema)
    assert plan.describe() == ['Add field "session_epoch" (session_epoch: integer) to crm_user']
    assert is_up_to_date(site.engine, site.registry)
    users = site.schema.system("crm_user")
    with site.engine.connect() as conn:
        assert conn.execute(select(users.c.login, users.c.session_epoch)).all() == [("alice", 0)]
    client = create_app(site, testing=True).test_client()
    assert login(client, "alice", PASSWORD).status_code == 302 and _logged_in(client)


def test_every_way_of_deactivating_ends_the_sessions(site):
    """A transfer's --deactivate and a configuration import deactivate too."""
    from engine.site_config import export_config, import_config

    site.users.create("root", password=PASSWORD, is_admin=True)
    site.users.create("bob", password=PASSWORD, roles=["sales"])
    client = create_app(site, testing=True).test_client()
    assert login(client, "alice", PASSWORD).status_code == 302 and _logged_in(client)
    site.transfers.run(site.users.actor("root"), "alice", ["bob"], deactivate=True)
    site.users.activate("alice")
    assert not _logged_in(client)
    assert login(client, "bob", PASSWORD).status_code == 302 and _logged_in(client)
    data = export_config(site)
    for user in data["users"]:
        user["active"] = user["login"] != "bob"
    import_config(site, data)
    site.users.activate("bob")
    assert not _logged_in(client)
    assert login(client, "bob", PASSWORD).status_code == 302 and _logged_in(client)
