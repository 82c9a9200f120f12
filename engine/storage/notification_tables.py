"""The tables of notifications: the outbox, the in-app inbox, preferences and job runs.

The outbox holds one row per message *to one recipient on one channel*,
so each can be delivered, retried, skipped or failed on its own.  Its
``key`` is unique: it is made of the rule (or workflow transition), the
record, the occurrence (which due date, which stage entry...), the
recipient and the channel, so the scheduler may look at the same record
any number of times and the message is still created once.  See
docs/reminders.md for the states and the delivery guarantee.

Columns added since the first version of this table are nullable or have
a server default, so a database holding rows of that version migrates;
the writer always fills ``key`` and ``not_before``, and old rows, which
lack them, are never claimed.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from engine.storage.types import IdType, UTCDateTime

OUTBOX_STATES: tuple[str, ...] = ("pending", "sending", "sent", "failed", "skipped", "uncertain",
                                  "held", "digested")


def notification_tables(metadata: MetaData, user_table: str) -> None:
    """Add the notification tables to ``metadata``."""
    Table(
        "crm_outbox",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("key", String(64)),  # always set by the writer; unique (index below)
        Column("created_at", UTCDateTime, nullable=False),
        Column("kind", String(40), nullable=False),  # reminder | notify | digest
        Column("source", String(160), nullable=False, server_default=""),  # rule, workflow.transition
        Column("entity", String(80)),
        Column("record_id", BigInteger),
        Column("occurrence", String(120), nullable=False, server_default=""),
        Column("recipient", String(200), nullable=False, server_default=""),  # user:5, email:a@b.c
        Column("user_id", IdType, nullable=True),
        Column("channel", String(10), nullable=False, server_default="in_app"),
        Column("address", String(254)),
        Column("language", String(8), nullable=False, default="en", server_default="en"),
        Column("title", Text),  # the subject line ("subject" was a JSON column before)
        Column("body", Text, nullable=False, server_default=""),
        Column("data", JSON),
        Column("status", String(20), nullable=False, default="pending"),
        Column("reason", Text),
        Column("attempts", Integer, nullable=False, default=0, server_default="0"),
        Column("not_before", UTCDateTime),  # always set by the writer
        Column("claim", String(64)),
        Column("lease_until", UTCDateTime),
        Column("handed_at", UTCDateTime),
        Column("sent_at", UTCDateTime),
        Column("digest_id", BigInteger),
        Index("uq_crm_outbox_key", "key", unique=True),
        Index("ix_crm_outbox_due", "status", "not_before"),
        Index("ix_crm_outbox_record", "entity", "record_id"),
    )
    # The in-app inbox: one row per delivered in_app message (outbox_id unique, so a
    # message reaches an inbox once however often its delivery is retried).
    Table(
        "crm_notification",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("outbox_id", BigInteger, nullable=False, unique=True),
        Column("user_id", IdType, ForeignKey(f"{user_table}.id", ondelete="CASCADE"),
               nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("entity", String(80)),
        Column("record_id", BigInteger),
        Column("subject", Text),
        Column("body", Text, nullable=False),
        Column("read_at", UTCDateTime),
        Index("ix_crm_notification_user", "user_id", "read_at"),
    )
    Table(
        "crm_notification_setting",
        metadata,
        Column("user_id", IdType, ForeignKey(f"{user_table}.id", ondelete="CASCADE"),
               primary_key=True),
        Column("email_digest", Boolean, nullable=False, default=False),
    )
    # One row per run of a background job (scheduler scan, delivery, digest).
    Table(
        "crm_job_run",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("job", String(80), nullable=False),
        Column("worker", String(120), nullable=False),
        Column("started_at", UTCDateTime, nullable=False),
        Column("finished_at", UTCDateTime),
        Column("status", String(10), nullable=False),  # running | ok | failed
        Column("summary", JSON),
        Column("error", Text),
        # A scheduled job's occurrence (UTC minute): unique per job, so one worker runs it.
        Column("occurrence", String(40)),
        Index("ix_crm_job_run_job", "job", "started_at"),
        Index("uq_crm_job_run_occurrence", "job", "occurrence", unique=True),
    )
