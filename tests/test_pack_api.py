"""The pack API: pack code moves records with the site's own services, so the site's
``custom/hooks.py`` runs whatever moved the record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.context import Actor, FixedClock
from engine.errors import DefinitionError
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
