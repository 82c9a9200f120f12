"""Throttling failed logins, with the state in the database.

Every web worker, CLI call and job shares the database, so the counters
live there: a second process gives an attacker no fresh set of attempts.
An attempt is *counted before the password is checked* (in a short
transaction that locks the counter's row), so a burst of parallel guesses
cannot slip past the limit while the slow, memory-hard hash is computed;
a correct password then clears the counter.

Counters are kept per key: the login tried, and (when the adapter knows
it) the address the attempt came from, so one address trying many logins
is slowed down too.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.errors import Throttled
from engine.storage.database import write_transaction
from engine.storage.tables import Schema


@dataclass(frozen=True)
class ThrottleSettings:
    """At most ``max_failures`` failed logins per key within ``window``; then ``lockout``."""

    max_failures: int = 5
    window: dt.timedelta = dt.timedelta(minutes=15)
    lockout: dt.timedelta = dt.timedelta(minutes=15)


class LoginGuard:
    """Counts attempts per key in ``crm_login_guard`` and refuses locked keys."""

    def __init__(self, schema: Schema, engine: Engine,
                 settings: ThrottleSettings | None = None) -> None:
        self.table = schema.system("crm_login_guard")
        self.log = schema.system("crm_login_attempt")
        self.engine = engine
        self.settings = settings or ThrottleSettings()

    def _row(self, conn: Connection, key: str, now: dt.datetime) -> dict:
        query = select(self.table).where(self.table.c.key == key)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is not None:
            return dict(row)
        try:
            with conn.begin_nested():
                conn.execute(insert(self.table).values(key=key, failures=0, window_start=now))
        except IntegrityError:
            pass  # another process created it meanwhile; lock theirs
        return dict(conn.execute(query).mappings().one())

    def begin_attempt(self, keys: Sequence[str], now: dt.datetime,
                      refused: str = "Too many failed logins") -> None:
        """Count one attempt on every key, or raise Throttled (counting nothing)."""
        settings = self.settings
        with write_transaction(self.engine) as conn:
            rows = {key: self._row(conn, key, now) for key in sorted(set(keys))}
            wait = max((_seconds(r["locked_until"] - now) for r in rows.values()
                        if r["locked_until"] is not None and r["locked_until"] > now),
                       default=0)
            if wait:
                raise Throttled(
                    f"{refused}; try again in {math.ceil(wait / 60)} minute(s).",
                    retry_after=wait,
                )
            for key, row in rows.items():
                fresh = row["window_start"] <= now - settings.window
                failures = 1 if fresh else row["failures"] + 1
                values: dict = {"failures": failures, "locked_until": None}
                if fresh:
                    values["window_start"] = now
                if failures >= settings.max_failures:
                    values["locked_until"] = now + settings.lockout
                conn.execute(update(self.table).where(self.table.c.key == key).values(**values))

    def succeeded(self, keys: Sequence[str], now: dt.datetime) -> None:
        """A correct password: the login's counters start again."""
        with write_transaction(self.engine) as conn:
            conn.execute(update(self.table).where(self.table.c.key.in_(list(keys)))
                         .values(failures=0, window_start=now, locked_until=None))

    def forgive(self, keys: Sequence[str], now: dt.datetime) -> None:
        """Take back the attempt ``begin_attempt`` counted on ``keys``: the password was right.

        An address is counted before the password is checked, like the login,
        but only failures should slow it down: otherwise an office behind one
        address — or every user of a site behind a reverse proxy — would lock
        itself out by logging in five times in a quarter of an hour.
        """
        with write_transaction(self.engine) as conn:
            for key in sorted(set(keys)):
                row = self._row(conn, key, now)
                failures = max(0, row["failures"] - 1)
                values: dict = {"failures": failures}
                if failures < self.settings.max_failures:
                    values["locked_until"] = None  # the lock came from this very attempt
                conn.execute(update(self.table).where(self.table.c.key == key).values(**values))

    def clear(self, keys: Sequence[str]) -> None:
        """Forget the counters (an administrator reset the password)."""
        with write_transaction(self.engine) as conn:
            conn.execute(self.table.delete().where(self.table.c.key.in_(list(keys))))

    def record(self, login: str, source: str | None, outcome: str, now: dt.datetime) -> None:
        """Keep the attempt in the login history (who tried, from where, with what outcome)."""
        with write_transaction(self.engine) as conn:
            conn.execute(insert(self.log).values(at=now, login=login[:150],
                                                 source=(source or None) and source[:100],
                                                 outcome=outcome))


def _seconds(delta: dt.timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
