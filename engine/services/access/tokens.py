"""API tokens: shown once, stored only as a hash, expiring and revocable.

A token is 32 random bytes, so a fast hash (SHA-256) is enough to make a
leaked table useless — unlike passwords, tokens are never guessed — and it
lets a request find its token with one indexed lookup.  The first
characters are kept in clear (``prefix``) so people can tell their tokens
apart in a list.  A token acts as its user: a deactivated user's tokens
stop working at once, and so does a revoked or expired token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from engine.context import Clock, default_clock
from engine.errors import DatabaseBusy, NotFound, PermissionDenied, ValidationFailed
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

TOKEN_PREFIX = "crm_"
SHOWN_CHARACTERS = 12


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

#: How precisely a token's last use is recorded.
LAST_USED_PRECISION = dt.timedelta(minutes=5)


class TokenService:
    """Create, list, revoke and check API tokens."""

    def __init__(self, schema: Schema, engine: Engine, clock: Clock | None = None) -> None:
        self.tokens = schema.system("crm_api_token")
        self.users = schema.system("crm_user")
        self.engine = engine
        self.clock = clock or default_clock()
        t, u = self.tokens, self.users
        # built once: every API request runs it — the token and its user in one statement
        self._by_hash = (select(t.c.id.label("token_id"), t.c.expires_at, t.c.revoked_at,
                                t.c.last_used_at, *u.c)
                         .join(u, u.c.id == t.c.user_id)
                         .where(t.c.token_hash == bindparam("token_hash")))

    def create(self, login: str, name: str, *, expires_in: dt.timedelta | None = None,
               created_by: int | None = None) -> tuple[str, dict[str, Any]]:
        """A new token for ``login``: (the token itself — show it once —, its stored row)."""
        if not name.strip():
            raise ValidationFailed({"name": ["This field is required."]})
        if expires_in is not None and expires_in <= dt.timedelta(0):
            raise ValidationFailed({"expires_in": ["The token must expire in the future."]})
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            user = conn.execute(select(self.users.c.id, self.users.c.active)
                                .where(self.users.c.login == login)).first()
            if user is None:
                raise NotFound(f"There is no user '{login}'.")
            if not user.active:
                raise ValidationFailed({"login": [f"'{login}' is deactivated."]})
            token_id = conn.execute(insert(self.tokens).values(
                user_id=user.id, name=name.strip(), token_hash=hash_token(token),
                prefix=token[:SHOWN_CHARACTERS], created_at=now, created_by=created_by,
                expires_at=now + expires_in if expires_in is not None else None,
            )).inserted_primary_key[0]
        return token, self.get(token_id)

    def get(self, token_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(self._listing().where(self.tokens.c.id == token_id)).mappings().first()
        if row is None:
            raise NotFound(f"There is no token {token_id}.")
        return self._describe(dict(row))

    def _listing(self) -> Any:
        t, u = self.tokens, self.users
        return select(t.c.id, t.c.name, t.c.prefix, t.c.created_at, t.c.expires_at,
                      t.c.revoked_at, t.c.last_used_at, u.c.login).join(u, u.c.id == t.c.user_id)

    def _describe(self, row: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        if row["revoked_at"] is not None:
            row["status"] = "revoked"
        elif row["expires_at"] is not None and row["expires_at"] <= now:
            row["status"] = "expired"
        else:
            row["status"] = "active"
        return row

    def list(self, login: str | None = None) -> list[dict[str, Any]]:
        query = self._listing().order_by(self.tokens.c.id)
        if login is not None:
            query = query.where(self.users.c.login == login)
        with self.engine.connect() as conn:
            return [self._describe(dict(r)) for r in conn.execute(query).mappings()]

    def revoke(self, token_id: int) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            done = conn.execute(update(self.tokens).where(
                self.tokens.c.id == token_id, self.tokens.c.revoked_at.is_(None)
            ).values(revoked_at=self.clock.now()))
            if done.rowcount == 0 and conn.execute(
                select(self.tokens.c.id).where(self.tokens.c.id == token_id)
            ).first() is None:
                raise NotFound(f"There is no token {token_id}.")
        return self.get(token_id)

    def user_row_of(self, token: str, conn: Connection | None = None) -> dict[str, Any]:
        """The ``crm_user`` row of the active user a valid token belongs to (and note that
        it was used).

        Unknown, revoked and expired tokens, and tokens of deactivated users,
        get the same answer, so a caller learns nothing by trying.  ``last_used_at``
        is kept to within ``LAST_USED_PRECISION``: writing it on every call would
        turn each API read into a write, and a database too busy to take the note
        skips it rather than refusing the request.
        """
        now = self.clock.now()
        t = self.tokens
        given = {"token_hash": hash_token(token or "")}
        if conn is not None:
            row = conn.execute(self._by_hash, given).first()
        else:
            with self.engine.connect() as own:
                row = own.execute(self._by_hash, given).first()
        usable = row is not None and row.revoked_at is None and row.active and (
            row.expires_at is None or row.expires_at > now)
        if not usable:
            raise PermissionDenied("The token is not valid (unknown, expired or revoked).")
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
            try:
                with write_transaction(self.engine) as conn:
                    conn.execute(update(t).where(t.c.id == row.token_id).values(
                        last_used_at=now))
            except Exception as exc:
                if DatabaseBusy.from_exception(exc) is None:
                    raise
                # A note, not the request's purpose: a database busy with another writer
                # leaves it for the next call rather than failing a read.
        return {c.key: row._mapping[c.key] for c in self.users.c}
