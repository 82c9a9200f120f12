"""The workflow service: the one way a record changes stage.

:meth:`WorkflowService.transition` moves one record, in one transaction,
all or nothing: it checks that a declared transition leads from the
record's stage to the one asked for, that the actor may take it (the
``transition`` right on the entity and one of the transition's roles),
its guard and the fields it needs — gathering *every* reason before
refusing — then writes the record (through the record service, which
validates and audits it), runs the actions, and writes a stage-history
row with the time spent in the previous stage.  A refusal changes nothing
but is kept in the record's audit trail (action ``refused``).

A guard that reads a field hidden from the actor (and that the pack did not
declare with ``reveals:``) would answer questions about that field, so for
that actor it is judged last: after every other reason and after the values
given have passed the record service's checks, so a try with values that
could never be saved learns nothing.  Its refusals are counted per user and
record like failed look-ups (``PROBE_THROTTLE``, then 429), and
:meth:`available` does not evaluate it for them (``checked_on_save``).

:meth:`available` says which transitions a record can take and why the
others cannot; :meth:`bulk_transition` moves many records, each in its own
transaction, and answers with a result per record.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, insert, select

from engine.context import Actor, Clock
from engine.errors import (
    Conflict,
    CrmError,
    NotFound,
    PermissionDenied,
    Refusal,
    TransitionRefused,
    ValidationFailed,
)
from engine.expressions.actor import actor_values
from engine.i18n import message
from engine.metadata.model import Entity, Field
from engine.metadata.values import INT_MAX, ValueProblem, coerce, to_json
from engine.metadata.workflow_model import Pipeline, Stage, Transition, Workflow, workflow_for
from engine.services.access.login_guard import LoginGuard, ThrottleSettings
from engine.services.records.audit import write_audit
from engine.services.records.compute import ComputedOrder, apply_computed
from engine.services.records.service import RecordService
from engine.services.records.stage_rules import StageMove, same_value
from engine.services.workflows.actions import ActionRunner, HookContext, stage_actions
from engine.storage.database import write_transaction

log = logging.getLogger(__name__)

#: Refused tries of a transition whose guard reads a field hidden from the actor: at most 10
#: per user and record in 15 minutes, then 15 minutes of waiting.
PROBE_THROTTLE = ThrottleSettings(max_failures=10, window=dt.timedelta(minutes=15),
                                  lockout=dt.timedelta(minutes=15))


@dataclass(frozen=True)
class TransitionOption:
    """A transition leaving a record's current stage, and whether the actor can take it now.

    ``allowed`` is False when a role or the guard stops it (``reasons``
    say which).  ``fields`` are still empty and must be given on the way
    (they do not make the transition unavailable).  ``checked_on_save``
    says the guard reads fields hidden from the actor: it was not
    evaluated, and is judged when the transition is taken.
    """

    key: str
    to: str
    label: str
    to_label: str
    allowed: bool
    reasons: tuple[Refusal, ...] = ()
    fields: tuple[str, ...] = ()
    confirm: str | None = None
    checked_on_save: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "to": self.to, "label": self.label, "to_label": self.to_label,
            "allowed": self.allowed, "reasons": [r.to_dict() for r in self.reasons],
            "fields": list(self.fields), "confirm": self.confirm,
            "checked_on_save": self.checked_on_save,
        }


class _Refused(TransitionRefused):
    """A refusal that knows its record, so it can be written to the audit trail."""

    record_id: Any = None
    previous: str | None = None


@dataclass(frozen=True)
class BulkResult:
    """What happened to one record of a bulk transition."""

    record_id: Any
    ok: bool
    record: dict[str, Any] | None = None
    error: CrmError | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"record_id": self.record_id, "ok": self.ok}
        if self.record is not None:
            data["record"] = to_json(self.record)
        if self.error is not None:
            data["error"] = self.error.to_dict()
        return data


@dataclass
class _Move:
    """One transition being taken: what was found while checking it."""

    entity: Entity
    workflow: Workflow
    pipeline: Pipeline
    stage: Stage
    target: Stage
    transition: Transition
    current: dict[str, Any]
    given: dict[str, Any]
    merged: dict[str, Any]
    outbox: int = 0  # messages the notify actions wrote


class WorkflowService:
    """Moves records through their stages; see the module docstring."""

    def __init__(
        self,
        records: RecordService,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.records = records
        self.registry = records.registry
        self.schema = records.schema
        self.engine = records.engine
        self.clock = clock or records.clock
        self.actions = ActionRunner(records, records.hooks.modules)
        # Hooks move records with this service (the site builds one): a record a pack's
        # hook moves runs the same actions, the site's custom/ hooks included.
        records.hooks.workflows = self
        self._order = ComputedOrder()
        self.probes = LoginGuard(self.schema, self.engine, PROBE_THROTTLE)

    # -- looking things up ------------------------------------------------------

    def workflow(self, actor: Actor, entity_key: str) -> Workflow:
        """The flow of an entity; NotFound when it has none."""
        entity = self.records.entity(entity_key)
        found = workflow_for(self.registry.workflows, entity.key)
        if found is None:
            raise NotFound(message("no_workflow", actor.language,
                                   entity=entity.label.get(actor.language)))
        return found

    def _allow(self, actor: Actor, entity: Entity) -> None:
        if not self.records.policy.can(actor, entity, "transition"):
            raise PermissionDenied(message("no_transition_right", actor.language,
                                           entity=entity.label.get(actor.language)))

    @contextmanager
    def _write(self, conn: Connection | None) -> Iterator[Connection]:
        """Our own transaction, or a savepoint in the caller's: a failure undoes only us."""
        if conn is None:
            with write_transaction(self.engine) as new:
                yield new
            return
        with conn.begin_nested():
            yield conn

    @contextmanager
    def _read(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
            return
        with self.engine.connect() as new:
            yield new

    def _lock(self, conn: Connection, entity: Entity, record_id: Any) -> None:
        """On PostgreSQL, hold the record for the transaction so moves of it queue up."""
        if conn.dialect.name != "postgresql":
            return  # SQLite writers hold the database lock already (BEGIN IMMEDIATE)
        table = self.schema.table(entity.key)
        try:
            key = int(record_id)
        except (TypeError, ValueError):
            return
        if not 0 < key <= INT_MAX:
            return  # no row has it: the read that follows says "not found"
        # FOR NO KEY UPDATE, as the record service's own lock: rows referencing this one
        # (a receipt against an order) are written meanwhile without a deadlock
        conn.execute(select(table.c.id).where(table.c.id == key)
                     .with_for_update(key_share=True))

    # -- checking ----------------------------------------------------------------

    def _typed(self, actor: Actor, entity: Entity, workflow: Workflow,
               values: Mapping[str, Any]) -> dict[str, Any]:
        """The values given with a transition, typed; wrong values refuse at once."""
        errors: dict[str, list[str]] = {}
        typed: dict[str, Any] = {}
        for key, value in values.items():
            found = entity.fields.get(key)
            if key in workflow.managed_fields():
                errors.setdefault(key, []).append(message("managed_given", actor.language))
            elif found is None:
                errors.setdefault(key, []).append(message("unknown_field", actor.language))
            elif found.type in ("lines", "many_to_many") or not found.is_input:
                typed[key] = value  # the record service checks these in full
            else:
                try:
                    typed[key] = coerce(found, value)
                except ValueProblem as problem:
                    errors.setdefault(key, []).append(
                        message(problem.key, actor.language, **problem.params))
        if errors:
            raise ValidationFailed(errors)
        return typed

    def _label(self, entity: Entity, name: str, language: str) -> str:
        found: Field | None = entity.fields.get(name)
        return found.label.get(language) if found is not None and found.label else name

    def _role_label(self, role: str, language: str) -> str:
        defined = self.registry.roles.get(role)
        label = getattr(defined, "label", None)
        return label.get(language) if hasattr(label, "get") else role

    def unseen(self, actor: Actor, entity: Entity, transition: Transition) -> frozenset[str]:
        """Fields the transition's guard reads that are hidden from the actor (and not
        declared by the pack in ``reveals:``)."""
        guard = transition.guard
        if guard is None or actor.is_admin:
            return frozenset()
        return (guard.names & self.records.hidden(actor, entity)) - set(transition.reveals)

    def _guard_reason(self, actor: Actor, move: _Move) -> Refusal | None:
        """The guard's refusal, if it does not hold; it sees the values given on the way,
        before the stage changes."""
        transition, language = move.transition, actor.language
        guard = transition.guard
        seen = {**move.merged, **actor_values(actor.user_id, actor.roles)}
        if guard is None or guard.evaluate(seen, now=self.clock.now()):
            return None
        text = (transition.guard_message.get(language) if transition.guard_message
                else message("guard_failed", language, transition=transition.label.get(language),
                             guard=guard.source))
        return Refusal("guard", text)

    def _reasons(self, actor: Actor, move: _Move, *, guard: bool = True
                 ) -> tuple[list[Refusal], dict[str, list[str]]]:
        """Why the actor cannot take the transition now (every reason), and field messages;
        without ``guard``, every reason but the guard's."""
        language = actor.language
        transition, entity = move.transition, move.entity
        name = transition.label.get(language)
        reasons: list[Refusal] = []
        errors: dict[str, list[str]] = {}
        if transition.roles and not actor.is_admin and not (actor.roles & set(transition.roles)):
            roles = ", ".join(self._role_label(r, language) for r in transition.roles)
            reasons.append(Refusal("role", message("role_missing", language, roles=roles,
                                                   transition=name)))
        failed = self._guard_reason(actor, move) if guard else None
        if failed is not None:
            reasons.append(failed)
        readonly = [k for k in move.stage.readonly if k in move.given and not same_value(
            entity.fields[k], move.current.get(k), move.given[k])]
        if readonly:
            labels = ", ".join(self._label(entity, k, language) for k in readonly)
            text = message("readonly_given", language, stage=move.stage.label.get(language),
                           fields=labels)
            reasons.append(Refusal("readonly", text, tuple(readonly)))
            for key in readonly:
                errors[key] = [message("readonly_in_stage", language,
                                       stage=move.stage.label.get(language))]
        missing = [k for k in dict.fromkeys((*transition.fields, *move.target.requires))
                   if move.merged.get(k) in (None, "", [])]
        if missing:
            labels = ", ".join(self._label(entity, k, language) for k in missing)
            text = message("fields_missing", language, target=move.target.label.get(language),
                           fields=labels)
            reasons.append(Refusal("missing_fields", text, tuple(missing)))
            for key in missing:
                errors[key] = [message("required", language)]
        return reasons, errors

    def _refused(self, actor: Actor, entity: Entity, record: Mapping[str, Any], stage: Stage,
                 target: str, reasons: list[Refusal],
                 errors: Mapping[str, list[str]] | None = None) -> TransitionRefused:
        language = actor.language
        summary = message("transition_refused", language, entity=entity.label.get(language),
                          id=record["id"], current=stage.label.get(language), target=target)
        refused = _Refused(summary, reasons, errors)
        refused.record_id, refused.previous = record["id"], stage.key
        return refused

    def _options(self, pipeline: Pipeline, stage: Stage, language: str) -> str:
        targets = [pipeline.stages[t.to].label.get(language)
                   for t in pipeline.transitions_from(stage.key)]
        return ", ".join(f"'{t}'" for t in targets) or message("nowhere", language)

    def _prepare(self, conn: Connection, actor: Actor, entity: Entity, workflow: Workflow,
                 record_id: Any, to_stage: str, values: Mapping[str, Any],
                 version: int | None) -> _Move:
        """Read the record and find the transition; refuse what cannot be a transition."""
        language = actor.language
        self._lock(conn, entity, record_id)
        visible = self.records.get(actor, entity.key, record_id, conn=conn)  # the row scope
        if version is not None and int(version) != visible["version"]:
            raise Conflict(message("conflict", language, expected=int(version),
                                   current=visible["version"]), current=to_json(visible))
        # Guards and required fields judge the record itself, fields hidden from the actor too.
        current = self._full(conn, actor, entity, visible["id"])
        pipeline = workflow.pipeline_of(current)
        stage = workflow.stage_of(current)
        target = pipeline.stage(to_stage)
        if target is None:
            near = difflib.get_close_matches(str(to_stage), list(pipeline.stages), n=1)
            text = message("unknown_stage", language, stage=to_stage,
                           stages=", ".join(pipeline.stages))
            if near:
                text += f" ({near[0]}?)"
            raise self._refused(actor, entity, current, stage, str(to_stage),
                                [Refusal("unknown_stage", text)])
        target_label = target.label.get(language)
        if target.key == stage.key:
            raise self._refused(actor, entity, current, stage, target_label, [Refusal(
                "already_in_stage", message("already_in_stage", language,
                                            stage=target_label))])
        transition = pipeline.transition(stage.key, target.key)
        if transition is None:
            key = "no_transition_closed" if stage.is_closed else "no_transition"
            text = message(key, language, current=stage.label.get(language),
                           target=target_label, category=stage.category,
                           options=self._options(pipeline, stage, language))
            raise self._refused(actor, entity, current, stage, target_label,
                                [Refusal("no_transition", text)])
        given = self._typed(actor, entity, workflow, values)
        merged = {**current, **given}
        apply_computed(entity.fields, merged, self.clock.now(), self._order, stored=True)
        return _Move(entity, workflow, pipeline, stage, target, transition, current,
                     dict(values), merged)

    def _full(self, conn: Connection | None, actor: Actor, entity: Entity, record_id: int
              ) -> dict[str, Any]:
        """The whole record, whatever field rules hide from the actor (never returned to them)."""
        return self.records.get(replace(actor, is_admin=True), entity.key, record_id, conn=conn)

    # -- moving --------------------------------------------------------------------

    def _entered_at(self, conn: Connection, move: _Move) -> dt.datetime:
        """When the record entered its current stage: its last stage change, else its creation."""
        history = self.schema.system("crm_stage_history")
        last = conn.execute(
            select(history.c.at)
            .where(history.c.entity == move.entity.key,
                   history.c.record_id == move.current["id"])
            .order_by(history.c.id.desc()).limit(1)
        ).scalar()
        return last or move.current["created_at"]

    def _apply(self, conn: Connection, actor: Actor, move: _Move, comment: str | None) -> None:
        now = self.clock.now()
        workflow, target, transition = move.workflow, move.target, move.transition
        step = StageMove(workflow.key, transition.key, target.key)
        actions = stage_actions(transition, target)
        changes: dict[str, Any] = dict(move.given)
        changes[workflow.field] = target.key
        if (workflow.probability_field and workflow.probability_field not in move.given
                and target.probability is not None):
            changes[workflow.probability_field] = target.probability
        action_values = self.actions.changes(actions, {**move.merged, **changes}, now)
        changes.update(action_values)
        entered = self._entered_at(conn, move)
        self.records.update(actor, move.entity.key, move.current["id"], changes,
                            version=move.current["version"], conn=conn, move=step,
                            engine_set=frozenset(action_values))
        moved = self._full(conn, actor, move.entity, move.current["id"])
        conn.execute(insert(self.schema.system("crm_stage_history")).values(
            entity=move.entity.key, record_id=move.current["id"], workflow=workflow.key,
            pipeline=move.pipeline.key, transition=transition.key, from_stage=move.stage.key,
            to_stage=target.key, actor_id=actor.user_id, at=now,
            seconds_in_previous=max(0, int((now - entered).total_seconds())), comment=comment,
        ))
        context = HookContext(
            actor=actor, entity=move.entity, workflow=workflow, transition=transition,
            from_stage=move.stage.key, to_stage=target.key, record=moved,
            previous=move.current, values=move.given, comment=comment, now=now, conn=conn,
            records=self.records, workflows=self,
        )
        move.outbox = self.actions.run(conn, context, actions, step)
        if move.entity.hooks.get("after_transition"):
            after = self._full(conn, actor, move.entity, move.current["id"])
            self.records.hooks.after("after_transition", self.records, conn, actor, move.entity,
                                     after, move.current, now=now, move=step)

    def transition(
        self,
        actor: Actor,
        entity_key: str,
        record_id: Any,
        to_stage: str,
        values: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        comment: str | None = None,
        conn: Connection | None = None,
    ) -> dict[str, Any]:
        """Move a record to ``to_stage`` (with ``values`` filled on the way); the moved record.

        Raises TransitionRefused (every reason), ValidationFailed (values
        that do not fit), Conflict (``version`` is stale, or someone moved
        it at the same time), PermissionDenied or NotFound.  Inside a
        caller's transaction (``conn``) it runs in a savepoint.  Messages of
        ``notify`` actions are written to the outbox with the move and
        delivered by the worker (engine.notifications).
        """
        entity = self.records.entity(entity_key)
        workflow = self.workflow(actor, entity.key)
        self._allow(actor, entity)
        with self._probe(actor, entity, workflow, record_id, to_stage, conn):
            try:
                with self._write(conn) as c:
                    move = self._prepare(c, actor, entity, workflow, record_id, to_stage,
                                         values or {}, version)
                    self._judge(c, actor, move)
                    self._apply(c, actor, move, comment)
                    moved = self.records.get(actor, entity.key, move.current["id"], conn=c)
            except _Refused as refused:
                self._keep_refusal(actor, entity, workflow, refused, to_stage, conn)
                raise
        return moved

    def _judge(self, conn: Connection, actor: Actor, move: _Move) -> None:
        """Refuse the move for every reason at once — but a guard the actor cannot see
        only after everything else, the given values' checks included."""
        unseen = self.unseen(actor, move.entity, move.transition)
        reasons, errors = self._reasons(actor, move, guard=not unseen)
        if not reasons and unseen:
            self._check_values(conn, actor, move)
            failed = self._guard_reason(actor, move)
            reasons = [failed] if failed is not None else []
        if reasons:
            raise self._refused(actor, move.entity, move.current, move.stage,
                                move.target.label.get(actor.language), reasons, errors)

    def _check_values(self, conn: Connection, actor: Actor, move: _Move) -> None:
        """The record service's checks of the record as the move would save it (before
        actions): values that could never be saved are refused before any guard."""
        workflow, target = move.workflow, move.target
        record = dict(move.merged)
        given = set()
        for key in move.given:
            found = move.entity.fields.get(key)
            if found is not None and found.type in ("lines", "many_to_many"):
                record[key] = move.current.get(key)  # checked in full by the save itself
            else:
                given.add(key)
        record[workflow.field] = target.key
        if (workflow.probability_field and workflow.probability_field not in move.given
                and target.probability is not None):
            record[workflow.probability_field] = target.probability
        self.records.check_values(conn, actor, move.entity.key, record, given)

    @contextmanager
    def _probe(self, actor: Actor, entity: Entity, workflow: Workflow, record_id: Any,
               to_stage: Any, conn: Connection | None) -> Iterator[None]:
        """Count a try of a move into ``to_stage`` whose guard reads fields hidden from
        the actor; a try the guard refuses stays counted (``PROBE_THROTTLE``).

        Counted before the move, in its own transaction, like failed look-ups;
        inside a caller's transaction nothing is counted (it would roll back).
        """
        guarded = conn is None and any(
            self.unseen(actor, entity, t) for p in workflow.pipelines.values()
            for t in p.transitions.values() if t.to == to_stage)
        if not guarded:
            yield
            return
        keys = [f"transition:{actor.user_id}:{entity.key}:{str(record_id)[:40]}"]
        now = self.clock.now()
        self.probes.begin_attempt(keys, now, refused=message("transition_throttled",
                                                             actor.language))
        try:
            yield
        except TransitionRefused as refused:
            if not any(r.code == "guard" for r in refused.reasons):
                self.probes.forgive(keys, now)
            raise
        except Exception:
            self.probes.forgive(keys, now)
            raise
        self.probes.forgive(keys, now)

    def _keep_refusal(self, actor: Actor, entity: Entity, workflow: Workflow,
                      refused: _Refused, to_stage: Any, conn: Connection | None) -> None:
        """Write a refused move to the record's audit trail: who tried which stage, and why
        not (reason codes only: a guard's message may quote hidden values)."""
        asked = {"to": str(to_stage)[:80], "reasons": [r.code for r in refused.reasons]}
        row = {"actor": actor, "at": self.clock.now(), "entity": entity.key,
               "record_id": refused.record_id, "action": "refused",
               "changes": {workflow.field: (refused.previous, asked)}}
        audit = self.schema.system("crm_audit")
        if conn is not None:
            write_audit(conn, audit, **row)
            return
        with write_transaction(self.engine) as c:
            write_audit(c, audit, **row)

    def available(self, actor: Actor, entity_key: str, record_id: Any,
                  *, conn: Connection | None = None) -> list[TransitionOption]:
        """Every transition leaving the record's stage, whether the actor can take it, and why not."""
        entity = self.records.entity(entity_key)
        workflow = self.workflow(actor, entity.key)
        language = actor.language
        visible = self.records.get(actor, entity.key, record_id, conn=conn)
        record = self._full(conn, actor, entity, visible["id"])
        pipeline = workflow.pipeline_of(record)
        stage = workflow.stage_of(record)
        may = self.records.policy.can(actor, entity, "transition")
        options = []
        for transition in pipeline.transitions_from(stage.key):
            target = pipeline.stages[transition.to]
            move = _Move(entity, workflow, pipeline, stage, target, transition, record, {},
                         record)
            unseen = self.unseen(actor, entity, transition)
            reasons, _ = self._reasons(actor, move, guard=not unseen)
            if not may:
                reasons.insert(0, Refusal("forbidden", message(
                    "no_transition_right", language, entity=entity.label.get(language))))
            needed = tuple(r for reason in reasons if reason.code == "missing_fields"
                           for r in reason.fields)
            blocking = tuple(r for r in reasons if r.code != "missing_fields")
            options.append(TransitionOption(
                key=transition.key, to=target.key, label=transition.label.get(language),
                to_label=target.label.get(language), allowed=not blocking, reasons=blocking,
                fields=needed,
                confirm=transition.confirm.get(language) if transition.confirm else None,
                checked_on_save=bool(unseen),
            ))
        return options

    def bulk_transition(
        self,
        actor: Actor,
        entity_key: str,
        record_ids: Iterable[Any],
        to_stage: str,
        values: Mapping[str, Any] | None = None,
        *,
        versions: Mapping[Any, int] | None = None,
        comment: str | None = None,
    ) -> list[BulkResult]:
        """Move each record in its own transaction; one failing leaves the others moved."""
        results = []
        for record_id in record_ids:
            try:
                moved = self.transition(
                    actor, entity_key, record_id, to_stage, values,
                    version=(versions or {}).get(record_id), comment=comment,
                )
            except CrmError as exc:
                results.append(BulkResult(record_id, False, error=exc))
            else:
                results.append(BulkResult(record_id, True, record=moved))
        return results

    def history(self, actor: Actor, entity_key: str, record_id: Any,
                *, conn: Connection | None = None) -> list[dict[str, Any]]:
        """The stage changes of a record the actor can see, oldest first."""
        entity = self.records.entity(entity_key)
        table = self.schema.system("crm_stage_history")
        with self._read(conn) as c:
            record = self.records.get(actor, entity.key, record_id, conn=c)
            rows = c.execute(
                select(table).where(table.c.entity == entity.key,
                                    table.c.record_id == record["id"]).order_by(table.c.id)
            ).mappings()
            return [dict(r) for r in rows]
