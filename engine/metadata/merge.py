"""Merging entity documents and their extensions into one raw definition each.

Packs define entities; later packs and the site's overlays extend them.
Merging is kept apart from checking so that the checker sees the final
shape of every entity, while each option still remembers the file and line
that set it (an error in a merged field points at the overlay that caused
it, not at the pack that was extended).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem
from engine.metadata.model import PackInfo
from engine.metadata.packs import depends_on
from engine.metadata.yaml_source import SourceDocument

SITE = "(site)"


@dataclass
class Located:
    """A place in a document: enough to build a Problem later."""

    document: SourceDocument
    path: tuple

    def problem(self, message: str, *, key: bool = False, severity: str = "error") -> Problem:
        return self.document.problem(self.path, message, key=key, severity=severity)

    def child(self, *parts: Any) -> Located:
        return Located(self.document, (*self.path, *parts))


def place(where: Located) -> str:
    """``file:line`` of a place, for messages that name two places at once."""
    found = where.problem("")  # the document knows which file wrote that part
    return f"{found.file}:{found.line}" if found.line else found.file


@dataclass
class RawField:
    key: str
    data: dict[str, Any]
    declared: Located
    options: dict[str, Located] = field(default_factory=dict)
    fields: dict[str, RawField] = field(default_factory=dict)

    def where(self, option: str) -> Located:
        return self.options.get(option) or self.declared


@dataclass
class RawEntity:
    key: str
    pack: str
    declared: Located
    data: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Located] = field(default_factory=dict)
    fields: dict[str, RawField] = field(default_factory=dict)
    indexes: list[tuple[dict[str, Any], Located]] = field(default_factory=list)
    extended_by: list[str] = field(default_factory=list)
    #: (event, function, pack or SITE, where) in declaration order: the pack's first.
    hooks: list[tuple[str, str, str, Located]] = field(default_factory=list)

    def where(self, option: str) -> Located:
        return self.options.get(option) or self.declared


ENTITY_OPTIONS = ("label", "plural", "description", "title_field", "icon", "archivable", "audit",
                  "renamed_from")


def _merge_field(
    raw: RawField, data: dict[str, Any], at: Located, problems: list[Problem]
) -> None:
    """Apply an extension's options to an existing field."""
    for option, value in data.items():
        where = at.child(option)
        if option == "type" and value != raw.data.get("type"):
            problems.append(
                where.problem(
                    f"the type of '{raw.key}' cannot be changed from "
                    f"'{raw.data.get('type')}' to '{value}' by an extension "
                    f"(defined at {place(raw.declared)}); add a new field instead, or "
                    "rename this one (renamed_from keeps its data)"
                )
            )
            continue
        if option == "choices" and isinstance(value, dict):
            merged = dict(raw.data.get("choices") or {})
            merged.update(value)
            raw.data["choices"] = merged
            for choice in value:  # each choice remembers who added or relabelled it
                raw.options[f"choices.{choice}"] = where.child(choice)
        elif option == "fields" and isinstance(value, dict):
            _merge_fields(raw.fields, value, where, problems)
            continue
        else:
            raw.data[option] = value
        raw.options[option] = where


def _merge_fields(
    target: dict[str, RawField],
    fields: dict[str, Any],
    at: Located,
    problems: list[Problem],
    *,
    extending: bool = True,
) -> None:
    for key, data in fields.items():
        where = at.child(key)
        if not isinstance(data, dict):
            continue  # the schema check has reported it
        if key in target:
            if not extending:
                problems.append(where.problem(f"field '{key}' is defined twice", key=True))
                continue
            existing = target[key]
            if "type" in data and data["type"] == existing.data.get("type") and (
                existing.declared.document is not at.document
            ):
                # Typically a pack upgrade now defines a field an overlay added before.
                problems.append(where.problem(
                    f"'{key}' is defined here and also at {place(existing.declared)}; this "
                    "file now changes that field instead of adding its own — remove 'type' "
                    "here to keep only your changes, or rename your field", key=True,
                    severity="warning"))
            _merge_field(existing, data, where, problems)
            continue
        if "type" not in data:
            renamed = [f for f in target.values() if f.data.get("renamed_from") == key]
            if renamed:
                problems.append(where.problem(
                    f"'{key}' was renamed to '{renamed[0].key}' at "
                    f"{place(renamed[0].where('renamed_from'))}; change '{renamed[0].key}' "
                    "here instead", key=True))
                continue
            near = difflib.get_close_matches(key, list(target), n=1)
            hint = f" (did you mean to change '{near[0]}'?)" if near else ""
            problems.append(
                where.problem(
                    f"'{key}' is not a field of this entity yet, so it needs a 'type'{hint}",
                    key=True,
                )
            )
            continue
        raw = RawField(key=key, data={k: v for k, v in data.items() if k != "fields"}, declared=where)
        raw.options = {option: where.child(option) for option in data}
        target[key] = raw
        if isinstance(data.get("fields"), dict):
            _merge_fields(raw.fields, data["fields"], where.child("fields"), problems, extending=False)


