"""A temporary site with given packs, and the few verbs a pack test needs.

:class:`PackSite` wraps an opened, migrated :class:`~engine.site.Site`
whose clock is a :class:`~engine.context.FixedClock`.  Every verb goes
through the site's services with an explicit actor — tests exercise the
same rules (rights, scopes, guards, hooks) as the UI, the API and the CLI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.services.workflows.service import TransitionOption
from engine.site import Site
from engine.storage.migration import apply_migration
from engine.storage.queries import Filter
from engine.testing.files import write_site

#: Where a test's clock starts: a Monday, 09:00 in Shanghai.
DEFAULT_START = dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC)

Record = Mapping[str, Any] | int


def _id(record: Record) -> int:
    return record if isinstance(record, int) else int(record["id"])


class PackSite:
    """An opened test site; see the module docstring."""

    def __init__(self, site: Site, clock: FixedClock) -> None:
        self.site = site
        self.clock = clock
        self.records = site.records
        self.workflows = site.workflows
        self.registry = site.registry
        if not any(u["login"] == "admin" for u in site.users.list()):
            site.users.create("admin", password=None, is_admin=True)
        #: An administrator: every right, no row scope.
        self.admin: Actor = site.users.actor("admin")

    # -- people and time ----------------------------------------------------------

    def actor(self, role: str | None = None, *, login: str | None = None,
              language: str = "en", admin: bool = False) -> Actor:
        """The actor of user ``login`` (default: the role's key), created with ``role`` if new."""
        login = login or role or "user"
        if not any(u["login"] == login for u in self.site.users.list()):
            self.site.users.create(login, password=None, roles=[role] if role else [],
                                   language=language, is_admin=admin)
        return self.site.users.actor(login)

    def advance(self, **delta: float) -> dt.datetime:
        """Move the site's clock on (``days=2``, ``hours=3``…); returns the new time."""
        return self.clock.advance(**delta)

    # -- records ----------------------------------------------------------------------

    def create(self, actor: Actor, entity: str, values: Mapping[str, Any] | None = None,
               **fields: Any) -> dict[str, Any]:
        return self.records.create(actor, entity, {**(values or {}), **fields})

    def get(self, actor: Actor, entity: str, record: Record) -> dict[str, Any]:
        return self.records.get(actor, entity, _id(record))

    def update(self, actor: Actor, entity: str, record: Record,
               values: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        return self.records.update(actor, entity, _id(record), {**(values or {}), **fields})

    def delete(self, actor: Actor, entity: str, record: Record) -> None:
        self.records.delete(actor, entity, _id(record))

    def list(self, actor: Actor, entity: str, **filters: Any) -> list[dict[str, Any]]:
        """Every record the actor sees, filtered by ``field=value`` or ``field__op=value``."""
        parsed = [Filter(*(k.split("__", 1) if "__" in k else (k, "eq")), v)
                  for k, v in filters.items()]
        return self.records.list(actor, entity, filters=parsed, limit=1000).rows

    # -- stages -------------------------------------------------------------------------

    def transition(self, actor: Actor, entity: str, record: Record, to_stage: str,
                   values: Mapping[str, Any] | None = None, *,
                   comment: str | None = None) -> dict[str, Any]:
        """Move the record to ``to_stage`` through the workflow service; the moved record."""
        return self.workflows.transition(actor, entity, _id(record), to_stage, values,
                                         comment=comment)

    def transitions(self, actor: Actor, entity: str, record: Record
                    ) -> dict[str, TransitionOption]:
        """The transitions leaving the record's stage, by target stage."""
        return {o.to: o for o in self.workflows.available(actor, entity, _id(record))}

    def stage_history(self, actor: Actor, entity: str, record: Record) -> list[dict[str, Any]]:
        return self.workflows.history(actor, entity, _id(record))

    def outbox(self) -> list[dict[str, Any]]:
        """The messages ``notify`` actions wrote, oldest first."""
        table = self.site.schema.system("crm_outbox")
        with self.site.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]

    def load_demo(self) -> int:
        """Create the demo records of every pack of the site, as the administrator."""
        roots = [Path(p.path) for p in self.registry.packs.values()]
        return load_demo(self.records, self.admin, roots, workflows=self.workflows)

    def close(self) -> None:
        self.site.close()

    def __enter__(self) -> PackSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_pack_site(
    folder: Path,
    database_url: str,
    packs: Sequence[str],
    *,
    pack_paths: Sequence[str | Path] = (),
    overlays: Mapping[str, str] | None = None,
    clock: FixedClock | None = None,
    locale: str = "en",
    demo: bool = False,
) -> PackSite:
    """Write a site into ``folder``, create its tables and open it (see :class:`PackSite`).

    ``pack_paths`` are folders holding pack folders (searched before the
    built-in packs); ``overlays`` are files of the site's ``custom/`` folder.
    """
    root = write_site(folder, database_url, packs, overlays=overlays,
                      pack_paths=[Path(p).resolve() for p in pack_paths], locale=locale)
    clock = clock or FixedClock(DEFAULT_START)
    site = Site.open(root, clock=clock)
    try:
        apply_migration(site.engine, site.registry, site.schema, clock=site.clock)
        kit = PackSite(site, clock)
        if demo:
            kit.load_demo()
    except BaseException:
        site.close()
        raise
    return kit
