"""Shared fixtures: which database the suite runs on, and fresh sites.

The suite runs once per database: ``CRM_TEST_DATABASE=sqlite`` (default) or
``postgresql``.  PostgreSQL tests use a fresh schema per test inside the
database named by ``CRM_TEST_POSTGRES_URL`` (default: the local ``test``
database).  Without a reachable PostgreSQL those tests skip with the reason
— except under CI (``CI`` set), where an unreachable PostgreSQL fails them:
a skipped database test is not a passed one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

POSTGRES_URL = os.environ.get(
    "CRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKEND = os.environ.get("CRM_TEST_DATABASE", "sqlite")

_pg_state: dict[str, str | None] = {}


def _postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can (asked once per run)."""
    if "reason" not in _pg_state:
        try:
            engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
            _pg_state["reason"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            _pg_state["reason"] = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc.__class__.__name__}"
    return _pg_state["reason"]


def _require_postgres() -> None:
    reason = _postgres_unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI expects PostgreSQL", pytrace=False)
        pytest.skip(reason)


@contextmanager
def fresh_pg_schema() -> Iterator[str]:
    """A URL into a new, empty PostgreSQL schema, dropped on the way out."""
    _require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL into a fresh, empty PostgreSQL schema, dropped afterwards."""
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture
def other_db_url(tmp_path: Path) -> Iterator[str]:
    """A second fresh database of this run's kind (restores, copies between sites)."""
    if BACKEND == "postgresql":
        with fresh_pg_schema() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'other.db'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'crm.db'}"


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of the kind this run tests (see the module docstring)."""
    if BACKEND == "postgresql":
        return request.getfixturevalue("pg_url")
    if BACKEND != "sqlite":
        raise pytest.UsageError(f"CRM_TEST_DATABASE must be sqlite or postgresql, not {BACKEND!r}")
    return f"sqlite:///{tmp_path / 'crm.db'}"
