"""The tutorial's pack (docs/tutorial/repairs) passes `crm pack check` and runs its scenario.

The test loads exactly the files under docs/tutorial/repairs, and checks
that every file shown in docs/tutorial_pack.md is the file on disk, so the
tutorial a reader follows is the one that is tested.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import PermissionDenied, TransitionRefused, ValidationFailed

DOCS = Path(__file__).resolve().parent.parent / "docs"
TUTORIAL = DOCS / "tutorial"
PACK = TUTORIAL / "repairs"
_BLOCK = re.compile(r"```(?:yaml|python)\n# file: (\S+)\n(.*?)```", re.S)


def test_the_tutorial_shows_every_file_of_its_pack_as_it_is():
    text = (DOCS / "tutorial_pack.md").read_text(encoding="utf-8")
    shown = {name: body for name, body in _BLOCK.findall(text)}
    on_disk = {p.relative_to(PACK).as_posix() for p in PACK.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert set(shown) == on_disk
    for name, body in shown.items():
        assert body == (PACK / name).read_text(encoding="utf-8"), name


def test_the_pack_checks():
    result = CliRunner().invoke(main, ["pack", "check", str(PACK)])
    assert result.exit_code == 0, result.output
    assert "OK: pack 'repairs' 1.0.0: 4 entities, 1 workflow(s)." in result.output


@pytest.fixture
def shop(crm_site):
    return crm_site(["repairs"], pack_paths=[TUTORIAL])


def test_the_tutorial_scenario(shop):
    desk, tech = shop.actor("front_desk", login="mei"), shop.actor("technician", login="bo")
    screen = shop.create(tech, "part", code="SCR-01", name="Screen", price=300, in_stock=2)
    device = shop.create(desk, "device", serial="ab 123", model="Phone X", owner_name="王芳",
                         owner_phone="+86 138 0000 0001")
    assert device["serial"] == "AB123"  # the before_save hook
    order = shop.create(desk, "repair_order", device=device["id"], problem="Cracked screen",
                        labour=50)
    assert order["number"].startswith("R-2026-") and order["stage"] == "received"

    with pytest.raises(TransitionRefused):  # a diagnosis is required to be diagnosed
        shop.transition(desk, "repair_order", order, "diagnosed")
    shop.transition(desk, "repair_order", order, "diagnosed", {"diagnosis": "Glass broken"})
    shop.transition(tech, "repair_order", order, "repairing")
    shop.update(tech, "repair_order", order, parts=[
        {"part": screen["id"], "quantity": 1, "unit_price": 300}])
    with pytest.raises(TransitionRefused):  # only a technician says it is repaired
        shop.transition(desk, "repair_order", order, "ready")

    shop.advance(days=1)
    ready = shop.transition(tech, "repair_order", order, "ready")
    assert ready["stage"] == "ready" and str(ready["total"]) == "350.00"
    assert shop.get(tech, "part", screen)["in_stock"] == 1  # taken from stock
    messages = shop.list(tech, "customer_message", repair_order=order["id"])
    assert [(m["phone"], m["text"]) for m in messages] == [
        ("+86 138 0000 0001", "Your device is repaired. Total: 350.00")]
    assert [(o["user_id"], o["body"]) for o in shop.outbox()] == [
        (desk.user_id, f"{order['number']} is ready; the customer was told.")]  # to the owner
    shop.transition(desk, "repair_order", order, "collected")
    with pytest.raises(PermissionDenied):
        shop.delete(desk, "repair_order", order)


def test_not_enough_stock_undoes_the_whole_transition(shop):
    tech = shop.actor("technician")
    battery = shop.create(tech, "part", code="BAT-01", name="Battery", price=120, in_stock=1)
    screen = shop.create(tech, "part", code="SCR-01", name="Screen", price=300, in_stock=5)
    device = shop.create(tech, "device", serial="x1", owner_name="Li", owner_phone="123456")
    order = shop.create(tech, "repair_order", device=device["id"], problem="Dead", parts=[
        {"part": screen["id"], "quantity": 1, "unit_price": 300},
        {"part": battery["id"], "quantity": 2, "unit_price": 120}])
    shop.transition(tech, "repair_order", order, "diagnosed", {"diagnosis": "Battery"})
    shop.transition(tech, "repair_order", order, "repairing")
    with pytest.raises(ValidationFailed) as caught:
        shop.transition(tech, "repair_order", order, "ready")
    assert caught.value.errors == {"parts": ["Battery: 1 in stock, 2 used"]}
    assert shop.get(tech, "repair_order", order)["stage"] == "repairing"
    assert shop.get(tech, "part", screen)["in_stock"] == 5  # the screen taken first came back
    assert shop.list(tech, "customer_message") == [] and shop.outbox() == []


def test_the_demo_data_loads(shop):
    assert shop.load_demo() == 4
    (order,) = shop.list(shop.admin, "repair_order")
    assert order["stage"] == "repairing"
