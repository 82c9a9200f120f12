"""Helpers for tests: small packs and sites written into a temporary folder."""

from __future__ import annotations

from pathlib import Path

from engine.context import Clock
from engine.site import Site
from engine.storage.migration import apply_migration
from engine.testing.files import write_pack, write_site

__all__ = ["open_migrated", "write_pack", "write_site"]


def open_migrated(root: Path, *, clock: Clock | None = None, allow_destructive: bool = False) -> Site:
    site = Site.open(root, clock=clock)
    apply_migration(site.engine, site.registry, site.schema, allow_destructive=allow_destructive,
                    clock=site.clock)
    return site
