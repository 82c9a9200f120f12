"""Delivering the outbox: claim with a lease, hand over, record — and what a crash leaves.

A worker *claims* due messages in one short write transaction (``SELECT
... FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the transaction
takes the write lock up front with ``BEGIN IMMEDIATE``): each claimed row
becomes ``sending`` with a fresh claim token and a lease.  Two workers
never claim the same row, and every later write of a worker is
conditional on its token, so a worker that lost its claim changes
nothing.

Per channel:

- ``in_app``: the inbox row is inserted and the message marked ``sent``
  in one transaction (the inbox row is unique per message): exactly once.
- ``email`` / ``sms``: just before the hand-over (SMTP ``DATA``, the HTTP
  request) the worker records ``handed_at`` — only if it still holds the
  lease, otherwise it stops without sending.  After the far end accepted
  the message it is marked ``sent``.  Refusals are retried with
  exponential backoff up to ``max_attempts``, then ``failed`` with the
  reason; permanent refusals fail at once.

When a worker dies, its rows stay ``sending`` until the lease runs out.
Then :meth:`OutboxDelivery.recover` looks at ``handed_at``: not set means
nothing left the building, so the message is sent again; set means the
far end may have it, and SMTP has no way to ask — so the row becomes
``uncertain`` and is *not* sent again (an SMS gateway that accepts an
idempotency key is the exception: the message is re-sent with the same
key and the gateway drops the copy).  Uncertain rows are listed by
``crm outbox`` and sent again only when someone says so.

Before a message to a user is handed over, the worker asks again whether
that user may still read the record (engine/services/messaging/recipients.py): one
whose access ended while the message waited gets nothing, and the row
becomes ``skipped`` with the reason.  A digest is checked message by
message and sent with those still readable.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.context import Clock
from engine.metadata.durations import zone
from engine.notifications.channels import (
    Channel,
    DeliveryUncertain,
    PermanentFailure,
    TransientFailure,
    default_channels,
)
from engine.notifications.digest import digest_body, withhold_unreadable
from engine.notifications.settings import NotificationSettings
from engine.services.messaging.recipients import RecipientAccess
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """This worker no longer holds the message (its lease ran out and another took it)."""


def worker_name() -> str:
    """Host, process and a random part: unique per worker object."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class OutboxDelivery:
    """Delivers due outbox rows; one per worker (see the module docstring)."""

    def __init__(self, schema: Schema, engine: Engine, clock: Clock,
                 settings: NotificationSettings, *, access: RecipientAccess,
                 channels: Mapping[str, Channel] | None = None,
                 worker: str | None = None, timezone: str = "Asia/Shanghai") -> None:
        self.schema = schema
        self.access = access
        self.engine = engine
        self.clock = clock
        self.settings = settings
        self.channels = dict(channels if channels is not None else default_channels(settings))
        self.worker = worker or worker_name()
        self.zone = zone(timezone)
        self.outbox = schema.system("crm_outbox")
        self.inbox = schema.system("crm_notification")

    # -- claiming ------------------------------------------------------------------

    def _quiet_channels(self, now: dt.datetime) -> tuple[str, ...]:
        quiet = self.settings.quiet_hours
        if quiet is None or not quiet.contains(now.astimezone(self.zone).time()):
            return ()
        return quiet.channels

    def claim(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Take up to ``limit`` due messages for this worker; they are ``sending`` now."""
        o = self.outbox
        now = self.clock.now()
        where = [o.c.status == "pending", o.c.not_before <= now]
        quiet = self._quiet_channels(now)
        if quiet:
            where.append(o.c.channel.not_in(quiet))
        token = uuid.uuid4().hex
        with write_transaction(self.engine) as conn:
            ids = list(conn.execute(
                select(o.c.id).where(*where).order_by(o.c.not_before, o.c.id)
                .limit(limit or self.settings.batch).with_for_update(skip_locked=True)
            ).scalars())
            if not ids:
                return []
            conn.execute(update(o).where(o.c.id.in_(ids), o.c.status == "pending").values(
                status="sending", claim=token, lease_until=now + self.settings.lease,
                attempts=o.c.attempts + 1, handed_at=None))
            rows = conn.execute(select(o).where(o.c.id.in_(ids), o.c.claim == token)
                                .order_by(o.c.id)).mappings()
            return [dict(r) for r in rows]

    def recover(self) -> dict[str, int]:
        """Rows left ``sending`` by a worker whose lease ran out: send again or mark uncertain."""
        o = self.outbox
        now = self.clock.now()
        found = {"retried": 0, "uncertain": 0}
        with write_transaction(self.engine) as conn:
            rows = list(conn.execute(
                select(o.c.id, o.c.channel, o.c.handed_at)
                .where(o.c.status == "sending", o.c.lease_until < now)
                .with_for_update(skip_locked=True)).mappings())
            for row in rows:
                channel = self.channels.get(row["channel"])
                safe = row["handed_at"] is None or row["channel"] == "in_app" or bool(
                    getattr(channel, "idempotent", False))
                if safe:
                    conn.execute(update(o).where(o.c.id == row["id"]).values(
                        status="pending", claim=None, lease_until=None, handed_at=None,
                        reason="taken over: the worker stopped before handing it over"
                        if row["handed_at"] is None else
                        "sent again with the same idempotency key after the worker stopped"))
                    found["retried"] += 1
                else:
                    # the claim is kept: if that worker is only slow, its "sent" still lands
                    conn.execute(update(o).where(o.c.id == row["id"]).values(
                        status="uncertain",
                        reason="the worker stopped after handing the message over at "
                               f"{row['handed_at'].isoformat()} and before recording the result; "
                               "it may have arrived, so it was not sent again (crm outbox retry "
                               "sends it)"))
                    found["uncertain"] += 1
        return found

    # -- sending -------------------------------------------------------------------

    def _mine(self, row: Mapping[str, Any]) -> Any:
        o = self.outbox
        return and_(o.c.id == row["id"], o.c.claim == row["claim"])

    def _handoff(self, row: Mapping[str, Any]) -> None:
        o = self.outbox
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            done = conn.execute(update(o).where(
                self._mine(row), o.c.status == "sending", o.c.lease_until > now,
            ).values(handed_at=now)).rowcount
        if done != 1:
            raise LeaseLost(f"message {row['id']} is no longer held by {self.worker}")

    def _finish(self, conn: Connection, row: Mapping[str, Any], **values: Any) -> bool:
        o = self.outbox
        status = or_(o.c.status == "sending", o.c.status == "uncertain")
        return conn.execute(update(o).where(self._mine(row), status)
                            .values(lease_until=None, **values)).rowcount == 1

    def _deliver_in_app(self, row: Mapping[str, Any]) -> str:
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            if not self._finish(conn, row, status="sent", sent_at=now, reason=None):
                return "lost"
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(dialect.insert(self.inbox).values(
                outbox_id=row["id"], user_id=row["user_id"], created_at=now,
                entity=row["entity"], record_id=row["record_id"], subject=row["title"],
                body=row["body"]).on_conflict_do_nothing(index_elements=["outbox_id"]))
        return "sent"

    def _screen(self, row: Mapping[str, Any], verdicts: dict[tuple, str | None]
                ) -> tuple[Mapping[str, Any], str | None]:
        """The row as it may be sent now, or why it may not be sent at all.

        A message about a record goes only to a user who may still read it
        (asked once per user and record in ``verdicts``, one claimed batch);
        a digest keeps the messages still readable (its text rewritten, in
        the row too, when some were dropped).
        """
        if row["user_id"] is None:
            return row, None
        if row["kind"] != "digest":
            if not row["entity"] or row["record_id"] is None:
                return row, None
            about = (row["user_id"], row["entity"], row["record_id"])
            if about not in verdicts:
                verdicts[about] = self.access.refusal(*about)
            return row, verdicts[about]
        o = self.outbox
        ids = list((row["data"] or {}).get("messages") or [])
        with write_transaction(self.engine) as conn:
            parts = [dict(r) for r in conn.execute(
                select(o).where(o.c.id.in_(ids), o.c.digest_id == row["id"],
                                o.c.status == "digested")
                .order_by(o.c.created_at, o.c.id)).mappings()]
            if not parts:
                return row, None
            kept = withhold_unreadable(conn, o, self.access, parts,
                                       f"left out of digest {row['id']} at delivery")
            if not kept:
                return row, "none of its messages may still be read by their recipient"
            if len(kept) == len(parts):
                return row, None
            body = digest_body(kept)
            conn.execute(update(o).where(self._mine(row)).values(body=body))
        return {**row, "body": body}, None

    def deliver(self, row: Mapping[str, Any],
                verdicts: dict[tuple, str | None] | None = None) -> str:
        """Send one claimed row; the state it ends in (``lost`` if another worker took it,
        ``withheld`` if its user may no longer read the record)."""
        row, refusal = self._screen(row, {} if verdicts is None else verdicts)
        if refusal is not None:
            with write_transaction(self.engine) as conn:
                if not self._finish(conn, row, status="skipped",
                                    reason=f"withheld at delivery: {refusal}"):
                    return "lost"
            log.warning("outbox message %s withheld: %s", row["id"], refusal)
            return "withheld"
        if row["channel"] == "in_app":
            return self._deliver_in_app(row)
        channel = self.channels.get(row["channel"])
        try:
            if channel is None:
                raise PermanentFailure(f"no channel '{row['channel']}' is set up")
            channel.send(row, lambda: self._handoff(row))
        except LeaseLost:
            log.warning("outbox message %s: lease lost before the hand-over", row["id"])
            return "lost"
        except PermanentFailure as exc:
            return self._failed(row, exc.reason)
        except DeliveryUncertain as exc:
            with write_transaction(self.engine) as conn:
                self._finish(conn, row, status="uncertain", reason=exc.reason)
            return "uncertain"
        except TransientFailure as exc:
            return self._retry(row, exc.reason)
        except Exception as exc:  # noqa: BLE001 - a bug in a channel must not stop the worker
            log.exception("outbox message %s: channel %s crashed", row["id"], row["channel"])
            return self._retry(row, f"{exc.__class__.__name__}: {exc}")
        with write_transaction(self.engine) as conn:
            self._finish(conn, row, status="sent", sent_at=self.clock.now(), reason=None)
        return "sent"

    def _failed(self, row: Mapping[str, Any], reason: str) -> str:
        with write_transaction(self.engine) as conn:
            self._finish(conn, row, status="failed", reason=reason)
        return "failed"

    def _retry(self, row: Mapping[str, Any], reason: str) -> str:
        attempts = row["attempts"]
        if attempts >= self.settings.max_attempts:
            return self._failed(row, f"gave up after {attempts} attempts: {reason}")
        wait = self.settings.retry_delay(attempts)
        with write_transaction(self.engine) as conn:
            self._finish(conn, row, status="pending", claim=None, handed_at=None,
                         not_before=self.clock.now() + wait,
                         reason=f"attempt {attempts} failed: {reason}")
        return "retry"

    def run(self, limit: int | None = None) -> dict[str, int]:
        """Recover stopped workers' rows, then deliver batches until none is due (or ``limit``)."""
        counts: dict[str, int] = dict(self.recover())
        done = 0
        while limit is None or done < limit:
            batch = self.claim(min(self.settings.batch, limit - done) if limit else None)
            if not batch:
                break
            verdicts: dict[tuple, str | None] = {}  # who may read what, for this batch
            for row in batch:
                outcome = self.deliver(row, verdicts)
                counts[outcome] = counts.get(outcome, 0) + 1
                done += 1
        return {k: v for k, v in counts.items() if v}
