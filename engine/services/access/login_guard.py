"""Throttling failed logins (and failed look-ups), with the state in the database.

Every web worker, CLI call and job shares the database, so the counters
live there: a second process gives an attacker no fresh set of attempts.
An attempt is *counted before the password is checked* (in a short
transaction that locks the counters' rows), so a burst of parallel guesses
cannot slip past the limit while the slow, memory-hard hash is computed;
a correct password then takes its attempt back.

Logins (:class:`LoginThrottle`) are *slowed down*, never locked: a wrong
password makes the next attempt wait, the wait doubling with each failure
up to a cap.  Three counters, each with its own :class:`Backoff`:

- the pair of login *and* address — the attempts of one guesser at one
  account; the right password from another address is not held back by it;
- the address, with a much higher allowance — one address spraying many
  logins; an address the login has succeeded from before is spared it, so
  an office behind one address keeps logging in;
- the login, over all addresses — many addresses guessing one account; it
  only holds back addresses that have already failed for that login, so the
  right password from an address that has not failed is always accepted.

:class:`LoginGuard` keeps the older fixed lock (N failures in a window,
then a lock) that the look-up throttle of :mod:`engine.services.records.reads`
uses.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select, update
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
    """Counts attempts per key in ``crm_login_guard`` and refuses locked keys (look-ups).

    Also the login history (``record``) and the row locking the login
    throttle shares.
    """

    def __init__(self, schema: Schema, engine: Engine,
                 settings: ThrottleSettings | None = None) -> None:
        self.table = schema.system("crm_login_guard")
        self.log = schema.system("crm_login_attempt")
        self.engine = engine
        self.settings = settings or ThrottleSettings()

    def locked_row(self, conn: Connection, key: str, now: dt.datetime) -> dict:
        """Key ``key``'s counter row (created when missing), locked until ``conn`` commits."""
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
            rows = {key: self.locked_row(conn, key, now) for key in sorted(set(keys))}
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

    def forgive(self, keys: Sequence[str], now: dt.datetime) -> None:
        """Take back the attempt ``begin_attempt`` counted on ``keys``: the call went well.

        Attempts are counted before the outcome is known, but only failures
        should count against a key.
        """
        with write_transaction(self.engine) as conn:
            for key in sorted(set(keys)):
                row = self.locked_row(conn, key, now)
                failures = max(0, row["failures"] - 1)
                values: dict = {"failures": failures}
                if failures < self.settings.max_failures:
                    values["locked_until"] = None  # the lock came from this very attempt
                conn.execute(update(self.table).where(self.table.c.key == key).values(**values))

    def record(self, login: str, source: str | None, outcome: str, now: dt.datetime) -> None:
        """Keep the attempt in the login history (who tried, from where, with what outcome)."""
        with write_transaction(self.engine) as conn:
            conn.execute(insert(self.log).values(at=now, login=login[:150],
                                                 source=(source or None) and source[:100],
                                                 outcome=outcome))


@dataclass(frozen=True)
class Backoff:
    """No wait for the first ``free`` failures, then ``first``, doubling with each one up to ``cap``."""

    free: int
    first: dt.timedelta
    cap: dt.timedelta

    def wait(self, failures: int) -> dt.timedelta | None:
        if failures <= self.free:
            return None
        return min(self.first * 2 ** min(failures - self.free - 1, 30), self.cap)


@dataclass(frozen=True)
class LoginThrottleSettings:
    """How the three login counters slow guessing down (see the module docstring)."""

    pair: Backoff = Backoff(3, dt.timedelta(seconds=2), dt.timedelta(minutes=15))
    address: Backoff = Backoff(30, dt.timedelta(seconds=1), dt.timedelta(minutes=5))
    login: Backoff = Backoff(10, dt.timedelta(seconds=1), dt.timedelta(minutes=15))
    #: a counter without a failure for this long starts again from nothing
    forget: dt.timedelta = dt.timedelta(hours=1)
    #: a login that succeeded from an address within this time is spared the address's wait
    known_for: dt.timedelta = dt.timedelta(days=90)


@dataclass(frozen=True)
class Attempt:
    """One counted login attempt: its keys, and what to restore if the password was right."""

    pair: str
    login: str
    address: str | None
    #: key → the wait its row had before this attempt set one
    earlier: dict[str, dt.datetime | None]
    #: key → the wait this attempt set (only restored while still in place)
    set_by_us: dict[str, dt.datetime | None]


def pair_key(login: str, source: str | None) -> str:
    """The counter of one login tried from one address (cut to fit the key column).

    The address comes first: it never holds a ``|``, while a login may.
    """
    return f"pair:{(source or '')[:50]}|{login[:140]}"


