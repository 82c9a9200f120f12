"""What a detail page shows besides the fields: related lists, timeline, next steps.

Every list here is read through the services with the actor, so a related
record, an audited change or a transition the actor may not see never
reaches the page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from engine.context import Actor
from engine.errors import CrmError
from engine.metadata.entity_views import column_field
from engine.metadata.model import Entity, Field
from engine.metadata.view_defs import RelatedDef
from engine.services.workflows.service import TransitionOption
from engine.site import Site
from engine.storage.queries import Filter
from engine.web.i18n import translate
from engine.web.presentation.display import Presenter
from engine.web.presentation.formatting import parse_iso

RELATED_ROWS = 5
_EVENT_WORDS = {"create": "created_event", "archive": "archived_event",
                "restore": "restored_event", "transition": "transition_event",
                "merge": "merged_event", "refused": "refused_event"}


@dataclass(frozen=True)
class RelatedList:
    entity: Entity
    field: str
    label: str
    rows: list[tuple[int, str]]
    has_more: bool
    #: Per row, the texts of the view's related-list columns.
    details: list[list[str]] = field(default_factory=list)


@dataclass
class Event:
    at: dt.datetime
    who: str
    text: str
    changes: list[tuple[str, str, str]] = field(default_factory=list)
    note: str = ""


def _references(site: Site, entity: Entity, declared: tuple[RelatedDef, ...] | None
                ) -> list[tuple[Entity, Field, RelatedDef | None]]:
    """The (entity, reference field, declaration) of each related list, in order."""
    if declared is not None:
        return [(site.registry.entities[d.entity], site.registry.entities[d.entity].fields[d.field],
                 d) for d in declared if d.entity in site.registry.entities]
    return [(other, ref, None) for other in site.registry.entities.values()
            for ref in other.fields.values() if ref.type == "reference" and ref.to == entity.key]


def related_lists(site: Site, actor: Actor, entity: Entity, record_id: int,
                  presenter: Presenter,
                  declared: tuple[RelatedDef, ...] | None = None) -> list[RelatedList]:
    """Records of other entities whose reference fields point at this record.

    ``declared`` (a view's ``related:``) picks the lists, their order and
    columns; without it every reference to this entity gets a list.
    """
    found = []
    language = presenter.language
    for other, ref, spec in _references(site, entity, declared):
        if not site.records.policy.can(actor, other, "read"):
            continue
        hidden = site.records.hidden(actor, other)
        if ref.key in hidden:
            continue
        try:
            page = site.records.list(actor, other.key, limit=RELATED_ROWS, with_total=False,
                                     filters=[Filter(ref.key, "eq", record_id)])
        except CrmError:
            continue
        label = other.plural.get(language)
        if ref.label.get(language) != entity.label.get(language):
            label = f"{label} ({ref.label.get(language)})"
        if spec is not None and spec.label is not None:
            label = spec.label.get(language)
        rows = [(r["id"], presenter.record_title(other, r)) for r in page.rows]
        columns = [column_field(other, c) for c in (spec.columns if spec else ())
                   if c not in hidden]
        presenter.preload(other, page.rows)
        details = [[presenter.value(c, r.get(c.key)) for c in columns] for r in page.rows]
        found.append(RelatedList(other, ref.key, label, rows, page.has_more, details))
    return found


def _when(value: Any) -> dt.datetime:
    moment = parse_iso(value)
    if isinstance(moment, dt.datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return dt.datetime.min.replace(tzinfo=dt.UTC)


def timeline(site: Site, actor: Actor, entity: Entity, record_id: int,
             presenter: Presenter, stage_field: str | None) -> list[Event]:
    """Audited changes and stage moves, newest first."""
    language = presenter.language
    events: dict[str, Event] = {}
    actions: dict[str, str] = {}
    for row in site.records.history(actor, entity.key, record_id):
        key = row.get("change_id") or str(row["id"])
        action = row["action"]
        event = events.get(key)
        actions.setdefault(key, action)
        if event is None:
            text = translate(_EVENT_WORDS.get(action, "updated_event"), language)
            event = events[key] = Event(_when(row["at"]), presenter.user_name(row["actor_id"]),
                                        text)
        name = row.get("field")
        if action in ("update", "transition") and name and name != stage_field:
            event.changes.append(_change(entity, name, row, presenter))
    # A change with nothing left to show (only the stage moved) is told by the stage event.
    result = [e for e, action in zip(events.values(), actions.values(), strict=True)
              if e.changes or action not in ("update", "transition")]
    if stage_field:
        result.extend(_stage_events(site, actor, entity, record_id, presenter, stage_field))
    return sorted(result, key=lambda e: e.at, reverse=True)


def _change(entity: Entity, name: str, row: dict[str, Any],
            presenter: Presenter) -> tuple[str, str, str]:
    if name == "owner":
        return (translate("owner", presenter.language),
                presenter.user_name(row["old_value"]) if row["old_value"] else "",
                presenter.user_name(row["new_value"]) if row["new_value"] else "")
    field = entity.fields.get(name)
    if field is None:
        return (name, str(row["old_value"] or ""), str(row["new_value"] or ""))
    label = field.label.get(presenter.language)
    if field.type == "lines":
        return (label, str(len(row["old_value"] or [])), str(len(row["new_value"] or [])))
    return (label, presenter.value(field, row["old_value"]),
            presenter.value(field, row["new_value"]))


def _stage_events(site: Site, actor: Actor, entity: Entity, record_id: int,
                  presenter: Presenter, stage_field: str) -> list[Event]:
    history = getattr(site.workflows, "history", None)
    if history is None:
        return []
    stage = entity.fields[stage_field]
    language = presenter.language
    events = []
    for row in history(actor, entity.key, record_id):
        text = translate("stage_event", language,
                         from_stage=presenter.value(stage, row["from_stage"]) or "·",
                         to_stage=presenter.value(stage, row["to_stage"]))
        note = ""
        if row.get("seconds_in_previous"):
            note = translate("time_in_stage", language, duration=presenter.duration(
                row["seconds_in_previous"]))
        if row.get("comment"):
            note = f"{note} — {row['comment']}" if note else row["comment"]
        events.append(Event(_when(row["at"]), presenter.user_name(row["actor_id"]), text,
                            note=note))
    return events


def transitions(site: Site, actor: Actor, entity: Entity,
                record_id: int) -> list[TransitionOption]:
    """The steps leaving the record's stage (none when the actor may not move it)."""
    if not site.records.policy.can(actor, entity, "transition"):
        return []
    try:
        return site.workflows.available(actor, entity.key, record_id)
    except CrmError:
        return []
