"""Backing a site up into one archive, and restoring it elsewhere.

The archive is a zip file holding a manifest with checksums, the site's
``crm.yaml`` and ``custom/`` folder, its attachment files, the packs the
site ran (so the exact definitions can be rebuilt) and every table's rows
as typed JSON lines.  A logical dump rather than a database-specific one is
deliberate: the same archive restores into SQLite or PostgreSQL (a client
outgrowing SQLite moves with ``crm backup`` + ``crm restore``), it needs no
``pg_dump`` of the server's major version on the app machine, and it is
read in one snapshot transaction, so it runs while the site is in use.
"""

from engine.backup.archive import ARCHIVE_FORMAT, Manifest
from engine.backup.backup import BackupResult, back_up
from engine.backup.restore import RestoreResult, restore

__all__ = ["ARCHIVE_FORMAT", "BackupResult", "Manifest", "RestoreResult", "back_up", "restore"]
