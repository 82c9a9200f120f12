"""Entity hooks (``hooks:`` → hooks.py): what they may do, and that a failing one undoes the write.

The pack is small on purpose: devices whose hooks normalise and check
values, log their saves and deletions, and refuse to delete locked ones;
repair orders whose transition hook can fail.  Sites are opened with the
pack test kit (engine/testing), on the database this run tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ActionFailed, DefinitionError, ValidationFailed
from engine.metadata.explain import explain_entity
from engine.metadata.loader import load_registry
from engine.testing import write_pack

FILES = {
    "entities/device.yaml": """
        entity: device
        fields:
          serial: {type: string, required: true, label: {en: Serial, zh: 序列号}}
          imei: {type: string}
          model: {type: string}
          locked: {type: boolean, default: false}
          checked_by: {type: string}
        hooks:
          before_save: [normalise_serial, check_imei]
          after_save: log_save
          before_delete: refuse_locked
          after_delete: log_delete
    """,
    "entities/log.yaml": """
        entity: log
        fields:
          text: {type: string, required: true}
    """,
    "entities/repair.yaml": """
        entity: repair
        fields:
          title: {type: string, required: true}
          device: {type: reference, to: device}
          note: {type: text}
        hooks:
          after_transition: after_move
    """,
    "workflows/repair.yaml": """
        workflow: repair_flow
        entity: repair
        stages:
          received: {}
          ready: {category: won}
          cancelled: {category: lost}
        transitions:
          finish: {from: received, to: ready}
          cancel: {from: received, to: cancelled}
    """,
    "roles.yaml": """
        roles:
          clerk:
            label: {en: Clerk, zh: 店员}
            entities:
              "*": {rights: all, scope: all}
    """,
    "hooks.py": '''
        """Hooks of the test pack."""

        from engine.errors import ValidationFailed


        def normalise_serial(context):
            if context.values.get("serial"):
                context.values["serial"] = context.values["serial"].strip().upper()
            if context.values.get("model") == "explode":
                raise RuntimeError("the model says explode")
            context.values["checked_by"] = context.actor.login


        def check_imei(context):
            imei = context.values.get("imei")
            if imei and not (imei.isdigit() and len(imei) == 15):
                context.error("imei", {"en": "An IMEI has 15 digits.", "zh": "IMEI 为 15 位数字。"})
            if context.values.get("model") == "banned":
                raise ValidationFailed({"model": ["This model is not repaired here."]})


        def log_save(context):
            verb = "created" if context.is_new else "changed"
            context.records.create(context.actor, "log",
                                   {"text": f"{verb} {context.values['serial']}"},
                                   conn=context.conn)
            if context.values.get("model") == "fail-after":
                raise RuntimeError("after_save failed")


        def refuse_locked(context):
            if context.values["locked"]:
                raise ValidationFailed({"locked": ["A locked device cannot be deleted."]})


        def log_delete(context):
            context.records.create(context.actor, "log",
                                   {"text": f"deleted {context.values['serial']}"},
                                   conn=context.conn)


        def after_move(context):
            if context.values.get("note") == "boom":
                raise RuntimeError("the workshop is closed")
            context.records.create(
                context.actor, "log",
                {"text": f"{context.previous['stage']}->{context.values['stage']} "
                         f"by {context.transition.transition}"},
                conn=context.conn)
    ''',
}


@pytest.fixture
def shop(tmp_path, crm_site):
    write_pack(tmp_path / "packs", "shop", FILES)
    return crm_site(["shop"], pack_paths=[tmp_path / "packs"])


def logs(shop):
    return [r["text"] for r in reversed(shop.list(shop.admin, "log"))]


def test_before_save_changes_values_and_after_save_writes_in_the_same_transaction(shop):
    clerk = shop.actor("clerk", login="mei")
    device = shop.create(clerk, "device", serial="  ab-12 ", imei="356938035643809")
    assert device["serial"] == "AB-12"
    assert device["checked_by"] == "mei"
    shop.update(clerk, "device", device, model="X1")
    assert logs(shop) == ["created AB-12", "changed AB-12"]


def test_hook_messages_join_the_engines_and_nothing_is_written(shop):
    clerk = shop.actor("clerk", language="zh")
    with pytest.raises(ValidationFailed) as caught:
        shop.create(clerk, "device", serial="", imei="12ab")
    assert caught.value.errors["imei"] == ["IMEI 为 15 位数字。"]
    assert "serial" in caught.value.errors  # the engine's required message, at the same time
    with pytest.raises(ValidationFailed) as caught:
        shop.create(clerk, "device", serial="s1", model="banned")
    assert caught.value.errors == {"model": ["This model is not repaired here."]}
    assert shop.list(shop.admin, "device") == [] and logs(shop) == []


def test_a_hook_that_raises_rolls_back_the_whole_save(shop):
    device = shop.create(shop.admin, "device", serial="s1")
    with pytest.raises(ActionFailed, match="after_save hook 'log_save' of device"):
        shop.create(shop.admin, "device", serial="s2", model="fail-after")
    with pytest.raises(ActionFailed, match="the model says explode"):
        shop.update(shop.admin, "device", device, model="explode")
    with pytest.raises(ActionFailed, match="after_save failed"):
        shop.update(shop.admin, "device", device, model="fail-after")
    assert [d["serial"] for d in shop.list(shop.admin, "device")] == ["S1"]
    assert shop.get(shop.admin, "device", device)["model"] is None
    assert shop.get(shop.admin, "device", device)["version"] == 1
    assert logs(shop) == ["created S1"]  # the logs the failed saves wrote are gone too


def test_delete_hooks_can_refuse_and_log(shop):
    locked = shop.create(shop.admin, "device", serial="l1", locked=True)
    loose = shop.create(shop.admin, "device", serial="f1")
    with pytest.raises(ValidationFailed) as caught:
        shop.delete(shop.admin, "device", locked)
    assert caught.value.errors == {"locked": ["A locked device cannot be deleted."]}
    shop.delete(shop.admin, "device", loose)
    assert [d["serial"] for d in shop.list(shop.admin, "device")] == ["L1"]
    assert logs(shop)[-1] == "deleted F1"


def test_after_transition_runs_in_the_transition_and_its_failure_undoes_it(shop):
    repair = shop.create(shop.admin, "repair", title="Screen")
    shop.transition(shop.admin, "repair", repair, "ready")
    assert logs(shop) == ["received->ready by finish"]
    other = shop.create(shop.admin, "repair", title="Battery", note="boom")
    with pytest.raises(ActionFailed, match="the workshop is closed"):
        shop.transition(shop.admin, "repair", other, "cancelled")
    assert shop.get(shop.admin, "repair", other)["stage"] == "received"
    assert shop.stage_history(shop.admin, "repair", other) == []
    assert logs(shop) == ["received->ready by finish"]


def test_before_save_may_not_move_the_stage(tmp_path, crm_site):
    files = dict(FILES)
    files["entities/repair.yaml"] = FILES["entities/repair.yaml"].replace(
        "after_transition: after_move", "before_save: jump")
    files["hooks.py"] = FILES["hooks.py"] + '''
        def jump(context):
            context.values["stage"] = "ready"
    '''
    write_pack(tmp_path / "packs", "shop", files)
    shop = crm_site(["shop"], pack_paths=[tmp_path / "packs"])
    with pytest.raises(ActionFailed, match="may not change stage"):
        shop.create(shop.admin, "repair", title="Sneaky")
    assert shop.list(shop.admin, "repair") == []


def test_site_overlay_hooks_run_after_the_packs(tmp_path, crm_site):
    write_pack(tmp_path / "packs", "shop", FILES)
    shop = crm_site(["shop"], pack_paths=[tmp_path / "packs"], overlays={
        "device.yaml": """
            extend: device
            hooks:
              before_save: tag_model
        """,
        "hooks.py": '''
            def tag_model(context):
                context.values["model"] = f"site:{context.values['serial']}"
        ''',
    })
    assert shop.create(shop.admin, "device", serial="q1")["model"] == "site:Q1"
    hooks = shop.registry.entity("device").hooks["before_save"]
    assert [(h.function, h.pack) for h in hooks] == [
        ("normalise_serial", "shop"), ("check_imei", "shop"), ("tag_model", "(site)")]
    assert str(hooks[2].origin) == "custom/device.yaml:3"


def _problems(tmp_path: Path, hooks_text: str | None, entity_hooks: str) -> list[str]:
    files = {
        "entities/device.yaml": f"""
            entity: device
            fields:
              serial: {{type: string}}
            hooks:
            {entity_hooks}
        """,
    }
    if hooks_text is not None:
        files["hooks.py"] = hooks_text
    write_pack(tmp_path / "packs", "shop", files)
    with pytest.raises(DefinitionError) as caught:
        load_registry(["shop"], search_paths=[tmp_path / "packs"])
    return [str(p) for p in caught.value.problems]


def test_check_names_the_yaml_line_of_an_unknown_hook_function(tmp_path):
    found = _problems(tmp_path, "def check_imei(context):\n    pass\n",
                      "  before_save: [chek_imei]\n              after_save: gone")
    assert found == [
        "packs/shop/entities/device.yaml:5:17: [hooks.before_save[0]] error: "
        "packs/shop/hooks.py has no function 'chek_imei' (did you mean 'check_imei'?); "
        "expected one of: check_imei",
        "packs/shop/entities/device.yaml:6:15: [hooks.after_save] error: "
        "packs/shop/hooks.py has no function 'gone'; expected one of: check_imei",
    ]


def test_check_reports_a_missing_or_broken_hooks_file(tmp_path):
    found = _problems(tmp_path, None, "  before_save: check")
    assert found == ["packs/shop/entities/device.yaml:5:16: [hooks.before_save] error: "
                     "packs/shop/hooks.py does not exist: write 'def check(context): ...' in it"]
    found = _problems(tmp_path, "def check(context):\n    return (\n", "  before_save: check")
    assert len(found) == 1 and "packs/shop/hooks.py:2: hooks.py does not parse" in found[0]


def test_check_rejects_an_unknown_event(tmp_path):
    found = _problems(tmp_path, "def check(context):\n    pass\n", "  on_save: check")
    assert len(found) == 1 and "on_save" in found[0] and "before_save" in found[0]


def test_explain_lists_the_hooks_with_where_each_was_declared(tmp_path, crm_site):
    write_pack(tmp_path / "packs", "shop", FILES)
    shop = crm_site(["shop"], pack_paths=[tmp_path / "packs"], overlays={
        "device.yaml": "extend: device\nhooks:\n  after_delete: [gone]\n",
        "hooks.py": "def gone(context):\n    pass\n",
    })
    config = shop.site.config
    text = explain_entity(shop.registry, "device", config.requirements(),
                          search_paths=config.pack_paths, overlay_dir=config.overlay_dir)
    hooks = text.split("\nhooks:\n", 1)[1].splitlines()
    assert [(line.split("(")[0].strip(), line.rsplit("# ", 1)[1]) for line in hooks
            if line.strip().startswith("-")] == [
        ("- normalise_serial", "packs/shop/entities/device.yaml:9"),
        ("- check_imei", "packs/shop/entities/device.yaml:9"),
        ("- log_save", "packs/shop/entities/device.yaml:10"),
        ("- refuse_locked", "packs/shop/entities/device.yaml:11"),
        ("- log_delete", "packs/shop/entities/device.yaml:12"),
        ("- gone", "custom/device.yaml:3"),
    ]
