"""Merging a duplicate record into the one kept (two customers that are one party).

:func:`plan_merge` says what a merge would do — the kept record's empty
fields the duplicate fills, and every record that refers to the duplicate
and would move — without changing anything (``crm merge --dry-run``, the
merge page's preview).  :func:`merge` does it, in one transaction:

- the kept record's empty fields take the duplicate's values (fields the
  actor may not see or set, unique ones and sequences are left alone);
- every record of **any** entity of the registry that refers to the
  duplicate is pointed at the kept one: ``reference`` fields,
  ``many_to_many`` links (a link the kept record already has is not
  doubled) and reference columns of ``lines`` — whoever owns the record and
  whatever its stage, like a customer transfer: a contact of another
  salesperson's still belongs to the merged company.  The list is read from
  the registry, so a pack that adds an entity referring to customers needs
  nothing more;
- each moved record's version is bumped and gets an audit row (action
  ``merge``, the field, old → new id); the kept record gets a ``merge`` row
  naming the duplicate (shown on its timeline) and the duplicate one naming
  the kept record, all under one change id;
- the duplicate is archived, not deleted, so its own history stays readable.

Merging removes a record, so the actor needs the ``delete`` right on the
entity, the kept record within their ``update`` scope and the duplicate
within their ``delete`` scope (a salesperson of the core pack cannot merge;
a manager merges their team's customers).  A reference field declared
``unique`` that both records already fill cannot move without breaking its
rule: the merge is refused and nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from engine.context import Actor
from engine.errors import NotFound, PermissionDenied, ValidationFailed
from engine.metadata.model import Entity
from engine.services.records.audit import new_change_id, write_audit
from engine.services.records.service import RecordService
from engine.storage.database import read_transaction, write_transaction

_NOT_COPIED = frozenset({"lines", "many_to_many", "sequence", "computed"})


@dataclass(frozen=True)
class Move:
    """The records of one entity whose field (or ``lines.column``) points at the duplicate."""

    entity: str
    field: str
    kind: str  # reference, many_to_many or lines
    record_ids: tuple[int, ...]
    column: str | None = None  # the reference column of a lines field

    @property
    def where(self) -> str:
        """``"contact.customer"``, ``"opportunity.lines.supplier"``."""
        return ".".join(p for p in (self.entity, self.field, self.column) if p)


@dataclass(frozen=True)
class MergePlan:
    """What merging ``duplicate`` into ``kept`` changes."""

    entity: str
    kept: dict[str, Any]
    duplicate: dict[str, Any]
    fills: dict[str, Any]
    moves: tuple[Move, ...] = field(default_factory=tuple)

    @property
    def moved(self) -> dict[str, int]:
        """``"entity.field"`` → how many records move."""
        return {m.where: len(m.record_ids) for m in self.moves}


@dataclass(frozen=True)
class MergeResult:
    """The kept record after a merge, what moved to it ("entity.field" → count), the change id."""

    kept: dict[str, Any]
    merged_id: Any
    moved: dict[str, int]
    change_id: str


def _fill(records: RecordService, actor: Actor, entity: Entity, kept: Mapping[str, Any],
          duplicate: Mapping[str, Any]) -> dict[str, Any]:
    """The kept record's empty fields the duplicate has a value for (and the actor may set)."""
    closed = records.hidden(actor, entity) | records.policy.readonly_fields(actor, entity)
    merged = dict(kept)
    fills: dict[str, Any] = {}
    for one in entity.fields.values():
        if (one.type in _NOT_COPIED or one.unique or one.readonly or one.key in closed
                or not one.is_input):
            continue
        if kept.get(one.key) not in (None, "", []) or duplicate.get(one.key) in (None, "", []):
            continue
        candidate = {**merged, one.key: duplicate[one.key]}
        if one.visible_if is not None and not one.visible_if.evaluate(
                candidate, now=records.clock.now()):
            continue
        merged = candidate
        fills[one.key] = duplicate[one.key]
    return fills