def _merge_ledger(
    raw: RawEntity, ledger: dict[str, Any], at: Located, kind: str, problems: list[Problem]
) -> None:
    """An entity's ledger, key by key: an extension changes only the options it writes."""
    if kind == "extend" and not isinstance(raw.data.get("ledger"), dict):
        problems.append(at.problem(
            f"entity '{raw.key}' has no ledger to change; a ledger is declared where the "
            "entity is defined", key=True))
        return
    merged = dict(raw.data.get("ledger") or {})
    merged.update(ledger)
    raw.data["ledger"] = merged
    raw.options.setdefault("ledger", at)
    for option in ledger:
        raw.options[f"ledger.{option}"] = at.child(option)


def merge_documents(
    documents: list[tuple[str, SourceDocument, str]], packs: dict[str, PackInfo]
) -> tuple[dict[str, RawEntity], list[Problem]]:
    """Merge (pack, document, kind) triples, in loading order, into raw entities.

    ``pack`` is :data:`SITE` for a site overlay.  Definitions come before
    extensions whatever the file order, so a pack can extend an entity of
    its own defined in a file that sorts later.
    """
    problems: list[Problem] = []
    entities: dict[str, RawEntity] = {}
    ordered = [d for d in documents if d[2] == "entity"] + [
        d for d in documents if d[2] == "extend"
    ]
    for pack, doc, kind in ordered:
        data = doc.data
        top = Located(doc, ())
        if kind == "entity":
            key = data["entity"]
            if key in entities:
                first = entities[key].declared
                problems.append(
                    top.child("entity").problem(
                        f"entity '{key}' is already defined in {first.document.file}"
                        f" (line {first.document.locate(first.path)[0]}); "
                        f"use 'extend: {key}' to change it"
                    )
                )
                continue
            raw = RawEntity(key=key, pack=pack, declared=top.child("entity"))
            entities[key] = raw
        else:
            key = data["extend"]
            raw = entities.get(key)
            if raw is None:
                near = difflib.get_close_matches(key, list(entities), n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                problems.append(
                    top.child("extend").problem(f"there is no entity '{key}' to extend{hint}")
                )
                continue
            if pack != SITE and pack != raw.pack and not depends_on(packs, pack, raw.pack):
                problems.append(
                    top.child("extend").problem(
                        f"pack '{pack}' extends '{key}', which pack '{raw.pack}' defines, "
                        f"but does not depend on '{raw.pack}': add it to 'depends' in pack.yaml"
                    )
                )
                continue
            raw.extended_by.append(pack)
        for option in ENTITY_OPTIONS:
            if option in data:
                raw.data[option] = data[option]
                raw.options[option] = top.child(option)
        if isinstance(data.get("ledger"), dict):
            _merge_ledger(raw, data["ledger"], top.child("ledger"), kind, problems)
        if isinstance(data.get("fields"), dict):
            _merge_fields(
                raw.fields, data["fields"], top.child("fields"), problems,
                extending=(kind == "extend"),
            )
        for index, spec in enumerate(data.get("indexes") or ()):
            raw.indexes.append((spec, top.child("indexes", index)))
        for event, names in (data.get("hooks") or {}).items():
            listed = [names] if isinstance(names, str) else list(names)
            for index, name in enumerate(listed):
                where = top.child("hooks", event) if isinstance(names, str) else top.child(
                    "hooks", event, index)
                raw.hooks.append((event, name, pack, where))
        for field_key, choice_keys in (data.get("remove_choices") or {}).items():
            where = top.child("remove_choices", field_key)
            target = raw.fields.get(field_key)
            if target is None or target.data.get("type") != "choice":
                problems.append(
                    where.problem(f"'{field_key}' is not a choice field of '{key}'", key=True)
                )
                continue
            choices = dict(target.data.get("choices") or {})
            for i, choice in enumerate(choice_keys):
                if choice not in choices:
                    problems.append(
                        where.child(i).problem(
                            f"'{field_key}' has no choice '{choice}'; its choices: "
                            + ", ".join(choices)
                        )
                    )
                choices.pop(choice, None)
            target.data["choices"] = choices
            target.options["choices"] = where
    return entities, problems
