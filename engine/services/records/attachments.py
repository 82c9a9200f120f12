"""Files attached to records: stored safely, served only to who may read the record.

Every call takes the actor and checks the record through the record
service — listing or downloading needs read access to the record (its
scope included), attaching or removing needs the right to change it — so
the web UI, the API and the CLI cannot differ.  A file belongs to a record,
not to a URL: its key is random, and a known key still answers "not found"
to someone who cannot read the record.

Bytes go to the site's ``files/`` folder or into the database
(``attachments: {store: database}`` in crm.yaml, for several app machines).
An upload is written to a temporary file first and counted as it streams;
too big, and it is refused (413) before anything is recorded; the row and
the bytes are committed together, and a failure leaves neither behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import delete, select

from engine.context import Actor, Clock
from engine.errors import NotFound, TooLarge, ValidationFailed
from engine.services.records.service import RecordService
from engine.storage.database import write_transaction

FILES_DIR = "files"
DEFAULT_MAX_MB = 20
CHUNK = 1 << 16
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OOXML = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


@dataclass(frozen=True)
class Attachment:
    id: int
    key: str
    entity: str
    record_id: int
    name: str
    content_type: str
    size: int
    sha256: str
    created_at: Any
    created_by: int | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("key", "name", "content_type", "size", "sha256",
                                              "created_at", "created_by")}


def clean_name(name: str) -> str:
    """A file name safe to store and show: no folders, no control characters, Chinese kept."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = _CONTROL.sub("", name).strip().lstrip(".")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:200]
    return name or "file"


def sniff_content_type(head: bytes, name: str) -> str:
    """The type the bytes are, never the type the uploader claims."""
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"PK\x03\x04"):
        return _OOXML.get(Path(name).suffix.lower(), "application/zip")
    if b"\x00" in head:
        return "application/octet-stream"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return "application/octet-stream"
    return "text/plain; charset=utf-8"


class AttachmentService:
    def __init__(self, records: RecordService, root: Path, *, store: str = "folder",
                 max_size_mb: int = DEFAULT_MAX_MB, clock: Clock) -> None:
        self.records = records
        self.engine = records.engine
        self.table = records.schema.system("crm_attachment")
        self.blobs = records.schema.system("crm_attachment_blob")
        self.folder = root / FILES_DIR
        self.store = store
        self.max_size = max_size_mb * 1024 * 1024
        self.clock = clock

    # -- reading ----------------------------------------------------------------

    def list(self, actor: Actor, entity: str, record_id: Any) -> list[Attachment]:
        self.records.get(actor, entity, record_id)  # NotFound outside the actor's scope
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.table).where(
                self.table.c.entity == entity, self.table.c.record_id == int(record_id))
                .order_by(self.table.c.id)).mappings()
            return [self._attachment(r) for r in rows]

    def find(self, actor: Actor, key: str) -> Attachment:
        """The attachment of this key, if the actor may read its record."""
        with self.engine.connect() as conn:
            row = conn.execute(select(self.table).where(self.table.c.key == str(key)[:64])
                               ).mappings().first()
        if row is None:
            raise NotFound("There is no such file.")
        try:
            self.records.get(actor, row["entity"], row["record_id"])
        except NotFound:
            raise NotFound("There is no such file.") from None
        return self._attachment(row)

    def content(self, actor: Actor, key: str) -> tuple[Attachment, Iterator[bytes]]:
        """The attachment and its bytes, streamed in chunks."""
        found = self.find(actor, key)
        return found, self._chunks(found)

    def _chunks(self, found: Attachment) -> Iterator[bytes]:
        with self.engine.connect() as conn:
            store = conn.execute(select(self.table.c.store).where(self.table.c.id == found.id)
                                 ).scalar_one()
            if store == "database":
                data = conn.execute(select(self.blobs.c.content).where(
                    self.blobs.c.attachment_id == found.id)).scalar_one()
                yield from (bytes(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK))
                return
        with self._path(found.key).open("rb") as source:
            while chunk := source.read(CHUNK):
                yield chunk

    # -- writing ----------------------------------------------------------------

    def attach(self, actor: Actor, entity: str, record_id: Any, name: str,
               stream: IO[bytes]) -> Attachment:
        """Store ``stream`` as a file of the record; all or nothing."""
        self.records.require_writable(actor, entity, record_id)
        name = clean_name(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        digest, size, head = hashlib.sha256(), 0, b""
        handle, temp_name = tempfile.mkstemp(dir=self.folder, prefix=".upload-")
        temp = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > self.max_size:
                        raise TooLarge(f"'{name}' is larger than the {self.max_size // 2**20} MB "
                                       "a file may be here.")
                    if len(head) < 512:
                        head += chunk[: 512 - len(head)]
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise ValidationFailed({"file": ["The file is empty."]})
            key = secrets.token_urlsafe(32)
            values = {"key": key, "entity": entity, "record_id": int(record_id), "name": name,
                      "content_type": sniff_content_type(head, name), "size": size,
                      "sha256": digest.hexdigest(), "store": self.store,
                      "created_at": self.clock.now(), "created_by": actor.user_id}
            final = self._path(key)
            try:
                with write_transaction(self.engine) as conn:
                    self.records.require_writable(actor, entity, record_id, conn=conn)
                    new_id = conn.execute(self.table.insert().values(values)
                                          ).inserted_primary_key[0]
                    if self.store == "database":
                        conn.execute(self.blobs.insert().values(attachment_id=new_id,
                                                                content=temp.read_bytes()))
                    else:
                        final.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(temp, final)
            except BaseException:
                if self.store != "database":
                    final.unlink(missing_ok=True)  # the row was rolled back: no orphan file
                raise
            return self._attachment({**values, "id": new_id})
        finally:
            temp.unlink(missing_ok=True)

    def remove(self, actor: Actor, key: str) -> None:
        found = self.find(actor, key)
        self.records.require_writable(actor, found.entity, found.record_id)
        with write_transaction(self.engine) as conn:
            conn.execute(delete(self.table).where(self.table.c.id == found.id))
        self._path(found.key).unlink(missing_ok=True)

    def unlink(self, keys: list[str]) -> None:
        """Remove the bytes of files whose rows are gone (their record was deleted)."""
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    # -- helpers ----------------------------------------------------------------

    def _path(self, key: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_-]{20,64}", key):
            raise NotFound("There is no such file.")
        return self.folder / key[:2] / key

    @staticmethod
    def _attachment(row: Any) -> Attachment:
        return Attachment(id=row["id"], key=row["key"], entity=row["entity"],
                          record_id=row["record_id"], name=row["name"],
                          content_type=row["content_type"], size=row["size"],
                          sha256=row["sha256"], created_at=row["created_at"],
                          created_by=row["created_by"])
