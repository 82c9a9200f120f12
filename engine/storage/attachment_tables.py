"""The tables of working documents: files attached to records, calendar feeds.

``crm_attachment`` describes each file and ties it to one record; its
``key`` is random (256 bits), so a download address can be neither guessed
nor enumerated — and even a known key is served only to someone who may
read the record.  ``crm_attachment_blob`` holds the bytes when the site
keeps files in its database (several app machines, one store).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
)

from engine.storage.types import IdType, UTCDateTime


def attachment_tables(metadata: MetaData, user_table: str) -> None:
    Table(
        "crm_attachment",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("key", String(64), nullable=False, unique=True),
        Column("entity", String(80), nullable=False),
        Column("record_id", BigInteger, nullable=False),
        Column("name", String(255), nullable=False),
        Column("content_type", String(120), nullable=False),
        Column("size", BigInteger, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("store", String(12), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("created_by", IdType, ForeignKey(f"{user_table}.id", ondelete="SET NULL"),
               nullable=True),
        Index("ix_crm_attachment_record", "entity", "record_id"),
    )
    Table(
        "crm_attachment_blob",
        metadata,
        Column("attachment_id", IdType, ForeignKey("crm_attachment.id", ondelete="CASCADE"),
               primary_key=True),
        Column("content", LargeBinary, nullable=False),
    )
    # A user's secret calendar-feed address, stored as a hash; revoked, never deleted.
    Table(
        "crm_calendar_feed",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("user_id", IdType, ForeignKey(f"{user_table}.id", ondelete="CASCADE"),
               nullable=False),
        Column("token_hash", String(64), nullable=False, unique=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("revoked_at", UTCDateTime, nullable=True),
        Index("ix_crm_calendar_feed_user", "user_id"),
    )
