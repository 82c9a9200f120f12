"""Site overlays survive pack upgrades; an upgrade that conflicts is reported with both places.

A site adds a field to a pack's entity and a stage (with its transitions)
to the pack's workflow, in ``custom/``.  The pack is then upgraded: a new
version that adds another field keeps the site's data and stages; one that
adds the same names is reported by `crm check`, naming the overlay's line
and the pack's line.  `crm check --explain` says where each part came from.
"""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.context import FixedClock
from engine.errors import DefinitionError
from engine.metadata.loader import load_registry
from engine.testing import DEFAULT_START, open_pack_site, write_pack, write_site
from tests.support import open_migrated

DEVICE_V1 = """
    entity: device
    fields:
      serial: {type: string, required: true}
      model: {type: string}
"""
DEVICE_V2 = DEVICE_V1 + """      warranty_until: {type: date, label: {en: Warranty until, zh: 保修截止}}
"""
REPAIR = """
    entity: repair
    fields:
      title: {type: string, required: true}
      device: {type: reference, to: device}
"""
FLOW = """
    workflow: repair_flow
    entity: repair
    stages:
      received: {label: {en: Received, zh: 已接收}}
      ready: {label: {en: Ready, zh: 待取}}
      collected: {category: won}
      cancelled: {category: lost}
    transitions:
      finish: {from: received, to: ready}
      collect: {from: ready, to: collected}
      cancel: {from: [received, ready], to: cancelled}
"""
OVERLAYS = {
    "device.yaml": """
        extend: device
        fields:
          colour: {type: string, label: {en: Colour, zh: 颜色}}
    """,
    "repair_flow.yaml": """
        extend_workflow: repair_flow
        add_stages:
          waiting_parts: {label: {en: Waiting for parts, zh: 等待配件}, order: 15}
        add_transitions:
          wait: {from: received, to: waiting_parts}
          parts_in: {from: waiting_parts, to: ready}
        change_transitions:
          cancel: {from: [received, waiting_parts, ready]}
    """,
}


def write_repairs(tmp_path, *, version="1.0.0", device=DEVICE_V1, flow=FLOW):
    write_pack(tmp_path / "packs", "repairs", {
        "entities/device.yaml": device, "entities/repair.yaml": REPAIR,
        "workflows/repair.yaml": flow}, version=version)


def check(site_root, *args):
    return CliRunner().invoke(main, ["--site", str(site_root), "check", *args])


def line_of(text: str, marker: str) -> int:
    lines = textwrap.dedent(text).lstrip().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if marker in line)


@pytest.fixture
def upgraded(tmp_path, db_url):
    """A site on repairs 1.0.0 with overlays and records, then upgraded to 1.1.0."""
    write_repairs(tmp_path)
    with open_pack_site(tmp_path / "site", db_url, ["repairs"], pack_paths=[tmp_path / "packs"],
                        overlays=OVERLAYS) as kit:
        device = kit.create(kit.admin, "device", serial="D1", colour="red")
        repair = kit.create(kit.admin, "repair", title="Screen", device=device["id"])
        kit.transition(kit.admin, "repair", repair, "waiting_parts")
    write_repairs(tmp_path, version="1.1.0", device=DEVICE_V2)
    site = open_migrated(tmp_path / "site", clock=FixedClock(DEFAULT_START))
    yield site, device["id"], repair["id"]
    site.close()


def test_an_overlays_field_and_stage_survive_an_upgrade_that_adds_a_field(upgraded, tmp_path):
    site, device_id, repair_id = upgraded
    admin = site.users.actor("admin")
    assert site.registry.packs["repairs"].version == "1.1.0"
    device = site.records.update(admin, "device", device_id, {"warranty_until": "2027-01-31"})
    assert (device["colour"], str(device["warranty_until"])) == ("red", "2027-01-31")
    stage = site.registry.entity("repair").fields["stage"]
    assert set(stage.choices) == {"received", "waiting_parts", "ready", "collected", "cancelled"}
    pipeline = site.registry.workflows["repair_flow"].pipeline(None)
    assert list(pipeline.stages) == ["received", "waiting_parts", "ready", "collected",
                                     "cancelled"]  # order: 15 places it second
    assert site.records.get(admin, "repair", repair_id)["stage"] == "waiting_parts"
    moved = site.workflows.transition(admin, "repair", repair_id, "ready")
    assert moved["stage"] == "ready"
    result = check(tmp_path / "site")
    assert result.exit_code == 0 and "OK:" in result.output, result.output


def test_explain_names_the_file_and_line_of_each_part(upgraded, tmp_path):
    result = check(tmp_path / "site", "--explain", "device")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()

    def origin(prefix: str) -> str:
        found = [line for line in lines if line.strip().startswith(prefix)]
        assert found, prefix
        return found[0].rsplit("# ", 1)[1]

    assert origin("colour:") == "custom/device.yaml:3"
    assert origin("warranty_until:") == (
        f"packs/repairs/entities/device.yaml:{line_of(DEVICE_V2, 'warranty_until')}")
    assert origin("entity: device") == "packs/repairs/entities/device.yaml:1"
    assert origin("- the site's overlay") == "custom/device.yaml:1"
    flow = check(tmp_path / "site", "--explain", "repair").output.splitlines()
    stages = {line.split(":")[0].strip(): line.rsplit("# ", 1)[1] for line in flow
              if line.startswith("    ") and "#" in line and line.strip().split(":")[0] in (
                  "waiting_parts", "ready", "parts_in", "cancel")}
    assert stages["waiting_parts"] == "custom/repair_flow.yaml:3"
    assert stages["parts_in"] == "custom/repair_flow.yaml:6"
    assert stages["ready"] == f"packs/repairs/workflows/repair.yaml:{line_of(FLOW, 'ready:')}"
    assert stages["cancel"] == f"packs/repairs/workflows/repair.yaml:{line_of(FLOW, 'cancel:')}"
    unknown = check(tmp_path / "site", "--explain", "devise")
    assert unknown.exit_code == 1 and "There is no entity 'devise'" in unknown.output


