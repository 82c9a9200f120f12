"""Users, logins, throttling, API tokens and roles on the database under test."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from engine.context import Actor, FixedClock
from engine.errors import NotFound, PermissionDenied, Throttled, ValidationFailed
from engine.services.users import UserService
from engine.storage.database import create_db_engine
from tests.support import open_migrated, write_site

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def site(tmp_path, db_url):
    root = write_site(tmp_path / "site", db_url, ["core"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    yield opened
    opened.close()


def test_passwords_are_hashed_with_argon2(site):
    site.users.create("alice", password="correct-horse", roles=["sales"])
    with site.engine.connect() as conn:
        stored = conn.execute(select(site.schema.system("crm_user").c.password_hash)).scalar()
    assert stored.startswith("$argon2id$") and "correct-horse" not in stored
    assert site.users.authenticate("alice", "correct-horse")["login"] == "alice"
    assert site.users.authenticate("alice", "wrong-horse") is None
    assert site.users.authenticate("nobody", "whatever1") is None
    with pytest.raises(ValidationFailed):
        site.users.create("bob", password="short")


def test_throttling_is_shared_by_two_processes(site, db_url):
    """Two UserService instances, each with its own engine: one counter in the database."""
    site.users.create("alice", password="correct-horse")
    clock = site.clock
    other_engine = create_db_engine(db_url)
    other = UserService(site.schema, other_engine, clock)
    try:
        services = [site.users, other]
        for attempt in range(5):
            assert services[attempt % 2].authenticate("alice", "wrong", source="10.0.0.1") is None
        for service in services:
            with pytest.raises(Throttled) as caught:
                service.authenticate("alice", "correct-horse")  # even the right one
            assert caught.value.retry_after == 15 * 60
            assert caught.value.status == 429
        clock.advance(minutes=16)
        assert other.authenticate("alice", "correct-horse")["login"] == "alice"
        # A success starts the count again.
        for _ in range(4):
            assert site.users.authenticate("alice", "wrong") is None
        assert site.users.authenticate("alice", "correct-horse") is not None
        assert site.users.authenticate("alice", "wrong") is None
        assert site.users.authenticate("alice", "correct-horse") is not None
    finally:
        other_engine.dispose()
    log = site.schema.system("crm_login_attempt")
    with site.engine.connect() as conn:
        outcomes = list(conn.execute(select(log.c.outcome).order_by(log.c.id)).scalars())
    assert outcomes[:7] == ["failure"] * 5 + ["throttled"] * 2


def test_failures_outside_the_window_are_forgotten(site):
    site.users.create("alice", password="correct-horse")
    for _ in range(4):
        site.users.authenticate("alice", "wrong")
    site.clock.advance(minutes=20)
    for _ in range(4):
        site.users.authenticate("alice", "wrong")
    assert site.users.authenticate("alice", "correct-horse") is not None


def test_unknown_logins_are_throttled_too_and_reset_password_unlocks(site):
    for _ in range(5):
        assert site.users.authenticate("ghost", "guess-guess") is None
    with pytest.raises(Throttled):
        site.users.authenticate("ghost", "guess-guess")
    site.users.create("alice", password="correct-horse")
    for _ in range(5):
        site.users.authenticate("alice", "wrong")
    new = site.users.reset_password("alice")
    assert site.users.authenticate("alice", new) is not None


def test_a_source_address_trying_many_logins_is_throttled(site):
    for login in ("a", "b", "c", "d", "e"):
        site.users.authenticate(login, "guess-guess", source="203.0.113.9")
    with pytest.raises(Throttled):
        site.users.authenticate("f", "guess-guess", source="203.0.113.9")
    assert site.users.authenticate("f", "guess-guess", source="198.51.100.1") is None


def test_logins_that_succeed_never_lock_their_address(site):
    """An office behind one address, or every user behind the site's reverse proxy."""
    for login in ("alice", "bob", "carol"):
        site.users.create(login, password="correct-horse")
    for _ in range(4):
        for login in ("alice", "bob", "carol"):
            assert site.users.authenticate(login, "correct-horse", source="10.0.0.1") is not None
    # its failures still count: four more and the address is locked, even for a right password
    for _ in range(4):
        assert site.users.authenticate("mallory", "guess-guess", source="10.0.0.1") is None
    assert site.users.authenticate("alice", "correct-horse", source="10.0.0.1") is not None
    assert site.users.authenticate("mallory", "guess-guess", source="10.0.0.1") is None
    with pytest.raises(Throttled):
        site.users.authenticate("bob", "correct-horse", source="10.0.0.1")