def login_key(login: str) -> str:
    return f"login:{login[:190]}"


def address_key(source: str) -> str:
    return f"source:{source[:190]}"


class LoginThrottle:
    """Slows failed logins down per pair, address and login; never locks one out for good.

    Rows live in ``crm_login_guard`` beside the look-up throttle's: ``failures``
    counts the current run of failures, ``window_start`` holds the time of its
    last failure (after ``forget`` without one the run starts again) and
    ``locked_until`` the time before which the key's next attempt is refused.
    """

    def __init__(self, guard: LoginGuard,
                 settings: LoginThrottleSettings | None = None) -> None:
        self.guard = guard
        self.table = guard.table
        self.log = guard.log
        self.engine = guard.engine
        self.settings = settings or LoginThrottleSettings()

    def _known(self, conn: Connection, login: str, source: str, now: dt.datetime) -> bool:
        """Whether ``login`` logged in from ``source`` lately (the login history says)."""
        log = self.log
        found = conn.execute(select(log.c.id).where(
            log.c.login == login[:150], log.c.source == source[:100],
            log.c.outcome == "success", log.c.at >= now - self.settings.known_for).limit(1))
        return found.first() is not None

    def begin(self, login: str, source: str | None, now: dt.datetime) -> Attempt:
        """Count one attempt on each counter, or raise Throttled (counting nothing)."""
        settings = self.settings
        pair, by_login = pair_key(login, source), login_key(login)
        address = address_key(source) if source else None
        backoffs = {pair: settings.pair, by_login: settings.login}
        if address:
            backoffs[address] = settings.address
        with write_transaction(self.engine) as conn:
            rows = {key: self.guard.locked_row(conn, key, now) for key in sorted(backoffs)}
            failures = {key: (0 if row["window_start"] <= now - settings.forget
                              else row["failures"]) for key, row in rows.items()}
            gates = [pair]
            if failures[pair]:  # this address has failed for this login: the login's wait too
                gates.append(by_login)
            if address and not self._known(conn, login, source or "", now):
                gates.append(address)
            waits = [rows[k]["locked_until"] for k in gates if failures[k]
                     and rows[k]["locked_until"] is not None and rows[k]["locked_until"] > now]
            if waits:
                wait = _seconds(max(waits) - now)
                raise Throttled(f"Too many failed logins; try again in {_in_words(wait)}.",
                                retry_after=wait)
            set_by_us: dict[str, dt.datetime | None] = {}
            for key, backoff in backoffs.items():
                count = failures[key] + 1
                delay = backoff.wait(count)
                set_by_us[key] = now + delay if delay else None
                conn.execute(update(self.table).where(self.table.c.key == key).values(
                    failures=count, window_start=now, locked_until=set_by_us[key]))
        return Attempt(pair=pair, login=by_login, address=address,
                       earlier={k: r["locked_until"] for k, r in rows.items()},
                       set_by_us=set_by_us)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the pair starts again; the others take the attempt back."""
        table = self.table
        with write_transaction(self.engine) as conn:
            conn.execute(update(table).where(table.c.key == attempt.pair)
                         .values(failures=0, locked_until=None))
            for key in sorted(k for k in (attempt.login, attempt.address) if k):
                conn.execute(update(table).where(table.c.key == key, table.c.failures > 0)
                             .values(failures=table.c.failures - 1))
                ours = attempt.set_by_us.get(key)
                if ours is not None:  # the wait this attempt set, unless a later failure moved it
                    conn.execute(update(table).where(table.c.key == key,
                                                     table.c.locked_until == ours)
                                 .values(locked_until=attempt.earlier.get(key)))

    def unlock(self, login: str) -> int:
        """Forget the login's counters and those of every address it was tried from."""
        table = self.table
        suffix = pair_key(login, None)[len("pair:"):]  # "|login"
        with write_transaction(self.engine) as conn:
            found = conn.execute(select(table.c.key).where(
                table.c.key.startswith("pair:"), table.c.key.endswith(suffix, autoescape=True)))
            keys = [k for k in found.scalars() if k.partition("|")[2] == suffix[1:]]
            return conn.execute(delete(table).where(
                table.c.key.in_([login_key(login), *keys]))).rowcount

    def unlock_address(self, source: str) -> int:
        """Forget an address's own counter (not those of the logins tried from it)."""
        with write_transaction(self.engine) as conn:
            return conn.execute(delete(self.table).where(
                self.table.c.key == address_key(source))).rowcount


def _in_words(seconds: int) -> str:
    return f"{seconds} second(s)" if seconds < 60 else f"{math.ceil(seconds / 60)} minute(s)"


def _seconds(delta: dt.timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
