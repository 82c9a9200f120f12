"""Read-modify-write of records inside a write: the row lock a hook takes before it reads.

A hook that reads another record and writes back something computed from it
(a member's expiry moved on by a renewal, an instalment's collected sum, an
order's received quantities) must not read a value another transaction is
about to change: two renewals reading the same expiry would both move it
from there, and one month would be lost.  :meth:`RecordLockMixin.locked`
reads the record with a row lock held until the write's transaction ends
(``SELECT … FOR UPDATE`` on PostgreSQL, where a second writer waits and
then reads the first one's committed value; on SQLite every write
transaction already holds the database's write lock from its
``BEGIN IMMEDIATE``, so writers never overlap).  :meth:`update_with` locks,
hands the current record to a function and writes what it returns, with the
version it read — under the lock that write cannot find the record changed.

Several records are locked in ascending id order (:meth:`locked_all`), so
two writers locking the same records never wait for each other in a circle.
A rule about records that may not exist yet (the first claim on an end
customer creates it) takes a named lock instead (:meth:`lock_name`, a
transaction-scoped advisory lock on PostgreSQL).
See docs/hooks.md ("Changing another record safely").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from engine.context import Actor
from engine.errors import ActionFailed
from engine.services.records.ledgers import lock_key

if TYPE_CHECKING:
    from engine.metadata.model import Entity

#: What :meth:`RecordLockMixin.update_with` calls: the locked record → the changes (or None).
Change = Callable[[dict[str, Any]], Mapping[str, Any] | None]


def _require_write(conn: Connection | None, what: str) -> Connection:
    """A lock means something only inside the write's own transaction."""
    if conn is None or not conn.in_transaction():
        raise ActionFailed(f"{what} takes the connection of a write's transaction "
                           "(conn=context.conn in a hook); the lock lasts until it ends.")
    return conn


class RecordLockMixin:
    """``locked``, ``locked_all`` and ``update_with`` of the record service."""

    if TYPE_CHECKING:  # the host's steps these reuse
        def entity(self, key: str) -> Entity: ...
        def _allow(self, actor: Actor, entity: Entity, action: str) -> None: ...
        def _fetch(self, conn: Connection, actor: Actor, entity: Entity, record_id: Any, *,
                   lock: bool = False, action: str | None = "read") -> dict[str, Any]: ...
        def _redact(self, actor: Actor, entity: Entity,
                    record: dict[str, Any]) -> dict[str, Any]: ...
        def update(self, actor: Actor, entity_key: str, record_id: Any,
                   changes: Mapping[str, Any], *, version: int | None = None,
                   conn: Connection | None = None) -> dict[str, Any]: ...

    def locked(self, actor: Actor, entity_key: str, record_id: Any, *,
               conn: Connection) -> dict[str, Any]:
        """The record, read under a row lock held until ``conn``'s transaction ends.

        Read it here, compute, and write it back with ``update`` in the same
        transaction: no other writer can change it in between, and one that
        wants to waits, then reads what this one wrote.
        """
        entity = self.entity(entity_key)
        self._allow(actor, entity, "read")
        c = _require_write(conn, "locked()")
        record = self._fetch(c, actor, entity, record_id, lock=True)
        return self._redact(actor, entity, record)

    def locked_all(self, actor: Actor, entity_key: str, record_ids: Iterable[Any], *,
                   conn: Connection) -> dict[int, dict[str, Any]]:
        """Several records locked as :meth:`locked` does, by id, taken in ascending id order."""
        ids = sorted({int(i) for i in record_ids if i is not None})
        return {i: self.locked(actor, entity_key, i, conn=conn) for i in ids}

    def update_with(self, actor: Actor, entity_key: str, record_id: Any, change: Change, *,
                    conn: Connection) -> dict[str, Any]:
        """Lock the record, call ``change(record)`` and write the changes it returns.

        ``change`` gets the record as it is now (no other writer can move it
        until this transaction ends) and returns the field values to set, or
        ``None`` / ``{}`` to leave it as it is.  The write is checked against
        the version that was read, so it never overwrites a value ``change``
        did not see.  Returns the record as written.
        """
        entity = self.entity(entity_key)
        self._allow(actor, entity, "update")
        c = _require_write(conn, "update_with()")
        current = self._fetch(c, actor, entity, record_id, lock=True, action="update")
        shown = self._redact(actor, entity, current)
        changes = change(dict(shown))
        if not changes:
            return shown
        return self.update(actor, entity_key, current["id"], changes,
                           version=current["version"], conn=c)

    def lock_name(self, name: str, *, conn: Connection) -> None:
        """Hold the lock called ``name`` until ``conn``'s transaction ends.

        Writers taking the same name run one after the other — for a rule
        about records that may not exist yet, so there is no row to lock
        ("one end customer per name": look it up, create it if missing).
        """
        c = _require_write(conn, "lock_name()")
        if c.dialect.name == "postgresql":
            c.execute(select(func.pg_advisory_xact_lock(lock_key("crm_name", (name,)))))
