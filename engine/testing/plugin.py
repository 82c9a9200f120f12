"""The VisionCRM pytest plugin: fixtures for testing packs (registered as ``visioncrm``).

Fixtures (all prefixed ``crm_`` so they never shadow a project's own):

- ``crm_database_url`` — a fresh database of the kind ``CRM_TEST_DATABASE``
  names: a SQLite file, or a new PostgreSQL schema in
  ``CRM_TEST_POSTGRES_URL`` dropped afterwards.  Without a reachable
  PostgreSQL the test skips with the reason — or fails when ``CI`` is set.
- ``crm_clock`` — a :class:`~engine.context.FixedClock` at
  :data:`~engine.testing.kit.DEFAULT_START`; move it with ``advance``.
- ``crm_site`` — a factory: ``crm_site(["my_pack"], pack_paths=[...])``
  returns an opened, migrated :class:`~engine.testing.kit.PackSite` on that
  database and clock, closed after the test.

Imports of the engine happen inside the fixtures, so loading the plugin
costs nothing to test runs that do not use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from engine.context import FixedClock
    from engine.testing.kit import PackSite


def _require_postgres(url: str) -> None:
    from engine.testing.databases import postgres_unavailable

    reason = postgres_unavailable(url)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI expects PostgreSQL", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def crm_database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of the kind this run tests (see the module docstring)."""
    from engine.testing import databases

    try:
        kind = databases.backend()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if kind == "sqlite":
        yield databases.sqlite_url(tmp_path)
        return
    url = databases.postgres_url()
    _require_postgres(url)
    with databases.fresh_postgres_schema(url) as fresh:
        yield fresh


@pytest.fixture
def crm_clock() -> FixedClock:
    """The test's clock, stopped at a Monday morning; ``crm_clock.advance(days=1)`` moves it."""
    from engine.context import FixedClock
    from engine.testing.kit import DEFAULT_START

    return FixedClock(DEFAULT_START)


@pytest.fixture
def crm_site(
    tmp_path: Path, crm_database_url: str, crm_clock: FixedClock
) -> Iterator[Callable[..., PackSite]]:
    """A factory of test sites: ``crm_site(packs, pack_paths=(), overlays=None, demo=False)``.

    One database per test: call it once per test (a second call would
    create the same tables again).
    """
    from engine.testing.kit import open_pack_site

    opened: list[PackSite] = []

    def make(packs: list[str] | tuple[str, ...], **options: Any) -> PackSite:
        if opened:
            raise RuntimeError("crm_site opens one site per test; reuse the one it returned")
        site = open_pack_site(tmp_path / "site", crm_database_url, packs, clock=crm_clock,
                              **options)
        opened.append(site)
        return site

    yield make
    for site in opened:
        site.close()
