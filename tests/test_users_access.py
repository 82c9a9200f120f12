"""Users, logins, throttling, API tokens and roles on the database under test."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from engine.context import Actor, FixedClock
from engine.errors import NotFound, PermissionDenied, Throttled, ValidationFailed
from engine.services.access.users import UserService
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


def _outcomes(site) -> list[str]:
    log = site.schema.system("crm_login_attempt")
    with site.engine.connect() as conn:
        return list(conn.execute(select(log.c.outcome).order_by(log.c.id)).scalars())


def _throttled(service, login: str, password: str, source: str | None) -> int:
    """The wait a throttled attempt is told (the test fails if it is not throttled)."""
    with pytest.raises(Throttled) as caught:
        service.authenticate(login, password, source=source)
    assert caught.value.status == 429
    return caught.value.retry_after


def _fail(site, login: str, source: str, failures: int) -> list[int]:
    """Make ``failures`` wrong attempts, waiting out each slow-down; the waits told."""
    waits = []
    while failures:
        try:
            assert site.users.authenticate(login, "guess-guess", source=source) is None
            failures -= 1
        except Throttled as exc:
            waits.append(exc.retry_after)
            site.clock.advance(seconds=exc.retry_after)
    return waits


def test_the_slow_down_is_shared_by_two_processes(site, db_url):
    """Two UserService instances, each with its own engine: one counter in the database."""
    site.users.create("alice", password="correct-horse")
    clock = site.clock
    other_engine = create_db_engine(db_url)
    other = UserService(site.schema, other_engine, clock)
    try:
        services = [site.users, other]
        for attempt in range(4):  # three are free, the fourth makes the next one wait
            assert services[attempt % 2].authenticate("alice", "wrong", source="10.0.0.1") is None
        for service in services:  # even the right password, from that address, waits
            assert _throttled(service, "alice", "correct-horse", "10.0.0.1") == 2
        clock.advance(seconds=2)
        assert other.authenticate("alice", "wrong", source="10.0.0.1") is None
        assert _throttled(site.users, "alice", "wrong", "10.0.0.1") == 4  # the wait doubles
        clock.advance(seconds=4)
        assert other.authenticate("alice", "correct-horse", source="10.0.0.1")["login"] == "alice"
        # A success starts the pair again: three free failures.
        for _ in range(3):
            assert site.users.authenticate("alice", "wrong", source="10.0.0.1") is None
        assert site.users.authenticate("alice", "correct-horse", source="10.0.0.1") is not None
    finally:
        other_engine.dispose()
    assert _outcomes(site)[:8] == ["failure"] * 4 + ["throttled"] * 2 + ["failure", "throttled"]


def test_wrong_passwords_from_one_address_never_keep_the_right_one_out_of_another(site):
    """The old lock-out: five wrong passwords for admin locked the administrator out everywhere."""
    site.users.create("admin", password="correct-horse", is_admin=True)
    for _ in range(4):
        assert site.users.authenticate("admin", "guess-guess", source="203.0.113.9") is None
    assert _throttled(site.users, "admin", "guess-guess", "203.0.113.9") > 0
    assert site.users.authenticate("admin", "correct-horse", source="10.0.0.7")["login"] == "admin"
    # Many addresses guessing the same login: each gets slowed once it has failed, yet the
    # right password from an address that has not failed still gets in at once.
    for n in range(40):
        site.users.authenticate("admin", "guess-guess", source=f"198.51.100.{n}")
    assert _throttled(site.users, "admin", "guess-guess", "198.51.100.3") > 0
    assert site.users.authenticate("admin", "correct-horse", source="10.0.0.8")["login"] == "admin"


def test_a_spray_of_logins_from_one_address_is_slowed(site):
    site.users.create("alice", password="correct-horse")
    site.users.create("bob", password="correct-horse")
    assert site.users.authenticate("alice", "correct-horse", source="203.0.113.9") is not None
    for n in range(31):  # thirty logins, one guess each, are the address's allowance
        assert site.users.authenticate(f"user{n}", "guess-guess", source="203.0.113.9") is None
    assert _throttled(site.users, "user99", "guess-guess", "203.0.113.9") == 1
    site.clock.advance(seconds=1)
    assert site.users.authenticate("user100", "guess-guess", source="203.0.113.9") is None
    assert _throttled(site.users, "user101", "guess-guess", "203.0.113.9") == 2  # doubling
    # the rest of the world is not slowed by it
    assert site.users.authenticate("user101", "guess-guess", source="198.51.100.1") is None
    # an office behind that address: alice, who logged in from it before, gets in at once;
    # bob, new there, waits his turn — and then gets in
    assert site.users.authenticate("alice", "correct-horse", source="203.0.113.9") is not None
    wait = _throttled(site.users, "bob", "correct-horse", "203.0.113.9")
    site.clock.advance(seconds=wait)
    assert site.users.authenticate("bob", "correct-horse", source="203.0.113.9") is not None


def test_the_wait_is_capped_and_the_right_password_gets_in_after_it(site):
    site.users.create("alice", password="correct-horse")
    waits = _fail(site, "alice", "203.0.113.9", 20)
    assert waits[:5] == [2, 4, 8, 16, 32] and max(waits) == 15 * 60 == waits[-1]
    site.clock.advance(seconds=_throttled(site.users, "alice", "correct-horse", "203.0.113.9"))
    assert site.users.authenticate("alice", "correct-horse", source="203.0.113.9") is not None


def test_failures_are_forgotten_after_an_hour_without_one(site):
    site.users.create("alice", password="correct-horse")
    for _ in range(4):
        site.users.authenticate("alice", "wrong", source="10.0.0.1")
    site.clock.advance(minutes=61)
    for _ in range(3):
        assert site.users.authenticate("alice", "wrong", source="10.0.0.1") is None
    assert site.users.authenticate("alice", "correct-horse", source="10.0.0.1") is not None


def test_unknown_logins_are_slowed_too_and_an_admin_lifts_the_slow_down(site):
    for _ in range(4):
        assert site.users.authenticate("ghost", "guess-guess", source="10.0.0.1") is None
    assert _throttled(site.users, "ghost", "guess-guess", "10.0.0.1") == 2
    site.users.create("alice", password="correct-horse")
    _fail(site, "alice", "10.0.0.1", 10)
    assert _throttled(site.users, "alice", "correct-horse", "10.0.0.1") == 128
    assert site.users.unlock("alice") > 0  # crm user unlock alice: every address at once
    assert site.users.authenticate("alice", "correct-horse", source="10.0.0.1") is not None
    _fail(site, "alice", "10.0.0.2", 5)
    new = site.users.reset_password("alice")  # a reset lifts it too
    assert site.users.authenticate("alice", new, source="10.0.0.2") is not None


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
