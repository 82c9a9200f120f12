"""The explicit context every service call carries: who acts, and what time it is.

There are no thread-locals and no module-level "current user": adapters (the
web layer, the CLI, jobs) build an :class:`Actor` and pass it in, and tests
pass a :class:`FixedClock` to control time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol


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
