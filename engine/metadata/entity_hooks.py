"""Resolving and checking the ``hooks:`` an entity declares (see docs/hooks.md).

An entity names functions per event; a pack's functions live in the
``hooks.py`` next to its ``pack.yaml``, a site overlay's in
``custom/hooks.py``.  `crm check` reports a missing file, a file that does
not parse, or an unknown function at the line of the YAML that names it —
reading ``hooks.py`` with the pack-Python loader's :class:`FunctionFinder`
(engine/metadata/pack_python.py), never importing it, so a check runs no
pack code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from engine.errors import Problem
from engine.metadata.merge import SITE, RawEntity
from engine.metadata.model import Entity, HookRef, Origin, PackInfo
from engine.metadata.pack_python import HOOKS_FILE, FunctionFinder

#: The events an entity may hook into, in the order a write meets them.
HOOK_EVENTS: tuple[str, ...] = (
    "before_save", "after_save", "before_delete", "after_delete", "after_transition",
)


def _hooks_file(pack: str, packs: Mapping[str, PackInfo], overlay_dir: Path | None,
                overlay_prefix: str) -> tuple[Path | None, str]:
    """Where the functions of ``pack`` (or of the site) live, and how to name that file."""
    if pack == SITE:
        folder = overlay_dir
        return (folder / HOOKS_FILE if folder else None), f"{overlay_prefix}/{HOOKS_FILE}"
    info = packs.get(pack)
    return (Path(info.path) / HOOKS_FILE if info else None), f"packs/{pack}/{HOOKS_FILE}"


def attach_hooks(
    entities: dict[str, Entity],
    raw: Mapping[str, RawEntity],
    packs: Mapping[str, PackInfo],
    *,
    overlay_dir: Path | None = None,
    overlay_prefix: str = "custom",
) -> tuple[dict[str, Entity], list[Problem]]:
    """The entities with their checked hooks attached, and what is wrong with the others."""
    problems: list[Problem] = []
    finder = FunctionFinder()
    out = dict(entities)
    for key, entity in entities.items():
        source = raw.get(key)
        if source is None or not source.hooks:
            continue
        by_event: dict[str, list[HookRef]] = {}
        for event, name, pack, where in source.hooks:
            file, shown = _hooks_file(pack, packs, overlay_dir, overlay_prefix)
            found, problem = finder.find(file, shown, name,
                                         missing_file=f"write 'def {name}(context): ...' in it")
            if found is None:
                problems.append(where.problem(problem or shown))
                continue
            line, column = where.document.locate(where.path)
            by_event.setdefault(event, []).append(HookRef(
                event=event, function=name, pack=pack, file=str(found),
                origin=Origin(where.document.file, line, column, pack),
            ))
        if by_event:
            hooks = {e: tuple(by_event[e]) for e in HOOK_EVENTS if e in by_event}
            out[key] = dataclasses.replace(entity, hooks=MappingProxyType(hooks))
    return out, problems
