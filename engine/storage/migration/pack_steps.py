"""Data migrations a pack declares between its versions (``migrations:`` in pack.yaml).

Renaming a field needs no code (``renamed_from:``); splitting one, merging
two or recomputing values does.  A pack declares each such step with the
version that needs it and a function of its ``migrations.py``::

    migrations:
      - before: 1.1.0        # runs for a site that had a version below 1.1.0
        function: split_name

When ``crm migrate`` brings a site from a version below ``before`` to one at
or above it, the function runs inside the migration's transaction — after
new tables and columns exist and before old columns are dropped (and
archived) — so it can read the old values and write the new ones.  If it
raises, the whole migration is rolled back.  A site that installs the pack
fresh has no data to carry and runs no step.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, MetaData, Table

from engine.errors import MigrationFailed
from engine.metadata.model import Registry
from engine.metadata.pack_python import PackModules
from engine.metadata.versions import parse_version
from engine.metadata.yaml_source import load_yaml

#: The file of a pack that holds its data-migration functions.
MIGRATIONS_FILE = "migrations.py"


@dataclass(frozen=True)
class PackStep:
    """One declared data migration that this upgrade needs."""

    pack: str
    function: str
    before: str
    from_version: str
    to_version: str
    file: Path

    def describe(self) -> str:
        return (f"Run data migration '{self.function}' of pack '{self.pack}' "
                f"({self.from_version} → {self.to_version})")


@dataclass
class DataMigrationContext:
    """What a data-migration function gets: the migration's connection and the tables as they are.

    ``table(name)`` reads the table from the database itself, so it has the
    old columns still to be dropped as well as the new ones.
    """

    conn: Connection
    pack: str
    from_version: str
    to_version: str
    now: dt.datetime

    def table(self, name: str) -> Table:
        return Table(name, MetaData(), autoload_with=self.conn)


def pending_steps(registry: Registry, previous_packs: dict[str, str] | None) -> list[PackStep]:
    """The declared steps of the registry's packs that an upgrade from ``previous_packs`` needs."""
    steps: list[PackStep] = []
    for name, info in registry.packs.items():
        before_version = (previous_packs or {}).get(name)
        if before_version is None or before_version == info.version:
            continue
        root = Path(info.path)
        manifest = load_yaml(root / "pack.yaml", f"packs/{name}/pack.yaml").data
        for item in manifest.get("migrations") or ():
            needed = parse_version(item["before"])
            if parse_version(before_version) < needed <= parse_version(info.version):
                steps.append(PackStep(name, item["function"], item["before"], before_version,
                                      info.version, root / MIGRATIONS_FILE))
    return steps


def run_steps(conn: Connection, steps: list[PackStep], now: dt.datetime) -> None:
    """Run the steps in order on the migration's connection; a failure names the step."""
    modules = PackModules()
    for step in steps:
        function = modules.function(step.file, step.function)
        try:
            function(DataMigrationContext(conn, step.pack, step.from_version, step.to_version,
                                          now))
        except Exception as exc:
            raise MigrationFailed(
                f"{step.describe()} failed: {exc.__class__.__name__}: {exc}. The database was "
                "rolled back; nothing was changed.") from exc
