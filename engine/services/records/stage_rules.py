"""The record service's guard for stage fields: no door around the workflow.

Every write of a record goes through :class:`~engine.services.records.service.RecordService`
— the CLI, forms, the API, imports — so this is where a direct change of a
stage is stopped.  A new record always starts in its pipeline's initial
stage; an update may not change the stage or the pipeline, nor a field that
is read-only in the record's current stage.  The one exception is the
update the workflow service makes while taking a transition, which carries
a :class:`StageMove` naming the stage it may move to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from engine.context import Actor
from engine.metadata.model import Entity, Field, Registry
from engine.metadata.workflow_model import Workflow


class FieldErrors(Protocol):
    """Where field messages are gathered (the record service's per-write collector)."""

    language: str

    def add(self, key: str, msg_key: str, **params: Any) -> None: ...


@dataclass(frozen=True)
class StageMove:
    """Leave for one update to change a record's stage — made by the workflow service only.

    The update also runs under the ``transition`` right instead of
    ``update``, and its audit rows carry the action ``transition``.
    """

    workflow: str
    transition: str
    to_stage: str


def same_value(field: Field, old: Any, new: Any) -> bool:
    """Whether ``new`` leaves the field as it is (lines compare by their input values)."""
    if field.type != "lines":
        return old == new
    keys = [k for k, sub in field.fields.items() if sub.is_input]

    def rows(lines: Any) -> list[dict[str, Any]]:
        return [{k: line.get(k) for k in keys} for line in lines or []]

    return rows(old) == rows(new)


class StageRules:
    """Applies each entity's workflow to plain creates and updates."""

    def __init__(self, registry: Registry) -> None:
        self._by_entity: dict[str, Workflow] = {
            w.entity: w for w in registry.workflows.values()
        }

    def workflow(self, entity_key: str) -> Workflow | None:
        return self._by_entity.get(entity_key)

    def on_create(
        self, actor: Actor, entity: Entity, given: Mapping[str, Any], record: dict[str, Any],
        errors: FieldErrors,
    ) -> None:
        """Put a new record in its pipeline's initial stage; refuse any other stage."""
        workflow = self._by_entity.get(entity.key)
        if workflow is None:
            return
        pipeline = workflow.pipeline(
            record.get(workflow.pipeline_field) if workflow.pipeline_field else None
        )
        initial = pipeline.stages[pipeline.initial]
        asked = given.get(workflow.field)
        if asked is not None and asked != initial.key:
            errors.add(workflow.field, "stage_starts_initial",
                       entity=entity.label.get(errors.language),
                       initial=initial.label.get(errors.language))
        record[workflow.field] = initial.key
        if workflow.pipeline_field:
            record[workflow.pipeline_field] = pipeline.key
        probability = workflow.probability_field
        if probability and probability not in given and initial.probability is not None:
            record[probability] = initial.probability

    def on_update(
        self, actor: Actor, entity: Entity, given: Mapping[str, Any],
        current: Mapping[str, Any], errors: FieldErrors, move: StageMove | None,
    ) -> None:
        """Refuse a stage or pipeline change that is not a transition, and read-only fields."""
        workflow = self._by_entity.get(entity.key)
        if workflow is None:
            return
        language = errors.language
        pipeline = workflow.pipeline_of(current)
        stage = workflow.stage_of(current)
        pipeline_field = workflow.pipeline_field
        if pipeline_field and pipeline_field in given and given[pipeline_field] != current.get(
            pipeline_field
        ):
            errors.add(pipeline_field, "pipeline_fixed")
        if workflow.field in given:
            target = given[workflow.field]
            allowed = move is not None and target == move.to_stage
            if not allowed and target != current.get(workflow.field):
                found = pipeline.transition(stage.key, target)
                target_stage = pipeline.stage(target)
                target_label = target_stage.label.get(language) if target_stage else str(target)
                if found is not None:
                    errors.add(workflow.field, "stage_needs_transition",
                               transition=found.label.get(language), target=target_label)
                else:
                    errors.add(workflow.field, "stage_no_transition",
                               current=stage.label.get(language), target=target_label)
        if move is not None:
            return  # the workflow service checks the values given with a transition
        for name in stage.readonly:
            field = entity.fields.get(name)
            if field is not None and name in given and not same_value(
                field, current.get(name), given[name]
            ):
                errors.add(name, "readonly_in_stage", stage=stage.label.get(language))