def test_an_upgrade_that_conflicts_with_the_overlay_is_reported_with_both_places(tmp_path,
                                                                                 db_url):
    conflicting_device = DEVICE_V1 + "      colour: {type: integer}\n"
    conflicting_flow = FLOW.replace(
        "      ready: {", "      waiting_parts: {label: Parts}\n      ready: {").replace(
        "      finish:", "      wait: {from: received, to: waiting_parts}\n      finish:")
    write_repairs(tmp_path, version="2.0.0", device=conflicting_device, flow=conflicting_flow)
    root = write_site(tmp_path / "site", db_url, ["repairs"], pack_paths=[tmp_path / "packs"],
                      overlays=OVERLAYS)
    result = check(root)
    assert result.exit_code == 2
    pack_device = "packs/repairs/entities/device.yaml"
    pack_flow = "packs/repairs/workflows/repair.yaml"
    assert (f"custom/device.yaml:3:18: [fields.colour.type] error: the type of 'colour' cannot "
            f"be changed from 'integer' to 'string' by an extension (defined at "
            f"{pack_device}:{line_of(conflicting_device, 'colour')})") in result.output
    assert (f"custom/repair_flow.yaml:3:3: [add_stages.waiting_parts] error: stage "
            f"'waiting_parts' is already defined at "
            f"{pack_flow}:{line_of(conflicting_flow, 'waiting_parts: {')}") in result.output
    assert (f"custom/repair_flow.yaml:5:3: [add_transitions.wait] error: transition 'wait' "
            f"is already defined at {pack_flow}:{line_of(conflicting_flow, 'wait: {')}"
            ) in result.output


def test_an_upgrade_defining_the_overlays_field_with_the_same_type_is_a_warning(tmp_path):
    same = DEVICE_V1 + "      colour: {type: string, max_length: 20}\n"
    write_repairs(tmp_path, device=same)
    overlay = tmp_path / "custom"
    overlay.mkdir()
    (overlay / "device.yaml").write_text(textwrap.dedent(OVERLAYS["device.yaml"]).lstrip())
    registry = load_registry(["repairs"], search_paths=[tmp_path / "packs"], overlay_dir=overlay)
    assert [str(w) for w in registry.warnings] == [
        f"custom/device.yaml:3:3: [fields.colour] warning: 'colour' is defined here and also "
        f"at packs/repairs/entities/device.yaml:{line_of(same, 'colour')}; this file now "
        "changes that field instead of adding its own — remove 'type' here to keep only your "
        "changes, or rename your field"]
    assert registry.entity("device").fields["colour"].max_length == 20


def test_extension_mistakes_point_at_the_overlay(tmp_path):
    write_repairs(tmp_path)
    overlay = tmp_path / "custom"
    overlay.mkdir()
    (overlay / "flow.yaml").write_text(textwrap.dedent("""
        extend_workflow: repair_flow
        change_stages:
          redy: {label: Done}
        add_transitions:
          back: {from: ready, to: recieved}
    """).lstrip())
    with pytest.raises(DefinitionError) as caught:
        load_registry(["repairs"], search_paths=[tmp_path / "packs"], overlay_dir=overlay)
    found = [str(p) for p in caught.value.problems]
    assert any(p.startswith("custom/flow.yaml:3:3: [change_stages.redy] error: there is no "
                            "stage 'redy' to change (did you mean 'ready'?)") for p in found)
    assert len(found) == 1, found
    (overlay / "flow.yaml").write_text(textwrap.dedent("""
        extend_workflow: repair_flow
        add_transitions:
          back: {from: ready, to: recieved}
    """).lstrip())
    with pytest.raises(DefinitionError) as caught:
        load_registry(["repairs"], search_paths=[tmp_path / "packs"], overlay_dir=overlay)
    found = [str(p) for p in caught.value.problems]
    assert len(found) == 1 and found[0].startswith("custom/flow.yaml:3:"), found
    assert "recieved" in found[0] and "did you mean 'received'" in found[0]


def test_an_overlay_changing_a_field_the_upgrade_renamed_is_told_the_new_name(tmp_path):
    renamed = DEVICE_V1.replace("model: {type: string}",
                                "model_name: {type: string, renamed_from: model}")
    write_repairs(tmp_path, version="2.0.0", device=renamed)
    overlay = tmp_path / "custom"
    overlay.mkdir()
    (overlay / "device.yaml").write_text("extend: device\nfields:\n  model:\n    required: true\n")
    with pytest.raises(DefinitionError) as caught:
        load_registry(["repairs"], search_paths=[tmp_path / "packs"], overlay_dir=overlay)
    assert [str(p) for p in caught.value.problems] == [
        "custom/device.yaml:3:3: [fields.model] error: 'model' was renamed to 'model_name' at "
        f"packs/repairs/entities/device.yaml:{line_of(renamed, 'model_name')}; change "
        "'model_name' here instead"]
