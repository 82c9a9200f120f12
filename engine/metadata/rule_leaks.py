"""Rules whose outcome tells a role about a field hidden from it.

Hiding a field keeps its value out of every record, list and message the
role gets — but a rule that *reads* the field answers with something the
role does see.  A guard ``amount >= cost`` on a transition a salesperson
may take says, each time it allows or refuses, whether the amount tried
is above the hidden cost; a field shown only ``visible_if: blacklisted``
tells whoever sees it appear that the customer is blacklisted.

:func:`rule_leaks` finds these at check time, for every role that is not
an administrator, and reports each as a warning at its file and line:

* a transition guard the role can trigger, and fields a transition or its
  target stage require, that name a hidden field;
* ``visible_if`` of a field the role reads, ``required_if`` of a field it
  writes, ``default_expression`` of a field it creates and the expression
  of a computed field it reads, when they name a field hidden from it.

A pack that means it says so with ``reveals: [field, ...]`` on the
transition or the field: those names are then not reported (and the
engine evaluates such a guard for the role as for anyone).  What the
engine does about the others at run time is in docs/permissions.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from engine.errors import Problem
from engine.metadata.model import Entity, Field
from engine.metadata.roles import Access, Role
from engine.metadata.workflow_model import Transition, workflow_for

#: Field options whose outcome a role sees, and the right that lets it see it.
FIELD_RULES: tuple[tuple[str, str, str], ...] = (
    ("visible_if", "read", "shows or hides {field} on its forms"),
    ("required_if", "write", "decides whether {field} is required when it saves"),
    ("default_expression", "create", "fills in {field} when it creates a record"),
    ("expression", "read", "computes {field}, which it reads"),
)


def _names(fields: frozenset[str]) -> str:
    return ", ".join(sorted(fields))


def _may(access: Access, right: str) -> bool:
    if right == "write":
        return access.allows("create") or access.allows("update")
    return access.allows(right)


def _field_problem(field: Field, entity: Entity, option: str, message: str) -> Problem:
    origin = field.origin
    return Problem(origin.file if origin else "(entities)", origin.line if origin else None,
                   origin.column if origin else None, f"fields.{field.key}.{option}", message,
                   severity="warning")


def _field_leaks(role: Role, entity: Entity, access: Access) -> Iterator[Problem]:
    for field in entity.fields.values():
        if field.key in access.hidden:
            continue  # the role never sees this field, nor what its rules do to it
        for option, right, what in FIELD_RULES:
            rule = getattr(field, option)
            if rule is None or not _may(access, right):
                continue
            read = (rule.names & access.hidden) - set(field.reveals)
            if read:
                yield _field_problem(field, entity, option, (
                    f"role '{role.key}' cannot see {entity.key}.{_names(read)}, but its "
                    f"{option} ({rule.source}) {what.format(field=field.key)}: the outcome "
                    f"tells the role about the hidden field(s). Hide {field.key} too, read "
                    f"another field, or write 'reveals: [{_names(read)}]' on the field if "
                    "that is intended"))


def _can_take(role: Role, access: Access, transition: Transition) -> bool:
    return access.allows("transition") and (not transition.roles or role.key in transition.roles)


def _transition_leaks(role: Role, entity: Entity, access: Access,
                      workflows: Mapping[str, Any]) -> Iterator[Problem]:
    flow = workflow_for(workflows, entity.key)
    if flow is None:
        return
    for pipeline in flow.pipelines.values():
        for transition in pipeline.transitions.values():
            if transition.origin_document is None or not _can_take(role, access, transition):
                continue
            allowed = set(transition.reveals)
            guard = transition.guard
            read = (guard.names & access.hidden) - allowed if guard is not None else set()
            if read and guard is not None:
                yield transition.problem(
                    f"role '{role.key}' may take transition '{transition.key}' but cannot see "
                    f"{entity.key}.{_names(frozenset(read))}, which its guard ({guard.source}) "
                    "reads: whether the transition is allowed tells the role about the hidden "
                    "field(s), and values given with the transition can probe them. Change the "
                    f"guard, hide less, or write 'reveals: [{_names(frozenset(read))}]' on the "
                    "transition if that is intended", "guard", severity="warning")
            needed = {*transition.fields, *pipeline.stages[transition.to].requires}
            missing = (needed & access.hidden) - allowed
            if missing:
                yield transition.problem(
                    f"role '{role.key}' may take transition '{transition.key}', which needs "
                    f"{entity.key}.{_names(frozenset(missing))}, hidden from the role: a "
                    "refusal tells it whether the field is empty, and it cannot fill it in. "
                    f"Take the role off the transition, or write 'reveals: "
                    f"[{_names(frozenset(missing))}]' on it if that is intended",
                    severity="warning")


def rule_leaks(entities: Mapping[str, Entity], workflows: Mapping[str, Any],
               roles: Mapping[str, Role]) -> list[Problem]:
    """Every rule that reads a field hidden from a role that triggers or sees its outcome."""
    problems: list[Problem] = []
    for role in roles.values():
        if role.admin:
            continue
        for entity_key, access in role.access.items():
            entity = entities.get(entity_key)
            if entity is None or not access.hidden:
                continue
            problems.extend(_field_leaks(role, entity, access))
            problems.extend(_transition_leaks(role, entity, access, workflows))
    return problems
