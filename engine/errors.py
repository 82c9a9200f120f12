"""The one place where VisionCRM's exceptions live.

Every exception carries the HTTP status a web adapter should answer with and
a message written for the person who caused it, so the CLI, the UI and the
API can report errors the same way without knowing where they came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class CrmError(Exception):
    """Base class: a message for users and the HTTP status that goes with it."""

    status: int = 500
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a definition file, located as precisely as we can.

    ``line`` and ``column`` are 1-based; ``path`` is the dotted path inside
    the document (``fields.amount.type``) so the message makes sense even
    when a position is unknown (for example a problem found after merging
    several files).
    """

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    severity: str = field(default="error", compare=False)

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        inside = f" [{self.path}]" if self.path else ""
        return f"{where}:{inside} {self.severity}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }


class DefinitionError(CrmError):
    """The definitions (packs, overlays, crm.yaml) cannot be used as they are."""

    status = 422
    code = "invalid_definitions"

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        lines = "\n".join(str(p) for p in errors)
        super().__init__(f"{len(errors)} problem(s) in the definitions:\n{lines}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "problems": [p.to_dict() for p in self.problems]}


class SiteNotFound(CrmError):
    status = 404
    code = "site_not_found"


class NotFound(CrmError):
    """A record, entity or user that does not exist *or that the actor may not see*."""

    status = 404
    code = "not_found"


class PermissionDenied(CrmError):
    status = 403
    code = "forbidden"


class Throttled(CrmError):
    """Too many failed logins: refused until ``retry_after`` seconds have passed."""

    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retry_after": self.retry_after}


class ValidationFailed(CrmError):
    """A record payload with field-level messages, all of them at once."""

    status = 422
    code = "validation_failed"

    def __init__(self, errors: Mapping[str, list[str]], message: str | None = None) -> None:
        self.errors = {k: list(v) for k, v in errors.items()}
        summary = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.errors.items())
        super().__init__(message or f"Some values are not valid — {summary}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "errors": self.errors}


class Conflict(CrmError):
    """Someone else changed the record since it was read; nothing was written."""

    status = 409
    code = "conflict"

    def __init__(self, message: str, current: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.current = dict(current) if current is not None else None

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.current is not None:
            data["current"] = self.current
        return data


class MigrationRefused(CrmError):
    """A migration would lose data and was not allowed to."""

    status = 409
    code = "migration_refused"

    def __init__(self, message: str, reasons: Iterable[str] = ()) -> None:
        self.reasons = list(reasons)
        full = message + ("".join(f"\n  - {r}" for r in self.reasons))
        super().__init__(full)


class MigrationFailed(CrmError):
    """A migration stopped part-way; the database was rolled back to where it was."""

    status = 500
    code = "migration_failed"


class TooLarge(CrmError):
    """An upload or request is bigger than the site allows."""

    status = 413
    code = "too_large"


class RestoreRefused(CrmError):
    """A backup archive cannot be restored here; nothing was changed."""

    status = 409
    code = "restore_refused"


class LedgerRefused(CrmError):
    """A ledger movement was refused; nothing was written.

    ``reason`` is ``append_only`` (a movement cannot be changed, archived or
    deleted: record a correcting one) or ``negative_balance`` (it would take
    a balance below zero); ``shortfalls`` then lists, for programs, each
    balance concerned: its dimension values, the balance and the movement.
    409: the request is well formed but does not fit the balances as they are.
    """

    status = 409
    code = "ledger_refused"

    def __init__(
        self, message: str, reason: str, shortfalls: Iterable[Mapping[str, Any]] = ()
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.shortfalls = [dict(s) for s in shortfalls]

    def to_dict(self) -> dict[str, Any]:
        data = {**super().to_dict(), "reason": self.reason}
        if self.shortfalls:
            data["shortfalls"] = self.shortfalls
        return data


class BadSetting(CrmError):
    """An environment setting holds a value VisionCRM cannot use."""

    status = 500
    code = "bad_setting"


class SchemaOutOfDate(CrmError):
    """The database was migrated to other definitions than the ones this process runs."""

    status = 503
    code = "definitions_changed"
    #: Seconds after which a client may try again (a server reloads within that).
    retry_after = 5


class DatabaseBusy(CrmError):
    """Another writer held the database longer than this request could wait: try again.

    SQLite lets one writer in at a time and answers "database is locked" once
    its busy timeout has passed; PostgreSQL gives up on a lock
    (``lock_timeout``), a statement (``statement_timeout``), a serialization
    failure or a deadlock.  None of these is the request's fault nor a
    defect: they are answered 503 with ``Retry-After``, never 500.
    """

    status = 503
    code = "database_busy"
    retry_after = 5
    MESSAGE = "The database is busy with other changes (a large import, say); try again shortly."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.MESSAGE)

    @classmethod
    def from_exception(cls, exc: BaseException) -> DatabaseBusy | None:
        """The busy error ``exc`` (a driver's error, raw or wrapped by SQLAlchemy) stands
        for, or None when it is something else."""
        if isinstance(exc, DatabaseBusy):
            return exc
        seen: set[int] = set()
        found: BaseException | None = exc
        while found is not None and id(found) not in seen:
            seen.add(id(found))
            if getattr(found, "sqlstate", None) in BUSY_SQLSTATES:
                return cls()
            if found.__class__.__name__ == "OperationalError" and any(
                    text in str(found).lower() for text in BUSY_TEXTS):
                return cls()
            found = getattr(found, "orig", None) or found.__cause__
        return None


#: PostgreSQL: lock_not_available, query_canceled (a lock or statement timeout),
#: serialization_failure, deadlock_detected.
BUSY_SQLSTATES = frozenset({"55P03", "57014", "40001", "40P01"})
#: SQLite's words for a database another connection holds.
BUSY_TEXTS = ("database is locked", "database table is locked", "database is busy")


@dataclass(frozen=True)
class Refusal:
    """One reason a stage transition cannot be taken: a code for programs, a message for people.

    Codes: ``no_transition`` (none leads from the current stage to the one
    asked for), ``role`` (the actor lacks every role the transition names),
    ``guard`` (its condition does not hold; the message is the guard's
    own), ``missing_fields`` (``fields`` names them), ``readonly`` (a value
    given on the way is read-only in the current stage).
    """

    code: str
    message: str
    fields: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            data["fields"] = list(self.fields)
        return data


class TransitionRefused(CrmError):
    """A stage transition was refused; nothing was written.  Carries every reason at once.

    409 Conflict, not 422: the request is well formed, but it does not fit
    the record's *current state* — its stage, the values it holds, who may
    move it from there — and the same request can succeed once that state
    changes (the amount entered, the record moved on), which is what 409
    means.  Clients tell it from a stale version (also 409) by its code.
    """

    status = 409
    code = "transition_refused"

    def __init__(
        self, message: str, reasons: Iterable[Refusal],
        errors: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.reasons = list(reasons)
        #: Field → messages, for forms that show them next to the inputs.
        self.errors = {k: list(v) for k, v in (errors or {}).items()}
        super().__init__(message + "".join(f"\n  - {r.message}" for r in self.reasons))
        self.summary = message

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.summary,
                "reasons": [r.to_dict() for r in self.reasons], "errors": self.errors}


class ActionFailed(CrmError):
    """A workflow action (a hook, a record it creates) failed; the transition was undone."""

    status = 422
    code = "action_failed"
