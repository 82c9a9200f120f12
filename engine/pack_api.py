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
- i18n: :func:`say` and :func:`message` answer in the actor's language.
- figures: :class:`Figure` and :class:`Series` are what a report returns.

Code that runs outside any write — a scheduled job, a demo generator, a
till command — opens its writes with :func:`transaction`.
"""

from __future__ import annotations

import dataclasses as _dataclasses
from collections.abc import Iterator as _Iterator
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
from engine.services.duplicates import normalise_name, normalise_phone
from engine.services.figures import Figure, ReportRequest, Series
from engine.services.record_hooks import RecordHookContext
from engine.services.records import RecordService as Records
from engine.services.workflow_actions import HookContext
from engine.services.workflows import WorkflowService as Workflows
from engine.site import Site
from engine.storage.database import write_transaction as _write_transaction
from engine.storage.queries import Filter

__all__ = [
    "ActionFailed", "Actor", "Clock", "CrmError", "DefinitionError", "Figure", "Filter",
    "HookContext", "JobContext", "LedgerRefused", "NotFound", "PermissionDenied", "Problem",
    "RecordHookContext", "Records", "Refusal", "ReportRequest", "Series", "Site",
    "TransitionRefused", "ValidationFailed", "Workflows", "message", "normalise_name",
    "normalise_phone", "say", "transaction", "with_pack_rights",
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
