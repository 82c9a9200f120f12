"""Loading a pack's demo records through the record service.

Demo files (``packs/<pack>/demo/*.yaml``) list records in order; a value
``"@ref"`` names a record created earlier, so files stay readable without
ids.  Records go through the service like any other write, so demo data is
validated, numbered and audited like real data.  A record in a later stage
lists the ``transitions:`` that bring it there (a stage key, or
``{to: stage, values: {...}, comment: ...}``): demo data moves through the
workflow like real data, never around it. An entry ``{entity: project, move:
"@ref", transitions: [...]}`` moves a record created earlier (``move`` may also
be field values matching one record: ``{project: "@p1"}``, for a record a
transition created), for flows whose next stage needs records created after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from engine.context import Actor, Clock, default_clock
from engine.errors import DefinitionError, Problem, TransitionRefused, ValidationFailed
from engine.metadata.yaml_source import load_yaml
from engine.services.records.service import RecordService
from engine.services.workflows.service import WorkflowService
from engine.storage.queries import Filter


class TravelClock:
    """The site's own clock, until a generator sets ``current`` to write in the past.

    ``crm demo`` opens its site with this clock so that generated records get
    believable creation times while everything else runs on ``base`` (the
    default clock: real time, or the moment ``CRM_CLOCK`` sets).
    """

    def __init__(self, base: Clock | None = None) -> None:
        self.base = base or default_clock()
        self.current: dt.datetime | None = None

    def now(self) -> dt.datetime:
        return self.current or self.base.now()


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


def _existing(records: RecordService, actor: Actor, item: dict[str, Any],
              refs: dict[str, int], where: str) -> int:
    """The record a ``move`` entry names: ``"@ref"``, or field values matching exactly one."""
    target = _resolve(item["move"], refs, where)
    if not isinstance(target, dict):
        return int(target)
    found = records.list(actor, item["entity"], limit=2, with_total=False,
                         filters=[Filter(k, "eq", v) for k, v in target.items()]).rows
    if len(found) != 1:
        raise DefinitionError([Problem(where, None, None, "records", f"move {item['move']} "
                                       f"matches {len(found)} {item['entity']} records, not one")])
    return found[0]["id"]


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
        if item.get("move"):
            # A record created earlier moves on once what its flow asks for exists (a
            # project reaches its quotation stage after its proposal is approved).
            created = {"id": _existing(records, actor, item, refs, where)}
        else:
            values = _resolve(item.get("values", {}), refs, where)
            try:
                created = records.create(actor, item["entity"], values)
            except ValidationFailed as exc:
                raise ValidationFailed(exc.errors,
                                       f"{where}: demo record {done}: {exc.message}") from exc
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
