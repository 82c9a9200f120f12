"""Users: who can log in, their roles and links, and the actor each of them acts as.

Passwords are hashed with Argon2id (memory-hard, via argon2-cffi): a leaked
database does not give away passwords cheaply.  Failed logins are slowed
down in the database (:mod:`engine.services.access.login_guard`), an unknown login
costs as much time as a known one, and a deactivated user keeps their
records, history and ownership — customers belong to the company, and a
transfer (``crm transfer``) hands them on.

Sessions are ended through ``crm_user.session_epoch``: every session is
issued under the user's current value and only accepted while it holds, so
raising it (logging out, a new password, deactivation, "log out everywhere")
ends every session of the user at once — in every process, since each
request reads the user's row anyway to build its actor.

The :class:`Actor` built here carries everything the access policy needs
that is not in the roles YAML: the user's roles, whether they administer
the site, and their teams with all sub-teams.
"""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    String,
    bindparam,
    cast,
    delete,
    insert,
    literal_column,
    null,
    select,
    union_all,
    update,
)

from engine.context import Actor, Clock, default_clock
from engine.errors import NotFound, Throttled, ValidationFailed
from engine.services.access.login_guard import (
    LoginGuard,
    LoginThrottle,
    LoginThrottleSettings,
    ThrottleSettings,
)
from engine.services.access.teams import TeamService
from engine.services.access.tokens import TokenService
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

_hasher = PasswordHasher()
#: Building an actor outside a session (the CLI, jobs, tests): no epoch to compare.
_ANY_SESSION = object()
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    """A hash to check unknown logins against, so they take as long as known ones."""
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and bool(stored)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def _check_password(password: str | None) -> None:
    if password is not None and len(password) < MIN_PASSWORD:
        raise ValidationFailed({"password": [f"At least {MIN_PASSWORD} characters."]})


