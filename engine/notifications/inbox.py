"""Reading the in-app inbox and looking after the outbox, with the actor's rights.

A user reads and marks only their own notifications (the filter is here,
not in a template); the outbox — every message with its state and reason
— is for administrators, who may send an ``uncertain`` or ``failed``
message again after checking the mail server's log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select, update

from engine.context import Actor, Clock
from engine.errors import Conflict, NotFound, PermissionDenied
from engine.services.messaging.outbox import OutboxWriter
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

RETRYABLE = ("uncertain", "failed")


class InboxService:
    """The in-app notifications of the acting user, and their digest choice."""

    def __init__(self, schema: Schema, engine: Engine, clock: Clock) -> None:
        self.table = schema.system("crm_notification")
        self.settings = schema.system("crm_notification_setting")
        self.engine = engine
        self.clock = clock

    @staticmethod
    def _user(actor: Actor) -> int:
        if actor.user_id is None:
            raise PermissionDenied("Only a signed-in user has an inbox.")
        return actor.user_id

    def unread_count(self, actor: Actor) -> int:
        if actor.user_id is None:
            return 0
        t = self.table
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(t).where(
                t.c.user_id == actor.user_id, t.c.read_at.is_(None))).scalar_one()

    def messages(self, actor: Actor, *, unread_only: bool = False,
                 limit: int = 50) -> list[dict[str, Any]]:
        t = self.table
        where = [t.c.user_id == self._user(actor)]
        if unread_only:
            where.append(t.c.read_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                select(t).where(*where).order_by(t.c.created_at.desc(), t.c.id.desc())
                .limit(max(1, min(limit, 500)))).mappings()]

    def mark_read(self, actor: Actor, ids: list[int] | None = None) -> int:
        """Mark the user's own notifications read (all of them when ``ids`` is None)."""
        t = self.table
        where = [t.c.user_id == self._user(actor), t.c.read_at.is_(None)]
        if ids is not None:
            where.append(t.c.id.in_(ids))
        with write_transaction(self.engine) as conn:
            return conn.execute(update(t).where(*where).values(read_at=self.clock.now())).rowcount

    def digest(self, actor: Actor) -> bool:
        s = self.settings
        with self.engine.connect() as conn:
            return bool(conn.execute(select(s.c.email_digest).where(
                s.c.user_id == self._user(actor))).scalar())

    def set_digest(self, actor: Actor, on: bool) -> None:
        """Whether the user's e-mail reminders come as one daily digest."""
        s = self.settings
        user = self._user(actor)
        with write_transaction(self.engine) as conn:
            if conn.execute(update(s).where(s.c.user_id == user)
                            .values(email_digest=on)).rowcount == 0:
                conn.execute(s.insert().values(user_id=user, email_digest=on))


class OutboxAdmin:
    """The outbox as administrators see it."""

    def __init__(self, schema: Schema, engine: Engine, clock: Clock) -> None:
        self.table = OutboxWriter(schema).outbox
        self.engine = engine
        self.clock = clock

    @staticmethod
    def _allow(actor: Actor) -> None:
        if not actor.is_admin:
            raise PermissionDenied("Only administrators may look after the outbox.")

    def messages(self, actor: Actor, *, status: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
        self._allow(actor)
        t = self.table
        query = select(t).order_by(t.c.id.desc()).limit(max(1, min(limit, 1000)))
        if status:
            query = query.where(t.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def counts(self, actor: Actor) -> dict[str, int]:
        self._allow(actor)
        t = self.table
        with self.engine.connect() as conn:
            return {s: n for s, n in conn.execute(
                select(t.c.status, func.count()).group_by(t.c.status))}

    def retry(self, actor: Actor, message_id: int) -> None:
        """Send an uncertain or failed message again, from a fresh count of attempts."""
        self._allow(actor)
        t = self.table
        with write_transaction(self.engine) as conn:
            status = conn.execute(select(t.c.status).where(t.c.id == message_id)).scalar()
            if status is None:
                raise NotFound(f"There is no outbox message {message_id}.")
            if status not in RETRYABLE:
                raise Conflict(f"Message {message_id} is {status}; only uncertain or failed "
                               "messages are sent again.")
            conn.execute(update(t).where(t.c.id == message_id).values(
                status="pending", attempts=0, not_before=self.clock.now(), claim=None,
                handed_at=None, lease_until=None,
                reason=f"sent again by {actor.login} (was {status})"))