def _reachable(conn: Connection, records: RecordService, actor: Actor, entity: Entity,
               record_id: Any, action: str) -> bool:
    table = records.schema.table(entity.key)
    scope = records.policy.row_filter(actor, entity, table, action)
    where = [table.c.id == record_id] + ([scope] if scope is not None else [])
    return conn.execute(select(table.c.id).where(*where)).first() is not None


def _moves(conn: Connection, records: RecordService, entity: str, duplicate_id: int,
           keep_id: int) -> list[Move]:
    """Every record of any entity that points at ``duplicate_id``, read from the registry."""
    found: list[Move] = []
    for other in records.registry.entities.values():
        for one in other.fields.values():
            if one.type == "reference" and one.to == entity:
                table = records.schema.table(other.key)
                ids = tuple(r for (r,) in conn.execute(
                    select(table.c.id).where(table.c[one.key] == duplicate_id)
                    .order_by(table.c.id)))
                if ids and one.unique and conn.execute(
                        select(table.c.id).where(table.c[one.key] == keep_id)).first():
                    raise ValidationFailed({"duplicate": [
                        f"Both records have a {other.label.get('en')} by '{one.key}', "
                        "which may be given only once; merge or remove one of those first."]})
                if ids:
                    found.append(Move(other.key, one.key, "reference", ids))
            elif one.type == "many_to_many" and one.to == entity:
                link = records.schema.child(other.key, one.key)
                ids = tuple(r for (r,) in conn.execute(
                    select(link.c.source_id).where(link.c.target_id == duplicate_id)
                    .order_by(link.c.source_id)))
                if ids:
                    found.append(Move(other.key, one.key, "many_to_many", ids))
            elif one.type == "lines":
                lines = records.schema.child(other.key, one.key)
                for sub in one.fields.values():
                    if sub.type != "reference" or sub.to != entity:
                        continue
                    ids = tuple(r for (r,) in conn.execute(
                        select(lines.c.parent_id).where(lines.c[sub.key] == duplicate_id)
                        .group_by(lines.c.parent_id).order_by(lines.c.parent_id)))
                    if ids:
                        found.append(Move(other.key, one.key, "lines", ids, sub.key))
    return found


def _load(conn: Connection, records: RecordService, actor: Actor, entity: str, keep_id: Any,
          duplicate_id: Any) -> tuple[Entity, dict[str, Any], dict[str, Any]]:
    target = records.entity(entity)
    if str(keep_id) == str(duplicate_id):
        raise ValidationFailed({"duplicate": ["A record cannot be merged into itself."]})
    if not records.policy.can(actor, target, "delete"):
        raise PermissionDenied(f"You may not merge {target.plural.get(actor.language)}.")
    kept = records.get(actor, entity, keep_id, conn=conn)
    duplicate = records.get(actor, entity, duplicate_id, conn=conn)
    for record_id, action in ((kept["id"], "update"), (duplicate["id"], "update"),
                              (duplicate["id"], "delete")):
        if not _reachable(conn, records, actor, target, record_id, action):
            raise PermissionDenied(f"You may see this {target.label.get(actor.language)} "
                                   "but not change it.")
    for record in (kept, duplicate):
        if record["archived"]:
            raise NotFound(f"{target.label.get(actor.language)} {record['id']} is archived.")
    return target, kept, duplicate


def plan_merge(records: RecordService, actor: Actor, keep_id: Any, duplicate_id: Any, *,
               entity: str = "customer", conn: Connection | None = None) -> MergePlan:
    """What :func:`merge` would do, with the same checks, changing nothing."""
    if conn is None:
        with read_transaction(records.engine) as new:
            return plan_merge(records, actor, keep_id, duplicate_id, entity=entity, conn=new)
    target, kept, duplicate = _load(conn, records, actor, entity, keep_id, duplicate_id)
    return MergePlan(entity, kept, duplicate, _fill(records, actor, target, kept, duplicate),
                     tuple(_moves(conn, records, entity, duplicate["id"], kept["id"])))


