"""The daily e-mail digest: one e-mail a day instead of one per reminder.

A user who chose the digest (``crm notifications digest LOGIN on``, or
the inbox page) gets their e-mail messages written as ``held``.  Once a
day, from ``digest_at`` (site time), the digest job gathers each user's
held messages into one outbox message — keyed by user and day, so it is
created once — and marks them ``digested`` with its id, in the same
transaction.  The digest itself is then delivered like any e-mail.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select, update

from engine.context import Clock
from engine.metadata.durations import zone
from engine.notifications.outbox import Cause, OutboxWriter, Target
from engine.notifications.settings import NotificationSettings
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

_HEADINGS = {"en": "Your reminders of {day}", "zh": "{day} 的提醒"}


class DigestJob:
    """Gathers held e-mail messages into one digest per user and day."""

    def __init__(self, schema: Schema, engine: Engine, clock: Clock,
                 settings: NotificationSettings, *, timezone: str = "Asia/Shanghai") -> None:
        self.engine = engine
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
            if not held:
                return 0
            language = held[-1]["language"]
            heading = _HEADINGS.get(language, _HEADINGS["en"]).format(day=day.isoformat())
            lines = [f"- {m['title']}: {m['body']}" if m["title"] else f"- {m['body']}"
                     for m in held]
            target = Target(f"user:{user_id}", language, user_id=user_id,
                            email=held[-1]["address"])
            cause = Cause("digest", "daily", day.isoformat(),
                          data={"messages": [m["id"] for m in held]})
            written = self.writer.write(conn, cause, [target], ["email"],
                                        lambda _lang: (heading, "\n".join(lines)), now=now)
            if not written:  # today's digest went out already: these wait for tomorrow's
                return 0
            digest_id = conn.execute(select(o.c.id).where(
                o.c.kind == "digest", o.c.user_id == user_id, o.c.occurrence == day.isoformat(),
            )).scalar_one()
            conn.execute(update(o).where(o.c.id.in_([m["id"] for m in held])).values(
                status="digested", digest_id=digest_id, reason=f"sent in digest {digest_id}"))
        return 1
