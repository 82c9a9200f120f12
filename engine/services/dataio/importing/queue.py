"""Imports run by ``crm worker`` instead of inside a web request: queued, claimed, reported.

A big spreadsheet takes seconds to import and holds its file in memory; in a
web request that ties up a web worker and times out behind a proxy.  So the
upload page (for big files), ``POST /api/v1/<entity>/import?background=true``
and ``crm import --background`` only *queue* the import: the file, the
options, the user and the language go into a ``crm_import_run`` row, and the
answer points at the run.  Everything about a run lives in that row — the
file, the progress, the report, the refused rows — so the engine stays
stateless: any web process may queue a run or show it, and any worker on
any machine sharing the database may run it.

- **Rights, twice.** The ``import`` right is checked when the run is queued
  (403 at once) and again when it runs, with the user re-loaded from the
  database: a user whose right was taken away (or who was deactivated) in
  between gets a ``failed`` run saying so, and nothing is written.
- **One worker per run.** A worker claims the oldest queued run with one
  conditional ``UPDATE … WHERE status = 'queued'``: on PostgreSQL the
  second worker's update waits for the first and then matches nothing; on
  SQLite writers are serialised.  Exactly one claims it either way, with or
  without Redis.
- **Progress** is written as the importer reports each batch, at most once
  every :data:`PROGRESS_EVERY` seconds, in its own short transaction — never
  inside the import's own transaction, which commits or rolls back as a
  whole.  SQLite allows one writer at a time and the import is that writer,
  so there the progress goes to a small file beside the database instead
  (SQLite's processes share one machine, hence that folder), read back by
  whoever shows the run.
- **Dead workers.** The progress write also moves the run's
  ``heartbeat_at``.  A run still ``running`` whose heartbeat is older than
  :data:`TAKEOVER_AFTER` was left by a worker that died; the next worker
  takes it over (a conditional ``UPDATE`` on the old worker and heartbeat,
  so only one can) and runs it again — safe, because the import's single
  transaction died with the worker, and a written import records its
  ``done`` inside that same transaction (``Importer.run(before_commit=…)``):
  the rows and the outcome commit together or not at all.  A run that killed its worker
  :data:`MAX_ATTEMPTS` times is failed rather than tried forever.  A worker
  that finds its run taken over stops at its next progress report, rolling
  its import back; its final update matches nothing.
- **Stalled runs.** While a run runs, a thread of its worker beats every
  :data:`HEARTBEAT_EVERY` seconds, whatever the import is doing (the same
  ``heartbeat_at``, or the progress file on SQLite).  A run still
  ``running`` whose heartbeat is older than :data:`STALLED_AFTER` (three
  beats) is shown as ``stalled`` — its worker stopped or cannot reach the
  database — at once, long before another worker takes it over.
- **Failures** record ``failed`` with a message for the user (the error's
  own for refusals; a plain sentence for anything unexpected, whose
  traceback goes to the worker's log only).  The import's transaction was
  rolled back, so a failed or refused run leaves the database unchanged.

The file is dropped from the row once a real import has run; a check (dry
run) keeps it for :data:`KEEP_FILE`, so "Import" after a background check
needs no second upload.  Finished runs are deleted after :data:`KEEP`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from engine.context import Actor, Clock
from engine.errors import (
    CrmError,
    DatabaseBusy,
    NotFound,
    PermissionDenied,
    SchemaOutOfDate,
    TooLarge,
    ValidationFailed,
)
from engine.i18n import words_in
from engine.services.dataio.importing.importer import BATCH_SIZE, Importer
from engine.services.dataio.importing.readers import read_sheet
from engine.services.dataio.importing.report import ImportReport, LikelyDuplicate, RowError
from engine.storage.database import write_transaction

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
#: Shown, never stored: a running run whose worker's heartbeat stopped.
STALLED = "stalled"
FINISHED = (DONE, FAILED)
#: The largest file a run takes (bytes): the API's upload limit.
MAX_FILE = 20 * 1024 * 1024
#: Files of at least this many rows go to the background from the upload page.
BACKGROUND_ROWS = 5000
#: The most rows an import run inside an API request takes; longer files go to the
#: background (the upload page sends them there from BACKGROUND_ROWS on).
REQUEST_ROWS = 10_000
#: A running import writes its progress at most this often (seconds).
PROGRESS_EVERY = 1.0
#: A running import's worker writes its heartbeat this often (seconds), whatever it is doing.
HEARTBEAT_EVERY = 5.0
#: A running run without a heartbeat for this long is shown as stalled (three beats missed).
STALLED_AFTER = dt.timedelta(seconds=3 * HEARTBEAT_EVERY)
#: A run whose heartbeat is older than this was left by a worker that died.
TAKEOVER_AFTER = dt.timedelta(minutes=15)
#: Workers a run may outlive before it is failed instead of taken over again.
MAX_ATTEMPTS = 3
#: How long a worker's poll keeps taking queued runs before its other jobs get a turn.
RUN_BUDGET = 60.0
#: A check's file is kept this long (to import it without a second upload).
KEEP_FILE = dt.timedelta(days=1)
#: Finished runs are deleted after this long.
KEEP = dt.timedelta(days=30)

WORDS: dict[str, dict[str, str]] = {
    "no_user": {"en": "A background import runs as a user: sign in, or give --as LOGIN.",
                "zh": "后台导入须以某个用户身份运行:请登录,或使用 --as 指定用户。"},
    "not_found": {"en": "There is no import {id}.", "zh": "没有编号为 {id} 的导入。"},
    "choose_file": {"en": "Choose a file to import.", "zh": "请选择要导入的文件。"},
    "too_big": {"en": "The file is larger than {size} MB.", "zh": "文件超过 {size} MB。"},
    "user_gone": {
        "en": "The user who started this import is no longer active, so nothing was imported.",
        "zh": "发起此导入的用户已停用,因此未导入任何数据。"},
    "file_gone": {"en": "The file of this import is no longer kept: upload it again.",
                  "zh": "此导入的文件已不再保留:请重新上传。"},
    "not_checked": {"en": "Only a finished check of a file can be imported from here.",
                    "zh": "只有已完成检查的文件才能从这里导入。"},
    "unexpected": {
        "en": "The import stopped on an unexpected error, so nothing was written. "
              "The administrator will find the details in the worker's log.",
        "zh": "导入因意外错误而中止,未写入任何数据。管理员可在后台任务日志中查看详情。"},
    "busy": {
        "en": "The database stayed busy with other changes for too long, so the import stopped "
              "and nothing was written. Start it again.",
        "zh": "数据库长时间忙于其他修改,导入已中止,未写入任何数据。请重新开始导入。"},
    "worker_died": {
        "en": "The import was started {attempts} times and each time its worker stopped "
              "before the end; nothing was written. Try a smaller file, or ask the "
              "administrator to look at the worker's log.",
        "zh": "此导入已启动 {attempts} 次,每次后台进程都在完成前停止;未写入任何数据。"
              "请尝试较小的文件,或请管理员查看后台任务日志。"},
}


def say(key: str, language: str | None, **params: Any) -> str:
    return words_in(WORDS, key, language, **params)


def rows_estimate(data: bytes, filename: str) -> int:
    """About how many rows the file holds (0 when it cannot be read: the import says why)."""
    try:
        return read_sheet(data, filename).size_hint
    except CrmError:
        return 0


@dataclass(frozen=True)
class ImportRun:
    """One queued import, as its ``crm_import_run`` row says (without the file)."""

    id: int
    entity: str
    user_id: int
    language: str
    options: dict[str, Any]
    file_name: str
    file_size: int
    status: str
    rows_done: int
    rows_total: int
    report: dict[str, Any] | None
    has_rejected: bool
    has_file: bool
    error: str | None
    attempts: int
    claimed_by: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    finished_at: dt.datetime | None
    #: Running, but the worker's heartbeat stopped (see the module docstring).
    stalled: bool = False

    @property
    def shown_status(self) -> str:
        """The status as people see it: ``stalled`` for a running run without a heartbeat."""
        return STALLED if self.stalled else self.status

    @property
    def dry_run(self) -> bool:
        return bool(self.options.get("dry_run"))

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def percent(self) -> int:
        """How far along (0–100): by rows while running, 100 once finished."""
        if self.finished:
            return 100
        if not self.rows_total:
            return 0
        return max(0, min(99, self.rows_done * 100 // self.rows_total))

    def import_report(self) -> ImportReport | None:
        """The report as the importer made it (refused rows without their cells)."""
        data = self.report
        if data is None:
            return None
        return ImportReport(
            entity=data["entity"], dry_run=data["dry_run"], good_rows=data["good_rows"],
            rows=data["rows"], created=data["created"], updated=data["updated"],
            written=data["written"], encoding=data.get("encoding"),
            file_errors=list(data.get("file_errors") or []),
            row_errors=[RowError(e["line"], e["errors"]) for e in data.get("row_errors") or []],
            skipped_columns=list(data.get("skipped_columns") or []),
            columns=dict(data.get("columns") or {}),
            likely_duplicates=[LikelyDuplicate.from_dict(d)
                               for d in data.get("likely_duplicates") or []])

    def to_dict(self) -> dict[str, Any]:
        """The run as the API shows it."""
        def when(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id, "entity": self.entity, "status": self.shown_status,
            "stalled": self.stalled, "heartbeat_at": when(self.heartbeat_at),
            "dry_run": self.dry_run, "good_rows": bool(self.options.get("good_rows")),
            "upsert_on": self.options.get("upsert_on"), "file_name": self.file_name,
            "file_size": self.file_size, "rows_done": self.rows_done,
            "rows_total": self.rows_total, "percent": self.percent,
            "created_at": when(self.created_at), "started_at": when(self.started_at),
            "finished_at": when(self.finished_at), "error": self.error,
            "report": self.report, "has_rejected": self.has_rejected,
        }


class _TakenOver(Exception):
    """This worker's run was taken over by another: stop, rolling the import back."""


