"""Append-only ledgers: definitions, balances, refusals, concurrency and a property test."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.context import Actor
from engine.errors import DefinitionError, LedgerRefused
from engine.metadata.loader import load_registry
from tests.support import open_migrated, write_pack, write_site

SYSTEM = Actor.system()

PACK = {
    "entities/item.yaml": """
        entity: item
        fields:
          name: {type: string, required: true}
    """,
    "entities/place.yaml": """
        entity: place
        fields:
          name: {type: string, required: true}
    """,
    "entities/move.yaml": """
        entity: move
        fields:
          item: {type: reference, to: item, required: true}
          place: {type: reference, to: place, required: true}
          kind:
            type: choice
            required: true
            choices: {in: {en: In}, out: {en: Out}, adjust: {en: Adjustment}}
          quantity: {type: decimal, scale: 3, required: true}
          signed:
            type: computed
            returns: decimal
            expression: "-quantity if kind == 'out' else quantity"
          value: {type: decimal, scale: 2, default: 0}
        ledger:
          quantity: signed
          dimensions: [item, place]
          amounts: [value]
    """,
    "roles.yaml": """
        roles:
          clerk:
            entities:
              "*": {rights: [read, create], scope: own}
              item: {rights: [read], scope: all}
              place: {rights: [read], scope: all}
    """,
}


def _site(tmp_path, url, overlays=None):
    write_pack(tmp_path / "packs", "store", PACK)
    root = write_site(tmp_path / "site", url, ["store"], pack_paths=["../packs"],
                      overlays=overlays)
    return open_migrated(root)


@pytest.fixture
def site(tmp_path, db_url):
    opened = _site(tmp_path, db_url)
    yield opened
    opened.close()


def _setup(site):
    bolt = site.records.create(SYSTEM, "item", {"name": "Bolt"})
    nut = site.records.create(SYSTEM, "item", {"name": "Nut"})
    north = site.records.create(SYSTEM, "place", {"name": "North"})
    south = site.records.create(SYSTEM, "place", {"name": "South"})
    return bolt["id"], nut["id"], north["id"], south["id"]


def move(site, item, place, kind, quantity, value=0, actor=SYSTEM):
    return site.records.create(actor, "move", {"item": item, "place": place, "kind": kind,
                                               "quantity": quantity, "value": value})


# -- definitions ----------------------------------------------------------------


def test_bad_ledger_definitions_are_named_with_file_and_line(tmp_path):
    write_pack(tmp_path / "packs", "bad", {
        "entities/move.yaml": """
            entity: move
            fields:
              item: {type: string}
              note: {type: text}
              tags: {type: choice, multiple: true, choices: {a: {en: A}}, required: true}
              qty: {type: decimal}
            ledger:
              quantity: note
              dimensions: [item, tags, shelf]
              amounts: [qty]
        """,
    })
    with pytest.raises(DefinitionError) as caught:
        load_registry(["bad"], search_paths=[tmp_path / "packs"])
    text = str(caught.value)
    assert "move.yaml:8" in text and "quantity 'note' must be a stored integer or decimal" in text
    assert "move.yaml:9" in text
    assert "dimension 'item' must be required" in text
    assert "dimension 'tags' is a choice field" in text
    assert "unknown field 'shelf'" in text


def test_an_extension_changes_allow_negative_only_where_a_ledger_exists(tmp_path):
    write_pack(tmp_path / "packs", "store", PACK)
    write_pack(tmp_path / "packs", "more", {"entities/x.yaml": """
        extend: item
        ledger: {allow_negative: true}
    """}, depends=("store",))
    with pytest.raises(DefinitionError) as caught:
        load_registry(["store", "more"], search_paths=[tmp_path / "packs"])
    assert "x.yaml:2" in str(caught.value) and "has no ledger to change" in str(caught.value)
    registry = load_registry(["store"], search_paths=[tmp_path / "packs"])
    ledger = registry.entities["move"].ledger
    assert ledger.dimensions == ("item", "place") and not ledger.allow_negative
    assert not registry.entities["move"].archivable
    assert any(i.fields == ("item", "place") for i in registry.entities["move"].indexes)


# -- balances and refusals ------------------------------------------------------------


def test_balances_are_the_sums_of_the_movements(site):
    bolt, nut, north, south = _setup(site)
    move(site, bolt, north, "in", 10, value=100)
    move(site, bolt, north, "out", 4, value=-40)
    move(site, bolt, south, "in", "2.5", value=25)
    move(site, nut, north, "in", 7)
    one = site.ledgers.balance(SYSTEM, "move", item=bolt, place=north)
    assert one.quantity == Decimal(6) and one.amounts["value"] == Decimal(60)
    assert one.movements == 2
    assert site.ledgers.balance(SYSTEM, "move", item=bolt).quantity == Decimal("8.5")
    per_item = {b.dimensions["item"]: b.quantity
                for b in site.ledgers.balances(SYSTEM, "move", by=["item"])}
    assert per_item == {bolt: Decimal("8.5"), nut: Decimal(7)}
    assert site.ledgers.balance(SYSTEM, "move", item=nut, place=south).quantity == 0


def test_a_movement_below_zero_is_refused_naming_the_balance(site):
    bolt, _, north, _ = _setup(site)
    move(site, bolt, north, "in", 5)
    with pytest.raises(LedgerRefused) as caught:
        move(site, bolt, north, "out", 8)
    assert caught.value.status == 409
    assert caught.value.reason == "negative_balance"
    assert "Item Bolt, Place North" in caught.value.message
    assert "balance is 5, this needs 8" in caught.value.message
    assert caught.value.shortfalls[0]["dimensions"] == {"item": bolt, "place": north}
    assert site.records.count(SYSTEM, "move") == 1  # nothing was written
    move(site, bolt, north, "out", 5)
    assert site.ledgers.balance(SYSTEM, "move", item=bolt, place=north).quantity == 0


def test_movements_are_never_changed_archived_or_deleted(site):
    bolt, _, north, _ = _setup(site)
    created = move(site, bolt, north, "in", 5)
    for call in (
        lambda: site.records.update(SYSTEM, "move", created["id"], {"quantity": 6}),
        lambda: site.records.archive(SYSTEM, "move", created["id"]),
        lambda: site.records.delete(SYSTEM, "move", created["id"]),
    ):
        with pytest.raises(LedgerRefused) as caught:
            call()
        assert caught.value.reason == "append_only"
        assert "Record a correcting movement" in caught.value.message
    assert site.records.get(SYSTEM, "move", created["id"])["quantity"] == Decimal(5)


def test_a_whole_document_is_checked_at_once_naming_every_short_balance(site):
    bolt, nut, north, _ = _setup(site)
    move(site, bolt, north, "in", 3)
    entity = site.registry.entities["move"]
    lines = [{"item": bolt, "place": north, "signed": Decimal(-2)},
             {"item": bolt, "place": north, "signed": Decimal(-2)},
             {"item": nut, "place": north, "signed": Decimal(-1)}]
    with pytest.raises(LedgerRefused) as caught, site.engine.begin() as conn:
        site.ledgers.guard(conn, SYSTEM, entity, lines)
    named = [s["named"] for s in caught.value.shortfalls]
    assert named == ["Item Bolt, Place North", "Item Nut, Place North"]


def test_a_site_may_allow_negative_balances(tmp_path, db_url):
    site = _site(tmp_path, db_url, overlays={"move.yaml": "extend: move\nledger: {allow_negative: true}\n"})
    try:
        bolt, _, north, _ = _setup(site)
        move(site, bolt, north, "out", 3)
        assert site.ledgers.balance(SYSTEM, "move", item=bolt).quantity == Decimal(-3)
    finally:
        site.close()


def test_balances_stay_inside_the_actors_scope(site):
    bolt, _, north, _ = _setup(site)
    site.users.create("ann", password="password-1", roles=["clerk"])
    site.users.create("bob", password="password-1", roles=["clerk"])
    ann, bob = site.users.actor("ann"), site.users.actor("bob")
    move(site, bolt, north, "in", 4, actor=ann)
    move(site, bolt, north, "in", 6, actor=bob)
    assert site.ledgers.balance(ann, "move", item=bolt).quantity == 4
    assert site.ledgers.balance(SYSTEM, "move", item=bolt).quantity == 10
    # the guard checks the real balance, not the actor's view of it
    move(site, bolt, north, "out", 7, actor=ann)


# -- concurrency ----------------------------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
def both(request, tmp_path):
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    opened = _site(tmp_path, url)
    yield opened
    opened.close()


def test_concurrent_issues_never_take_a_balance_below_zero(both):
    bolt, _, north, _ = _setup(both)
    move(both, bolt, north, "in", 10)
    barrier = threading.Barrier(8)

    def take(_: int) -> str:
        barrier.wait()
        try:
            move(both, bolt, north, "out", 3)
            return "ok"
        except LedgerRefused:
            return "refused"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(take, range(8)))
    assert outcomes.count("ok") == 3 and outcomes.count("refused") == 5
    assert both.ledgers.balance(SYSTEM, "move", item=bolt, place=north).quantity == 1


# -- the property ----------------------------------------------------------------

MOVES = st.lists(
    st.tuples(st.sampled_from(["in", "out", "adjust"]), st.integers(0, 1), st.integers(0, 1),
              st.decimals(min_value=-20, max_value=40, places=1, allow_nan=False,
                          allow_infinity=False)),
    max_size=25,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=MOVES)
def test_on_hand_is_the_ledger_sum_and_never_negative(site, moves):
    items = [r["id"] for r in site.records.list(SYSTEM, "item", limit=10).rows]
    places = [r["id"] for r in site.records.list(SYSTEM, "place", limit=10).rows]
    if not items:
        items = [site.records.create(SYSTEM, "item", {"name": n})["id"] for n in ("A", "B")]
        places = [site.records.create(SYSTEM, "place", {"name": n})["id"] for n in ("P", "Q")]
    start = {(b.dimensions["item"], b.dimensions["place"]): b.quantity
             for b in site.ledgers.balances(SYSTEM, "move")}
    expected = dict(start)
    for kind, i, p, quantity in moves:
        if kind != "adjust":
            quantity = abs(quantity)
        key = (items[i], places[p])
        signed = -quantity if kind == "out" else quantity
        before = expected.get(key, Decimal(0))
        try:
            move(site, key[0], key[1], kind, quantity)
            expected[key] = before + signed
            assert before + signed >= 0
        except LedgerRefused:
            assert before + signed < 0
    balances = {(b.dimensions["item"], b.dimensions["place"]): b.quantity
                for b in site.ledgers.balances(SYSTEM, "move")}
    rows = site.records.list(SYSTEM, "move", limit=1000).rows
    sums: dict = {}
    for row in rows:
        key = (row["item"], row["place"])
        sums[key] = sums.get(key, Decimal(0)) + Decimal(row["signed"])
    assert {k: v for k, v in expected.items() if k in sums} == sums == balances
    assert all(v >= 0 for v in balances.values())
