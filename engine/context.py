"""The explicit context every service call carries: who acts, and what time it is.

There are no thread-locals and no module-level "current user": adapters (the
web layer, the CLI, jobs) build an :class:`Actor` and pass it in, and tests
pass a :class:`FixedClock` to control time.

A process given no clock takes :func:`default_clock`: the system's, unless
``CRM_CLOCK`` sets it to another moment (a testing and diagnostic setting:
CI runs the date-sensitive tests once more a year ahead with it).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from engine.errors import BadSetting

#: The environment setting that sets the clock of processes given none (see :func:`default_clock`).
CLOCK_SETTING = "CRM_CLOCK"


@dataclass(frozen=True)
class Actor:
    """Someone (or something) acting on the CRM."""

    user_id: int | None
    login: str
    roles: frozenset[str] = field(default_factory=frozenset)
    language: str = "en"
    is_admin: bool = False
    team_ids: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def system(cls, language: str = "en") -> Actor:
        """The engine itself (migrations, demo data): no user, all rights."""
        return cls(user_id=None, login="system", language=language, is_admin=True)


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    """Real time, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        self.current = start

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, **delta: float) -> dt.datetime:
        self.current = self.current + dt.timedelta(**delta)
        return self.current


class SetClock:
    """Real time, set to another moment: it reads ``start`` when made, then runs at real speed."""

    def __init__(self, start: dt.datetime, *, real: Clock | None = None) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        self.real = real or SystemClock()
        self.offset = start - self.real.now()

    def now(self) -> dt.datetime:
        return self.real.now() + self.offset


def default_clock(environ: Mapping[str, str] | None = None) -> Clock:
    """The clock of a site, service or command given none.

    The system's — unless ``CRM_CLOCK`` holds an ISO 8601 moment (such as
    ``2027-12-07T10:00:00+00:00``; without an offset it is UTC): then a
    :class:`SetClock` that starts there.  Only for tests and diagnostics.
    """
    value = (os.environ if environ is None else environ).get(CLOCK_SETTING, "").strip()
    if not value:
        return SystemClock()
    try:
        start = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadSetting(
            f"{CLOCK_SETTING}={value!r} is not a moment: write it as 2027-12-07T10:00:00+00:00 "
            f"(or unset {CLOCK_SETTING} to use the system clock)."
        ) from None
    return SetClock(start)
