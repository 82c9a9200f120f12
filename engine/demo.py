"""Loading a pack's demo records through the record service.

Demo files (``packs/<pack>/demo/*.yaml``) list records in order; a value
``"@ref"`` names a record created earlier, so files stay readable without
ids.  Records go through the service like any other write, so demo data is
validated, numbered and audited like real data.  A record in a later stage
lists the ``transitions:`` that bring it there (a stage key, or
``{to: stage, values: {...}, comment: ...}``): demo data moves through the
workflow like real data, never around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from engine.context import Actor
from engine.errors import DefinitionError, Problem, TransitionRefused, ValidationFailed
from engine.metadata.yaml_source import load_yaml
from engine.services.records import RecordService
from engine.services.workflows import WorkflowService


def demo_files(pack_paths: Iterable[Path]) -> list[tuple[str, Path]]:
    files = []
    for root in pack_paths:
        files.extend((root.name, p) for p in sorted((root / "demo").glob("*.yaml")))
    return files


def _resolve(value: Any, refs: dict[str, int], where: str) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] not in refs:
            raise DefinitionError(
                [Problem(where, None, None, "records", f"'{value}' names no record created before it")]
            )
        return refs[value[1:]]
    if isinstance(value, list):
        return [_resolve(v, refs, where) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, refs, where) for k, v in value.items()}
    return value


def load_demo(
    records: RecordService,
    actor: Actor,
    pack_paths: Iterable[Path],
    progress: Callable[[int, int], None] | None = None,
    workflows: WorkflowService | None = None,
) -> int:
    """Create every demo record of the given packs; returns how many were created."""
    entries: list[tuple[str, dict[str, Any]]] = []
    for pack, path in demo_files(pack_paths):
        doc = load_yaml(path, f"packs/{pack}/demo/{path.name}")
        for item in doc.data.get("records", []):
            entries.append((f"{doc.file}", item))
    refs: dict[str, int] = {}
    for done, (where, item) in enumerate(entries, start=1):
        values = _resolve(item.get("values", {}), refs, where)
        try:
            created = records.create(actor, item["entity"], values)
        except ValidationFailed as exc:
            raise ValidationFailed(exc.errors, f"{where}: demo record {done}: {exc.message}") from exc
        for step in item.get("transitions") or ():
            spec = step if isinstance(step, dict) else {"to": step}
            if workflows is None:
                raise DefinitionError([Problem(where, None, None, "records", "demo records "
                                               "with transitions need the workflow service")])
            try:
                workflows.transition(actor, item["entity"], created["id"], spec["to"],
                                     _resolve(spec.get("values") or {}, refs, where),
                                     comment=spec.get("comment"))
            except TransitionRefused as exc:
                raise TransitionRefused(f"{where}: demo record {done}: {exc.summary}",
                                        exc.reasons, exc.errors) from exc
            except ValidationFailed as exc:
                raise ValidationFailed(exc.errors, f"{where}: demo record {done}: "
                                       f"{exc.message}") from exc
        if item.get("ref"):
            refs[item["ref"]] = created["id"]
        if progress:
            progress(done, len(entries))
    return len(entries)
