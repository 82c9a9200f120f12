"""The distribution pack: levels, shipments with discount and credit approval, dealer stock,
sell-out, payments, receivables, attribution — and dealer users who see only their own."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from engine.context import Actor, FixedClock
from engine.demo import load_demo
from engine.errors import LedgerRefused, NotFound, PermissionDenied, TransitionRefused
from engine.services.views.figures import ReportRequest
from engine.storage.queries import Filter
from tests.api_support import PASSWORD, api_for
from tests.support import open_migrated, write_site

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
SYSTEM = Actor.system()


@pytest.fixture
def site(tmp_path, db_url):
    opened = open_migrated(write_site(tmp_path / "site", db_url, ["core", "distribution"]),
                           clock=FixedClock(NOW))
    for login, role in (("boss", "owner"), ("cm", "channel_manager"),
                        ("fin", "channel_finance"), ("ann", "dealer_user"),
                        ("ben", "dealer_user")):
        opened.users.create(login, password=PASSWORD, roles=[role])
    yield opened
    opened.close()


def report(site, who, name, **params):
    import packs.distribution.reports as reports

    return getattr(reports, name)(ReportRequest(site, who, NOW, params))


def series(figure, index=0):
    return dict(zip(figure.categories, figure.series[index].values, strict=True))


@pytest.fixture
def network(site):
    """Two levels, two dealers (ann works for Alpha, ben for Beta), two products."""
    boss = site.users.actor("boss")
    records = site.records
    gold = records.create(boss, "dealer_level", {
        "code": "G", "name": "Gold", "discount": 20, "default_credit_limit": 10000,
        "category_discounts": [{"category": "parts", "discount": 30}]})["id"]
    silver = records.create(boss, "dealer_level", {"code": "S", "name": "Silver", "discount": 10,
                                                   "tier": 2, "default_credit_limit": 5000})["id"]
    site.users.teams.create("east", manager="cm")
    cm = site.users.actor("cm")
    alpha = records.create(cm, "customer", {"name": "Alpha Dealer", "kind": "dealer",
                                            "dealer_level": gold, "region": "East"})["id"]
    beta = records.create(cm, "customer", {"name": "Beta Dealer", "kind": "dealer",
                                           "dealer_level": silver, "parent_dealer": alpha,
                                           "region": "East"})["id"]
    unit = records.create(boss, "product", {"code": "U-1", "name": "Unit", "category": "units",
                                            "list_price": 100})["id"]
    part = records.create(boss, "product", {"code": "P-1", "name": "Part", "category": "parts",
                                            "list_price": 50})["id"]
    site.users.link("ann", "customer", alpha)
    site.users.link("ben", "customer", beta)
    return {"alpha": alpha, "beta": beta, "unit": unit, "part": part, "gold": gold}


def ship(site, who, dealer, lines):
    return site.records.create(site.users.actor(who), "shipment", {"dealer": dealer,
                                                                     "lines": lines})


def test_levels_credit_stock_sell_out_payments_and_receivables(site, network):
    records, workflows = site.records, site.workflows
    boss, cm, fin, ann = (site.users.actor(n) for n in ("boss", "cm", "fin", "ann"))
    alpha, unit, part = network["alpha"], network["unit"], network["part"]

    # the level's discount is applied: gold 20 %, parts 30 % by category
    first = ship(site, "cm", alpha, [{"product": unit, "quantity": 50},
                                     {"product": part, "quantity": 40}])
    assert [line["discount"] for line in first["lines"]] == [Decimal(20), Decimal(30)]
    assert first["total"] == Decimal("5400")  # 50 × 100 × 0.8 + 40 × 50 × 0.7
    assert not first["needs_approval"]
    workflows.transition(cm, "shipment", first["id"], "approved")
    workflows.transition(cm, "shipment", first["id"], "shipped")
    workflows.transition(ann, "shipment", first["id"], "received")

    # 4800 more takes Alpha to 10200, beyond its level's 10000: finance must grant it
    second = ship(site, "cm", alpha, [{"product": unit, "quantity": 60}])
    assert second["over_credit"] and second["credit_available"] == Decimal("4600")
    with pytest.raises(TransitionRefused) as refused:
        workflows.transition(cm, "shipment", second["id"], "approved")
    assert "needs finance's approval" in refused.value.message
    workflows.transition(cm, "shipment", second["id"], "awaiting_approval")
    with pytest.raises(TransitionRefused):
        workflows.transition(cm, "shipment", second["id"], "approved")
    workflows.transition(fin, "shipment", second["id"], "approved")
    workflows.transition(cm, "shipment", second["id"], "shipped")

    # a changed discount needs approval too
    special = ship(site, "cm", alpha, [{"product": unit, "quantity": 1, "discount": 25}])
    assert special["discount_overridden"] and special["needs_approval"]

    # stock: unit 110, part 40
    assert site.ledgers.balance(boss, "dealer_stock_move", dealer=alpha,
                                product=unit).quantity == 110
    # the dealer reports its sell-out, to an end customer
    claim = records.create(ann, "end_customer_claim", {"dealer": alpha, "name": "星河科技有限公司",
                                                      "phone": "021-5555 1234"})
    claim = records.get(ann, "end_customer_claim", claim["id"])
    assert claim["stage"] == "accepted" and claim["end_customer"]
    records.create(ann, "sell_out", {"dealer": alpha, "lines": [
        {"product": unit, "quantity": 30, "end_customer": claim["end_customer"], "amount": 3600},
        {"product": part, "quantity": 10}]})
    before = records.count(boss, "dealer_stock_move")
    with pytest.raises(LedgerRefused) as short:
        records.create(ann, "sell_out", {"dealer": alpha, "lines": [
            {"product": unit, "quantity": 100}, {"product": part, "quantity": 50},
            {"product": part, "quantity": 1}]})
    assert "Product Unit" in short.value.message and "Product Part" in short.value.message
    assert "the balance is 80, this needs 100" in short.value.message
    assert "the balance is 30, this needs 51" in short.value.message
    assert records.count(boss, "dealer_stock_move") == before
    assert records.count(boss, "sell_out") == 1

    # a payment
    records.create(fin, "dealer_payment", {"dealer": alpha, "amount": 6000})

    # by hand: receivable 5400 + 4800 − 6000 = 4200 of 10000; sell-through 40 / 150;
    # weeks of cover: stock 110 ÷ (40 sold ÷ 8 weeks) = 22
    credit = report(site, boss, "receivables_and_credit")
    assert series(credit, 0)["Alpha Dealer"] == Decimal("4200")
    assert series(credit, 1)["Alpha Dealer"] == Decimal("10000")
    assert series(credit, 2)["Alpha Dealer"] == Decimal("42.0")
    flows = report(site, boss, "sell_in_vs_sell_out")
    assert series(flows, 0)["Alpha Dealer"] == 150 and series(flows, 1)["Alpha Dealer"] == 40
    assert series(flows, 2)["Alpha Dealer"] == Decimal("26.7")
    cover = report(site, boss, "dealer_stock_cover")
    assert series(cover, 0)["Alpha Dealer"] == 110
    assert series(cover, 1)["Alpha Dealer"] == Decimal("22.0")
    assert series(report(site, boss, "receivables_ageing"), 0)["Alpha Dealer"] == Decimal("4200")
    assert series(report(site, boss, "end_customers_per_dealer"))["Alpha Dealer"] == 1


def test_market_support_and_a_second_claim_is_a_conflict_for_the_manager(site, network):
    records, workflows = site.records, site.workflows
    boss, cm, ann, ben = (site.users.actor(n) for n in ("boss", "cm", "ann", "ben"))
    request = records.create(ann, "market_support", {"title": "Spring promotion",
                                                     "dealer": network["alpha"],
                                                     "kind": "promotion", "budget": 8000})
    workflows.transition(ann, "market_support", request["id"], "submitted")
    with pytest.raises(TransitionRefused):
        workflows.transition(ann, "market_support", request["id"], "approved")
    workflows.transition(cm, "market_support", request["id"], "approved")
    workflows.transition(ann, "market_support", request["id"], "completed",
                         {"actual_spend": 7250})
    spend = report(site, boss, "market_support_spend")
    assert series(spend, 0)["Promotion"] == Decimal("8000")
    assert series(spend, 1)["Promotion"] == Decimal("7250")

    first = records.create(ann, "end_customer_claim", {"dealer": network["alpha"],
                                                      "name": "Galaxy Tech Co., Ltd."})
    customer = records.get(ann, "end_customer_claim", first["id"])["end_customer"]
    second = records.create(ben, "end_customer_claim", {"dealer": network["beta"],
                                                       "name": "GALAXY TECH"})
    second = records.get(ben, "end_customer_claim", second["id"])
    assert second["stage"] == "conflict" and second["held_by"] == network["alpha"]
    with pytest.raises(NotFound):  # Beta may not see Alpha's end customer
        records.get(ben, "customer", customer)
    with pytest.raises(PermissionDenied):  # dealers do not settle their own conflicts
        workflows.transition(ben, "end_customer_claim", second["id"], "accepted")
    workflows.transition(cm, "end_customer_claim", second["id"], "accepted")
    assert records.get(ben, "customer", customer)["dealer"] == network["beta"]
    with pytest.raises(NotFound):
        records.get(ann, "customer", customer)


def test_a_dealer_user_sees_only_its_own_through_every_door(site, network):
    records, workflows = site.records, site.workflows
    cm, fin, ann, ben = (site.users.actor(n) for n in ("cm", "fin", "ann", "ben"))
    alpha, beta, unit = network["alpha"], network["beta"], network["unit"]
    for dealer in (alpha, beta):
        shipment = ship(site, "cm", dealer, [{"product": unit, "quantity": 10}])
        workflows.transition(cm, "shipment", shipment["id"], "approved")
        workflows.transition(cm, "shipment", shipment["id"], "shipped")
        records.create(fin, "dealer_payment", {"dealer": dealer, "amount": 100})
    records.create(ann, "end_customer_claim", {"dealer": alpha, "name": "Alpha's client"})
    records.create(ben, "end_customer_claim", {"dealer": beta, "name": "Beta's client"})
    beta_shipment = records.list(cm, "shipment", filters=[Filter("dealer", "eq", beta)]).rows[0]

    # the record service
    for entity in ("shipment", "dealer_stock_move", "dealer_payment"):
        rows = records.list(ann, entity).rows
        assert rows and {r["dealer"] for r in rows} == {alpha}, entity
    customers = records.list(ann, "customer").rows
    assert {c["name"] for c in customers} == {"Alpha Dealer", "Alpha's client"}
    with pytest.raises(NotFound):
        records.get(ann, "shipment", beta_shipment["id"])
    assert site.ledgers.balances(ann, "dealer_stock_move", by=["dealer"])[0].dimensions == \
        {"dealer": alpha}
    assert len(site.ledgers.balances(ann, "dealer_stock_move", by=["dealer"])) == 1
    with pytest.raises(PermissionDenied):  # a dealer never ships to itself
        records.create(ann, "shipment", {"dealer": alpha, "lines": []})
    with pytest.raises(Exception) as caught:  # nor reports for another dealer
        records.create(ann, "sell_out", {"dealer": beta,
                                         "lines": [{"product": unit, "quantity": 1}]})
    assert getattr(caught.value, "status", None) in (404, 422)
    # export
    exported = list(records.export(ann, "dealer_stock_move"))
    assert exported and {r["dealer"] for r in exported} == {alpha}
    # reports
    assert set(report(site, ann, "receivables_and_credit").categories) == {"Alpha Dealer"}
    assert set(report(site, ann, "sell_in_vs_sell_out").categories) == {"Alpha Dealer"}
    # the API
    api = api_for(site, "ann")
    for entity in ("shipment", "dealer_stock_move", "dealer_payment", "customer"):
        answer = api.get(f"/{entity}")
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        rows = body["items"]
        assert rows, (entity, body)
        if entity == "customer":
            assert {r["name"] for r in rows} == {"Alpha Dealer", "Alpha's client"}
        else:
            assert {r["dealer"] for r in rows} == {alpha}
    assert api.get(f"/shipment/{beta_shipment['id']}").status_code == 404
    stock = api.get("/dealer_stock_move/balances?by=dealer").get_json()["items"]
    assert [b["dimensions"] for b in stock] == [{"dealer": alpha}]
    assert Decimal(stock[0]["quantity"]) == 10
    assert api.get(f"/dealer_stock_move/balances?dealer={beta}").get_json()["items"] == []
    assert api.get("/dealer_stock_move/balances?warehouse=1").status_code == 422
    assert api.get("/shipment/balances").status_code == 404
    assert api.get(f"/customer/{beta}").status_code == 404


def test_a_dealer_imports_its_sell_out_spreadsheet_all_or_nothing(site, network):
    from engine.services.dataio.importing.importer import Importer

    cm, ann = site.users.actor("cm"), site.users.actor("ann")
    shipment = ship(site, "cm", network["alpha"], [{"product": network["unit"], "quantity": 10},
                                                   {"product": network["part"], "quantity": 4}])
    site.workflows.transition(cm, "shipment", shipment["id"], "approved")
    site.workflows.transition(cm, "shipment", shipment["id"], "shipped")
    importer = Importer(site.records)
    header = "dealer,product,kind,quantity,moved_on\n"
    short = (header + "Alpha Dealer,U-1,sell_out,3,2026-11-20\n"
             "Alpha Dealer,P-1,sell_out,5,2026-11-20\n").encode()
    report = importer.run(ann, "dealer_stock_move", short, "sales.csv")
    assert not report.written
    assert any("Product Part" in str(e) and "the balance is 4, this needs 5" in str(e)
               for e in report.row_errors), report.row_errors
    sneaky = (header + "Alpha Dealer,U-1,sell_in,100,2026-11-20\n").encode()
    refused = importer.run(ann, "dealer_stock_move", sneaky, "in.csv")
    assert not refused.written
    assert "A dealer records sell-out only" in str(refused.row_errors)
    other = (header + "Beta Dealer,U-1,sell_out,1,2026-11-20\n").encode()
    refused = importer.run(ann, "dealer_stock_move", other, "beta.csv")
    assert not refused.written and refused.row_errors  # Beta is not Alpha's user's to name
    good = (header + "Alpha Dealer,U-1,sell_out,3,2026-11-20\n"
            "Alpha Dealer,P-1,sell_out,4,2026-11-20\n").encode()
    report = importer.run(ann, "dealer_stock_move", good, "sales.csv")
    assert report.written and report.created == 2, report.row_errors
    balances = {b.dimensions["product"]: b.quantity for b in site.ledgers.balances(
        ann, "dealer_stock_move", by=["product"])}
    assert balances == {network["unit"]: 7, network["part"]: 0}


def test_demo_data_loads_through_the_rules(site):
    paths = [Path(site.registry.packs[p].path) for p in ("core", "distribution")]
    created = load_demo(site.records, SYSTEM, paths, workflows=site.workflows)
    assert created > 50
    boss = site.users.actor("boss")
    dealers = site.records.count(boss, "customer", filters=[Filter("kind", "eq", "dealer")])
    assert dealers >= 24
    assert site.records.count(boss, "dealer_level") >= 2
    stock = site.ledgers.balances(boss, "dealer_stock_move", by=["dealer"])
    assert stock and all(b.quantity >= 0 for b in stock)
    from engine.services.views.dashboards import DashboardService

    dashboards = DashboardService(site)
    figures = dashboards.figures(boss, dashboards.get(boss, "distribution"))
    assert figures and all(f.error is None for f in figures), [f.error for f in figures]
