"""The pack API: pack code moves records with the site's own services, so the site's
``custom/hooks.py`` runs whatever moved the record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.context import Actor, FixedClock
from engine.errors import DefinitionError, ValidationFailed
from engine.site import Site
from tests.support import open_migrated, write_site

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system()
PACKS = Path(__file__).resolve().parent.parent / "packs"


def _overridden(pack: str, workflow_file: str, transition: str, hook: str) -> str:
    """The pack's workflow, taken over by the site with one more ``hook:`` action."""
    text = (PACKS / pack / "workflows" / workflow_file).read_text(encoding="utf-8")
    head, _, tail = text.partition(f"\n  {transition}:\n")
    assert tail, f"{workflow_file} has no transition {transition}"
    return (f"override: true\n{head}\n  {transition}:\n    actions:\n      - hook: {hook}\n"
            f"{tail}")


@pytest.fixture
def trading(tmp_path, db_url):
    overlays = {
        "selling.yaml": _overridden("trading", "sales_order.yaml", "ship_all", "stamp_shipped"),
        "hooks.py": '''
            def stamp_shipped(context):
                return {"invoice_number": f"SITE-{context.record['id']}"}
        ''',
    }
    site = open_migrated(write_site(tmp_path / "site", db_url, ["core", "trading"],
                                    overlays=overlays), clock=FixedClock(NOW))
    yield site
    site.close()


def test_a_delivery_that_ships_an_order_runs_the_sites_custom_hook(trading):
    records = trading.records
    warehouse = records.create(SYSTEM, "warehouse", {"code": "SH", "name": "Shanghai"})["id"]
    product = records.create(SYSTEM, "product", {"code": "W-1", "name": "Widget",
                                                 "list_price": 20})["id"]
    records.create(SYSTEM, "stock_move", {"product": product, "warehouse": warehouse,
                                          "kind": "adjust_in", "quantity": 10, "value": 100})
    client = records.create(SYSTEM, "customer", {"name": "Buyer Ltd", "kind": "client"})["id"]
    order = records.create(SYSTEM, "sales_order", {
        "customer": client, "warehouse": warehouse,
        "lines": [{"product": product, "quantity": 4, "unit_price": 20}]})
    trading.workflows.transition(SYSTEM, "sales_order", order["id"], "confirmed")

    records.create(SYSTEM, "delivery", {"sales_order": order["id"],
                                        "lines": [{"product": product, "quantity": 4}]})

    shipped = records.get(SYSTEM, "sales_order", order["id"])
    assert shipped["stage"] == "shipped"
    assert shipped["invoice_number"] == f"SITE-{order['id']}"
    assert trading.ledgers.balance(SYSTEM, "stock_move", product=product).quantity == 6


def test_a_site_workflow_hook_is_resolved_in_custom_hooks_when_the_site_loads(tmp_path, db_url):
    overlays = {
        "selling.yaml": _overridden("trading", "sales_order.yaml", "ship_all", "stamp_shiped"),
        "hooks.py": "def stamp_shipped(context):\n    return None\n",
    }
    root = write_site(tmp_path / "site", db_url, ["core", "trading"], overlays=overlays)
    with pytest.raises(DefinitionError) as caught:
        Site.open(root)
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith("custom/selling.yaml:")
    assert problem.endswith("custom/hooks.py has no function 'stamp_shiped' (did you mean "
                            "'stamp_shipped'?); expected one of: stamp_shipped")


def test_a_workflow_hook_action_carries_the_file_that_defines_it(trading):
    selling = trading.registry.workflows["selling"]
    ship_all = selling.pipeline(None).transitions["ship_all"]
    (hook,) = [a for a in ship_all.actions if a.kind == "hook"]
    assert Path(hook.file) == (trading.config.overlay_dir / "hooks.py").resolve()


