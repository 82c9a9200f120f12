"""Helpers for tests: small packs and sites written into a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from engine.context import Clock
from engine.site import Site
from engine.storage.migration import apply_migration


def write_pack(
    base: Path, name: str, files: dict[str, str], *, depends: tuple[str, ...] = (),
    version: str = "1.0.0",
) -> Path:
    """A pack folder ``base/name`` with a manifest and the given files (dedented)."""
    root = base / name
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "version": version, "label": {"en": name.title(), "zh": name},
                "depends": list(depends)}
    (root / "pack.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def write_site(
    root: Path, database_url: str, packs: list[str], *, overlays: dict[str, str] | None = None,
    pack_paths: list[str] | None = None, locale: str = "en",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = {"name": "Test site", "database_url": database_url, "packs": packs, "locale": locale}
    if pack_paths:
        config["pack_paths"] = pack_paths
    (root / "crm.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    (root / "custom").mkdir(exist_ok=True)
    for name, text in (overlays or {}).items():
        (root / "custom" / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def open_migrated(root: Path, *, clock: Clock | None = None, allow_destructive: bool = False) -> Site:
    site = Site.open(root, clock=clock)
    apply_migration(site.engine, site.registry, site.schema, allow_destructive=allow_destructive)
    return site
