"""Writing small packs and sites into a folder, for tests and examples."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml


def write_pack(
    base: Path, name: str, files: Mapping[str, str], *,
    depends: Sequence[str | Mapping[str, str]] = (),
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
    root: Path, database_url: str, packs: Sequence[str], *,
    overlays: Mapping[str, str] | None = None, pack_paths: Sequence[str | Path] | None = None,
    locale: str = "en", name: str = "Test site",
) -> Path:
    """A site folder: ``crm.yaml`` and ``custom/`` with the given overlay files (dedented)."""
    root.mkdir(parents=True, exist_ok=True)
    config: dict = {"name": name, "database_url": database_url, "packs": list(packs),
                    "locale": locale}
    if pack_paths:
        config["pack_paths"] = [str(p) for p in pack_paths]
    (root / "crm.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    (root / "custom").mkdir(exist_ok=True)
    for name, text in (overlays or {}).items():
        (root / "custom" / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root
