"""``/api/v1/meta``: the entities, fields, stages and roles the caller may see.

Entities the caller cannot read are left out, and so are the fields hidden
from them; the OpenAPI document is built from the same description.
"""

from __future__ import annotations

from typing import Any

from engine.context import Actor
from engine.metadata.model import Entity, Field
from engine.services.records.service import SYSTEM_FIELD_TYPES
from engine.site import Site


def readable(site: Site, actor: Actor) -> list[tuple[Entity, frozenset[str]]]:
    """(entity, hidden fields) for every entity the actor may read."""
    policy = site.records.policy
    return [(entity, site.records.hidden(actor, entity))
            for _, entity in sorted(site.registry.entities.items())
            if policy.can(actor, entity, "read")]


def read_only(field: Field) -> bool:
    return field.type in ("computed", "sequence")


def describe_field(field: Field, lang: str) -> dict[str, Any]:
    data: dict[str, Any] = {"key": field.key, "type": field.type, "label": field.label.get(lang),
                            "required": field.required, "readonly": field.readonly or read_only(field)}
    if field.type == "computed":
        data["returns"] = field.value_type
    if field.choices:
        data["choices"] = [{"key": k, "label": v.get(lang)} for k, v in field.choices.items()]
        data["multiple"] = field.multiple
    if field.to:
        data["to"] = field.to
    for name in ("max_length", "min_length", "min", "max", "scale", "unique"):
        value = getattr(field, name)
        if value not in (None, False):
            data[name] = value
    if field.fields:
        data["fields"] = [describe_field(f, lang) for f in field.fields.values()]
    return data


def describe(site: Site, actor: Actor) -> dict[str, Any]:
    lang = actor.language
    policy = site.records.policy
    entities = []
    for entity, hidden in readable(site, actor):
        flows = [w for w in site.registry.workflows.values() if w.entity == entity.key]
        entities.append({
            "key": entity.key, "label": entity.label.get(lang), "plural": entity.plural.get(lang),
            "title_field": entity.title_field if entity.title_field not in hidden else None,
            "rights": [a for a in ("read", "create", "update", "delete", "transition", "export")
                       if policy.can(actor, entity, a)],
            "system_fields": SYSTEM_FIELD_TYPES,
            "fields": [describe_field(f, lang) for f in entity.fields.values()
                       if f.key not in hidden],
            "workflows": [{
                "key": w.key, "field": w.field, "label": w.label.get(lang),
                "pipelines": [{
                    "key": p.key, "label": p.label.get(lang), "initial": p.initial,
                    "stages": [{"key": s.key, "label": s.label.get(lang), "category": s.category,
                                "order": s.order} for s in p.stages.values()],
                    "transitions": [{"key": t.key, "to": t.to, "label": t.label.get(lang)}
                                    for t in p.transitions.values()],
                } for p in w.pipelines.values()],
            } for w in flows if w.field not in hidden],
        })
    roles = site.registry.roles
    shown = roles.keys() if actor.is_admin else [r for r in actor.roles if r in roles]
    return {
        "user": {"login": actor.login, "language": lang, "is_admin": actor.is_admin,
                 "roles": sorted(actor.roles)},
        "roles": [{"key": k, "label": roles[k].label.get(lang)} for k in sorted(shown)],
        "entities": entities,
    }
