"""The trading pack: buy, receive, quote, sell and ship, with moving-average cost and margin."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.errors import LedgerRefused, PermissionDenied, TransitionRefused, ValidationFailed
from engine.services.views.figures import ReportRequest
from engine.storage.queries import Filter
from tests.support import open_migrated, write_site

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system()


@pytest.fixture
def site(tmp_path, db_url):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["core", "trading"]),
                           clock=FixedClock(NOW))
    for login, role in (("boss", "owner"), ("pat", "purchasing"), ("wally", "warehouse"),
                        ("sam", "sales"), ("fin", "finance")):
        opened.users.create(login, password="password-1", roles=[role])
    yield opened
    opened.close()


def actor(site, login):
    return site.users.actor(login)


def report(site, who, name, **params):
    import packs.trading.reports as reports

    return getattr(reports, name)(ReportRequest(site, who, NOW, params))


def series(figure, index=0):
    return dict(zip(figure.categories, figure.series[index].values, strict=True))


def test_buy_receive_quote_sell_and_ship_with_moving_average_cost(site):
    boss, pat, wally, sam, fin = (actor(site, n) for n in ("boss", "pat", "wally", "sam", "fin"))
    records, workflows = site.records, site.workflows
    main_wh = records.create(wally, "warehouse", {"code": "SH", "name": "Shanghai"})["id"]
    widget = records.create(pat, "product", {"code": "W-1", "name": "Widget", "list_price": 20,
                                             "reorder_level": 60})["id"]
    cheap = records.create(pat, "customer", {"name": "Cheap Supply", "kind": "supplier"})["id"]
    dear = records.create(pat, "customer", {"name": "Dear Supply", "kind": "supplier"})["id"]
    records.create(pat, "supplier_quote", {"supplier": dear, "product": widget, "price": 12,
                                           "valid_until": "2026-12-31"})
    records.create(pat, "supplier_quote", {"supplier": cheap, "product": widget, "price": 10,
                                           "min_quantity": 50, "valid_until": "2026-12-31"})
    records.create(pat, "supplier_quote", {"supplier": dear, "product": widget, "price": 8,
                                           "valid_until": "2026-10-31"})  # expired

    # compare: the cheapest valid offer is Cheap Supply's 10
    comparison = report(site, pat, "price_comparison", product=widget)
    assert series(comparison)["Cheap Supply"] == Decimal("10.0000")
    assert series(comparison)["Dear Supply"] == Decimal("12.0000")  # the expired 8 is left out
    assert comparison.categories[0] == "Cheap Supply"

    # buy from the cheaper; the owner approves, purchasing places it
    order = records.create(pat, "purchase_order", {
        "supplier": cheap, "warehouse": main_wh,
        "lines": [{"product": widget, "quantity": 100, "unit_price": 10}]})
    with pytest.raises(TransitionRefused):
        workflows.transition(pat, "purchase_order", order["id"], "approved")
    workflows.transition(boss, "purchase_order", order["id"], "approved")
    workflows.transition(pat, "purchase_order", order["id"], "ordered")
    with pytest.raises(TransitionRefused):  # the stage follows receipts, not a click
        workflows.transition(wally, "purchase_order", order["id"], "received")
    with pytest.raises(ValidationFailed) as caught:  # received quantities are the receipts'
        records.update(pat, "purchase_order", order["id"], {"lines": [
            {"product": widget, "quantity": 100, "unit_price": 10, "received_quantity": 100}]})
    assert "written by goods receipts" in caught.value.errors["lines"][0]

    # receive in two parts at different prices
    records.create(wally, "goods_receipt", {"purchase_order": order["id"],
                                            "lines": [{"product": widget, "quantity": 60}]})
    assert records.get(boss, "purchase_order", order["id"])["stage"] == "partially_received"
    assert records.get(boss, "product", widget)["avg_cost"] == Decimal("10.0000")
    with pytest.raises(ValidationFailed) as caught:  # more than is left on the order
        records.create(wally, "goods_receipt", {"purchase_order": order["id"],
                                                "lines": [{"product": widget, "quantity": 41}]})
    assert "W-1 Widget: the order has 40 left to receive" in caught.value.errors["lines"][0]
    records.create(wally, "goods_receipt", {"purchase_order": order["id"], "lines": [
        {"product": widget, "quantity": 40, "unit_price": "12.50"}]})
    bought = records.get(boss, "purchase_order", order["id"])
    assert bought["stage"] == "received"
    assert bought["received_quantity"] == Decimal(100)
    # by hand: (60 × 10 + 40 × 12.50) / 100 = 1100 / 100 = 11
    product = records.get(boss, "product", widget)
    assert product["avg_cost"] == Decimal("11.0000")
    assert product["last_purchase_price"] == Decimal("12.5000")
    stock = site.ledgers.balance(boss, "stock_move", product=widget, warehouse=main_wh)
    assert stock.quantity == 100 and stock.amounts["value"] == Decimal("1100.00")

    # quote a customer and convert to an order
    client = records.create(sam, "customer", {"name": "Buyer Ltd", "kind": "client"})["id"]
    quote = records.create(sam, "quotation", {"customer": client, "warehouse": main_wh, "lines": [
        {"product": widget, "quantity": 50, "unit_price": 20, "discount": 10}]})
    assert quote["total"] == Decimal("900")
    workflows.transition(sam, "quotation", quote["id"], "sent")
    workflows.transition(sam, "quotation", quote["id"], "accepted")
    workflows.transition(sam, "quotation", quote["id"], "converted")
    sale = records.list(sam, "sales_order", filters=[Filter("quotation", "eq", quote["id"])],
                        with_children=True).rows[0]
    assert sale["stage"] == "draft" and sale["quotation"] == quote["id"]
    assert sale["owner"] == quote["owner"] and sale["total"] == Decimal("900")
    workflows.transition(sam, "sales_order", sale["id"], "confirmed")
    with pytest.raises(PermissionDenied):  # salespeople do not ship
        records.create(sam, "delivery", {"sales_order": sale["id"],
                                         "lines": [{"product": widget, "quantity": 30}]})

    # ship partially: 30 at the average 11 → cost 330; sales 30 × 18 = 540
    records.create(wally, "delivery", {"sales_order": sale["id"],
                                       "lines": [{"product": widget, "quantity": 30}]})
    sale = records.get(boss, "sales_order", sale["id"])
    assert sale["stage"] == "partially_shipped"
    assert sale["lines"][0]["cost_amount"] == Decimal("330.00")
    assert sale["lines"][0]["margin"] == Decimal("210")

    # over-ship: 25 when 20 are left on the order — refused, nothing written
    moves_before = records.count(boss, "stock_move")
    with pytest.raises(ValidationFailed) as caught:
        records.create(wally, "delivery", {"sales_order": sale["id"],
                                           "lines": [{"product": widget, "quantity": 25}]})
    assert "W-1 Widget: the order has 20 left to ship, this delivery ships 25" in \
        caught.value.errors["lines"][0]
    assert records.count(boss, "stock_move") == moves_before
    assert records.count(boss, "delivery") == 1

    # ship the rest: 20 × 11 = 220; sales 360
    records.create(wally, "delivery", {"sales_order": sale["id"],
                                       "lines": [{"product": widget, "quantity": 20}]})
    sale = records.get(boss, "sales_order", sale["id"])
    assert sale["stage"] == "shipped"
    assert sale["cost_amount"] == Decimal("550.00")
    assert sale["shipped_amount"] == Decimal("900")
    assert sale["margin"] == Decimal("350")
    stock = site.ledgers.balance(boss, "stock_move", product=widget, warehouse=main_wh)
    assert stock.quantity == 50 and stock.amounts["value"] == Decimal("550.00")

    # invoice and payment are finance's
    with pytest.raises(TransitionRefused):
        workflows.transition(sam, "sales_order", sale["id"], "invoiced",
                             {"invoice_number": "F-1", "invoice_date": "2026-11-23"})
    workflows.transition(fin, "sales_order", sale["id"], "invoiced",
                         {"invoice_number": "F-1", "invoice_date": "2026-11-23"})
    assert workflows.transition(fin, "sales_order", sale["id"], "paid",
                                {"paid_on": "2026-11-30"})["stage"] == "paid"

    # a second order needs more than is on hand: refused naming product and warehouse
    second = records.create(sam, "sales_order", {"customer": client, "warehouse": main_wh,
                                                  "lines": [{"product": widget, "quantity": 60,
                                                             "unit_price": 20}]})
    workflows.transition(sam, "sales_order", second["id"], "confirmed")
    with pytest.raises(LedgerRefused) as refused:
        records.create(wally, "delivery", {"sales_order": second["id"],
                                           "lines": [{"product": widget, "quantity": 60}]})
    assert "Product Widget, Warehouse Shanghai: the balance is 50, this needs 60" in \
        refused.value.message
    assert records.get(boss, "sales_order", second["id"])["lines"][0]["shipped_quantity"] == 0

    # the ledger cannot be edited, only corrected
    move = records.list(boss, "stock_move", limit=1).rows[0]
    with pytest.raises(LedgerRefused):
        records.update(boss, "stock_move", move["id"], {"quantity": 1})

    # reports: margin by product, customer and period; stock; reorder; purchase price
    assert series(report(site, boss, "margin_by_product"), 2)["W-1 Widget"] == Decimal("350.00")
    by_customer = report(site, boss, "margin_by_customer")
    assert series(by_customer, 0)["Buyer Ltd"] == Decimal("900.00")
    assert series(by_customer, 1)["Buyer Ltd"] == Decimal("550.00")
    assert series(report(site, boss, "margin_by_period"), 2)["2026-11"] == Decimal("350.00")
    on_hand = report(site, boss, "stock_on_hand")
    assert series(on_hand, 0)["W-1 Widget"] == Decimal(50)
    assert series(on_hand, 1)["W-1 Widget"] == Decimal("550.00")
    assert series(report(site, boss, "below_reorder_level"), 0) == {"W-1 Widget": Decimal(50)}
    assert report(site, boss, "open_purchase_orders").categories == ()


def test_samples_leave_and_return_at_cost_and_transfers_keep_value(site):
    boss, wally = actor(site, "boss"), actor(site, "wally")
    records, workflows = site.records, site.workflows
    north = records.create(wally, "warehouse", {"code": "N", "name": "North"})["id"]
    south = records.create(wally, "warehouse", {"code": "S", "name": "South"})["id"]
    item = records.create(boss, "product", {"code": "S-1", "name": "Sampler"})["id"]
    client = records.create(boss, "customer", {"name": "Client", "kind": "client"})["id"]
    records.create(wally, "stock_move", {"product": item, "warehouse": north, "kind": "in",
                                         "quantity": 10, "unit_cost": 7})
    sample = records.create(boss, "sample", {"customer": client, "product": item,
                                             "warehouse": north, "quantity": 2})
    sent = workflows.transition(boss, "sample", sample["id"], "sent")
    assert sent["unit_cost"] == Decimal("7.0000")
    assert site.ledgers.balance(boss, "stock_move", product=item).quantity == 8
    workflows.transition(boss, "sample", sample["id"], "returned")
    back = site.ledgers.balance(boss, "stock_move", product=item)
    assert back.quantity == 10 and back.amounts["value"] == Decimal("70.00")

    records.create(wally, "stock_transfer", {"from_warehouse": north, "to_warehouse": south,
                                             "lines": [{"product": item, "quantity": 4}]})
    assert site.ledgers.balance(boss, "stock_move", product=item, warehouse=south).quantity == 4
    assert site.ledgers.balance(boss, "stock_move", product=item).amounts["value"] == \
        Decimal("70.00")
    with pytest.raises(LedgerRefused):
        records.create(wally, "stock_transfer", {"from_warehouse": south, "to_warehouse": north,
                                                 "lines": [{"product": item, "quantity": 5}]})
    with pytest.raises(ValidationFailed):
        records.create(wally, "stock_transfer", {"from_warehouse": south, "to_warehouse": south,
                                                 "lines": [{"product": item, "quantity": 1}]})


def test_salespeople_see_no_purchase_prices(site):
    sam = actor(site, "sam")
    with pytest.raises(PermissionDenied):
        site.records.list(sam, "supplier_quote")
    with pytest.raises(PermissionDenied):
        site.records.list(sam, "purchase_order")


def test_demo_data_loads_through_the_rules(site):
    paths = [__import__("pathlib").Path(site.registry.packs[p].path) for p in ("core", "trading")]
    created = load_demo(site.records, SYSTEM, paths, workflows=site.workflows)
    assert created > 100
    boss = actor(site, "boss")
    assert site.records.count(boss, "warehouse") >= 3
    assert site.records.count(boss, "product") >= 100
    on_hand = site.ledgers.balances(boss, "stock_move", by=["product"])
    assert on_hand and all(b.quantity >= 0 for b in on_hand)
    assert report(site, boss, "not_sold_in_days", days=30).categories
    from engine.services.views.dashboards import DashboardService

    dashboards = DashboardService(site)
    home = dashboards.home(boss)
    assert home.name == "trading"
    figures = dashboards.figures(boss, home)
    assert len(figures) == 7
    assert all(getattr(f, "error", None) in (None, "") for f in figures), figures


def test_the_web_offers_no_edit_or_delete_on_stock_movements(site):
    from engine.web import create_app
    from tests.web_support import login

    boss = actor(site, "boss")
    warehouse = site.records.create(boss, "warehouse", {"code": "W", "name": "W"})["id"]
    item = site.records.create(boss, "product", {"code": "X-1", "name": "X"})["id"]
    move = site.records.create(boss, "stock_move", {"product": item, "warehouse": warehouse,
                                                    "kind": "in", "quantity": 3,
                                                    "unit_cost": 2})
    client = create_app(site, testing=True).test_client()
    login(client, "boss", "password-1")
    page = client.get(f"/r/stock_move/{move['id']}").get_data(as_text=True)
    assert f"/r/stock_move/{move['id']}/edit" not in page
    assert f"/r/product/{item}/edit" in client.get(f"/r/product/{item}").get_data(as_text=True)
