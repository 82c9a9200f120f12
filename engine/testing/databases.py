"""Fresh databases for tests: SQLite files, or new PostgreSQL schemas dropped afterwards.

Which one a run uses is chosen by ``CRM_TEST_DATABASE`` (``sqlite``, the
default, or ``postgresql``); PostgreSQL tests use a fresh schema inside the
database named by ``CRM_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


def backend() -> str:
    """The database kind this test run uses (``CRM_TEST_DATABASE``)."""
    kind = os.environ.get("CRM_TEST_DATABASE", "sqlite")
    if kind not in BACKENDS:
        raise ValueError(f"CRM_TEST_DATABASE must be sqlite or postgresql, not {kind!r}")
    return kind


def postgres_url() -> str:
    return os.environ.get("CRM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_unavailable(url: str) -> str | None:
    """Why PostgreSQL at ``url`` cannot be used, or None when it can."""
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at {url}: {exc.__class__.__name__}"
    return None


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'crm.db'}"


@contextmanager
def fresh_postgres_schema(url: str) -> Iterator[str]:
    """A URL into a new, empty schema of the database at ``url``; dropped on leaving."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in url else "?"
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
