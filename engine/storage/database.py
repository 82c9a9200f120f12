"""Connecting to SQLite or PostgreSQL with the same transactional guarantees.

SQLite needs help to behave like a server database: foreign keys are off
unless asked for, and Python's driver starts transactions lazily so DDL runs
outside them — which would make a failed migration half-applied.  We take
over ``BEGIN`` ourselves (as SQLAlchemy's documentation recommends), so
DDL is transactional, and writers take the write lock up front
(``BEGIN IMMEDIATE``) so concurrent writers wait instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, column, create_engine, event, inspect, select, table
from sqlalchemy.engine import make_url

from engine.errors import CrmError, SchemaOutOfDate

WRITE_OPTION = "crm_write"
#: Execution option marking the engine of a read-only replica (``database.replica_url``).
READ_ONLY_OPTION = "crm_read_only"


def normalise_url(url: str, base_dir: Path | None = None) -> str:
    """Use psycopg 3 for PostgreSQL and resolve a relative SQLite path against the site."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not path.is_absolute() and base_dir is not None:
            parsed = parsed.set(database=str((base_dir / path).resolve()))
    return parsed.render_as_string(hide_password=False)


def _prepare_sqlite(engine: Engine, *, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def database_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``database:`` of crm.yaml as engine options (PostgreSQL only; SQLite ignores them)."""
    options: dict[str, Any] = {}
    for key in ("pool_size", "max_overflow"):
        if key in settings:
            options[key] = int(settings[key])
    if settings.get("statement_timeout_ms"):
        options["statement_timeout_ms"] = int(settings["statement_timeout_ms"])
    return options


def dump_json(value: Any) -> str:
    """A JSON column's text; keys that are not strings are written as strings, as the
    standard library's ``json`` does."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_db_engine(url: str, *, base_dir: Path | None = None, read_only: bool = False,
                     **kwargs: Any) -> Engine:
    """An Engine for a site's database, prepared for the engine's transactions.

    ``read_only`` is for a replica: every session refuses writes (PostgreSQL's
    ``default_transaction_read_only``, SQLite's ``query_only``) and
    :func:`write_transaction` refuses the engine before connecting, so a
    write meant for the primary can never land on the replica.
    """
    url = normalise_url(url, base_dir)
    timeout = kwargs.pop("statement_timeout_ms", None)
    if url.startswith("sqlite"):
        kwargs.pop("pool_size", None)
        kwargs.pop("max_overflow", None)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
    else:
        kwargs.setdefault("pool_pre_ping", True)
        settings = []
        if timeout:
            settings.append(f"-c statement_timeout={int(timeout)}")
        if read_only:
            settings.append("-c default_transaction_read_only=on")
        if settings:
            # Each connection starts with them, so pooled and new connections alike are bound;
            # added to the URL's own libpq options (a search_path, say), never replacing them.
            parsed = make_url(url)
            given = parsed.query.get("options", "")
            given = " ".join(given) if isinstance(given, tuple) else given
            url = parsed.update_query_dict(
                {"options": " ".join([given, *settings]).strip()}
            ).render_as_string(hide_password=False)
    # JSON columns written through orjson: audit rows hold every new record's values, a
    # big import writes one document per row, and orjson is several times faster.
    kwargs.setdefault("json_serializer", dump_json)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _prepare_sqlite(engine, read_only=read_only)
    if read_only:
        engine = engine.execution_options(**{READ_ONLY_OPTION: True})
    return engine


def replica_url_problem(url: Any, primary_url: str) -> str | None:
    """Why ``database.replica_url`` cannot be used, or None; never repeats the URL itself,
    which may hold a password."""
    if not isinstance(url, str) or not url.strip():
        return "give the replica's database URL, e.g. postgresql+psycopg://crm@replica/crm"
    try:
        replica = make_url(normalise_url(url))
    except Exception:  # noqa: BLE001 - any parse failure is the same mistake for the user
        return ("is not a database URL; write it as database_url is written, "
                "e.g. postgresql+psycopg://crm@replica/crm")
    try:
        primary = make_url(normalise_url(primary_url)).get_backend_name()
    except Exception:  # noqa: BLE001 - database_url's own mistakes are reported where it is used
        primary = replica.get_backend_name()
    if replica.get_backend_name() not in ("postgresql", "sqlite"):
        return (f"names a {replica.get_backend_name()} database; "
                "VisionCRM reads from PostgreSQL or SQLite")
    if replica.get_backend_name() != primary:
        return (f"is a {replica.get_backend_name()} URL but database_url is {primary}; "
                "a replica is a copy of the same kind of database")
    return None


#: Execution option carrying the definitions hash a process was built from (set by Site).
DEFINITIONS_OPTION = "crm_definitions"
_APPLIED = table("crm_definitions", column("id"), column("definitions_hash"))
#: The newest applied definitions, built once: every write transaction reads them.
_NEWEST = select(_APPLIED.c.definitions_hash).order_by(_APPLIED.c.id.desc()).limit(1)
_NEWEST_SHARED = _NEWEST.with_for_update(read=True)


def bind_definitions(engine: Engine, definitions_hash: str) -> Engine:
    """The engine, marked with the definitions its writes are made under (see below)."""
    return engine.execution_options(**{DEFINITIONS_OPTION: definitions_hash})


def check_definitions(conn: Connection) -> None:
    """Refuse to write under definitions the database has moved on from.

    After ``crm migrate`` on another machine, a process still built from the
    old definitions must not write a single row: it gets
    :class:`SchemaOutOfDate` (503, retry later) until it has reloaded.  The
    check reads the newest ``crm_definitions`` row inside the write
    transaction.  On PostgreSQL it reads ``FOR SHARE``, and a migration
    locks the table ``EXCLUSIVE`` first, so a migration waits for writes in
    flight and writes wait for the migration — never a row between the two.
    On SQLite the write transaction (``BEGIN IMMEDIATE``) already excludes
    the migration.
    """
    expected = conn.get_execution_options().get(DEFINITIONS_OPTION)
    if expected is None:
        return
    query = _NEWEST_SHARED if conn.dialect.name == "postgresql" else _NEWEST
    applied = conn.execute(query).scalar()
    if applied != expected:
        raise SchemaOutOfDate(
            "The CRM's definitions were just changed; this server is reloading them. "
            "Please try again in a few seconds."
        )


def lock_definitions(conn: Connection) -> None:
    """Taken by a migration before it changes anything (see :func:`check_definitions`)."""
    if conn.dialect.name == "postgresql" and inspect(conn).has_table("crm_definitions"):
        conn.exec_driver_sql("LOCK TABLE crm_definitions IN EXCLUSIVE MODE")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction meant to write: committed on success, rolled back on error.

    Never on a replica's engine: reports, dashboards and exports read there, and
    every write belongs to the primary (where the definitions guard runs).
    """
    if engine.get_execution_options().get(READ_ONLY_OPTION):
        raise CrmError("This change was sent to the read-only replica (database.replica_url); "
                       "changes are written to the primary database only.")
    with engine.connect() as conn:
        conn = conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            check_definitions(conn)
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn
