"""What every built-in pack must satisfy, tried on each one alike.

A pack ships to people who work in English or in Chinese, so everything it
puts on screen carries both labels; and a site made from it with `crm init`
passes `crm check` without a warning, print formats included. A pack's own
test file keeps only what is particular to that pack.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.metadata.loader import load_registry
from engine.metadata.packs import BUILTIN_PACKS_DIR
from engine.printing.documents import print_formats
from engine.site import Site

PACKS = sorted(p.name for p in BUILTIN_PACKS_DIR.iterdir() if (p / "pack.yaml").is_file())


def test_the_built_in_packs_are_the_ones_tried():
    assert PACKS == ["core", "distribution", "membership", "project_sales", "receivables",
                     "service_sales", "trading"]


@pytest.mark.parametrize("pack", PACKS)
def test_a_site_of_the_pack_checks_clean(tmp_path, pack):
    runner = CliRunner()
    result = runner.invoke(main, ["init", str(tmp_path / "s"), "--pack", pack,
                                  "--admin-password", "x12345678"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["--site", str(tmp_path / "s"), "check"])
    assert result.exit_code == 0, result.output
    registry = load_registry([pack])
    assert result.output.startswith(
        f"OK: {len(registry.packs)} pack(s), {len(registry.entities)} entities"), result.output
    assert "warning" not in result.output.lower()
    site = Site.open(tmp_path / "s")
    try:
        formats = print_formats(site)  # a declaration naming a missing entity or file raises
    finally:
        site.close()
    assert bool(formats) is (BUILTIN_PACKS_DIR / pack / "prints").is_dir()
    assert all(f.folder == Path(site.registry.packs[pack].path) / "prints"
               for f in formats.values())


@pytest.mark.parametrize("pack", PACKS)
def test_everything_the_pack_labels_is_in_english_and_chinese(pack):
    registry = load_registry([pack])
    missing: list[str] = []

    def need(label, where: str) -> None:
        """Missing in either language, or the same in both (left untranslated)."""
        if label is None or not label.en or not label.zh or label.zh == label.en:
            missing.append(where)

    def fields(prefix: str, found) -> None:
        for field in found.values():
            if field.key in ("id", "owner"):
                continue
            need(field.label, f"{prefix}.{field.key}")
            for key, choice in field.choices.items():
                need(choice, f"{prefix}.{field.key}={key}")
            fields(f"{prefix}.{field.key}", field.fields)

    owned = [key for key, entity in registry.entities.items()
             if entity.pack == pack or pack in entity.extended_by]
    assert owned, f"{pack} defines or extends no entity"
    for key in owned:
        entity = registry.entities[key]
        need(entity.label, key)
        need(entity.plural, f"{key} (plural)")
        fields(key, entity.fields)
    for workflow in registry.workflows.values():
        if workflow.pack != pack:
            continue
        need(workflow.label, workflow.key)
        for pipeline in workflow.pipelines.values():
            for stage in pipeline.stages.values():
                need(stage.label, f"{workflow.key}: stage {stage.key}")
            for transition in pipeline.transitions.values():
                need(transition.label, f"{workflow.key}: transition {transition.key}")
    for role in registry.roles.values():
        if role.pack == pack:
            need(role.label, f"role {role.key}")
            need(role.description, f"role {role.key} (description)")
    for dashboard in registry.dashboards.values():
        if dashboard.pack == pack:
            need(dashboard.label, f"dashboard {dashboard.name}")
    assert not missing, missing
