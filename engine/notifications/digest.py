"""The daily e-mail digest: one e-mail a day instead of one per reminder.

A user who chose the digest (``crm notifications digest LOGIN on``, or
the inbox page) gets their e-mail messages written as ``held``.  Once a
day, from ``digest_at`` (site time), the digest job gathers each user's
held messages into one outbox message — keyed by user and day, so it is
created once — and marks them ``digested`` with its id, in the same
transaction.  The digest itself is then delivered like any e-mail.

A held message whose recipient may no longer read its record (or is no
longer active) is left out and marked ``skipped`` with the reason; the
delivery checks the digest's messages once more before sending it
(engine/services/messaging/recipients.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from engine.context import Clock
from engine.metadata.durations import zone
from engine.notifications.settings import NotificationSettings
from engine.services.messaging.outbox import Cause, OutboxWriter, Target
from engine.services.messaging.recipients import RecipientAccess
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

_HEADINGS = {"en": "Your reminders of {day}", "zh": "{day} 的提醒"}


def digest_body(messages: Iterable[Mapping[str, Any]]) -> str:
    """The digest's text: a line per message, in the order given."""
    return "\n".join(f"- {m['title']}: {m['body']}" if m["title"] else f"- {m['body']}"
                     for m in messages)


def withhold_unreadable(conn: Connection, outbox: Any, access: RecipientAccess,
                        messages: list[dict[str, Any]], why: str) -> list[dict[str, Any]]:
    """The messages whose user may still read their record; the others are marked
    ``skipped`` with the reason (``why`` says where they were stopped)."""
    kept = []
    for message in messages:
        refusal = None
        if message["user_id"] is not None and message["entity"] and \
                message["record_id"] is not None:
            refusal = access.refusal(message["user_id"], message["entity"],
                                     message["record_id"], conn=conn)
        if refusal is None:
            kept.append(message)
            continue
        conn.execute(update(outbox).where(outbox.c.id == message["id"]).values(
            status="skipped", reason=f"{why}: {refusal}"))
    return kept


class DigestJob:
    """Gathers held e-mail messages into one digest per user and day."""

    def __init__(self, schema: Schema, engine: Engine, clock: Clock,
                 settings: NotificationSettings, *, access: RecipientAccess,
                 timezone: str = "Asia/Shanghai") -> None:
        self.engine = engine
        self.access = access
        self.clock = clock
        self.settings = settings
        self.zone = zone(timezone)
        self.outbox = schema.system("crm_outbox")
        self.writer = OutboxWriter(schema)

    def run(self) -> int:
        """Write today's digests if their time has come; how many were written."""
        now = self.clock.now()
        local = now.astimezone(self.zone)
        if local.time() < self.settings.digest_at:
            return 0
        o = self.outbox
        with self.engine.connect() as conn:
            users = list(conn.execute(select(o.c.user_id).where(
                o.c.status == "held", o.c.user_id.is_not(None)).distinct()).scalars())
        return sum(self._digest(user_id, local.date(), now) for user_id in users)

    def _digest(self, user_id: int, day: dt.date, now: dt.datetime) -> int:
        o = self.outbox
        with write_transaction(self.engine) as conn:
            held = [dict(r) for r in conn.execute(
                select(o).where(o.c.status == "held", o.c.user_id == user_id)
                .order_by(o.c.created_at, o.c.id).with_for_update(skip_locked=True)).mappings()]
            held = withhold_unreadable(conn, o, self.access, held, "withheld from the digest")
            if not held:
                return 0
            language = held[-1]["language"]
            heading = _HEADINGS.get(language, _HEADINGS["en"]).format(day=day.isoformat())
            body = digest_body(held)
            target = Target(f"user:{user_id}", language, user_id=user_id,
                            email=held[-1]["address"])
            cause = Cause("digest", "daily", day.isoformat(),
                          data={"messages": [m["id"] for m in held]})
            written = self.writer.write(conn, cause, [target], ["email"],
                                        lambda _lang, _hidden: (heading, body), now=now)
            if not written:  # today's digest went out already: these wait for tomorrow's
                return 0
            digest_id = conn.execute(select(o.c.id).where(
                o.c.kind == "digest", o.c.user_id == user_id, o.c.occurrence == day.isoformat(),
            )).scalar_one()
            conn.execute(update(o).where(o.c.id.in_([m["id"] for m in held])).values(
                status="digested", digest_id=digest_id, reason=f"sent in digest {digest_id}"))
        return 1
