"""Customer resource transfer (客户资源转移): hand a user's customers to colleagues.

Customers belong to the company.  When a salesperson leaves (or a territory
is re-cut), everything they own that the transfer rules name moves in one
transaction — customers, and following the ``follow`` rules their
contacts, open opportunities and open activities — to one colleague, or
spread over several by a rule:

* ``round_robin`` — in turn, in the order the records were created;
* ``balanced`` — each record to whoever owns the fewest of that entity;
* ``by_field`` — by a field's value (``region``: 上海 → alice, 杭州 → bob),
  the rest in turn among the other targets.

A record that follows another goes to whoever receives that one, so a
customer and its contacts are never split.  :meth:`TransferService.preview`
shows exactly what :meth:`~TransferService.run` would do; a run re-plans
inside its transaction, writes one audit row per moved record (all sharing
the transfer's change id) and a ``crm_transfer`` row with who, when, from,
to and the counts.  Anything failing midway rolls all of it back.

Who may transfer follows the roles (:meth:`TransferService.check`): an
administrator always; anyone else needs the right to update every entity
the plan moves with ``owner`` writable for them, every moved record inside
their update scope, and every receiver someone whose records that scope
covers — so an owner (scope ``all``) transfers anyone's customers, a sales
manager (scope ``team``) those of their team to their team, and a
salesperson, whose ``owner`` is read-only, nobody's.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from engine.context import Actor, Clock, default_clock
from engine.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from engine.metadata.model import Registry
from engine.services.records.audit import new_change_id
from engine.storage.database import write_transaction
from engine.storage.tables import Schema

RULES = ("round_robin", "balanced", "by_field")
_CHUNK = 500


@dataclass(frozen=True)
class Move:
    """One record changing owner; ``follows`` names the record it goes with."""

    entity: str
    record_id: int
    title: str | None
    to_user: int
    follows: tuple[str, int] | None = None

    def to_data(self, logins: Mapping[int, str]) -> dict[str, Any]:
        data: dict[str, Any] = {"entity": self.entity, "id": self.record_id,
                                "title": self.title, "to": logins.get(self.to_user)}
        if self.follows:
            data["follows"] = f"{self.follows[0]} {self.follows[1]}"
        return data


@dataclass
class TransferPlan:
    """What a transfer moves (and what stays), before or as it runs."""

    from_user: int
    to_users: list[int]
    rule: str
    logins: dict[int, str]
    moves: list[Move] = field(default_factory=list)
    kept: Counter = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        return dict(Counter(m.entity for m in self.moves))

    def per_user(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter] = defaultdict(Counter)
        for move in self.moves:
            table[self.logins[move.to_user]][move.entity] += 1
        return {login: dict(c) for login, c in sorted(table.items())}

    def to_data(self) -> dict[str, Any]:
        return {
            "from": self.logins[self.from_user],
            "to": [self.logins[u] for u in self.to_users],
            "rule": self.rule,
            "counts": self.counts(),
            "per_user": self.per_user(),
            "kept": dict(self.kept),
            "moves": [m.to_data(self.logins) for m in self.moves],
        }


class _Chooser:
    """Picks the receiver of a record that does not follow another."""

    def __init__(self, conn: Connection, service: TransferService, rule: str,
                 targets: list[int], by_field: str | None, mapping: Mapping[Any, int]) -> None:
        self.conn = conn
        self.service = service
        self.rule = rule
        self.targets = targets
        self.by_field = by_field
        self.mapping = mapping
        self.turns = itertools.cycle(targets) if targets else None
        self.load: dict[str, Counter] = {}

    def pick(self, entity: str, row: Mapping[str, Any]) -> int:
        if self.by_field and self.by_field in row and row[self.by_field] in self.mapping:
            return self.mapping[row[self.by_field]]
        if not self.targets:
            raise ValidationFailed({"to": [
                f"{entity} {row['id']} has {self.by_field} = {row.get(self.by_field)!r}, which "
                "no mapping names; give --to users for the records no mapping covers"]})
        if self.rule == "balanced":
            load = self.load.get(entity)
            if load is None:
                table = self.service.schema.table(entity)
                owned = dict(self.conn.execute(
                    select(table.c.owner, func.count()).where(table.c.owner.in_(self.targets))
                    .group_by(table.c.owner)).all())
                load = self.load[entity] = Counter({t: owned.get(t, 0) for t in self.targets})
            chosen = min(self.targets, key=lambda t: (load[t], self.targets.index(t)))
            load[chosen] += 1
            return chosen
        assert self.turns is not None
        return next(self.turns)


class TransferService:
    """Preview and run customer resource transfers; list the past ones."""

    def __init__(self, registry: Registry, schema: Schema, engine: Engine,
                 clock: Clock | None = None, policy: Any | None = None) -> None:
        self.registry = registry
        self.schema = schema
        self.engine = engine
        self.clock = clock or default_clock()
        self.users = schema.system("crm_user")
        #: The access policy; without one only administrators transfer.
        self.policy = policy

    # -- who ---------------------------------------------------------------------

    def _is_admin(self, actor: Actor) -> bool:
        checks = getattr(self.policy, "is_admin", None)
        return actor.is_admin or bool(checks and checks(actor))

    def _require_admin(self, actor: Actor) -> None:
        if not self._is_admin(actor):
            raise PermissionDenied("Only an administrator may list transfers.")

    def _roots(self) -> list[str]:
        return [e for e, rule in self.registry.transfer.items() if rule.parent is None]

    def _may_hand_over(self, actor: Actor, entity_key: str) -> bool:
        entity = self.registry.entities[entity_key]
        return (self.policy.can(actor, entity, "update")
                and "owner" not in self.policy.readonly_fields(actor, entity))

    def may_transfer(self, actor: Actor) -> bool:
        """Whether the actor may transfer anything at all (the page and its link)."""
        if self._is_admin(actor):
            return True
        if self.policy is None or not self.registry.transfer:
            return False
        return all(self._may_hand_over(actor, e) for e in self._roots())

    def _scope_users(self, conn: Connection, actor: Actor) -> set[int] | None:
        """The users whose records the actor may update (None: everyone's)."""
        if self._is_admin(actor):
            return None
        assert self.policy is not None
        for entity_key in self._roots():
            entity = self.registry.entities[entity_key]
            if self.policy.row_filter(actor, entity, self.schema.table(entity_key),
                                      "update") is None:
                return None
        found = {actor.user_id} if actor.user_id is not None else set()
        if actor.team_ids:
            members = self.schema.system("crm_team_member")
            teams = self.schema.system("crm_team")
            ids = sorted(actor.team_ids)
            found |= set(conn.execute(select(members.c.user_id)
                                      .where(members.c.team_id.in_(ids))).scalars())
            found |= {m for m in conn.execute(select(teams.c.manager_id)
                                              .where(teams.c.id.in_(ids))).scalars() if m}
        return found

    def _require_entry(self, actor: Actor) -> None:
        if not self.may_transfer(actor):
            raise PermissionDenied("You may not transfer customers: your roles do not let "
                                   "you change who owns them.")

    def people(self, actor: Actor) -> list[dict[str, Any]]:
        """The active users the actor may transfer from and to (id, login, display name)."""
        if not self.may_transfer(actor):
            raise PermissionDenied("You may not transfer customers.")
        with self.engine.connect() as conn:
            allowed = self._scope_users(conn, actor)
            query = select(self.users.c.id, self.users.c.login, self.users.c.display_name,
                           self.users.c.active).order_by(self.users.c.id)
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return [r for r in rows if allowed is None or r["id"] in allowed]

    def check(self, conn: Connection, actor: Actor, plan: TransferPlan) -> None:
        """Refuse a plan the actor's roles do not allow (see the module's docstring)."""
        if self._is_admin(actor):
            return
        if not self.may_transfer(actor):
            raise PermissionDenied("You may not transfer customers: your roles do not let "
                                   "you change who owns them.")
        assert self.policy is not None
        allowed = self._scope_users(conn, actor)
        if allowed is not None:
            outside = [plan.logins[u] for u in [plan.from_user, *plan.to_users]
                       if u not in allowed]
            if outside:
                raise PermissionDenied(
                    f"You may transfer only between people whose records you may change; "
                    f"not {', '.join(sorted(set(outside)))}.")
        by_entity: dict[str, list[int]] = defaultdict(list)
        for move in plan.moves:
            by_entity[move.entity].append(move.record_id)
        for entity_key, ids in by_entity.items():
            entity = self.registry.entities[entity_key]
            if not self._may_hand_over(actor, entity_key):
                raise PermissionDenied(f"You may not change who owns {entity_key} records.")
            table = self.schema.table(entity_key)
            scope = self.policy.row_filter(actor, entity, table, "update")
            if scope is None:
                continue
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                inside = set(conn.execute(select(table.c.id).where(
                    table.c.id.in_(chunk), scope)).scalars())
                stray = sorted(set(chunk) - inside)
                if stray:
                    raise PermissionDenied(
                        f"{entity_key} {stray[0]} is outside the records you may change.")

    def _user(self, conn: Connection, login: str, *, active: bool, what: str) -> tuple[int, str]:
        row = conn.execute(select(self.users.c.id, self.users.c.active)
                           .where(self.users.c.login == login)).first()
        if row is None:
            raise NotFound(f"There is no user '{login}'.")
        if active and not row.active:
            raise ValidationFailed({what: [f"'{login}' is deactivated; records cannot go to them."]})
        return row.id, login

    # -- planning -----------------------------------------------------------------

    def _plan(
        self, conn: Connection, from_login: str, to_logins: Sequence[str], rule: str,
        by_field: str | None, mapping: Mapping[Any, str], *, lock: bool = False,
    ) -> TransferPlan:
        if not self.registry.transfer:
            raise ValidationFailed({"transfer": [
                "The definitions declare no transfer rules (a 'transfer:' document)."]})
        if rule not in RULES:
            raise ValidationFailed({"rule": [f"Unknown rule '{rule}'; use {', '.join(RULES)}."]})
        if rule == "by_field" and not by_field:
            raise ValidationFailed({"by": ["The by_field rule needs the field to spread by."]})
        if by_field and not any(by_field in self.registry.entities[e].fields
                                for e, r in self.registry.transfer.items() if r.parent is None):
            raise ValidationFailed({"by": [f"No entity the transfer starts from has a field "
                                           f"'{by_field}'."]})
        source, _ = self._user(conn, from_login, active=False, what="from")
        logins = {source: from_login}
        targets: list[int] = []
        for login in dict.fromkeys(to_logins):
            user_id, _ = self._user(conn, login, active=True, what="to")
            targets.append(user_id)
            logins[user_id] = login
        mapped: dict[Any, int] = {}
        for value, login in mapping.items():
            user_id, _ = self._user(conn, login, active=True, what="map")
            mapped[value] = user_id
            logins[user_id] = login
        if source in targets or source in mapped.values():
            raise ValidationFailed({"to": [f"'{from_login}' cannot transfer to themselves."]})
        if not targets and not mapped:
            raise ValidationFailed({"to": ["Name at least one user to transfer to."]})
        everyone = sorted(set(targets) | set(mapped.values()))
        plan = TransferPlan(source, targets or everyone, _rule_name(rule, by_field), logins)
        chooser = _Chooser(conn, self, rule if rule != "by_field" else "round_robin",
                           targets, by_field, mapped)
        receiver: dict[tuple[str, int], int] = {}
        now = self.clock.now()
        for entity_key, spec in self.registry.transfer.items():
            entity = self.registry.entities[entity_key]
            table = self.schema.table(entity_key)
            for row in self._candidates(conn, table, source, spec, receiver, lock):
                if spec.when is not None and not spec.when.evaluate(row, now=now):
                    plan.kept[entity_key] += 1
                    continue
                parent = (spec.parent, row[spec.follow]) if spec.follow else None
                if parent is not None and parent in receiver:
                    to_user = receiver[parent]
                else:
                    parent = None
                    to_user = chooser.pick(entity_key, row)
                receiver[(entity_key, row["id"])] = to_user
                title = row.get(entity.title_field) if entity.title_field else None
                plan.moves.append(Move(entity_key, row["id"], None if title is None else str(title),
                                       to_user, parent))
        return plan

    def _candidates(self, conn: Connection, table: Any, source: int, spec: Any,
                    receiver: Mapping[tuple[str, int], int],
                    lock: bool) -> list[dict[str, Any]]:
        """Rows the user owns, and with ``any_owner`` every row following a moved record."""
        lock = lock and conn.dialect.name == "postgresql"

        def fetch(condition: Any) -> None:
            query = select(table).where(condition).order_by(table.c.id)
            if lock:
                query = query.with_for_update()  # nobody changes them under the plan
            rows.update((r["id"], dict(r)) for r in conn.execute(query).mappings())

        rows: dict[int, dict[str, Any]] = {}
        fetch(table.c.owner == source)
        if spec.any_owner and spec.follow:
            parents = sorted(i for (e, i) in receiver if e == spec.parent)
            for start in range(0, len(parents), _CHUNK):
                fetch(table.c[spec.follow].in_(parents[start:start + _CHUNK]))
        return [rows[k] for k in sorted(rows)]

    def preview(
        self, actor: Actor, from_login: str, to_logins: Sequence[str] = (), *,
        rule: str = "round_robin", by_field: str | None = None,
        mapping: Mapping[Any, str] | None = None,
    ) -> TransferPlan:
        """What :meth:`run` would move, to whom, and what would stay."""
        self._require_entry(actor)
        with self.engine.connect() as conn:
            plan = self._plan(conn, from_login, to_logins, rule, by_field, mapping or {})
            self.check(conn, actor, plan)
            return plan

    # -- running ---------------------------------------------------------------------

    def run(
        self, actor: Actor, from_login: str, to_logins: Sequence[str] = (), *,
        rule: str = "round_robin", by_field: str | None = None,
        mapping: Mapping[Any, str] | None = None, deactivate: bool = False,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Move everything the plan names in one transaction; returns the transfer record."""
        self._require_entry(actor)
        now = self.clock.now()
        change_id = new_change_id()
        with write_transaction(self.engine) as conn:
            plan = self._plan(conn, from_login, to_logins, rule, by_field, mapping or {},
                              lock=True)
            self.check(conn, actor, plan)
            by_entity: dict[str, list[Move]] = defaultdict(list)
            for move in plan.moves:
                by_entity[move.entity].append(move)
            for entity_key, moves in by_entity.items():
                self._move(conn, actor, entity_key, moves, plan.from_user, change_id, now)
            if deactivate:
                conn.execute(update(self.users).where(self.users.c.id == plan.from_user)
                             .values(active=False,  # and their sessions end
                                     session_epoch=self.users.c.session_epoch + 1))
            transfer = self.schema.system("crm_transfer")
            transfer_id = conn.execute(insert(transfer).values(
                at=now, actor_id=actor.user_id, from_user_id=plan.from_user,
                to_user_ids=sorted({m.to_user for m in plan.moves}) or plan.to_users,
                rule=plan.rule, counts=plan.counts(), total=len(plan.moves),
                deactivated=deactivate, change_id=change_id, note=note,
            )).inserted_primary_key[0]
        return {**self.get(transfer_id), "plan": plan}

    def _move(self, conn: Connection, actor: Actor, entity_key: str, moves: list[Move],
              source: int, change_id: str, now: Any) -> None:
        """Give one entity's records their new owners, each with its audit row."""
        table = self.schema.table(entity_key)
        by_user: dict[int, list[int]] = defaultdict(list)
        for move in moves:
            by_user[move.to_user].append(move.record_id)
        previous = {}
        for start in range(0, len(moves), _CHUNK):
            ids = [m.record_id for m in moves[start:start + _CHUNK]]
            previous.update(conn.execute(select(table.c.id, table.c.owner)
                                         .where(table.c.id.in_(ids))).all())
        for to_user, ids in by_user.items():
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                done = conn.execute(update(table).where(table.c.id.in_(chunk)).values(
                    owner=to_user, version=table.c.version + 1, updated_at=now,
                    updated_by=actor.user_id))
                if done.rowcount != len(chunk):
                    raise Conflict("Records changed while they were being transferred; "
                                   "nothing was moved. Preview and run again.")
        if self.registry.entities[entity_key].audit:
            audit = self.schema.system("crm_audit")
            conn.execute(insert(audit), [
                {"at": now, "actor_id": actor.user_id, "entity": entity_key,
                 "record_id": m.record_id, "action": "transfer", "field": "owner",
                 "old_value": previous.get(m.record_id, source), "new_value": m.to_user,
                 "change_id": change_id}
                for m in moves
            ])

    # -- reporting -----------------------------------------------------------------------

    def get(self, transfer_id: int) -> dict[str, Any]:
        rows = self._rows(transfer_id)
        if not rows:
            raise NotFound(f"There is no transfer {transfer_id}.")
        return rows[0]

    def list(self, actor: Actor, *, login: str | None = None) -> list[dict[str, Any]]:
        """Past transfers, newest first (``login``: from or to that user)."""
        self._require_admin(actor)
        rows = self._rows(None)
        if login is not None:
            rows = [r for r in rows if r["from"] == login or login in r["to"]]
        return rows

    def _rows(self, transfer_id: int | None) -> list[dict[str, Any]]:
        transfer = self.schema.system("crm_transfer")
        query = select(transfer).order_by(transfer.c.id.desc())
        if transfer_id is not None:
            query = query.where(transfer.c.id == transfer_id)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            logins = dict(conn.execute(select(self.users.c.id, self.users.c.login)).all())
        for row in rows:
            row["from"] = logins.get(row["from_user_id"])
            row["to"] = [logins.get(u) for u in row["to_user_ids"]]
            row["by"] = logins.get(row["actor_id"]) if row["actor_id"] else "system"
        return rows


def _rule_name(rule: str, by_field: str | None) -> str:
    return f"by_field:{by_field}" if rule == "by_field" else rule
