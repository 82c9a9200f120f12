"""Running a transition's actions inside its transaction.

``set`` actions become part of the transition's own update of the record.
The others run after it, in the order written, on the same connection, so
a failure in any of them undoes the whole transition:

- ``create`` / ``follow_up`` create a record through the record service,
  with the rights of the workflow (the consultant declared the action; a
  salesperson who may not create contracts still wins the deal that
  creates one) but recorded under the acting user's id;
- ``notify`` writes its messages to the outbox (one per recipient and
  channel, with a unique key) in the transition's transaction — the same
  outbox as reminders, delivered by the worker (engine.notifications), so
  a rolled-back move notifies nobody and a committed one exactly once.
  Its recipients are screened like every notification's
  (engine/services/messaging/recipients.py): only users who may read the record, each
  told without the fields hidden from them;
- ``hook`` calls a function of the pack's (or the site's) ``hooks.py`` with
  a :class:`HookContext`.  The definitions resolved the function to its file
  when they loaded (engine/metadata/pack_python.py); the file is imported
  once, by the record service's :class:`PackModules` (no global registry).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from engine.context import Actor, Clock
from engine.errors import ActionFailed, CrmError
from engine.metadata.model import Entity, Label
from engine.metadata.pack_python import PackModules
from engine.metadata.values import to_json
from engine.metadata.workflow_model import (
    Action,
    CreateAction,
    HookAction,
    NotifyAction,
    SetAction,
    Stage,
    Transition,
    Workflow,
)
from engine.services.messaging.outbox import Cause, UserDirectory, unique_targets
from engine.services.messaging.recipients import Notifier
from engine.services.records.service import RecordService
from engine.services.records.stage_rules import StageMove

if TYPE_CHECKING:
    from engine.services.workflows.service import WorkflowService

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class HookContext:
    """Everything a hook gets, explicitly: no globals to reach for.

    ``record`` is the record after the stage change (and after the actions
    before the hook); ``previous`` is how it was before the transition.
    Use ``records`` with ``conn`` to read or write in the same transaction,
    ``workflows`` (the site's workflow service) to move another record;
    return a mapping of field values to change the moved record, or raise
    :class:`~engine.errors.TransitionRefused` (or any engine error) to undo
    the whole transition.
    """

    actor: Actor
    entity: Entity
    workflow: Workflow
    transition: Transition
    from_stage: str
    to_stage: str
    record: dict[str, Any]
    previous: dict[str, Any]
    values: Mapping[str, Any]
    comment: str | None
    now: dt.datetime
    conn: Connection
    records: RecordService
    created: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    workflows: WorkflowService | None = None

    @property
    def clock(self) -> Clock:
        """The site's clock (the same as the one ``now`` was read from)."""
        return self.records.clock


def render(text: Label, record: Mapping[str, Any], entity: Entity) -> dict[str, str]:
    """A message in each language, ``{field}`` replaced by the record's (labelled) value."""

    def shown(name: str, language: str) -> str:
        value = record.get(name)
        found = entity.fields.get(name)
        if found is not None and found.choices and isinstance(value, str) and value in found.choices:
            return found.choices[value].get(language)
        json_value = to_json(value)
        return "" if json_value is None else str(json_value)

    out = {}
    for language in ("en", "zh"):
        source = text.get(language)
        out[language] = _PLACEHOLDER.sub(lambda m, lang=language: shown(m.group(1), lang), source)
    return out


class ActionRunner:
    """Runs the actions of one transition; owned by the workflow service."""

    def __init__(self, records: RecordService, modules: PackModules) -> None:
        self.records = records
        self.modules = modules
        self.notifier = Notifier(records)
        self.users = UserDirectory(records.schema)

    @staticmethod
    def changes(actions: tuple[Action, ...], record: Mapping[str, Any],
                now: dt.datetime) -> dict[str, Any]:
        """What the ``set`` actions write on the moved record, in order (later ones win)."""
        found: dict[str, Any] = {}
        for action in actions:
            if isinstance(action, SetAction):
                found.update(action.values)
                for name, expr in action.expressions.items():
                    found[name] = expr.evaluate({**record, **found}, now=now)
        return found

    def run(
        self, conn: Connection, context: HookContext, actions: tuple[Action, ...],
        move: StageMove,
    ) -> int:
        """Run every action but ``set``, in order; returns how many messages were written."""
        messages = 0
        for action in actions:
            if isinstance(action, CreateAction):
                self._create(conn, context, action, move)
            elif isinstance(action, NotifyAction):
                messages += self._notify(conn, context, action)
            elif isinstance(action, HookAction):
                self._hook(conn, context, action, move)
        return messages

    def _workflow_actor(self, actor: Actor) -> Actor:
        """The acting user with the workflow's rights (see the module docstring)."""
        return dataclasses.replace(actor, is_admin=True)

    def _create(self, conn: Connection, context: HookContext, action: CreateAction,
                move: StageMove) -> None:
        record = context.record
        values = {k: expr.evaluate(record, now=context.now) for k, expr in action.values.items()}
        if action.link:
            values[action.link] = record["id"]
        if action.due_in is not None and action.due_field:
            target = self.records.registry.entity(action.entity).fields[action.due_field]
            due = context.now + action.due_in
            values[action.due_field] = due.date() if target.value_type == "date" else due
        values["owner"] = record.get("owner") if action.owner == "owner" else context.actor.user_id
        actor = self._workflow_actor(context.actor)
        try:
            created = self.records.create(actor, action.entity, values, conn=conn)
        except CrmError as exc:
            target = self.records.registry.entity(action.entity).label.get(context.actor.language)
            raise ActionFailed(f"The transition could not create the {target}: "
                               f"{exc.message}") from exc
        context.created.append((action.entity, created))
        if action.store_in:
            context.record = self.records.update(
                actor, context.entity.key, record["id"], {action.store_in: created["id"]},
                conn=conn, move=move,
            )

    def _notify(self, conn: Connection, context: HookContext, action: NotifyAction) -> int:
        """One outbox message per recipient and channel; the move's record version makes
        the occurrence, so each transition taken notifies once."""
        record = context.record
        ids: list[Any] = []
        targets = []
        for who in action.to:
            if who.startswith("role:"):
                targets += self.users.users_with_role(conn, who.split(":", 1)[1])
            else:
                ids.append({"owner": record.get("owner"), "actor": context.actor.user_id,
                            "creator": record.get("created_by")}[who])
        targets = unique_targets([*self.users.users_by_id(conn, ids), *targets])
        cause = Cause(
            "notify", f"{context.workflow.key}.{context.transition.key}",
            f"v{record.get('version')}", context.entity.key, record["id"],
            {"from": context.from_stage, "to": context.to_stage,
             "actor_id": context.actor.user_id},
        )

        def texts(lang: str, hidden: frozenset[str]) -> tuple[str | None, str]:
            shown = {k: v for k, v in record.items() if k not in hidden}
            subject = render(action.subject, shown, context.entity) if action.subject else None
            message = render(action.message, shown, context.entity)
            return ((subject.get(lang) or subject["en"]) if subject else None,
                    message.get(lang) or message["en"])

        return self.notifier.write(conn, cause, targets, action.channels, texts,
                                   named=action.to, now=context.now).messages

    def _hook(self, conn: Connection, context: HookContext, action: HookAction,
              move: StageMove) -> None:
        function = self.modules.function(action.file, action.function)
        try:
            result = function(context)
        except CrmError:
            raise
        except Exception as exc:
            raise ActionFailed(f"The hook '{action.function}' failed: "
                               f"{exc.__class__.__name__}: {exc}") from exc
        if isinstance(result, Mapping) and result:
            context.record = self.records.update(
                self._workflow_actor(context.actor), context.entity.key,
                context.record["id"], dict(result), conn=conn, move=move,
            )


def stage_actions(transition: Transition, target: Stage) -> tuple[Action, ...]:
    """The actions of taking ``transition``: its own first, then the target stage's."""
    return (*transition.actions, *target.on_enter)
