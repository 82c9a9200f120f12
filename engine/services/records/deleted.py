"""What goes with a deleted record, and what stays only for the audit trail.

Attachments, user links and stage history name their record by entity and
id.  Ids are never given twice (engine/storage/ids.py), but a restored
backup or a database edited by hand must still not hand a deleted record's
files, links or history to a new record that happens to get its id: so
they are removed with the record, in the same transaction.  The bytes of
files kept in the site's ``files/`` folder are unlinked once the deletion
is committed.

The audit rows stay — the trail of who changed and deleted what — but a
record's history shows only the rows written after the last deletion of a
record with its id (:func:`since_last_deletion`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, and_, delete, func, select

from engine.storage.tables import Schema

#: Tables whose rows belong to one record and go with it.
_REMOVED_WITH_RECORD = ("crm_user_link", "crm_stage_history")


def remove_belongings(conn: Connection, schema: Schema, entity: str, record_id: int) -> list[str]:
    """Delete the attachments, user links and stage history of a record; the files' keys."""
    files = schema.system("crm_attachment")
    blobs = schema.system("crm_attachment_blob")
    mine = and_(files.c.entity == entity, files.c.record_id == record_id)
    found = conn.execute(select(files.c.id, files.c.key, files.c.store).where(mine)).all()
    if found:
        conn.execute(delete(blobs).where(blobs.c.attachment_id.in_([row.id for row in found])))
        conn.execute(delete(files).where(mine))
    for name in _REMOVED_WITH_RECORD:
        table = schema.system(name)
        conn.execute(delete(table).where(table.c.entity == entity, table.c.record_id == record_id))
    return [row.key for row in found if row.store != "database"]


def since_last_deletion(audit: Table, entity: str, record_id: Any) -> Any:
    """Audit rows of ``entity`` ``record_id`` written after any earlier record of that id was deleted."""
    earlier = audit.alias("deleted")
    last = (
        select(func.coalesce(func.max(earlier.c.id), 0))
        .where(earlier.c.entity == entity, earlier.c.record_id == record_id,
               earlier.c.action == "delete")
        .scalar_subquery()
    )
    return and_(audit.c.entity == entity, audit.c.record_id == record_id, audit.c.id > last)
