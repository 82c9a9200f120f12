"""From packs and overlays on disk to a checked, immutable :class:`Registry`.

The pipeline is: find packs → load each file keeping positions → check its
shape against the JSON Schemas → merge definitions and extensions → check
their meaning → build the registry.  Problems from every stage are gathered
and raised together in one :class:`DefinitionError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

from engine.errors import DefinitionError, Problem
from engine.metadata.build import build_entities
from engine.metadata.entity_hooks import attach_hooks
from engine.metadata.merge import SITE, merge_documents
from engine.metadata.model import PackInfo, Registry
from engine.metadata.packs import Requirement, resolve_packs
from engine.metadata.reminder_rules import REMINDER_KINDS, build_reminders
from engine.metadata.roles import ROLE_KINDS, build_roles
from engine.metadata.rule_leaks import rule_leaks
from engine.metadata.schema_check import document_kind, schema_problems
from engine.metadata.transfer_rules import TRANSFER_KINDS, build_transfer
from engine.metadata.view_defs import VIEW_KINDS, build_views
from engine.metadata.workflows import WORKFLOW_KINDS, add_workflow_fields, build_workflows
from engine.metadata.yaml_source import SourceDocument, load_yaml

#: Document kinds the registry builds from; other kinds are read by later stages.
ENTITY_KINDS = ("entity", "extend")


def _read_document(
    path: Path, display: str, problems: list[Problem]
) -> tuple[SourceDocument, str] | None:
    try:
        doc = load_yaml(path, display)
    except DefinitionError as exc:
        problems.extend(exc.problems)
        return None
    kind = document_kind(doc)
    if kind is None:
        problems.extend(schema_problems(doc, "entity"))
        return None
    found = schema_problems(doc, kind)
    if found:
        problems.extend(found)
        return None
    return doc, kind


def read_documents(
    packs: Sequence[str | Requirement],
    *,
    search_paths: Sequence[Path] = (),
    overlay_dir: Path | None = None,
    overlay_prefix: str = "custom",
) -> tuple[dict[str, PackInfo], list[tuple[str, SourceDocument, str]], list[Problem]]:
    """The packs (with their dependencies) and every shape-checked (pack, document, kind).

    Pack documents come in dependency order, the site's overlays last (their
    pack is :data:`SITE`); ``crm check --explain`` reads them again to say
    where each part of a definition came from.
    """
    requirements = [p if isinstance(p, Requirement) else Requirement(p) for p in packs]
    sources, problems = resolve_packs(requirements, search_paths)
    pack_infos = {s.info.name: s.info for s in sources}
    documents: list[tuple[str, SourceDocument, str]] = []
    for source in sources:
        for path in source.definition_files():
            read = _read_document(path, source.display(path), problems)
            if read is not None:
                documents.append((source.info.name, *read))
    if overlay_dir is not None and overlay_dir.is_dir():
        for path in sorted(overlay_dir.glob("*.yaml")):
            read = _read_document(path, f"{overlay_prefix}/{path.name}", problems)
            if read is not None:
                documents.append((SITE, *read))
    return pack_infos, documents, problems


def load_registry(
    packs: Sequence[str | Requirement],
    *,
    search_paths: Sequence[Path] = (),
    overlay_dir: Path | None = None,
    overlay_prefix: str = "custom",
) -> Registry:
    """Load and check the named packs (with their dependencies) and a site's overlays.

    Raises :class:`DefinitionError` listing every problem found; warnings
    are kept on the registry.
    """
    pack_infos, documents, problems = read_documents(
        packs, search_paths=search_paths, overlay_dir=overlay_dir, overlay_prefix=overlay_prefix
    )
    raw, merge_problems = merge_documents(
        [d for d in documents if d[2] in ENTITY_KINDS], pack_infos
    )
    problems.extend(merge_problems)
    # A workflow owns its stage field: added before building, so the entity may name it.
    problems.extend(add_workflow_fields(
        raw, [d for d in documents if d[2] in WORKFLOW_KINDS], pack_infos
    ))
    entities, build_problems = build_entities(raw)
    problems.extend(build_problems)
    entities, hook_problems = attach_hooks(
        entities, raw, pack_infos, overlay_dir=overlay_dir, overlay_prefix=overlay_prefix
    )
    problems.extend(hook_problems)
    workflows, workflow_problems = build_workflows(
        [d for d in documents if d[2] in WORKFLOW_KINDS], entities, pack_infos, overlay_dir
    )
    problems.extend(workflow_problems)
    roles, role_problems = build_roles(
        [d for d in documents if d[2] in ROLE_KINDS], entities, workflows, pack_infos
    )
    problems.extend(role_problems)
    problems.extend(rule_leaks(entities, workflows, roles))
    transfer, transfer_problems = build_transfer(
        [d for d in documents if d[2] in TRANSFER_KINDS], entities, workflows, pack_infos
    )
    problems.extend(transfer_problems)
    views, dashboards, view_problems = build_views(
        [d for d in documents if d[2] in VIEW_KINDS], entities, workflows, roles, pack_infos,
        overlay_dir,
    )
    problems.extend(view_problems)
    reminders, reminder_problems = build_reminders(
        [d for d in documents if d[2] in REMINDER_KINDS], entities, workflows, roles
    )
    problems.extend(reminder_problems)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise DefinitionError(problems)
    return Registry(
        entities=MappingProxyType(entities),
        packs=MappingProxyType(pack_infos),
        workflows=MappingProxyType(workflows),
        roles=MappingProxyType(roles),
        transfer=MappingProxyType(transfer),
        views=MappingProxyType(views),
        dashboards=MappingProxyType(dashboards),
        reminders=MappingProxyType(reminders),
        warnings=tuple(p for p in problems if p.severity != "error"),
    )
