"""Running an entity's hooks (``hooks:`` in its YAML) around the writes of the record service.

Every write path of :class:`~engine.services.records.service.RecordService` — one
record or a batch — calls :class:`RecordHooks` at the same points, inside
the write's transaction:

- ``before_save``: after coercion, defaults and computed fields, before
  validation.  A hook may change ``context.values`` (the changed values are
  typed again, computed fields recomputed and the whole record validated)
  and report field messages with ``context.error``; those are shown with
  the engine's own, all at once.
- ``after_save``: after the row, its lines and its audit rows are written.
- ``before_delete`` / ``after_delete``: around the deletion of one record
  (also a record a deletion cascades to).
- ``after_transition``: after a stage change and its actions (called by
  the workflow service).

A hook that raises undoes the whole write (or transition): an engine error
(``ValidationFailed`` with field messages, ``TransitionRefused``…) reaches
the caller as it is; any other exception becomes :class:`ActionFailed`
naming the hook.  See docs/hooks.md for the API a pack author uses.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from engine.context import Actor, Clock
from engine.errors import ActionFailed, CrmError, ValidationFailed
from engine.metadata.model import SYSTEM_COLUMNS, Entity, HookRef, Label
from engine.metadata.pack_python import PackModules
from engine.metadata.values import ValueProblem, coerce
from engine.metadata.workflow_model import workflow_for
from engine.services.records.compute import ComputedOrder, apply_computed
from engine.services.records.stage_rules import StageMove

if TYPE_CHECKING:
    from engine.services.records.inputs import FieldErrors
    from engine.services.records.service import RecordService
    from engine.services.workflows.service import WorkflowService


@dataclass
class RecordHookContext:
    """What a record hook gets — everything explicit, nothing to import from the engine.

    ``values`` is the record being written (in ``before_save`` a dict the hook
    may change; elsewhere the saved, deleted or moved record).  ``previous``
    is the record as it was before (``None`` when it is being created).  Read
    and write other records with ``records`` passing ``conn=context.conn``
    to stay in the same transaction (``records.locked``/``update_with`` to
    change one from its current values); ``now`` is the write's time from the
    site's ``clock``.  ``transition`` is set when a stage change causes the
    write (``workflow``, ``transition``, ``to_stage``).
    """

    event: str
    actor: Actor
    entity: Entity
    values: dict[str, Any]
    previous: dict[str, Any] | None
    records: RecordService
    conn: Connection
    now: dt.datetime
    clock: Clock
    transition: StageMove | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    #: The site's workflow service: move another record with
    #: ``workflows.transition(actor, entity, id, stage, conn=context.conn)``.
    workflows: WorkflowService | None = None

    @property
    def is_new(self) -> bool:
        """Whether the record is being created (it has no previous values)."""
        return self.previous is None

    def changed(self, name: str) -> bool:
        """Whether this write changes field ``name`` (always true for a new record's values)."""
        if self.previous is None:
            return self.values.get(name) not in (None, "", [])
        return self.values.get(name) != self.previous.get(name)

    def error(self, name: str, text: str | Mapping[str, str]) -> None:
        """Report a message under field ``name`` (``{en:, zh:}`` picks the actor's language).

        The write is refused after every ``before_save`` hook has run, with
        these messages and the engine's own validation messages together.
        """
        shown = Label.from_yaml(text).get(self.actor.language) if isinstance(text, Mapping) \
            else str(text)
        self.errors.setdefault(name, []).append(shown)


class RecordHooks:
    """Dispatches the hooks of entities; owned by one record service."""

    def __init__(self, modules: PackModules | None = None) -> None:
        self.modules = modules or PackModules()
        #: The site's workflow service (it binds itself): hooks move records with it.
        self.workflows: WorkflowService | None = None
        self._order = ComputedOrder()

    @staticmethod
    def declared(entity: Entity, event: str) -> tuple[HookRef, ...]:
        return entity.hooks.get(event, ())

    def _call(self, ref: HookRef, context: RecordHookContext) -> None:
        function = self.modules.function(ref.file, ref.function)
        try:
            function(context)
        except CrmError:
            raise
        except Exception as exc:
            where = f" ({ref.origin})" if ref.origin else ""
            raise ActionFailed(
                f"The {ref.event} hook '{ref.function}' of {context.entity.key}{where} failed: "
                f"{exc.__class__.__name__}: {exc}"
            ) from exc

    def before_save(
        self, records: RecordService, conn: Connection, actor: Actor, entity: Entity,
        record: dict[str, Any], previous: Mapping[str, Any] | None, errors: FieldErrors,
        *, now: dt.datetime, move: StageMove | None = None,
    ) -> set[str]:
        """Run the ``before_save`` hooks on ``record`` (changed in place); the keys they changed.

        Messages the hooks report join ``errors``; the caller validates and
        raises as it always does.
        """
        refs = self.declared(entity, "before_save")
        if not refs:
            return set()
        before = copy.deepcopy(record)
        context = RecordHookContext(
            event="before_save", actor=actor, entity=entity, values=record,
            previous=None if previous is None else dict(previous), records=records, conn=conn,
            now=now, clock=records.clock, transition=move, workflows=self.workflows,
        )
        for ref in refs:
            self._call(ref, context)
        changed = {k for k in set(record) | set(before)
                   if k not in before or k not in record or record[k] != before[k]}
        self._refuse_protected(records, entity, changed, creating=previous is None, refs=refs)
        for key in changed:
            found = entity.fields.get(key)
            if found is None or not found.is_input or found.type in ("lines", "many_to_many"):
                continue
            try:
                record[key] = coerce(found, record.get(key))
            except ValueProblem as problem:
                errors.problem(key, problem)
        for key, texts in context.errors.items():
            errors.by_field[key].extend(texts)
        if changed:
            apply_computed(entity.fields, record, now, self._order, stored=True)
        return {k for k in changed if k in entity.fields}

    @staticmethod
    def _refuse_protected(records: RecordService, entity: Entity, changed: set[str], *,
                          creating: bool, refs: tuple[HookRef, ...]) -> None:
        """Hooks change fields, not the engine's columns nor the stage (only transitions do)."""
        flow = workflow_for(records.registry.workflows, entity.key)
        managed = set(flow.managed_fields()) if flow is not None else set()
        system = set(SYSTEM_COLUMNS) - ({"owner"} if creating else set())
        protected = sorted(changed & (managed | system))
        unknown = sorted(k for k in changed - system - managed if k not in entity.fields)
        names = ", ".join(f"'{r.function}'" for r in refs)
        if protected:
            raise ActionFailed(
                f"The before_save hooks {names} of {entity.key} may not change "
                f"{', '.join(protected)}: the stage changes only through a transition, and "
                "the engine keeps its own columns.")
        if unknown:
            raise ActionFailed(
                f"The before_save hooks {names} of {entity.key} set {', '.join(unknown)}, "
                f"which {'is' if len(unknown) == 1 else 'are'} not a field of {entity.key}.")

    def after(
        self, event: str, records: RecordService, conn: Connection, actor: Actor,
        entity: Entity, record: Mapping[str, Any], previous: Mapping[str, Any] | None,
        *, now: dt.datetime, move: StageMove | None = None,
    ) -> None:
        """Run the hooks of ``event`` (after_save, before_delete, after_delete, after_transition)."""
        refs = self.declared(entity, event)
        if not refs:
            return
        context = RecordHookContext(
            event=event, actor=actor, entity=entity, values=dict(record),
            previous=None if previous is None else dict(previous), records=records, conn=conn,
            now=now, clock=records.clock, transition=move, workflows=self.workflows,
        )
        for ref in refs:
            self._call(ref, context)
        if context.errors:
            raise ValidationFailed(context.errors)
