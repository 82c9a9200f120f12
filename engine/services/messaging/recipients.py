"""Who may be told about a record: every notification's recipients pass through here.

A message about a record is only for users who may read that record,
checked as a get of the record checks it (the read right and the read row
scope of the user's own roles and teams, :meth:`RecordService.may_read`):
``role:manager`` reaches the managers whose teams see the record, not every
manager of the company; an ``owner`` or ``creator`` who lost the record to
a transfer is no longer told about it; inactive users are never told.  The
text each user gets is rendered without the fields hidden from them
(``Target.hidden``), so a notification never shows what the record's page
would not.

The check is made when the messages are written (in the writer's
transaction) and again just before each is delivered and when the digest
is made (:meth:`RecipientAccess.refusal`), so a user whose access ended
while a message waited — quiet hours, a retry, tomorrow's digest — does
not get it.

Addresses read from a record (``email:``/``phone:`` recipients, such as a
member's own e-mail or mobile) are not users: the rule's author chose to
write to them, and they get the text as the rule renders it.

A cause that ends up reaching nobody is recorded — a ``skipped`` outbox
row with the reason and a warning in the log — never dropped silently.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from engine.context import Actor
from engine.errors import NotFound
from engine.services.access.users import UserService
from engine.services.messaging.outbox import Cause, OutboxWriter, Target, applies
from engine.services.records.service import RecordService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Screened:
    """Targets split into those who may be told and the users who may not."""

    kept: list[Target]
    withheld: list[Target]


class RecipientAccess:
    """Whether a user may be told about a record, and what of it they may see."""

    def __init__(self, records: RecordService, users: UserService | None = None) -> None:
        self.records = records
        self.users = users or UserService(records.schema, records.engine, records.clock,
                                          roles=records.registry.roles)

    @contextmanager
    def _conn(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
            return
        with self.records.engine.connect() as new:
            yield new

    def reader(self, conn: Connection, user_id: int, entity: str,
               record_id: Any) -> Actor | None:
        """The user's actor if they are active and may read the record; else None."""
        actor = self.users.active_actor(conn, user_id)
        if actor is None or not self.records.may_read(actor, entity, record_id, conn=conn):
            return None
        return actor

    def refusal(self, user_id: int, entity: str, record_id: Any, *,
                conn: Connection | None = None) -> str | None:
        """Why user ``user_id`` may not be told about the record now, or None if they may."""
        with self._conn(conn) as c:
            actor = self.users.active_actor(c, user_id)
            if actor is None:
                return f"user:{user_id} is no longer an active user"
            try:
                readable = self.records.may_read(actor, entity, record_id, conn=c)
            except NotFound:  # the entity left the definitions while the message waited
                readable = False
        return None if readable else f"user:{user_id} may not read {entity} {record_id}"

    def screen(self, conn: Connection, entity: str | None, record_id: Any,
               targets: Iterable[Target]) -> Screened:
        """Keep addresses, and the users who may read the record — each with the fields
        hidden from them; a message about no record keeps every active user target."""
        kept: list[Target] = []
        withheld: list[Target] = []
        for target in targets:
            if target.user_id is None or entity is None or record_id is None:
                kept.append(target)
                continue
            actor = self.reader(conn, target.user_id, entity, record_id)
            if actor is None:
                withheld.append(target)
                continue
            hidden = self.records.hidden(actor, self.records.entity(entity))
            kept.append(dataclasses.replace(target, hidden=frozenset(hidden)))
        return Screened(kept, withheld)


@dataclass(frozen=True)
class Written:
    """What :meth:`Notifier.write` did: messages new in the outbox, and whether it has just
    recorded that nobody could be told."""

    messages: int
    nobody: bool = False


class Notifier:
    """Writes a cause's messages for those of its candidates who may read the record.

    Reminders and the workflows' ``notify`` actions both write through this,
    so no recipient expansion reaches the outbox unscreened.
    """

    def __init__(self, records: RecordService, users: UserService | None = None) -> None:
        self.access = RecipientAccess(records, users)
        self.writer = OutboxWriter(records.schema)

    def write(self, conn: Connection, cause: Cause, candidates: Sequence[Target],
              channels: Sequence[str],
              render: Callable[[str, frozenset[str]], tuple[str | None, str]], *,
              named: Sequence[str], now: Any) -> Written:
        """Screen ``candidates`` (what ``named`` — ``role:manager``, ``owner`` — expanded to),
        write their messages, and record the cause when no one is left to write to (an
        address that is missing or opted out is written ``skipped``, which records it)."""
        screened = self.access.screen(conn, cause.entity, cause.record_id, candidates)
        written = self.writer.write(conn, cause, screened.kept, channels, render, now=now)
        if any(applies(t, c) for t in screened.kept for c in channels):
            return Written(written)
        reason = nobody_reason(cause, named, screened.withheld)
        if not self.writer.write_nobody(conn, cause, reason, now=now):
            return Written(written)  # recorded by an earlier look at the same occurrence
        log.warning("%s %s: %s", cause.kind, cause.source, reason)
        return Written(written, nobody=True)


def nobody_reason(cause: Cause, named: Sequence[str], withheld: Sequence[Target]) -> str:
    """Why a cause reached nobody, in the words an administrator reads in ``crm outbox``."""
    asked = ", ".join(named) or "no recipient"
    if withheld:
        users = ", ".join(t.recipient for t in withheld)
        return (f"nobody was told: {asked} gave {users}, who may not read "
                f"{cause.entity} {cause.record_id}")
    return f"nobody was told: {asked} gave no active user or address"