def test_deactivated_user_keeps_records_and_history(site):
    site.users.create("alice", password="correct-horse", roles=["sales"])
    alice = site.users.actor("alice")
    customer = site.records.create(alice, "customer", {"name": "Keep me"})
    site.users.deactivate("alice")
    assert site.users.authenticate("alice", "correct-horse") is None
    with pytest.raises(NotFound):
        site.users.actor("alice")
    admin = Actor.system()
    kept = site.records.get(admin, "customer", customer["id"])
    assert kept["owner"] == alice.user_id
    assert site.records.history(admin, "customer", customer["id"])[0]["actor_id"] == alice.user_id
    site.users.activate("alice")
    assert site.users.actor("alice").user_id == alice.user_id


def test_roles_must_be_declared_and_admin_roles_make_admins(site):
    with pytest.raises(ValidationFailed) as caught:
        site.users.create("alice", password="correct-horse", roles=["seles"])
    assert "did you mean 'sales'" in caught.value.errors["roles"][0]
    site.users.create("root", password="correct-horse", roles=["admin"])
    assert site.users.actor("root").is_admin
    site.users.create("bob", password="correct-horse", roles=["sales"])
    assert not site.users.actor("bob").is_admin
    assert site.users.set_roles("bob", ["sales", "manager"])["roles"] == ["manager", "sales"]


def test_tokens_are_hashed_expire_and_can_be_revoked(site):
    site.users.create("erp", password="correct-horse", roles=["sales"])
    token, row = site.users.tokens.create("erp", "ERP sync", expires_in=dt.timedelta(days=30))
    assert token.startswith("crm_") and row["status"] == "active"
    table = site.schema.system("crm_api_token")
    with site.engine.connect() as conn:
        stored = conn.execute(select(table)).mappings().one()
    assert token not in str(dict(stored))
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    actor = site.users.actor_for_token(token)
    assert actor.login == "erp" and actor.roles == {"sales"}
    assert site.users.tokens.get(row["id"])["last_used_at"] == NOW
    for bad in ("crm_nope", "", token + "x"):
        with pytest.raises(PermissionDenied):
            site.users.actor_for_token(bad)
    site.clock.advance(days=31)
    with pytest.raises(PermissionDenied) as expired:
        site.users.actor_for_token(token)
    assert site.users.tokens.get(row["id"])["status"] == "expired"
    second, row2 = site.users.tokens.create("erp", "Reports")
    assert site.users.actor_for_token(second).login == "erp"
    site.users.tokens.revoke(row2["id"])
    with pytest.raises(PermissionDenied) as revoked:
        site.users.actor_for_token(second)
    assert revoked.value.message == expired.value.message  # nothing to learn by trying
    third, _ = site.users.tokens.create("erp", "Again")
    site.users.deactivate("erp")
    with pytest.raises(PermissionDenied):
        site.users.actor_for_token(third)
    assert [t["status"] for t in site.users.tokens.list("erp")] == ["expired", "revoked",
                                                                     "active"]


def test_teams_nest_and_refuse_loops(site):
    users = site.users
    users.create("boss", password="correct-horse", roles=["manager"])
    users.create("rep", password="correct-horse", roles=["sales"])
    users.teams.create("sales", label="Sales", manager="boss")
    users.teams.create("east", parent="sales")
    users.teams.create("east_a", parent="east")
    users.teams.add_member("east_a", "rep")
    teams = {t["name"]: t["id"] for t in users.teams.list()}
    assert users.actor("boss").team_ids == set(teams.values())
    assert users.actor("rep").team_ids == {teams["east_a"]}
    with pytest.raises(ValidationFailed):
        users.teams.set_parent("sales", "east_a")
    users.teams.remove("east")
    assert users.teams.get("east_a")["parent"] == "sales"
    with pytest.raises(ValidationFailed):
        users.teams.create("sales")
    with pytest.raises(NotFound):
        users.teams.add_member("sales", "nobody")