def test_a_claim_the_distribution_pack_accepts_runs_the_sites_custom_hook(tmp_path, db_url):
    flow = (PACKS / "distribution" / "workflows" / "end_customer_claim.yaml").read_text(
        encoding="utf-8")
    accept = "  accept: {from: submitted, to: accepted, label: {en: Accept, zh: 接受}, roles: [owner]}"
    assert accept in flow
    overlays = {
        "attribution.yaml": "override: true\n" + flow.replace(accept, (
            "  accept:\n    from: submitted\n    to: accepted\n"
            "    label: {en: Accept, zh: 接受}\n    roles: [owner]\n"
            "    actions:\n      - hook: note_accepted\n")),
        "hooks.py": '''
            from packs.distribution.hooks import award_end_customer  # the site's flow keeps it


            def note_accepted(context):
                return {"note": f"accepted for dealer {context.record['dealer']}"}
        ''',
    }
    site = open_migrated(write_site(tmp_path / "site", db_url, ["core", "distribution"],
                                    overlays=overlays), clock=FixedClock(NOW))
    try:
        records = site.records
        dealer = records.create(SYSTEM, "customer", {"name": "Alpha Dealer",
                                                     "kind": "dealer"})["id"]
        claim = records.create(SYSTEM, "end_customer_claim", {"dealer": dealer,
                                                              "name": "Star River Ltd"})
        claim = records.get(SYSTEM, "end_customer_claim", claim["id"])
        assert claim["stage"] == "accepted" and claim["end_customer"]
        assert claim["note"] == f"accepted for dealer {dealer}"
    finally:
        site.close()


NOTIFYING_PACK = {
    "pack.yaml": """
        name: shop
        version: 1.0.0
        label: {en: Shop, zh: 商店}
    """,
    "entities/part.yaml": """
        entity: part
        label: {en: Part, zh: 配件}
        fields:
          name: {type: string, required: true}
          in_stock: {type: integer}
        hooks:
          after_save: warn_when_low
    """,
    "roles.yaml": """
        roles:
          clerk:
            label: {en: Clerk, zh: 店员}
            entities:
              "*": {rights: all, scope: all}
    """,
    "hooks.py": '''
        from engine.pack_api import RecordHookContext, ValidationFailed, notify


        def warn_when_low(context: RecordHookContext) -> None:
            part = context.values
            if (part.get("in_stock") or 0) >= 5:
                return
            notify(context, "shop.low_stock", f"v{part['version']}", ["role:clerk"],
                   {"en": f"Only {part['in_stock']} {part['name']} left.",
                    "zh": f"{part['name']} 仅剩 {part['in_stock']} 个。"},
                   subject={"en": "Low stock", "zh": "库存不足"})
            if part["in_stock"] < 0:
                raise ValidationFailed({"in_stock": ["Stock cannot be negative."]})
    ''',
}


def test_a_pack_hook_writes_to_the_outbox_in_the_writes_transaction(tmp_path, crm_site):
    from engine.testing import write_pack

    write_pack(tmp_path / "packs", "shop", NOTIFYING_PACK)
    shop = crm_site(["shop"], pack_paths=[tmp_path / "packs"])
    ann = shop.actor("clerk", login="ann")
    bo = shop.actor("clerk", login="bo", language="zh")
    part = shop.create(ann, "part", name="Bolt", in_stock=10)
    assert shop.outbox() == []
    shop.update(ann, "part", part, in_stock=3)
    messages = {m["recipient"]: m for m in shop.outbox()}
    assert set(messages) == {f"user:{ann.user_id}", f"user:{bo.user_id}"}
    assert messages[f"user:{ann.user_id}"]["body"] == "Only 3 Bolt left."
    assert messages[f"user:{bo.user_id}"]["title"] == "库存不足"
    assert messages[f"user:{bo.user_id}"]["source"] == "shop.low_stock"
    with pytest.raises(ValidationFailed):
        shop.update(ann, "part", part, in_stock=-1)
    assert len(shop.outbox()) == 2  # the refused write told nobody
