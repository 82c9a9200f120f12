"""``extend_workflow:`` documents: adding stages and transitions to a workflow without copying it.

A consultant who needs one more stage should not copy the pack's whole
workflow (``override: true``): the copy would hide every later improvement
of the pack.  An extension says only what it adds (``add_stages``,
``add_transitions``) and what it changes (``change_stages``,
``change_transitions``, option by option).  It is applied to the workflow
document before the workflow is checked and built, so the result is checked
as a whole, and every part keeps the file and line it was written at: a
mistake in an added stage is reported in the overlay, not in the pack.

Adding what already exists is an error naming both places — that is how a
pack upgrade that now ships a stage the site had added is reported — and
changing what does not exist is an error with a did-you-mean.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import Problem
from engine.metadata.merge import SITE, Located, place
from engine.metadata.model import PackInfo
from engine.metadata.packs import depends_on
from engine.metadata.workflow_actions import did_you_mean
from engine.metadata.yaml_source import SourceDocument

#: The document kind of an extension (its first key).
EXTENSION_KIND = "extend_workflow"
#: (key in the extension, part of the workflow, whether it adds).
SECTIONS: tuple[tuple[str, str, bool], ...] = (
    ("add_stages", "stages", True),
    ("change_stages", "stages", False),
    ("add_transitions", "transitions", True),
    ("change_transitions", "transitions", False),
)
_WORDS = {"stages": "stage", "transitions": "transition"}


@dataclass(frozen=True)
class LayeredDocument(SourceDocument):
    """A workflow document whose some parts were written in other files.

    ``layers`` maps a path of the merged data to the document (and the path
    in it) that wrote that part; the longest matching prefix wins, so a
    changed option points at the overlay while the rest of the stage points
    at the pack.  The file name stays the workflow's own.
    """

    layers: tuple[tuple[tuple, SourceDocument, tuple], ...] = ()

    def _source(self, path: Sequence) -> tuple[SourceDocument | None, tuple]:
        path = tuple(path)
        best: tuple[tuple, SourceDocument, tuple] | None = None
        for prefix, doc, inner in self.layers:
            if path[: len(prefix)] == prefix and (best is None or len(prefix) > len(best[0])):
                best = (prefix, doc, inner)
        if best is None:
            return None, path
        return best[1], (*best[2], *path[len(best[0]):])

    def locate(self, path: Sequence) -> tuple[int | None, int | None]:
        doc, inner = self._source(path)
        return SourceDocument.locate(self, inner) if doc is None else doc.locate(inner)

    def locate_key(self, path: Sequence) -> tuple[int | None, int | None]:
        doc, inner = self._source(path)
        return SourceDocument.locate_key(self, inner) if doc is None else doc.locate_key(inner)

    def problem(self, path: Sequence, message: str, *, key: bool = False,
                severity: str = "error") -> Problem:
        doc, inner = self._source(path)
        if doc is None:
            return SourceDocument.problem(self, inner, message, key=key, severity=severity)
        return doc.problem(inner, message, key=key, severity=severity)


def _apply(base: SourceDocument, ext: SourceDocument, problems: list[Problem]
           ) -> SourceDocument | None:
    """``base`` with the changes of ``ext``; None (with problems) when they do not fit."""
    data = copy.deepcopy(base.data)
    layers: list[tuple[tuple, SourceDocument, tuple]] = []
    ok = True
    ext_data = ext.data
    has_pipelines = "pipelines" in data
    targets: list[tuple[tuple, tuple, Mapping[str, Any]]] = []  # (merged prefix, ext prefix, changes)
    if any(section in ext_data for section, _, _ in SECTIONS):
        if has_pipelines:
            problems.append(ext.problem(
                (next(s for s, _, _ in SECTIONS if s in ext_data),),
                f"workflow '{ext_data[EXTENSION_KIND]}' has pipelines "
                f"({', '.join(data['pipelines'])}): write the changes under "
                "'pipelines: <pipeline>:'", key=True))
            return None
        targets.append(((), (), ext_data))
    for pipeline, changes in (ext_data.get("pipelines") or {}).items():
        if not has_pipelines or pipeline not in data["pipelines"]:
            known = list(data.get("pipelines") or {})
            problems.append(ext.problem(
                ("pipelines", pipeline),
                f"workflow '{ext_data[EXTENSION_KIND]}' has no pipeline '{pipeline}'"
                + (did_you_mean(pipeline, known) if known else
                   "; it has one pipeline: write the changes at the top level"), key=True))
            ok = False
            continue
        targets.append((("pipelines", pipeline), ("pipelines", pipeline), changes))
    for merged_prefix, ext_prefix, changes in targets:
        target = data
        for part in merged_prefix:
            target = target[part]
        for section, part, adds in SECTIONS:
            for key, spec in (changes.get(section) or {}).items():
                here = (*ext_prefix, section, key)
                existing = (target.get(part) or {})
                what = _WORDS[part]
                if adds:
                    if key in existing:
                        first = Located(base, (*merged_prefix, part, key))
                        problems.append(ext.problem(here, (
                            f"{what} '{key}' is already defined at {place(first)} — the pack "
                            f"now has a {what} of that key: rename yours, or move it to "
                            f"'change_{part}' to change the pack's"), key=True))
                        ok = False
                        continue
                    target.setdefault(part, {})[key] = copy.deepcopy(spec)
                    layers.append(((*merged_prefix, part, key), ext, here))
                    continue
                if key not in existing:
                    problems.append(ext.problem(here, (
                        f"there is no {what} '{key}' to change"
                        f"{did_you_mean(key, list(existing))}; to add one, write it under "
                        f"'add_{part}'"), key=True))
                    ok = False
                    continue
                merged = dict(existing[key] or {})
                for option, value in (spec or {}).items():
                    merged[option] = copy.deepcopy(value)
                    layers.append(((*merged_prefix, part, key, option), ext, (*here, option)))
                existing[key] = merged
    if "label" in ext_data:
        data["label"] = copy.deepcopy(ext_data["label"])
        layers.append((("label",), ext, ("label",)))
    if not ok:
        return None
    inherited = base.layers if isinstance(base, LayeredDocument) else ()
    return LayeredDocument(
        file=base.file, data=data, positions=base.positions, key_positions=base.key_positions,
        layers=(*inherited, *layers),
    )


def apply_extensions(
    bases: Mapping[str, tuple[str, SourceDocument]],
    extensions: Sequence[tuple[str, SourceDocument]],
    packs: Mapping[str, PackInfo],
) -> tuple[dict[str, SourceDocument], list[Problem]]:
    """The workflow documents (by key) as their extensions leave them, in loading order."""
    problems: list[Problem] = []
    out: dict[str, SourceDocument] = {}
    for pack, ext in extensions:
        key = ext.data[EXTENSION_KIND]
        if key not in bases:
            problems.append(ext.problem((EXTENSION_KIND,), f"there is no workflow '{key}' to "
                                        f"extend{did_you_mean(key, list(bases))}"))
            continue
        owner, base = bases[key]
        if pack not in (SITE, owner) and not depends_on(dict(packs), pack, owner):
            problems.append(ext.problem((EXTENSION_KIND,), (
                f"pack '{pack}' extends workflow '{key}' of pack '{owner}' without depending "
                f"on it: add '{owner}' to 'depends' in pack.yaml")))
            continue
        applied = _apply(out.get(key, base), ext, problems)
        if applied is not None:
            out[key] = applied
    return out, problems
