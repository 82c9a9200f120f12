"""The resolved form of a stage flow (``workflow:`` documents), read by the services.

A :class:`Workflow` belongs to one entity and names the field that holds
the stage.  It has one or more :class:`Pipeline` s (per product line, per
team...), each with its own ordered :class:`Stage` s and :class:`Transition`
s; a record belongs to one pipeline.  Like the rest of the registry these
objects are immutable, and ``to_data()`` gives the canonical form that the
definitions hash and the migration snapshot hold.

Objects that later checks may need to point at (transitions, for the role
check) keep the document and path they were written at (``origin_document``
and ``origin_path``; :meth:`Transition.where` turns them into a place).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem
from engine.expressions import Expression
from engine.metadata.durations import BusinessHours, Sla, format_duration
from engine.metadata.merge import Located
from engine.metadata.model import Label, Origin
from engine.metadata.yaml_source import SourceDocument

#: Stage categories: still moving, closed successfully, closed unsuccessfully.
CATEGORIES: tuple[str, ...] = ("open", "won", "lost")
#: Who a ``notify`` action may address besides roles (``role:<key>``).
RECIPIENTS: tuple[str, ...] = ("owner", "actor", "creator")


# -- actions -----------------------------------------------------------------------


@dataclass(frozen=True)
class SetAction:
    """Set fields of the moved record: literal ``values`` and computed ``expressions``."""

    values: Mapping[str, Any] = field(default_factory=dict)
    expressions: Mapping[str, Expression] = field(default_factory=dict)

    kind = "set"

    def to_data(self) -> dict[str, Any]:
        if self.expressions:
            return {"set_expression": {k: e.source for k, e in self.expressions.items()}}
        return {"set": dict(self.values)}


@dataclass(frozen=True)
class CreateAction:
    """Create a record of ``entity`` from the moved one (``create``, or ``follow_up`` with a due date).

    ``values`` maps each target field to an expression over the moved
    record; ``link`` is the target's reference field that receives the
    moved record's id; ``store_in`` is the moved record's reference field
    that receives the new record's id; ``owner`` says who owns the new
    record (the moved record's owner, or the actor).
    """

    entity: str
    values: Mapping[str, Expression] = field(default_factory=dict)
    link: str | None = None
    store_in: str | None = None
    owner: str = "owner"
    due_in: dt.timedelta | None = None
    due_field: str | None = None

    @property
    def kind(self) -> str:
        return "follow_up" if self.due_in is not None else "create"

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"entity": self.entity,
                                "values": {k: e.source for k, e in self.values.items()}}
        for name in ("link", "store_in"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        if self.owner != "owner":
            data["owner"] = self.owner
        if self.due_in is not None:
            data["due_in"] = format_duration(self.due_in)
            data["due_field"] = self.due_field
        return {self.kind: data}


@dataclass(frozen=True)
class NotifyAction:
    """Tell people: ``to`` holds ``owner``, ``actor``, ``creator`` or ``role:<key>``.

    The messages (one per recipient and channel) are written to the outbox
    (``crm_outbox``) in the same transaction and delivered by the worker,
    like reminders; ``{field}`` in the text is replaced by the record's value.
    """

    to: tuple[str, ...]
    message: Label
    subject: Label | None = None
    channels: tuple[str, ...] = ("in_app",)
    origin_document: SourceDocument | None = field(
        default=None, compare=False, repr=False, hash=False
    )
    origin_path: tuple = field(default=(), compare=False, repr=False, hash=False)

    kind = "notify"

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r.split(":", 1)[1] for r in self.to if r.startswith("role:"))

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"to": list(self.to), "message": self.message.to_data()}
        if self.subject is not None:
            data["subject"] = self.subject.to_data()
        if self.channels != ("in_app",):
            data["channels"] = list(self.channels)
        return {"notify": data}


@dataclass(frozen=True)
class HookAction:
    """Call ``function`` from the ``hooks.py`` of ``pack`` (or of the site's ``custom/``).

    ``file`` is that ``hooks.py``, resolved when the definitions load.
    """

    function: str
    pack: str
    file: str = ""

    kind = "hook"

    def to_data(self) -> dict[str, Any]:
        return {"hook": self.function}


Action = SetAction | CreateAction | NotifyAction | HookAction


# -- stages and transitions --------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline."""

    key: str
    label: Label
    order: int
    category: str = "open"
    probability: int | None = None
    colour: str | None = None
    description: Label | None = None
    sla: Sla | None = None
    stale_after: dt.timedelta | None = None
    requires: tuple[str, ...] = ()
    readonly: tuple[str, ...] = ()
    on_enter: tuple[Action, ...] = ()

    @property
    def is_closed(self) -> bool:
        return self.category != "open"

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"label": self.label.to_data(), "order": self.order,
                                "category": self.category}
        if self.probability is not None:
            data["probability"] = self.probability
        if self.colour:
            data["colour"] = self.colour
        if self.description is not None:
            data["description"] = self.description.to_data()
        if self.sla is not None:
            data["sla"] = self.sla.to_data()
        if self.stale_after is not None:
            data["stale_after"] = format_duration(self.stale_after)
        if self.requires:
            data["requires"] = list(self.requires)
        if self.readonly:
            data["readonly"] = list(self.readonly)
        if self.on_enter:
            data["on_enter"] = [a.to_data() for a in self.on_enter]
        return data


@dataclass(frozen=True)
class Transition:
    """A declared way from some stages to one stage.

    ``sources`` are the stages it leaves from (``from: "*"`` means every
    *open* stage but ``to`` — reopening a won or lost record needs a
    transition that names that stage).  ``roles`` empty means any role
    that may change the entity.  ``fields`` must hold a value once the
    transition is taken (given on the way or already set).  ``reveals``
    names fields hidden from some of its roles that the guard may read
    anyway: the pack says the outcome may tell those roles about them.
    """

    key: str
    pipeline: str
    sources: tuple[str, ...]
    to: str
    label: Label
    from_any: bool = False
    roles: tuple[str, ...] = ()
    guard: Expression | None = None
    guard_message: Label | None = None
    fields: tuple[str, ...] = ()
    confirm: Label | None = None
    actions: tuple[Action, ...] = ()
    reveals: tuple[str, ...] = ()
    origin_document: SourceDocument | None = field(
        default=None, compare=False, repr=False, hash=False
    )
    origin_path: tuple = field(default=(), compare=False, repr=False, hash=False)

    def leaves(self, stage: str) -> bool:
        return stage in self.sources

    def where(self, *parts: Any) -> Located:
        """A place inside this transition's definition, e.g. ``where("roles", 0)``."""
        if self.origin_document is None:
            raise ValueError(f"transition '{self.key}' was not read from a file")
        return Located(self.origin_document, (*self.origin_path, *parts))

    def problem(self, message: str, *parts: Any, key: bool = False,
                severity: str = "error") -> Problem:
        """A Problem about this transition (or a part of it, e.g. ``"roles", 0``)."""
        return self.where(*parts).problem(message, key=key, severity=severity)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "from": "*" if self.from_any else list(self.sources),
            "to": self.to,
            "label": self.label.to_data(),
        }
        if self.roles:
            data["roles"] = list(self.roles)
        if self.guard is not None:
            data["guard"] = self.guard.source
        if self.guard_message is not None:
            data["guard_message"] = self.guard_message.to_data()
        if self.fields:
            data["fields"] = list(self.fields)
        if self.confirm is not None:
            data["confirm"] = self.confirm.to_data()
        if self.actions:
            data["actions"] = [a.to_data() for a in self.actions]
        if self.reveals:
            data["reveals"] = list(self.reveals)
        return data


