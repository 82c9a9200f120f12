"""Writing messages to the outbox, each exactly once.

Both reminders and the ``notify`` actions of stage flows come here: a
cause (a rule's occurrence, a transition) is expanded into one message
per recipient and channel, each with a unique key, and inserted with
"on conflict do nothing" — so a scheduler that looks at the same record
again, or two schedulers at the same time, never create a second copy.
Messages are written in the caller's transaction: a transition that is
rolled back notifies nobody.

Recipients become *targets*: a user (inbox, their e-mail address, their
language, their digest choice) or an address read from a record (an
e-mail or phone field, with the rule's opt-in field next to it).  A
message that cannot or may not be sent is still written, as ``skipped``
with the reason, so "why did this customer get nothing?" has an answer.

Which users may be told at all — only those who may read the record — is
decided before the writer by :mod:`engine.services.messaging.recipients`; a user
target carries the fields hidden from that user, and each message is
rendered without them.

The writer lives in the service layer because services write messages inside
their own transactions (a workflow's ``notify`` action); the notifications
package above it sends what was written and imports it from here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from engine.storage.tables import USER_TABLE, Schema


@dataclass(frozen=True)
class Target:
    """Someone a message goes to, with what is needed for each channel."""

    recipient: str  # user:5, email:li@example.com, phone:+86...
    language: str
    kind: str = "user"  # user | email | phone
    user_id: int | None = None
    email: str | None = None
    phone: str | None = None
    digest: bool = False
    #: channel → why that channel may not be used (opted out, no address...).
    refused: Mapping[str, str] = field(default_factory=dict)
    #: Fields of the record hidden from this user: the text is rendered without them.
    hidden: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Cause:
    """What a message is about, and which occurrence of it (part of the unique key)."""

    kind: str  # reminder | notify | digest
    source: str  # the rule, or workflow.transition
    occurrence: str
    entity: str | None = None
    record_id: int | None = None
    data: Mapping[str, Any] | None = None


#: The recipient of the row that records a cause which reached nobody.
NOBODY = "nobody"


def message_key(cause: Cause, recipient: str, channel: str) -> str:
    """The unique key: rule, record, occurrence, recipient and channel, hashed to fit."""
    parts = [cause.kind, cause.source, cause.entity or "", str(cause.record_id or ""),
             cause.occurrence, recipient, channel]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def applies(target: Target, channel: str) -> bool:
    """Whether a channel makes sense for a target at all (users have no phone on file)."""
    if channel == "in_app":
        return target.kind == "user"
    if channel == "email":
        return target.kind in ("user", "email")
    return target.kind == "phone"


def _address(target: Target, channel: str) -> str | None:
    return {"email": target.email, "sms": target.phone}.get(channel)


def skip_reason(target: Target, channel: str) -> str | None:
    """Why a message to ``target`` on ``channel`` is written ``skipped``, or None."""
    reason = target.refused.get(channel)
    if reason is None and channel != "in_app" and not _address(target, channel):
        reason = "no e-mail address" if channel == "email" else "no phone number"
    return reason


def _render(render: Callable[[str, frozenset[str]], tuple[str | None, str]], language: str,
            hidden: frozenset[str]) -> tuple[str | None, str, str | None]:
    """(subject, body, None), or (None, "", why) when the text needs a hidden field."""
    if not hidden:
        return (*render(language, hidden), None)
    try:
        return (*render(language, hidden), None)
    except Exception as exc:  # noqa: BLE001 - a template's error, on a restricted view only
        return None, "", (f"the text cannot be written without the fields hidden from this "
                          f"user ({', '.join(sorted(hidden))}): {exc}")


class OutboxWriter:
    """Inserts messages once; owned by whoever creates messages (scheduler, workflows)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.outbox = schema.system("crm_outbox")

    def _insert(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(self.outbox).values(rows).on_conflict_do_nothing(
            index_elements=["key"]).returning(self.outbox.c.id)
        # counted from RETURNING: the drivers' rowcount is not reliable for this statement
        return len(conn.execute(statement).all())

    def write(
        self,
        conn: Connection,
        cause: Cause,
        targets: Iterable[Target],
        channels: Sequence[str],
        render: Callable[[str, frozenset[str]], tuple[str | None, str]],
        *,
        now: dt.datetime,
    ) -> int:
        """Write one message per target and channel; the number actually new.

        ``render(language, hidden)`` gives (subject, body) in a language
        without the ``hidden`` fields; each language and set of hidden
        fields is rendered once.  A text that cannot be rendered without a
        user's hidden fields (a template comparing one) is not sent to that
        user: their message is ``skipped`` with the reason.
        """
        rendered: dict[tuple[str, frozenset[str]], tuple[str | None, str, str | None]] = {}
        rows = []
        for target in targets:
            for channel in channels:
                if not applies(target, channel):
                    continue
                view = (target.language, target.hidden)
                if view not in rendered:
                    rendered[view] = _render(render, *view)
                subject, body, problem = rendered[view]
                reason = problem or skip_reason(target, channel)
                address = _address(target, channel)
                status = "skipped" if reason else (
                    "held" if channel == "email" and target.digest else "pending")
                rows.append({
                    "key": message_key(cause, target.recipient, channel), "created_at": now,
                    "kind": cause.kind, "source": cause.source, "entity": cause.entity,
                    "record_id": cause.record_id, "occurrence": cause.occurrence,
                    "recipient": target.recipient, "user_id": target.user_id,
                    "channel": channel, "address": address, "language": target.language,
                    "title": subject, "body": body,
                    "data": dict(cause.data) if cause.data else None, "status": status,
                    "reason": reason, "attempts": 0, "not_before": now,
                })
        return self._insert(conn, rows)

    def write_nobody(self, conn: Connection, cause: Cause, reason: str, *,
                     now: dt.datetime) -> int:
        """Record that a cause reached nobody: one ``skipped`` row (no text) with the reason,
        once per occurrence like any message, so ``crm outbox`` answers "who was told?"."""
        return self._insert(conn, [{
            "key": message_key(cause, NOBODY, "none"), "created_at": now, "kind": cause.kind,
            "source": cause.source, "entity": cause.entity, "record_id": cause.record_id,
            "occurrence": cause.occurrence, "recipient": NOBODY, "user_id": None,
            "channel": "none", "address": None, "language": "en", "title": None, "body": "",
            "data": dict(cause.data) if cause.data else None, "status": "skipped",
            "reason": reason, "attempts": 0, "not_before": now,
        }])


class UserDirectory:
    """Users as targets: active ones only, with their language, e-mail and digest choice."""

    def __init__(self, schema: Schema) -> None:
        self.users = schema.system(USER_TABLE)
        self.roles = schema.system("crm_user_role")
        self.settings = schema.system("crm_notification_setting")

    def _targets(self, conn: Connection, where: Any) -> list[Target]:
        u, s = self.users, self.settings
        query = (select(u.c.id, u.c.email, u.c.language, s.c.email_digest)
                 .select_from(u.outerjoin(s, s.c.user_id == u.c.id))
                 .where(u.c.active.is_(True), where).order_by(u.c.id))
        return [Target(f"user:{r.id}", r.language or "en", user_id=r.id, email=r.email or None,
                       digest=bool(r.email_digest))
                for r in conn.execute(query)]

    def users_by_id(self, conn: Connection, ids: Iterable[int]) -> list[Target]:
        wanted = sorted({i for i in ids if i is not None})
        return self._targets(conn, self.users.c.id.in_(wanted)) if wanted else []

    def users_with_role(self, conn: Connection, role: str) -> list[Target]:
        members = select(self.roles.c.user_id).where(self.roles.c.role == role)
        return self._targets(conn, self.users.c.id.in_(members))


def unique_targets(targets: Iterable[Target]) -> list[Target]:
    """Each recipient once (the owner who also has the role gets one message)."""
    seen: dict[str, Target] = {}
    for target in targets:
        seen.setdefault(target.recipient, target)
    return list(seen.values())