class _Progress:
    """The importer's ``progress(rows, total)``: counts, and writes at most every so often.

    :meth:`beat`, from the heartbeat thread, writes the same progress (and so
    the heartbeat) between two batches; a lock keeps the two writes apart.
    """

    def __init__(self, queue: ImportQueue, run_id: int, worker: str) -> None:
        self.queue = queue
        self.run_id = run_id
        self.worker = worker
        self.rows = 0
        self.total = 0
        self.last: float | None = None
        self.lock = threading.Lock()

    def __call__(self, rows: int, total: int) -> None:
        self.rows += rows
        self.total = max(total, self.rows)
        now = time.monotonic()
        if self.last is not None and now - self.last < self.queue.progress_every:
            return
        self.last = now
        with self.lock:
            self.queue.write_progress(self.run_id, self.worker, self.rows, self.total)

    def beat(self) -> None:
        with self.lock:
            self.queue.write_progress(self.run_id, self.worker, self.rows, self.total)


class _Heartbeat:
    """A thread beating for a running import every ``every`` seconds until stopped."""

    def __init__(self, progress: _Progress, every: float) -> None:
        self.progress = progress
        self.every = every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True,
                                       name=f"import-{progress.run_id}-heartbeat")

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _beat(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.progress.beat()
            except _TakenOver:
                return  # the import itself stops at its next progress report
            except Exception:  # noqa: BLE001 - a missed beat shows as stalled; never fatal
                log.warning("import %s: the heartbeat was not written", self.progress.run_id,
                            exc_info=True)


class ImportQueue:
    """Queues, claims and runs background imports (see the module docstring)."""

    def __init__(self, records: Any, users: Any, *, clock: Clock, timezone: str = "UTC",
                 takeover_after: dt.timedelta = TAKEOVER_AFTER,
                 progress_every: float = PROGRESS_EVERY, batch_size: int = BATCH_SIZE,
                 heartbeat_every: float = HEARTBEAT_EVERY,
                 stalled_after: dt.timedelta = STALLED_AFTER) -> None:
        self.records = records
        self.users = users
        self.clock = clock
        self.timezone = timezone
        self.engine: Engine = records.engine
        self.table = records.schema.system("crm_import_run")
        self.takeover_after = takeover_after
        self.progress_every = progress_every
        self.batch_size = batch_size
        self.heartbeat_every = heartbeat_every
        self.stalled_after = stalled_after
        t = self.table
        self._shown = [c for c in t.c if c.key not in ("content", "rejected", "report")]

    @classmethod
    def for_site(cls, site: Any, **options: Any) -> ImportQueue:
        options.setdefault("clock", site.clock)
        return cls(site.records, site.users, timezone=site.config.timezone, **options)

    def importer(self) -> Importer:
        return Importer(self.records, timezone=self.timezone, batch_size=self.batch_size)

    # -- queueing and looking -----------------------------------------------------------

    def enqueue(self, actor: Actor, entity_key: str, data: bytes, filename: str, *,
                dry_run: bool = False, upsert_on: str | None = None,
                mapping: Mapping[str, str | None] | None = None, good_rows: bool = False,
                remember: bool = False) -> ImportRun:
        """Queue an import of ``data`` as ``actor`` (who needs the ``import`` right now)."""
        if actor.user_id is None:
            raise PermissionDenied(say("no_user", actor.language))
        entity = self.importer().allow(actor, entity_key)
        if not data:
            raise ValidationFailed({"file": [say("choose_file", actor.language)]})
        if len(data) > MAX_FILE:
            raise TooLarge(say("too_big", actor.language, size=MAX_FILE // (1024 * 1024)))
        options = {"dry_run": dry_run, "upsert_on": upsert_on or None,
                   "mapping": dict(mapping) if mapping else None, "good_rows": good_rows,
                   "remember": remember}
        with write_transaction(self.engine) as conn:
            run_id = conn.execute(insert(self.table).values(
                entity=entity.key, user_id=actor.user_id, language=actor.language or "en",
                options=options, file_name=(filename or "upload.csv")[:255],
                file_size=len(data), content=data, status=QUEUED, rows_done=0, rows_total=0,
                attempts=0, created_at=self.clock.now())).inserted_primary_key[0]
        log.info("import %s of %s queued by %s (%s bytes)", run_id, entity.key, actor.login,
                 len(data))
        return self._get(run_id)

    def get(self, actor: Actor, run_id: int) -> ImportRun:
        """The run, to the user who queued it or an administrator (NotFound to anyone else)."""
        run = self._find(run_id)
        if run is None or not (actor.is_admin or (
                actor.user_id is not None and actor.user_id == run.user_id)):
            raise NotFound(say("not_found", actor.language, id=run_id))
        return run

    def rejected(self, actor: Actor, run_id: int) -> str | None:
        """The refused rows of a finished run as CSV text (None when it refused none)."""
        self.get(actor, run_id)
        with self.engine.connect() as conn:
            return conn.execute(select(self.table.c.rejected).where(
                self.table.c.id == run_id)).scalar()

    def recent(self, actor: Actor, *, limit: int = 50) -> list[ImportRun]:
        """The newest runs: the actor's own, or everyone's for an administrator."""
        t = self.table
        query = select(*self._shown, t.c.report, t.c.rejected.is_not(None).label("has_rej"),
                       t.c.content.is_not(None).label("has_content"))
        if not actor.is_admin:
            query = query.where(t.c.user_id == actor.user_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.id.desc()).limit(limit)).mappings().all()
        return [self._run(r) for r in rows]

    def import_checked(self, actor: Actor, run_id: int) -> ImportRun:
        """Queue the real import of a file a finished background check read (same options)."""
        run = self.get(actor, run_id)
        if not (run.dry_run and run.status == DONE):
            raise ValidationFailed({"run": [say("not_checked", actor.language)]})
        content = self._content(run_id)
        if content is None:
            raise ValidationFailed({"file": [say("file_gone", actor.language)]})
        options = run.options
        return self.enqueue(actor, run.entity, content, run.file_name,
                            upsert_on=options.get("upsert_on"), mapping=options.get("mapping"),
                            good_rows=bool(options.get("good_rows")),
                            remember=bool(options.get("remember")))

    # -- claiming -----------------------------------------------------------------------

    def claim(self, worker: str) -> ImportRun | None:
        """The next run for ``worker``: a dead worker's first, else the oldest queued one."""
        taken = self._take_over(worker)
        if taken is not None:
            return taken
        t = self.table
        with self.engine.connect() as conn:
            candidates = conn.execute(select(t.c.id).where(t.c.status == QUEUED)
                                      .order_by(t.c.id).limit(5)).scalars().all()
        for run_id in candidates:
            now = self.clock.now()
            with write_transaction(self.engine) as conn:
                won = conn.execute(update(t).where(t.c.id == run_id, t.c.status == QUEUED).values(
                    status=RUNNING, claimed_by=worker, started_at=now, heartbeat_at=now,
                    attempts=t.c.attempts + 1)).rowcount == 1
            if won:
                return self._get(run_id)
        return None

    def _take_over(self, worker: str) -> ImportRun | None:
        t = self.table
        now = self.clock.now()
        cutoff = now - self.takeover_after
        with self.engine.connect() as conn:
            stale = conn.execute(select(t.c.id, t.c.claimed_by, t.c.heartbeat_at, t.c.attempts,
                                        t.c.language).where(
                t.c.status == RUNNING, t.c.heartbeat_at < cutoff).order_by(t.c.id)).all()
        for found in stale:
            side = self._side_progress(found.id)
            if side is not None and side.get("at") and \
                    dt.datetime.fromisoformat(side["at"]) >= cutoff:
                continue  # SQLite: the run is alive, its progress goes to the side file
            same = (t.c.id == found.id, t.c.status == RUNNING,
                    t.c.claimed_by == found.claimed_by, t.c.heartbeat_at == found.heartbeat_at)
            if found.attempts >= MAX_ATTEMPTS:
                with write_transaction(self.engine) as conn:
                    conn.execute(update(t).where(*same).values(
                        status=FAILED, finished_at=now, content=None,
                        error=say("worker_died", found.language, attempts=found.attempts)))
                log.error("import %s failed: its worker stopped %s times", found.id,
                          found.attempts)
                continue
            with write_transaction(self.engine) as conn:
                won = conn.execute(update(t).where(*same).values(
                    claimed_by=worker, started_at=now, heartbeat_at=now, rows_done=0,
                    attempts=t.c.attempts + 1)).rowcount == 1
            if won:
                log.warning("import %s taken over by %s: worker %s stopped sending progress "
                            "at %s", found.id, worker, found.claimed_by,
                            found.heartbeat_at.isoformat(timespec="seconds"))
                return self._get(found.id)
        return None

    # -- running ------------------------------------------------------------------------

    def run_queued(self, worker: str, *, budget: float = RUN_BUDGET) -> dict[str, str]:
        """Claim and run queued imports for up to ``budget`` seconds; run id → status."""
        started = time.monotonic()
        done: dict[str, str] = {}
        while time.monotonic() - started < budget:
            run = self.claim(worker)
            if run is None:
                break
            done[str(run.id)] = self.execute(run, worker).status
        if done:
            self.prune()
        return done

    def execute(self, run: ImportRun, worker: str) -> ImportRun:
        """Run a claimed import to its end and record the outcome (see the module docstring)."""
        language = run.language
        progress = _Progress(self, run.id, worker)
        values: dict[str, Any] | None
        try:
            with _Heartbeat(progress, self.heartbeat_every):
                values = self._import(run, progress, worker)
        except _TakenOver:
            log.warning("import %s was taken over by another worker; %s stopped it", run.id,
                        worker)
            return self._get(run.id)
        except SchemaOutOfDate:
            # the definitions moved: back to the queue for a worker that has reloaded them
            self._requeue(run.id, worker)
            return self._get(run.id)
        except CrmError as exc:  # a refusal: the rights, the user, the entity
            log.info("import %s refused: %s", run.id, exc.message)
            values = {"status": FAILED, "error": exc.message}
        except Exception as exc:  # noqa: BLE001 - recorded for the user; details in the log
            if DatabaseBusy.from_exception(exc) is not None:
                log.warning("import %s stopped: the database was busy", run.id)
                values = {"status": FAILED, "error": say("busy", language)}
            else:
                log.exception("import %s failed", run.id)
                values = {"status": FAILED, "error": say("unexpected", language)}
        finally:
            self._drop_side_progress(run.id)
        if values is None:
            return self._get(run.id)  # recorded with the rows, in the import's transaction
        with write_transaction(self.engine) as conn:
            mine = self._finish(conn, run, worker, values)
        if not mine:
            log.warning("import %s ended after another worker took it over; its outcome "
                        "is not recorded", run.id)
        return self._get(run.id)

    def _finish(self, conn: Any, run: ImportRun, worker: str, values: dict[str, Any]) -> bool:
        """Record a run's outcome if the run is still this worker's; whether it was."""
        if values["status"] == FAILED or not run.dry_run:
            values = {**values, "content": None}
        t = self.table
        now = self.clock.now()
        return conn.execute(update(t).where(
            t.c.id == run.id, t.c.claimed_by == worker, t.c.status == RUNNING,
        ).values(finished_at=now, heartbeat_at=now, **values)).rowcount == 1

    def _import(self, run: ImportRun, progress: _Progress, worker: str) -> dict[str, Any] | None:
        """The run's outcome to record, or None when it was recorded with the imported rows."""
        actor = self._actor(run)
        content = self._content(run.id)
        if content is None:
            raise ValidationFailed({"file": [say("file_gone", run.language)]},
                                   say("file_gone", run.language))
        importer = self.importer()
        importer.allow(actor, run.entity)  # the right, again, as the user has it now
        options = run.options

        def record(conn: Any, report: ImportReport) -> None:
            # In the import's own transaction: the rows and "done" commit together, so a
            # worker dying in between can never leave written rows under a run that
            # another worker would import again.
            if not self._finish(conn, run, worker, self._outcome(report, run.language)):
                raise _TakenOver

        report = importer.run(actor, run.entity, content, run.file_name,
                              dry_run=run.dry_run, upsert_on=options.get("upsert_on"),
                              mapping=options.get("mapping"),
                              good_rows=bool(options.get("good_rows")), progress=progress,
                              before_commit=record)
        if options.get("remember") and report.written and report.columns:
            try:
                importer.save_mapping(actor, run.entity, report.columns)
            except CrmError as exc:
                log.warning("import %s: the columns were not remembered: %s", run.id,
                            exc.message)
        return None if report.written else self._outcome(report, run.language)

    @staticmethod
    def _outcome(report: ImportReport, language: str) -> dict[str, Any]:
        return {"status": DONE, "report": report.to_dict(), "rows_done": report.rows,
                "rows_total": report.rows,
                "rejected": report.rejected_csv(language) if report.row_errors else None}

    def _actor(self, run: ImportRun) -> Actor:
        """The user as the database has them now, speaking the language they queued in."""
        try:
            actor = self.users.actor(self.users.login_of(run.user_id))
        except NotFound:
            raise PermissionDenied(say("user_gone", run.language)) from None
        return dataclasses.replace(actor, language=run.language)

    def _requeue(self, run_id: int, worker: str) -> None:
        t = self.table
        with self.engine.begin() as conn:  # no definitions check: that is what just failed
            conn.execute(update(t).where(t.c.id == run_id, t.c.claimed_by == worker,
                                         t.c.status == RUNNING).values(
                status=QUEUED, claimed_by=None, rows_done=0, attempts=t.c.attempts - 1))
        log.info("import %s back in the queue: the definitions changed while it ran", run_id)

    # -- progress -----------------------------------------------------------------------

    def write_progress(self, run_id: int, worker: str, rows: int, total: int) -> None:
        """Rows done so far, outside the import's transaction (:class:`_TakenOver` if the
        run is no longer this worker's)."""
        t = self.table
        now = self.clock.now()
        mine = (t.c.id == run_id, t.c.claimed_by == worker, t.c.status == RUNNING)
        side = self._side_path(run_id)
        if side is None and self.engine.url.get_backend_name() == "sqlite":
            return  # an in-memory SQLite database: nowhere to write besides the import itself
        if side is None:
            # Its own short transaction, without the definitions check: a migration waiting
            # behind the import must not make the import wait behind it in turn.
            with self.engine.begin() as conn:
                if conn.execute(update(t).where(*mine).values(
                        rows_done=rows, rows_total=total, heartbeat_at=now)).rowcount != 1:
                    raise _TakenOver
            return
        with self.engine.connect() as conn:  # SQLite: reading is allowed while the import writes
            if conn.execute(select(t.c.id).where(*mine)).first() is None:
                raise _TakenOver
        temporary = side.with_name(side.name + ".tmp")
        temporary.write_text(json.dumps({"rows": rows, "total": total, "at": now.isoformat()}),
                             encoding="utf-8")
        os.replace(temporary, side)

    def _side_path(self, run_id: int) -> Path | None:
        """Where a SQLite site's running import writes its progress (None on PostgreSQL)."""
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        database = Path(url.database)
        return database.with_name(f"{database.name}.import-{run_id}.progress")

    def _side_progress(self, run_id: int) -> dict[str, Any] | None:
        path = self._side_path(run_id)
        if path is None:
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _drop_side_progress(self, run_id: int) -> None:
        path = self._side_path(run_id)
        if path is not None:
            path.unlink(missing_ok=True)

    # -- rows ---------------------------------------------------------------------------

    def prune(self) -> None:
        """Drop the files of checks older than KEEP_FILE and the runs older than KEEP."""
        t = self.table
        now = self.clock.now()
        with write_transaction(self.engine) as conn:
            conn.execute(update(t).where(t.c.finished_at < now - KEEP_FILE,
                                         t.c.content.is_not(None)).values(content=None))
            conn.execute(delete(t).where(t.c.finished_at < now - KEEP))

    def _content(self, run_id: int) -> bytes | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(self.table.c.content).where(
                self.table.c.id == run_id)).scalar()
        return bytes(found) if found is not None else None

    def _find(self, run_id: int) -> ImportRun | None:
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(select(
                *self._shown, t.c.report, t.c.rejected.is_not(None).label("has_rej"),
                t.c.content.is_not(None).label("has_content")).where(
                t.c.id == run_id)).mappings().first()
        return self._run(row) if row is not None else None

    def _get(self, run_id: int) -> ImportRun:
        found = self._find(run_id)
        assert found is not None, run_id
        return found

    def _run(self, row: Mapping[str, Any]) -> ImportRun:
        rows_done, rows_total = row["rows_done"] or 0, row["rows_total"] or 0
        heartbeat, stalled = row["heartbeat_at"], False
        if row["status"] == RUNNING:
            side = self._side_progress(row["id"])
            if side is not None:
                rows_done, rows_total = int(side.get("rows", 0)), int(side.get("total", 0))
                heartbeat = _moment(side.get("at")) or heartbeat
            if heartbeat is not None and self._heard_of(row["id"]):
                stalled = self.clock.now() - heartbeat > self.stalled_after
        return ImportRun(
            id=row["id"], entity=row["entity"], user_id=row["user_id"],
            language=row["language"], options=dict(row["options"] or {}),
            file_name=row["file_name"], file_size=row["file_size"], status=row["status"],
            rows_done=rows_done, rows_total=rows_total, report=row["report"],
            has_rejected=bool(row["has_rej"]), has_file=bool(row["has_content"]),
            error=row["error"], attempts=row["attempts"], claimed_by=row["claimed_by"],
            created_at=row["created_at"], started_at=row["started_at"],
            heartbeat_at=heartbeat, finished_at=row["finished_at"], stalled=stalled)

    def _heard_of(self, run_id: int) -> bool:
        """Whether a worker's heartbeat reaches whoever shows the run: not on an in-memory
        SQLite database, which no other process shares (nor holds a progress file)."""
        return self._side_path(run_id) is not None or \
            self.engine.url.get_backend_name() != "sqlite"


def _moment(text: Any) -> dt.datetime | None:
    """A heartbeat written in a progress file, or None."""
    try:
        return dt.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