@dataclass(frozen=True)
class Pipeline:
    """The stages and transitions one group of records moves through."""

    key: str
    label: Label
    stages: Mapping[str, Stage]
    transitions: Mapping[str, Transition]
    initial: str

    def stage(self, key: str | None) -> Stage | None:
        return self.stages.get(key) if key is not None else None

    def transitions_from(self, stage: str) -> list[Transition]:
        """The transitions a record in ``stage`` may take, in declared order."""
        return [t for t in self.transitions.values()
                if t.leaves(stage) and self.transition(stage, t.to) is t]

    def transition(self, from_stage: str, to_stage: str) -> Transition | None:
        """The transition from one stage to another; one naming ``from_stage`` beats ``"*"``."""
        found = [t for t in self.transitions.values() if t.to == to_stage and t.leaves(from_stage)]
        found.sort(key=lambda t: t.from_any)
        return found[0] if found else None

    def to_data(self) -> dict[str, Any]:
        return {
            "label": self.label.to_data(),
            "initial": self.initial,
            "stages": {k: s.to_data() for k, s in self.stages.items()},
            "transitions": {k: t.to_data() for k, t in self.transitions.items()},
        }


@dataclass(frozen=True)
class ActivityLink:
    """Records of ``entity`` whose reference ``field`` points at a flow's record count as activity."""

    entity: str
    field: str

    def to_data(self) -> dict[str, str]:
        return {"entity": self.entity, "field": self.field}