def _apply(conn: Connection, records: RecordService, actor: Actor, move: Move,
           duplicate_id: int, keep_id: int, bumped: set[tuple[str, int]]) -> None:
    """Point one move's records at the kept record; each record's version goes up once."""
    now = records.clock.now()
    table = records.schema.table(move.entity)
    fresh = [i for i in move.record_ids if (move.entity, i) not in bumped]
    bumped.update((move.entity, i) for i in fresh)
    stamp = {"version": table.c.version + 1, "updated_at": now, "updated_by": actor.user_id}
    if move.kind == "reference":
        conn.execute(update(table).where(table.c.id.in_(move.record_ids))
                     .values({move.field: keep_id}))
        if fresh:
            conn.execute(update(table).where(table.c.id.in_(fresh)).values(stamp))
        return
    if move.kind == "many_to_many":
        link = records.schema.child(move.entity, move.field)
        both = select(link.c.source_id).where(link.c.target_id == keep_id)
        conn.execute(delete(link).where(and_(link.c.target_id == duplicate_id,
                                             link.c.source_id.in_(both))))
        conn.execute(update(link).where(link.c.target_id == duplicate_id)
                     .values(target_id=keep_id))
    else:
        lines = records.schema.child(move.entity, move.field)
        conn.execute(update(lines).where(lines.c[move.column] == duplicate_id)
                     .values({move.column: keep_id}))
    if fresh:
        conn.execute(update(table).where(table.c.id.in_(fresh)).values(stamp))


def merge(
    records: RecordService,
    actor: Actor,
    keep_id: Any,
    duplicate_id: Any,
    *,
    entity: str = "customer",
    conn: Connection | None = None,
) -> MergeResult:
    """Fold ``duplicate_id`` into ``keep_id`` (see the module docstring); all or nothing."""
    if conn is None:
        with write_transaction(records.engine) as new:
            return merge(records, actor, keep_id, duplicate_id, entity=entity, conn=new)
    plan = plan_merge(records, actor, keep_id, duplicate_id, entity=entity, conn=conn)
    keep_id, duplicate_id = plan.kept["id"], plan.duplicate["id"]
    target = records.entity(entity)
    if plan.fills:
        records.update(actor, entity, keep_id, plan.fills, conn=conn)
    now = records.clock.now()
    change_id = new_change_id()
    audit = records.schema.system("crm_audit")
    bumped: set[tuple[str, int]] = set()
    for move in plan.moves:
        _apply(conn, records, actor, move, duplicate_id, keep_id, bumped)
        if records.entity(move.entity).audit:
            name = f"{move.field}.{move.column}" if move.column else move.field
            for record_id in move.record_ids:
                write_audit(conn, audit, actor=actor, at=now, entity=move.entity,
                            record_id=record_id, action="merge",
                            changes={name: (duplicate_id, keep_id)}, change_id=change_id)
    files = records.schema.system("crm_attachment")  # the duplicate's files follow it
    conn.execute(update(files).where(files.c.entity == entity,
                                     files.c.record_id == int(duplicate_id))
                 .values(record_id=int(keep_id)))
    records.archive(actor, entity, duplicate_id, conn=conn)
    if target.audit:
        title = target.title_field
        write_audit(conn, audit, actor=actor, at=now, entity=entity, record_id=keep_id,
                    action="merge", change_id=change_id, changes={
                        "merged_from": (None, {"id": duplicate_id,
                                               "title": plan.duplicate.get(title) if title
                                               else None,
                                               "moved": plan.moved})})
        write_audit(conn, audit, actor=actor, at=now, entity=entity, record_id=duplicate_id,
                    action="merge", changes={"merged_into": (None, keep_id)},
                    change_id=change_id)
    elevated = replace(actor, is_admin=True)
    return MergeResult(records.get(elevated, entity, keep_id, conn=conn), duplicate_id,
                       plan.moved, change_id)
