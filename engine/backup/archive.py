"""The archive's layout, its manifest and its checksums.

Layout inside the zip::

    manifest.json            what is inside, with a SHA-256 per member
    site/crm.yaml            the site's settings
    site/custom/...          its overlays
    site/files/...           its attachments
    packs/<name>/...         the packs it ran, as they were
    data/<table>.jsonl       one table: a header line, then one JSON array per row

Every member is checked against the manifest before a restore touches
anything, so a truncated or altered archive is refused as a whole.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from engine.errors import RestoreRefused

ARCHIVE_FORMAT = 1
MANIFEST = "manifest.json"
SITE_PREFIX = "site/"
PACKS_PREFIX = "packs/"
DATA_PREFIX = "data/"
CHUNK = 1 << 16


@dataclass
class Manifest:
    """What an archive holds; written last, read first."""

    site_name: str
    created_at: str
    dialect: str
    definitions_hash: str
    packs: dict[str, str]
    engine_version: str
    tables: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    format: int = ARCHIVE_FORMAT

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != ARCHIVE_FORMAT:
            raise RestoreRefused(f"This is not a VisionCRM backup of format {ARCHIVE_FORMAT}.")
        try:
            return cls(**data)
        except TypeError as exc:
            raise RestoreRefused(f"The archive's manifest is incomplete: {exc}.") from exc


class HashingWriter:
    """A file-like wrapper that hashes what is written through it."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.target.write(data)


class ArchiveWriter:
    """Writes members into the zip, recording each one's checksum."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self.checksums: dict[str, str] = {}

    def add_file(self, name: str, source: Path) -> None:
        with source.open("rb") as src, self.zip.open(name, "w", force_zip64=True) as raw:
            out = HashingWriter(raw)
            while chunk := src.read(CHUNK):
                out.write(chunk)
        self.checksums[name] = out.digest.hexdigest()

    def open_member(self, name: str) -> _Member:
        return _Member(self, name)

    def finish(self, manifest: Manifest) -> None:
        manifest.checksums = dict(sorted(self.checksums.items()))
        self.zip.writestr(MANIFEST, manifest.to_json())
        self.zip.close()

    def abandon(self) -> None:
        self.zip.close()
        self.path.unlink(missing_ok=True)


class _Member:
    """A member being streamed in, line by line."""

    def __init__(self, archive: ArchiveWriter, name: str) -> None:
        self.archive = archive
        self.name = name

    def __enter__(self) -> HashingWriter:
        self._raw = self.archive.zip.open(self.name, "w", force_zip64=True)
        self._writer = HashingWriter(self._raw)
        return self._writer

    def __exit__(self, *exc: Any) -> None:
        self._raw.close()
        self.archive.checksums[self.name] = self._writer.digest.hexdigest()


def read_manifest(path: Path) -> Manifest:
    """The manifest alone, unverified: enough to plan a progress bar."""
    try:
        with zipfile.ZipFile(path) as archive:
            return Manifest.from_json(archive.read(MANIFEST).decode("utf-8"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise RestoreRefused(f"{path} is not a readable VisionCRM backup: {exc}.") from exc


def open_checked(path: Path) -> tuple[zipfile.ZipFile, Manifest]:
    """Open an archive and verify every member against the manifest, or refuse."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise RestoreRefused(f"{path} is not a readable backup archive: {exc}.") from exc
    try:
        try:
            manifest = Manifest.from_json(archive.read(MANIFEST).decode("utf-8"))
        except KeyError as exc:
            raise RestoreRefused(f"{path} has no {MANIFEST}: it is not a VisionCRM backup.") from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise RestoreRefused(f"The manifest of {path} is damaged: {exc}.") from exc
        members = set(archive.namelist()) - {MANIFEST}
        if members != set(manifest.checksums):
            missing = sorted(set(manifest.checksums) - members)
            extra = sorted(members - set(manifest.checksums))
            raise RestoreRefused(f"{path} does not hold what its manifest lists "
                                 f"(missing: {missing[:5]}, unexpected: {extra[:5]}).")
        for name, expected in manifest.checksums.items():
            digest = hashlib.sha256()
            try:
                with archive.open(name) as member:
                    while chunk := member.read(CHUNK):
                        digest.update(chunk)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise RestoreRefused(f"{name} in {path} cannot be read: {exc}.") from exc
            if digest.hexdigest() != expected:
                raise RestoreRefused(f"{name} in {path} fails its checksum: the archive is "
                                     "damaged or was changed. Nothing was restored.")
    except BaseException:
        archive.close()
        raise
    return archive, manifest


def members_under(archive: zipfile.ZipFile, prefix: str) -> Iterator[tuple[str, str]]:
    """(member name, path relative to ``prefix``) for every file under it."""
    for name in archive.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            yield name, name[len(prefix):]


def safe_relative(relative: str) -> Path:
    """A member's relative path, refused if it would escape its folder."""
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts or not relative:
        raise RestoreRefused(f"The archive holds an unsafe path: {relative!r}.")
    return path