@dataclass(frozen=True)
class Figures:
    """Which fields the pipeline figures read (all optional)."""

    value: str | None = None
    close_date: str | None = None
    lost_reason: str | None = None
    activity: tuple[ActivityLink, ...] = ()

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            k: getattr(self, k) for k in ("value", "close_date", "lost_reason") if getattr(self, k)
        }
        if self.activity:
            data["activity"] = [a.to_data() for a in self.activity]
        return data


@dataclass(frozen=True)
class Workflow:
    """A stage flow on one entity."""

    key: str
    entity: str
    label: Label
    field: str
    pipelines: Mapping[str, Pipeline]
    default_pipeline: str
    pack: str
    pipeline_field: str | None = None
    probability_field: str | None = None
    figures: Figures = field(default_factory=Figures)
    business_hours: BusinessHours | None = None
    description: Label | None = None
    origin: Origin | None = field(default=None, compare=False)

    def pipeline(self, key: str | None) -> Pipeline:
        """The pipeline called ``key``; the default one for a record that names none."""
        return self.pipelines.get(key or self.default_pipeline) or self.pipelines[
            self.default_pipeline
        ]

    def pipeline_of(self, record: Mapping[str, Any]) -> Pipeline:
        return self.pipeline(record.get(self.pipeline_field) if self.pipeline_field else None)

    def stage_of(self, record: Mapping[str, Any]) -> Stage:
        """The record's stage; a record without one (older than the flow) is in the initial stage."""
        pipeline = self.pipeline_of(record)
        return pipeline.stage(record.get(self.field)) or pipeline.stages[pipeline.initial]

    def managed_fields(self) -> tuple[str, ...]:
        """The fields only transitions may change."""
        return (self.field, self.pipeline_field) if self.pipeline_field else (self.field,)

    def transitions(self) -> Iterator[Transition]:
        for pipeline in self.pipelines.values():
            yield from pipeline.transitions.values()

    def role_references(self) -> Iterator[tuple[str, Located]]:
        """Every role the flow names, with where it is written (for the role check)."""
        for transition in self.transitions():
            if transition.origin_document is None:
                continue
            for index, role in enumerate(transition.roles):
                yield role, transition.where("roles", index)
        for action in self._actions():
            if isinstance(action, NotifyAction) and action.origin_document is not None:
                for index, recipient in enumerate(action.to):
                    if recipient.startswith("role:"):
                        place = Located(action.origin_document, (*action.origin_path, "to", index))
                        yield recipient.split(":", 1)[1], place

    def _actions(self) -> Iterator[Action]:
        for pipeline in self.pipelines.values():
            for stage in pipeline.stages.values():
                yield from stage.on_enter
            for transition in pipeline.transitions.values():
                yield from transition.actions

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "entity": self.entity,
            "label": self.label.to_data(),
            "field": self.field,
            "pack": self.pack,
            "default_pipeline": self.default_pipeline,
            "pipelines": {k: p.to_data() for k, p in self.pipelines.items()},
        }
        if self.pipeline_field:
            data["pipeline_field"] = self.pipeline_field
        if self.probability_field:
            data["probability_field"] = self.probability_field
        figures = self.figures.to_data()
        if figures:
            data["figures"] = figures
        if self.business_hours is not None:
            data["business_hours"] = self.business_hours.to_data()
        if self.description is not None:
            data["description"] = self.description.to_data()
        return data


def workflow_for(workflows: Mapping[str, Workflow], entity: str) -> Workflow | None:
    """The flow of ``entity``, if it has one (an entity has at most one)."""
    return next((w for w in workflows.values() if w.entity == entity), None)
