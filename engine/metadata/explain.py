"""``crm check --explain ENTITY``: the merged definition, and where each part came from.

A consultant who sees a field behave oddly needs to know which file made it
so — the pack, another pack's extension or the site's overlay.  The
definitions are read again (after a full check has passed) and merged as
the loader merges them, keeping each option's place; the result is printed
as YAML with a ``# file:line`` comment on every line that came from a file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import NotFound
from engine.metadata.loader import ENTITY_KINDS, read_documents
from engine.metadata.merge import SITE, Located, RawField, merge_documents, place
from engine.metadata.model import Registry
from engine.metadata.packs import Requirement
from engine.metadata.workflow_model import workflow_for
from engine.metadata.workflows import WORKFLOW_KINDS, add_workflow_fields

#: The column where ``# file:line`` comments start (longer lines push them right).
COMMENT_COLUMN = 52


def _value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if (
            not value or any(c in value for c in ":#{}[],'\"") or value != value.strip()
        ) else value
    return json.dumps(value, ensure_ascii=False, default=str)


class _Lines:
    def __init__(self) -> None:
        self.out: list[str] = []

    def add(self, indent: int, text: str, where: Located | str | None = None) -> None:
        line = "  " * indent + text
        if where is not None:
            shown = where if isinstance(where, str) else place(where)
            line = f"{line.ljust(COMMENT_COLUMN - 1)} # {shown}"
        self.out.append(line)


def _field(lines: _Lines, raw: RawField, indent: int) -> None:
    lines.add(indent, f"{raw.key}:", raw.declared)
    for option, value in raw.data.items():
        if option == "choices" and isinstance(value, dict):
            lines.add(indent + 1, "choices:", raw.where(option))
            for choice, label in value.items():
                where = raw.options.get(f"choices.{choice}") or Located(
                    raw.declared.document, (*raw.declared.path, "choices", choice))
                lines.add(indent + 2, f"{choice}: {_value(label)}", where)
            continue
        lines.add(indent + 1, f"{option}: {_value(value)}", raw.where(option))
    if raw.fields:
        lines.add(indent + 1, "fields:")
        for sub in raw.fields.values():
            _field(lines, sub, indent + 2)


def explain_entity(
    registry: Registry,
    entity_key: str,
    packs: Sequence[str | Requirement],
    *,
    search_paths: Sequence[Path] = (),
    overlay_dir: Path | None = None,
    overlay_prefix: str = "custom",
) -> str:
    """The merged definition of ``entity_key`` as commented YAML (the registry must be valid)."""
    if entity_key not in registry.entities:
        raise NotFound(f"There is no entity '{entity_key}'; entities: "
                       + ", ".join(sorted(registry.entities)))
    pack_infos, documents, _ = read_documents(
        packs, search_paths=search_paths, overlay_dir=overlay_dir, overlay_prefix=overlay_prefix)
    raw_entities, _ = merge_documents([d for d in documents if d[2] in ENTITY_KINDS], pack_infos)
    add_workflow_fields(raw_entities, [d for d in documents if d[2] in WORKFLOW_KINDS],
                        pack_infos)
    raw = raw_entities[entity_key]
    entity = registry.entity(entity_key)
    lines = _Lines()
    version = pack_infos[raw.pack].version if raw.pack in pack_infos else ""
    lines.add(0, f"# {entity_key}: the merged definition; '# file:line' says where each part "
                 "was written")
    lines.add(0, f"entity: {entity_key}", raw.declared)
    lines.add(0, f"pack: {raw.pack} {version}".rstrip())
    extensions = [
        (pack, doc) for pack, doc, kind in documents
        if kind == "extend" and doc.data.get("extend") == entity_key
    ]
    if extensions:
        lines.add(0, "extended_by:")
        for pack, doc in extensions:
            who = "the site's overlay" if pack == SITE else f"pack {pack}"
            lines.add(1, f"- {who}", Located(doc, ("extend",)))
    for option, value in raw.data.items():
        lines.add(0, f"{option}: {_value(value)}", raw.where(option))
    lines.add(0, "fields:")
    for field_raw in raw.fields.values():
        _field(lines, field_raw, 1)
    if raw.indexes:
        lines.add(0, "indexes:")
        for spec, where in raw.indexes:
            lines.add(1, f"- {_value(spec)}", where)
    if entity.hooks:
        lines.add(0, "hooks:")
        for event, refs in entity.hooks.items():
            lines.add(1, f"{event}:")
            for ref in refs:
                lines.add(2, f"- {ref.function}    ({ref.file})", str(ref.origin))
    flow = workflow_for(registry.workflows, entity_key)
    if flow is not None:
        lines.add(0, f"workflow: {flow.key}", str(flow.origin) if flow.origin else None)
        for pipeline in flow.pipelines.values():
            indent = 1
            if len(flow.pipelines) > 1:
                lines.add(1, f"{pipeline.key}:")
                indent = 2
            docs = [t.origin_document for t in pipeline.transitions.values()
                    if t.origin_document is not None]
            lines.add(indent, "stages:")
            for stage in pipeline.stages.values():
                where = None
                if docs:
                    base = ("pipelines", pipeline.key) if "pipelines" in docs[0].data else ()
                    where = Located(docs[0], (*base, "stages", stage.key))
                lines.add(indent + 1, f"{stage.key}: {stage.category}", where)
            lines.add(indent, "transitions:")
            for transition in pipeline.transitions.values():
                where = transition.where() if transition.origin_document is not None else None
                lines.add(indent + 1, f"{transition.key}: {', '.join(transition.sources)} → "
                          f"{transition.to}", where)
    return "\n".join(lines.out) + "\n"
