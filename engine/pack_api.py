"""The pack API: the one engine module a pack's Python imports (docs/hooks.md).

A pack's ``hooks.py``, ``reports.py``, jobs, migrations and helpers import
from here and nowhere else in the engine (tests/test_pack_surface.py keeps
it so), which lets the engine reorganise its inside without breaking a
pack.  Pack code is handed what it works with — it never builds an engine
service nor opens a transaction of its own inside a write:

==========================  ======================================================
a pack function gets …      and finds on it
==========================  ======================================================
:class:`RecordHookContext`  (entity hooks) ``records``, ``workflows``, ``conn``,
                            ``actor``, ``values``, ``previous``, ``now``, ``clock``
:class:`HookContext`        (workflow ``hook:`` actions) the same, plus the moved
                            ``record`` and the ``transition``
:class:`JobContext`         (scheduled jobs) ``records``, ``actor``, ``today``
:class:`ReportRequest`      (report widgets) ``records``, ``actor``, ``params``
==========================  ======================================================

- records: ``context.records`` (:class:`Records`) reads and writes; pass
  ``conn=context.conn`` to stay in the write's transaction.
- workflows: ``context.workflows`` (:class:`Workflows`) moves another record,
  the site's own service, so the site's ``custom/hooks.py`` runs as it would
  for a click.
- ledgers: ``context.records.ledgers.balance(...)`` (docs/ledger.md).
- safe read-modify-write: ``records.locked``, ``locked_all``, ``update_with``
  and ``lock_name`` (docs/hooks.md, "Changing another record safely").
- errors: raise :class:`ValidationFailed` (field messages),
  :class:`TransitionRefused` (a move that may not happen, with
  :class:`Refusal` reasons) or another engine error to undo the whole write.
- the outbox: :func:`notify` writes messages in the write's transaction, so a
  write that is undone tells nobody and one that commits tells each once.
- i18n: :func:`say` and :func:`message` answer in the actor's language.
- figures: :class:`Figure` and :class:`Series` are what a report returns.

Code that runs outside any write — a scheduled job, a demo generator, a
till command — opens its writes with :func:`transaction`.
"""

from __future__ import annotations

import dataclasses as _dataclasses
from collections.abc import Iterator as _Iterator
from collections.abc import Mapping as _Mapping
from collections.abc import Sequence as _Sequence
from contextlib import contextmanager as _contextmanager

from sqlalchemy import Connection as _Connection

from engine.context import Actor, Clock
from engine.errors import (
    ActionFailed,
    CrmError,
    DefinitionError,
    LedgerRefused,
    NotFound,
    PermissionDenied,
    Problem,
    Refusal,
    TransitionRefused,
    ValidationFailed,
)
from engine.i18n import message
from engine.jobs.context import JobContext
from engine.services.messaging.outbox import Cause as _Cause
from engine.services.messaging.outbox import UserDirectory as _UserDirectory
from engine.services.messaging.outbox import unique_targets as _unique_targets
from engine.services.messaging.recipients import Notifier as _Notifier
from engine.services.records.duplicates import normalise_name, normalise_phone
from engine.services.records.hooks import RecordHookContext
from engine.services.records.service import RecordService as Records
from engine.services.views.figures import Figure, ReportRequest, Series
from engine.services.workflows.actions import HookContext
from engine.services.workflows.service import WorkflowService as Workflows
from engine.site import Site
from engine.storage.database import write_transaction as _write_transaction
from engine.storage.queries import Filter

__all__ = [
    "ActionFailed", "Actor", "Clock", "CrmError", "DefinitionError", "Figure", "Filter",
    "HookContext", "JobContext", "LedgerRefused", "NotFound", "PermissionDenied", "Problem",
    "RecordHookContext", "Records", "Refusal", "ReportRequest", "Series", "Site",
    "TransitionRefused", "ValidationFailed", "Workflows", "message", "normalise_name",
    "normalise_phone", "notify", "say", "transaction", "with_pack_rights",
]


@_contextmanager
def transaction(records: Records) -> _Iterator[_Connection]:
    """A write transaction on the site's database, committed when the block ends.

    For pack code that runs outside a write (a job, a demo generator, a till
    command): ``with transaction(records) as conn: records.create(..., conn=conn)``.
    A hook never opens one — it writes on ``context.conn``, so a refusal
    anywhere undoes the whole write.
    """
    with _write_transaction(records.engine) as conn:
        yield conn


def with_pack_rights(actor: Actor) -> Actor:
    """``actor`` with the pack's own rights, still recorded under the actor's id.

    For the writes a pack's rule makes on its own authority (a delivery
    posting its stock moves, a claim creating the end customer), which the
    acting user's role may not allow by hand.
    """
    return _dataclasses.replace(actor, is_admin=True)


def say(actor: Actor, en: str, zh: str) -> str:
    """The text in the actor's language (Chinese for ``zh*``, else English)."""
    return zh if (actor.language or "").startswith("zh") else en


def notify(
    context: RecordHookContext | HookContext, source: str, occurrence: str,
    to: _Sequence[int | str], text: _Mapping[str, str], *,
    subject: _Mapping[str, str] | None = None, channels: _Sequence[str] = ("in_app",),
    record: _Mapping[str, object] | None = None,
) -> int:
    """Write messages about the hook's record to the outbox; how many were written.

    ``to`` holds user ids and ``role:<role>``; each user is told once, in
    their language (``text`` and ``subject`` are ``{en:, zh:}``), and only if
    they may read the record.  ``source`` names the rule (``trading.low_stock``)
    and ``occurrence`` what makes this message once (``f"v{record['version']}"``):
    the same source, occurrence and recipient is never written twice.  The
    messages are written on ``context.conn`` and delivered by the worker after
    the write commits, like a workflow's ``notify:`` action.
    """
    about = dict(record if record is not None else getattr(context, "record", context.values))
    users = _UserDirectory(context.records.schema)
    ids = [who for who in to if isinstance(who, int)]
    targets = users.users_by_id(context.conn, ids)
    for who in to:
        if isinstance(who, str) and who.startswith("role:"):
            targets += users.users_with_role(context.conn, who.split(":", 1)[1])
    cause = _Cause("notify", source, occurrence, context.entity.key, about.get("id"),
                   {"actor_id": context.actor.user_id})

    def texts(language: str, _hidden: frozenset[str]) -> tuple[str | None, str]:
        shown = text.get(language) or text["en"]
        return ((subject.get(language) or subject["en"]) if subject else None), shown

    return _Notifier(context.records).write(
        context.conn, cause, _unique_targets(targets), channels, texts,
        named=[str(who) for who in to], now=context.now).messages
