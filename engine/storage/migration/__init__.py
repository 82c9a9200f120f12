"""Migrating a site's database to its definitions without losing a row.

Layered like Alembic: :mod:`.operations` is plain data (what will change,
in a consultant's words), :mod:`.planner` compares the database with the
definitions to build it, :mod:`.executor` applies it in one transaction,
and :mod:`.state` remembers which definitions were applied.
"""

from engine.storage.migration.executor import apply_migration
from engine.storage.migration.operations import (
    AddChoices,
    AddColumn,
    AddIndex,
    ChangeType,
    CreateTable,
    DropColumn,
    DropIndex,
    DropTable,
    KeepIdsUnique,
    MigrationPlan,
    Operation,
    Place,
    RemoveChoices,
    RenameColumn,
    RenameTable,
)
from engine.storage.migration.planner import plan_migration
from engine.storage.migration.state import AppliedState, applied_state, is_up_to_date

__all__ = [
    "AddChoices",
    "AddColumn",
    "AddIndex",
    "AppliedState",
    "ChangeType",
    "CreateTable",
    "DropColumn",
    "DropIndex",
    "DropTable",
    "KeepIdsUnique",
    "MigrationPlan",
    "Operation",
    "Place",
    "RemoveChoices",
    "RenameColumn",
    "RenameTable",
    "applied_state",
    "apply_migration",
    "is_up_to_date",
    "plan_migration",
]
