"""The engine's tables for people and access: teams, links, tokens, logins, transfers.

Kept beside (and called from) :func:`engine.storage.tables.system_tables`.
Everything that several processes must agree on lives here rather than in
memory: login throttling in particular, so that a second web worker does
not give an attacker a fresh set of attempts.
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

USER = "crm_user.id"


def access_tables(metadata: MetaData) -> None:
    """Add the access tables to ``metadata`` (the user table must be defined too)."""
    # Teams nest: a team's scope covers its sub-teams; its manager belongs to it.
    Table(
        "crm_team",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("name", String(100), nullable=False, unique=True),
        Column("label", String(200), nullable=False),
        Column("parent_id", IdType, ForeignKey("crm_team.id", ondelete="SET NULL"), index=True),
        Column("manager_id", IdType, ForeignKey(USER, ondelete="SET NULL")),
        Column("created_at", UTCDateTime, nullable=False),
    )
    Table(
        "crm_team_member",
        metadata,
        Column("team_id", IdType, ForeignKey("crm_team.id", ondelete="CASCADE"), primary_key=True),
        Column("user_id", IdType, ForeignKey(USER, ondelete="CASCADE"), primary_key=True,
               index=True),
    )
    # A user linked to a record (a dealer's staff to the dealer) for 'linked' and 'via' scopes.
    Table(
        "crm_user_link",
        metadata,
        Column("user_id", IdType, ForeignKey(USER, ondelete="CASCADE"), primary_key=True),
        Column("entity", String(80), primary_key=True),
        Column("record_id", BigInteger, primary_key=True),
        Index("ix_crm_user_link_record", "entity", "record_id"),
    )
    # API tokens: only a SHA-256 of the token is kept; the token is shown once.
    Table(
        "crm_api_token",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("user_id", IdType, ForeignKey(USER, ondelete="CASCADE"), nullable=False,
               index=True),
        Column("name", String(100), nullable=False),
        Column("token_hash", String(64), nullable=False, unique=True),
        Column("prefix", String(16), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("created_by", IdType, nullable=True),
        Column("expires_at", UTCDateTime),
        Column("revoked_at", UTCDateTime),
        Column("last_used_at", UTCDateTime),
    )
    # Failed logins per key (a login, or a source address) within the current window.
    Table(
        "crm_login_guard",
        metadata,
        Column("key", String(200), primary_key=True),
        Column("failures", Integer, nullable=False, default=0),
        Column("window_start", UTCDateTime, nullable=False),
        Column("locked_until", UTCDateTime),
    )
    Table(
        "crm_login_attempt",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("at", UTCDateTime, nullable=False),
        Column("login", String(150), nullable=False),
        Column("source", String(100)),
        Column("outcome", String(20), nullable=False),
        Index("ix_crm_login_attempt_login", "login", "at"),
    )
    # One row per customer resource transfer; its audit rows share its change_id.
    Table(
        "crm_transfer",
        metadata,
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("at", UTCDateTime, nullable=False),
        Column("actor_id", IdType, nullable=True),
        Column("from_user_id", IdType, ForeignKey(USER), nullable=False, index=True),
        Column("to_user_ids", JSON, nullable=False),
        Column("rule", String(200), nullable=False),
        Column("counts", JSON, nullable=False),
        Column("total", BigInteger, nullable=False),
        Column("deactivated", Boolean, nullable=False, default=False),
        Column("change_id", String(32), nullable=False, index=True),
        Column("note", Text),
    )