class UserService:
    """Users, their roles, links and logins; ``teams`` and ``tokens`` hang off it."""

    def __init__(
        self, schema: Schema, engine: Engine, clock: Clock | None = None, *,
        roles: Mapping[str, Any] | None = None, throttle: LoginThrottleSettings | None = None,
    ) -> None:
        self.schema = schema
        self.users = schema.system("crm_user")
        self.roles = schema.system("crm_user_role")
        self.links = schema.system("crm_user_link")
        self.engine = engine
        self.clock = clock or default_clock()
        self.declared_roles: Mapping[str, Any] = roles or {}
        self.teams = TeamService(schema, engine, self.clock)
        self.tokens = TokenService(schema, engine, self.clock)
        self.guard = LoginGuard(schema, engine, ThrottleSettings())
        self.throttle = LoginThrottle(self.guard, throttle)
        # built once: every request loads its actor through them
        self._by_login = select(self.users).where(self.users.c.login == bindparam("key"))
        self._roles_of = select(self.roles.c.role).where(
            self.roles.c.user_id == bindparam("user_id"))
        # an actor's roles and teams in one statement: rows ('role', name, NULL), ('team', NULL, id)
        user_id = bindparam("user_id")
        self._grants = union_all(
            select(literal_column("'role'").label("kind"), self.roles.c.role.label("name"),
                   cast(null(), BigInteger).label("team_id"))
            .where(self.roles.c.user_id == user_id),
            select(literal_column("'team'"), cast(null(), String), self.teams.tree_of(user_id).c.id),
        )

    # -- roles -----------------------------------------------------------------

    def _check_roles(self, roles: Iterable[str]) -> list[str]:
        wanted = sorted(set(roles))
        if not self.declared_roles:
            return wanted
        known = sorted(self.declared_roles)
        problems = []
        for role in wanted:
            if role not in self.declared_roles:
                near = difflib.get_close_matches(role, known, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                problems.append(f"There is no role '{role}'{hint}; roles: {', '.join(known)}.")
        if problems:
            raise ValidationFailed({"roles": problems})
        return wanted

    def _admin_by_role(self, roles: Iterable[str]) -> bool:
        return any(getattr(self.declared_roles.get(r), "admin", False) for r in roles)

    # -- users -------------------------------------------------------------------

    def create(
        self,
        login: str,
        *,
        password: str | None,
        display_name: str | None = None,
        email: str | None = None,
        language: str = "en",
        roles: Iterable[str] = (),
        is_admin: bool = False,
    ) -> dict[str, Any]:
        login = login.strip()
        if not login:
            raise ValidationFailed({"login": ["This field is required."]})
        _check_password(password)
        role_list = self._check_roles(roles)
        with write_transaction(self.engine) as conn:
            taken = conn.execute(select(self.users.c.id).where(self.users.c.login == login)).first()
            if taken:
                raise ValidationFailed({"login": [f"'{login}' is already taken."]})
            user_id = conn.execute(
                insert(self.users).values(
                    login=login,
                    display_name=display_name or login,
                    email=email,
                    language=language,
                    active=True,
                    is_admin=is_admin,
                    password_hash=hash_password(password) if password else None,
                    created_at=self.clock.now(),
                )
            ).inserted_primary_key[0]
            if role_list:
                conn.execute(insert(self.roles), [{"user_id": user_id, "role": r}
                                                   for r in role_list])
        return self.get(login)

    def _get(self, conn: Connection, login: str) -> dict[str, Any]:
        row = conn.execute(self._by_login, {"key": login}).mappings().first()
        if row is None:
            raise NotFound(f"There is no user '{login}'.")
        user = dict(row)
        user["roles"] = sorted(conn.execute(self._roles_of, {"user_id": user["id"]}).scalars())
        return user

    def get(self, login: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return self._get(conn, login)

    def login_of(self, user_id: int) -> str:
        with self.engine.connect() as conn:
            login = conn.execute(select(self.users.c.login).where(self.users.c.id == user_id)).scalar()
        if login is None:
            raise NotFound(f"There is no user {user_id}.")
        return login

    def list(self, *, include_inactive: bool = True) -> list[dict[str, Any]]:
        query = select(self.users).order_by(self.users.c.id)
        if not include_inactive:
            query = query.where(self.users.c.active.is_(True))
        with self.engine.connect() as conn:
            rows = [{k: v for k, v in r.items() if k != "password_hash"}
                    for r in conn.execute(query).mappings()]
            by_user: dict[int, list[str]] = {}
            for user_id, role in conn.execute(
                select(self.roles.c.user_id, self.roles.c.role).order_by(self.roles.c.role)
            ):
                by_user.setdefault(user_id, []).append(role)
        for row in rows:
            row["roles"] = by_user.get(row["id"], [])
        return rows

    def set_roles(self, login: str, roles: Iterable[str]) -> dict[str, Any]:
        """Replace the user's roles (takes effect at their next request)."""
        role_list = self._check_roles(roles)
        with write_transaction(self.engine) as conn:
            user = self._get(conn, login)
            conn.execute(delete(self.roles).where(self.roles.c.user_id == user["id"]))
            if role_list:
                conn.execute(insert(self.roles), [{"user_id": user["id"], "role": r}
                                                   for r in role_list])
        return self.get(login)

    def set_admin(self, login: str, is_admin: bool) -> dict[str, Any]:
        return self._set(login, is_admin=is_admin)

    def _set(self, login: str, **values: Any) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            self._get(conn, login)
            conn.execute(update(self.users).where(self.users.c.login == login).values(**values))
        return self.get(login)

    def deactivate(self, login: str) -> dict[str, Any]:
        """The user can no longer log in or use tokens; records, history and ownership stay.

        Their sessions end too: activating the user again does not bring them back.
        """
        return self._set(login, active=False, session_epoch=self.users.c.session_epoch + 1)

    def activate(self, login: str) -> dict[str, Any]:
        return self._set(login, active=True)

    def reset_password(self, login: str, password: str | None = None) -> str:
        """Set a new password (generated when not given); returns it.

        Every session of the user ends (a copied cookie with them), and the
        login's slow-down is lifted.
        """
        secret = password or generate_password()
        _check_password(secret)
        self._set(login, password_hash=hash_password(secret),
                  session_epoch=self.users.c.session_epoch + 1)
        self.throttle.unlock(login)
        return secret

    def end_sessions(self, login: str) -> int:
        """End every session of the user, everywhere; returns the epoch new sessions get."""
        return self._set(login, session_epoch=self.users.c.session_epoch + 1)["session_epoch"]

    def unlock(self, login: str) -> int:
        """Lift the slow-down of a login's failed attempts (from every address); rows forgotten."""
        return self.throttle.unlock(login)

    # -- links (for 'linked' and 'via' scopes) ---------------------------------------

    def link(self, login: str, entity: str, record_id: int) -> None:
        """Link a user to a record: a dealer's staff to the dealer they work for."""
        if entity not in self.schema.entities:
            raise NotFound(f"There is no entity '{entity}'.")
        table = self.schema.table(entity)
        with write_transaction(self.engine) as conn:
            user = self._get(conn, login)
            if conn.execute(select(table.c.id).where(table.c.id == int(record_id))).first() is None:
                raise NotFound(f"There is no {entity} {record_id}.")
            exists = conn.execute(select(self.links.c.user_id).where(
                self.links.c.user_id == user["id"], self.links.c.entity == entity,
                self.links.c.record_id == int(record_id))).first()
            if not exists:
                conn.execute(insert(self.links).values(user_id=user["id"], entity=entity,
                                                       record_id=int(record_id)))

    def unlink(self, login: str, entity: str, record_id: int) -> None:
        with write_transaction(self.engine) as conn:
            user = self._get(conn, login)
            conn.execute(delete(self.links).where(
                self.links.c.user_id == user["id"], self.links.c.entity == entity,
                self.links.c.record_id == int(record_id)))

    def links_of(self, login: str) -> list[tuple[str, int]]:
        with self.engine.connect() as conn:
            user = self._get(conn, login)
            return [(e, r) for e, r in conn.execute(
                select(self.links.c.entity, self.links.c.record_id)
                .where(self.links.c.user_id == user["id"])
                .order_by(self.links.c.entity, self.links.c.record_id))]

    # -- logging in and acting --------------------------------------------------------

    def authenticate(self, login: str, password: str, *,
                     source: str | None = None) -> dict[str, Any] | None:
        """The user when the password is right; None otherwise; Throttled after many failures.

        The attempt is counted before the password is checked and written
        to the login history either way.
        """
        now = self.clock.now()
        try:
            attempt = self.throttle.begin(login, source, now)
        except Throttled:
            self.guard.record(login, source, "throttled", now)
            raise
        try:
            user = self.get(login)
        except NotFound:
            verify_password(None, password)
            self.guard.record(login, source, "failure", now)
            return None
        if not verify_password(user["password_hash"], password):
            self.guard.record(login, source, "failure", now)
            return None
        if not user["active"]:
            self.guard.record(login, source, "inactive", now)
            return None
        self.throttle.succeeded(attempt)
        self.guard.record(login, source, "success", now)
        if _hasher.check_needs_rehash(user["password_hash"]):
            self._set(login, password_hash=hash_password(password))
        return user

    def actor(self, login: str) -> Actor:
        """The actor a user acts as: roles, admin flag, teams with their sub-teams."""
        with self.engine.connect() as conn:
            return self._actor(conn, login)

    def active_actor(self, conn: Connection, user_id: int) -> Actor | None:
        """The actor of user ``user_id``, or None when there is no such active user."""
        row = conn.execute(select(self.users).where(self.users.c.id == user_id)).mappings().first()
        if row is None or not row["active"]:
            return None
        return self._actor_of(conn, row)

    def actor_for_session(self, login: str, epoch: Any) -> Actor:
        """The actor of a session issued under ``epoch``: NotFound once its sessions ended.

        The epoch is compared on the row the actor is built from, so the check
        costs no statement of its own and no process can hold on to an old answer.
        """
        with self.engine.connect() as conn:
            return self._actor(conn, login, epoch=epoch)

    def _actor(self, conn: Connection, login: str, *, epoch: Any = _ANY_SESSION) -> Actor:
        row = conn.execute(self._by_login, {"key": login}).mappings().first()
        if row is None:
            raise NotFound(f"There is no user '{login}'.")
        if epoch is not _ANY_SESSION and (type(epoch) is not int
                                          or epoch != row["session_epoch"]):
            raise NotFound(f"The session of '{login}' has ended.")
        return self._actor_of(conn, row)

    def _actor_of(self, conn: Connection, user: Mapping[str, Any]) -> Actor:
        """The actor of a ``crm_user`` row: its roles and teams read in one statement."""
        if not user["active"]:
            raise NotFound(f"There is no active user '{user['login']}'.")
        grants = conn.execute(self._grants, {"user_id": user["id"]}).all()
        roles = frozenset(name for kind, name, _ in grants if kind == "role")
        return Actor(
            user_id=user["id"],
            login=user["login"],
            roles=roles,
            language=user["language"],
            is_admin=bool(user["is_admin"]) or self._admin_by_role(roles),
            team_ids=frozenset(team for kind, _, team in grants if kind == "team"),
        )

    def actor_for_token(self, token: str) -> Actor:
        """The actor an API token acts as (PermissionDenied for any unusable token)."""
        with self.engine.connect() as conn:
            return self._actor_of(conn, self.tokens.user_row_of(token, conn))
