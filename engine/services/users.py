"""Users: who can log in, and the actor each of them acts as.

Passwords are hashed with Argon2id (memory-hard, via argon2-cffi): a leaked
database does not give away passwords cheaply.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select

from engine.context import Actor, Clock, SystemClock
from engine.errors import NotFound, ValidationFailed
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(12)


class UserService:
    def __init__(self, schema: Schema, engine: Engine, clock: Clock | None = None) -> None:
        self.users = schema.system("crm_user")
        self.roles = schema.system("crm_user_role")
        self.engine = engine
        self.clock = clock or SystemClock()

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
        if password is not None and len(password) < 8:
            raise ValidationFailed({"password": ["At least 8 characters."]})
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
            role_rows = [{"user_id": user_id, "role": r} for r in sorted(set(roles))]
            if role_rows:
                conn.execute(insert(self.roles), role_rows)
        return self.get(login)

    def get(self, login: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.users).where(self.users.c.login == login)).mappings().first()
            if row is None:
                raise NotFound(f"There is no user '{login}'.")
            user = dict(row)
            user["roles"] = sorted(
                conn.execute(select(self.roles.c.role).where(self.roles.c.user_id == user["id"])).scalars()
            )
        return user

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.users).order_by(self.users.c.id)).mappings()
            return [{k: v for k, v in r.items() if k != "password_hash"} for r in rows]

    def authenticate(self, login: str, password: str) -> dict[str, Any] | None:
        try:
            user = self.get(login)
        except NotFound:
            verify_password(None, password)
            return None
        if not user["active"] or not verify_password(user["password_hash"], password):
            return None
        return user

    def actor(self, login: str) -> Actor:
        user = self.get(login)
        if not user["active"]:
            raise NotFound(f"There is no active user '{login}'.")
        return Actor(
            user_id=user["id"],
            login=user["login"],
            roles=frozenset(user["roles"]),
            language=user["language"],
            is_admin=user["is_admin"],
        )
