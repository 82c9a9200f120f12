"""Migrations on the database under test (SQLite by default, PostgreSQL with
``CRM_TEST_DATABASE=postgresql``): data survives every change that keeps it,
changes that would lose it are refused or archived, and a failure changes
nothing at all.
"""

from __future__ import annotations

import datetime as dt
import shutil
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Column, Engine, Integer, MetaData, Table, inspect, select

from engine.errors import MigrationFailed, MigrationRefused
from engine.metadata.loader import load_registry
from engine.metadata.model import Registry
from engine.storage.database import create_db_engine
from engine.storage.migration import (
    MigrationPlan,
    applied_state,
    apply_migration,
    is_up_to_date,
    plan_migration,
)
from engine.storage.migration.executor import Executor
from engine.storage.tables import Schema, build_schema

NOW = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)

CUSTOMER = """
    entity: customer
    label: Customer
    fields:
      name: {type: string, max_length: 100, label: Name}
      tel: {type: string, max_length: 40, index: true, label: Tel}
      fax: {type: string, max_length: 40, label: Fax}
      kind: {type: choice, label: Kind, choices: {a: A, b: B, c: C}}
      tags: {type: choice, multiple: true, label: Tags, choices: {x: X, y: Y, z: Z}}
      amount: {type: decimal, precision: 12, scale: 2, label: Amount}
      qty: {type: integer, label: Qty}
      email: {type: string, label: Email}
"""

SALE = """
    entity: sale
    label: Sale
    fields:
      number: {type: string, max_length: 20, label: Number}
      customer: {type: reference, to: customer, on_delete: cascade, label: Customer}
      items:
        type: lines
        label: Items
        fields:
          product: {type: string, max_length: 50, label: Product}
          qty: {type: integer, label: Quantity}
          price: {type: decimal, precision: 10, scale: 2, label: Price}
"""

V1 = {"entities/customer.yaml": CUSTOMER, "entities/sale.yaml": SALE}


# -- helpers ------------------------------------------------------------------


def make_pack(base: Path, name: str, files: dict[str, str], version: str = "1.0.0") -> Path:
    """Write pack ``name`` under ``base`` (replacing an earlier version of it)."""
    root = base / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    manifest = {"name": name, "version": version, "label": name.title(), "depends": []}
    (root / "pack.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def load(base: Path, files: dict[str, str], name: str = "shop") -> tuple[Registry, Schema]:
    make_pack(base, name, files)
    registry = load_registry([name], search_paths=[base])
    return registry, build_schema(registry)


def migrate(engine: Engine, base: Path, files: dict[str, str], **kwargs: Any) -> tuple[
    Registry, Schema, MigrationPlan
]:
    """Apply definitions ``files``; afterwards the database must be up to date."""
    registry, schema = load(base, files)
    plan = apply_migration(engine, registry, schema, **kwargs)
    after = plan_migration(engine, registry, schema)
    assert after.is_empty, after.describe()
    assert is_up_to_date(engine, registry)
    return registry, schema, plan


def change(files: dict[str, str], path: str, old: str, new: str) -> dict[str, str]:
    assert old in files[path], old
    return {**files, path: files[path].replace(old, new)}


def insert(engine: Engine, schema: Schema, entity: str, rows: list[dict[str, Any]],
           lines: str | None = None) -> None:
    table = schema.child(entity, lines) if lines else schema.table(entity)
    stamp = {} if lines else {"created_at": NOW, "updated_at": NOW}
    with engine.begin() as conn:
        conn.execute(table.insert(), [{**stamp, **row} for row in rows])


def seed(engine: Engine, schema: Schema) -> None:
    insert(engine, schema, "customer", [
        {"name": "Acme Corporation", "tel": "111", "fax": "F1", "kind": "a",
         "tags": ["x", "y"], "amount": Decimal("10.50"), "qty": 3, "email": "a@x.com"},
        {"name": "Bolt", "tel": "222", "fax": None, "kind": "b", "tags": ["z"],
         "amount": Decimal("7.25"), "qty": 5, "email": "b@x.com"},
        {"name": "Cobalt Industries Limited", "tel": None, "fax": "F3", "kind": "a",
         "tags": None, "amount": None, "qty": None, "email": "a@x.com"},
    ])
    insert(engine, schema, "sale", [{"number": "S1", "customer": 1}])
    insert(engine, schema, "sale", [
        {"parent_id": 1, "position": 0, "product": "Bolt", "qty": 2,
         "price": Decimal("3.10")},
        {"parent_id": 1, "position": 1, "product": "Nut", "qty": 5,
         "price": Decimal("0.20")},
    ], lines="items")


def column_values(engine: Engine, schema: Schema, entity: str, *keys: str,
                  lines: str | None = None) -> list[tuple[Any, ...]]:
    table = schema.child(entity, lines) if lines else schema.table(entity)
    with engine.connect() as conn:
        query = select(*(table.c[k] for k in ("id", *keys))).order_by(table.c.id)
        return [tuple(row) for row in conn.execute(query)]


def db_state(engine: Engine) -> dict[str, Any]:
    """Every table's columns, indexes and rows, to prove a database was not touched."""
    state: dict[str, Any] = {}
    with engine.connect() as conn:
        inspector = inspect(conn)
        for name in sorted(inspector.get_table_names()):
            table = Table(name, MetaData(), autoload_with=conn)
            rows = conn.execute(select(table)).all()
            state[name] = {
                "columns": [c.name for c in table.columns],
                "indexes": sorted(i["name"] for i in inspector.get_indexes(name)),
                "rows": sorted((tuple(r) for r in rows), key=repr),
            }
    return state


def archived(engine: Engine, schema: Schema) -> list[tuple[Any, ...]]:
    table = schema.system("crm_archive")
    with engine.connect() as conn:
        query = select(table.c.entity, table.c.field, table.c.record_id, table.c.value,
                       table.c.reason).order_by(table.c.id)
        return [tuple(row) for row in conn.execute(query)]


def definitions_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        table = Table("crm_definitions", MetaData(), autoload_with=conn)
        return len(conn.execute(select(table.c.id)).all())


@pytest.fixture
def engine(db_url: str):
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def seeded(engine: Engine, tmp_path: Path) -> Engine:
    """A database migrated to V1 with three customers and one sale of two lines."""
    _registry, schema, _plan = migrate(engine, tmp_path, V1)
    seed(engine, schema)
    return engine


# -- fresh database and no-ops --------------------------------------------------


def test_fresh_database_gets_every_table_and_records_the_definitions(engine, tmp_path):
    lines: list[str] = []
    registry, schema, plan = migrate(engine, tmp_path, V1, progress=lines.append, applied_by="test")
    tables = set(inspect(engine).get_table_names())
    assert set(schema.metadata.tables) <= tables
    assert {"customer", "sale", "sale__items", "crm_definitions", "crm_archive"} <= tables
    assert lines == plan.describe()
    assert 'Add entity "Customer" (customer)' in lines
    assert 'Add lines field "Items" (items) to Sale' in lines
    state = applied_state(engine)
    assert state is not None
    assert state.definitions_hash == registry.definitions_hash
    assert state.packs == {"shop": "1.0.0"}
    assert state.snapshot["entities"]["customer"]["fields"]["tel"]["max_length"] == 40
    assert state.summary == "First migration: 2 entities (customer, sale) (by test)"
    assert plan.previous_hash is None and plan.new_hash == registry.definitions_hash


def test_migrating_again_is_a_no_op(seeded, tmp_path):
    registry, schema = load(tmp_path, V1)
    before = db_state(seeded)
    plan = apply_migration(seeded, registry, schema)
    assert plan.is_empty and plan.describe() == []
    assert db_state(seeded) == before
    assert definitions_rows(seeded) == 1


def test_a_label_change_records_new_definitions_without_touching_tables(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml", "label: Fax", "label: Telefax")
    registry, schema = load(tmp_path, files)
    plan = plan_migration(seeded, registry, schema)
    assert plan.operations == ()
    assert not plan.is_empty
    assert plan.describe() == ["Record the new definitions (no change to the tables)"]
    migrate(seeded, tmp_path, files)
    assert definitions_rows(seeded) == 2


def test_tables_that_are_not_ours_are_left_alone(seeded, tmp_path):
    with seeded.begin() as conn:
        Table("legacy_report", MetaData(), Column("id", Integer, primary_key=True)).create(conn)
    files = change(V1, "entities/customer.yaml", "      email:",
                   "      priority: {type: integer, label: Priority}\n      email:")
    _r, _s, plan = migrate(seeded, tmp_path, files)
    assert plan.describe() == ['Add field "Priority" (priority: integer) to Customer']
    assert all("legacy" not in line for line in plan.describe())
    assert "legacy_report" in inspect(seeded).get_table_names()


# -- additive changes -----------------------------------------------------------


def test_add_a_field_keeps_every_row(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml", "      email:",
                   "      priority: {type: integer, label: Priority}\n      email:")
    _r, schema, plan = migrate(seeded, tmp_path, files)
    assert plan.describe() == ['Add field "Priority" (priority: integer) to Customer']
    assert column_values(seeded, schema, "customer", "name", "priority") == [
        (1, "Acme Corporation", None), (2, "Bolt", None), (3, "Cobalt Industries Limited", None),
    ]
    insert(seeded, schema, "customer", [{"name": "Delta", "priority": 2}])
    assert column_values(seeded, schema, "customer", "priority")[-1][1] == 2


def test_add_a_reference_field_creates_its_link_and_index(seeded, tmp_path):
    files = change(V1, "entities/sale.yaml", "      items:",
                   "      payer: {type: reference, to: customer, label: Payer}\n      items:")
    _r, schema, plan = migrate(seeded, tmp_path, files)
    assert plan.describe() == [
        'Add field "Payer" (payer: reference to customer) to Sale',
        "Add index on Sale (payer)",
    ]
    keys = inspect(seeded).get_foreign_keys("sale")
    assert any(k["constrained_columns"] == ["payer"] and k["referred_table"] == "customer"
               for k in keys)
    assert column_values(seeded, schema, "sale", "number", "customer") == [(1, "S1", 1)]


def test_add_an_entity(seeded, tmp_path):
    files = {**V1, "entities/supplier.yaml": """
        entity: supplier
        label: Supplier
        fields:
          name: {type: string, label: Name, unique: true}
    """}
    _r, schema, plan = migrate(seeded, tmp_path, files)
    assert plan.describe() == ['Add entity "Supplier" (supplier)']
    assert {i["name"] for i in inspect(seeded).get_indexes("supplier")} == {
        "ix_supplier_owner", "uq_supplier_name",
    }
    insert(seeded, schema, "supplier", [{"name": "S"}])
    assert column_values(seeded, schema, "customer", "name")[0] == (1, "Acme Corporation")


def test_widening_types_keeps_values_exactly(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml", "max_length: 100", "max_length: 200")
    files = change(files, "entities/customer.yaml", "fax: {type: string, max_length: 40",
                   "fax: {type: text")
    files = change(files, "entities/customer.yaml", "precision: 12, scale: 2",
                   "precision: 16, scale: 4")
    _r, schema, plan = migrate(seeded, tmp_path, files)
    assert plan.describe() == [
        'Widen field "name" on Customer from string(100) to string(200)',
        'Widen field "fax" on Customer from string(40) to text',
        'Widen field "amount" on Customer from decimal(12,2) to decimal(16,4)',
    ]
    assert plan.destructive == ()
    assert column_values(seeded, schema, "customer", "name", "fax", "amount") == [
        (1, "Acme Corporation", "F1", Decimal("10.5000")),
        (2, "Bolt", None, Decimal("7.2500")),
        (3, "Cobalt Industries Limited", "F3", None),
    ]
    assert archived(seeded, schema) == []
    insert(seeded, schema, "customer", [{"name": "x" * 200, "amount": Decimal("123456789012.3456")}])


def test_new_choices_change_no_table(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml", "c: C}", "c: C, d: D}")
    _r, schema, plan = migrate(seeded, tmp_path, files)
    assert plan.describe() == ['Add choice "d" to field "kind" on Customer']
    assert column_values(seeded, schema, "customer", "kind") == [(1, "a"), (2, "b"), (3, "a")]


def test_rename_keeps_values_and_drops_the_old_column(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml",
                   "tel: {type: string, max_length: 40, index: true, label: Tel}",
                   "phone: {type: string, max_length: 40, index: true, label: Phone, "
                   "renamed_from: tel}")
    _r, schema, plan = migrate(seeded, tmp_path, files)
    assert plan.describe() == [
        "Remove index on Customer (tel)",
        'Rename field "tel" to "phone" on Customer (data kept)',
        "Add index on Customer (phone)",
    ]
    assert plan.destructive == ()
    assert column_values(seeded, schema, "customer", "phone") == [(1, "111"), (2, "222"), (3, None)]
    columns = {c["name"] for c in inspect(seeded).get_columns("customer")}
    assert "tel" not in columns and "phone" in columns
    # the sale and its lines (children of the recreated tables on SQLite) are all there
    assert column_values(seeded, schema, "sale", "customer") == [(1, 1)]
    assert column_values(seeded, schema, "sale", "product", lines="items") == [(1, "Bolt"), (2, "Nut")]


def test_without_renamed_from_a_rename_is_never_guessed(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml", "fax: {type: string, max_length: 40, label: Fax}",
                   "telefax: {type: string, max_length: 40, label: Fax}")
    registry, schema = load(tmp_path, files)
    plan = plan_migration(seeded, registry, schema)
    assert plan.describe() == [
        'Add field "Fax" (telefax: string(40)) to Customer',
        'Remove field "fax" from Customer — 2 values will be moved to the archive',
    ]


# -- lines fields -----------------------------------------------------------------


def test_add_and_rename_line_fields(seeded, tmp_path):
    files = change(V1, "entities/sale.yaml", "          product: {type: string, max_length: 50, "
                   "label: Product}",
                   "          article: {type: string, max_length: 50, label: Article, "
                   "renamed_from: product}\n"
                   "          discount: {type: decimal, precision: 5, scale: 2, label: Discount}")
    _r, schema, plan = migrate(seeded, tmp_path, files)
    assert plan.describe() == [
        'Rename field "product" to "article" on Sale lines "Items" (data kept)',
        'Add field "Discount" (discount: decimal(5,2)) to Sale lines "Items"',
    ]
    assert column_values(seeded, schema, "sale", "article", "qty", "discount", lines="items") == [
        (1, "Bolt", 2, None), (2, "Nut", 5, None),
    ]


def test_rename_a_lines_field_renames_its_table(seeded, tmp_path):
    files = change(V1, "entities/sale.yaml", "      items:\n        type: lines\n        label: Items",
                   "      entries:\n        type: lines\n        label: Entries\n"
                   "        renamed_from: items")
    files = change(files, "entities/sale.yaml", "          qty: {type: integer, label: Quantity}",
                   "          amount: {type: integer, label: Quantity, renamed_from: qty}\n"
                   "          maker: {type: reference, to: customer, label: Maker}")
    _r, schema, plan = migrate(seeded, tmp_path, files)
    assert plan.describe() == [
        'Rename lines field "items" to "entries" on Sale (data kept)',
        'Rename field "qty" to "amount" on Sale lines "Entries" (data kept)',
        'Add field "Maker" (maker: reference to customer) to Sale lines "Entries"',
        'Add index on Sale lines "Entries" (maker)',
    ]
    assert {i["name"] for i in inspect(seeded).get_indexes("sale__entries")} == {
        "ix_sale__entries_parent_id", "ix_sale__entries_maker",
    }
    tables = set(inspect(seeded).get_table_names())
    assert "sale__entries" in tables and "sale__items" not in tables
    assert column_values(seeded, schema, "sale", "product", "amount", "price", lines="entries") == [
        (1, "Bolt", 2, Decimal("3.10")), (2, "Nut", 5, Decimal("0.20")),
    ]


def test_removing_a_lines_field_archives_each_line(seeded, tmp_path):
    start = SALE.index("      items:")
    files = {**V1, "entities/sale.yaml": SALE[:start]}
    registry, schema = load(tmp_path, files)
    with pytest.raises(MigrationRefused, match='lines field "items" from Sale would lose 2 lines'):
        apply_migration(seeded, registry, schema)
    _r, schema, plan = migrate(seeded, tmp_path, files, allow_destructive=True)
    assert plan.describe() == ['Remove lines field "items" from Sale — 2 lines will be moved to '
                               "the archive"]
    assert "sale__items" not in inspect(seeded).get_table_names()
    rows = archived(seeded, schema)
    assert [(e, f, i, r) for e, f, i, _v, r in rows] == [
        ("sale", "items", 1, "lines field removed"), ("sale", "items", 2, "lines field removed"),
    ]
    assert rows[0][3] == {"id": 1, "parent_id": 1, "position": 0, "product": "Bolt", "qty": 2,
                          "price": "3.10"}


# -- destructive changes: refused ---------------------------------------------------

REFUSED = [
    pytest.param(
        change(V1, "entities/customer.yaml", "      fax: {type: string, max_length: 40, "
               "label: Fax}\n", ""),
        'removing field "fax" from Customer would lose 2 values',
        id="removed field",
    ),
    pytest.param(
        {"entities/customer.yaml": CUSTOMER},
        ['removing lines field "items" from Sale would lose 2 lines',
         'removing entity "sale" would lose 1 record'],
        id="removed entity",
    ),
    pytest.param(
        change(V1, "entities/customer.yaml", "max_length: 100", "max_length: 10"),
        'changing field "name" on Customer from string(100) to string(10) would alter 2 of its '
        "3 values (cut, rounded or emptied)",
        id="narrowed length",
    ),
    pytest.param(
        change(V1, "entities/customer.yaml", "precision: 12, scale: 2", "precision: 12, scale: 0"),
        'changing field "amount" on Customer from decimal(12,2) to decimal(12,0) would alter 2 of '
        "its 2 values (cut, rounded or emptied)",
        id="narrowed decimal",
    ),
    pytest.param(
        change(V1, "entities/customer.yaml", "{a: A, b: B, c: C}", "{b: B, c: C}"),
        'removing choice "a" from field "kind" on Customer would clear it in 2 records '
        '(used: "a" by 2 records)',
        id="removed choice",
    ),
]


@pytest.mark.parametrize(("files", "reason"), REFUSED)
def test_destructive_changes_are_refused_and_nothing_changes(seeded, tmp_path, files, reason):
    registry, schema = load(tmp_path, files)
    before = db_state(seeded)
    with pytest.raises(MigrationRefused) as caught:
        apply_migration(seeded, registry, schema)
    reasons = reason if isinstance(reason, list) else [reason]
    assert caught.value.reasons == reasons
    assert all(r in caught.value.message for r in reasons)
    assert "nothing was changed" in caught.value.message
    assert db_state(seeded) == before
    assert definitions_rows(seeded) == 1
    assert plan_migration(seeded, registry, schema).destructive  # still to do


def test_unique_with_duplicates_is_refused_even_when_destructive_is_allowed(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml", "email: {type: string, label: Email}",
                   "email: {type: string, label: Email, unique: true}")
    registry, schema = load(tmp_path, files)
    before = db_state(seeded)
    for allow in (False, True):
        with pytest.raises(MigrationRefused) as caught:
            apply_migration(seeded, registry, schema, allow_destructive=allow)
        assert caught.value.reasons == [
            'field "email" on Customer cannot be made unique: "a@x.com" is used by 2 records; '
            "change those records first (the migration cannot choose which ones)"
        ]
        assert "even with destructive changes allowed" in caught.value.message
    assert db_state(seeded) == before
    # once the duplicate is fixed, the field becomes unique
    with seeded.begin() as conn:
        table = schema.table("customer")
        conn.execute(table.update().where(table.c.id == 3).values(email="c@x.com"))
    _r, _s, plan = migrate(seeded, tmp_path, files)
    assert plan.describe() == ['Make field "email" on Customer unique']


# -- destructive changes: allowed, archived -------------------------------------------


def test_removed_field_is_archived_before_the_drop(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml", "      fax: {type: string, max_length: 40, "
                   "label: Fax}\n", "")
    registry, schema, plan = migrate(seeded, tmp_path, files, allow_destructive=True)
    assert "fax" not in {c["name"] for c in inspect(seeded).get_columns("customer")}
    assert archived(seeded, schema) == [
        ("customer", "fax", 1, "F1", "field removed"),
        ("customer", "fax", 3, "F3", "field removed"),
    ]
    table = schema.system("crm_archive")
    with seeded.connect() as conn:
        hashes = set(conn.execute(select(table.c.definitions_hash)).scalars())
    assert hashes == {registry.definitions_hash}


def test_removed_entity_archives_whole_rows(seeded, tmp_path):
    _r, schema, plan = migrate(seeded, tmp_path, {"entities/customer.yaml": CUSTOMER},
                               allow_destructive=True)
    assert plan.describe() == [
        'Remove lines field "items" from Sale — 2 lines will be moved to the archive',
        'Remove entity "sale" — 1 record will be moved to the archive',
    ]
    assert not {"sale", "sale__items"} & set(inspect(seeded).get_table_names())
    rows = archived(seeded, schema)
    assert [(e, f, i, r) for e, f, i, _v, r in rows] == [
        ("sale", "items", 1, "lines field removed"),
        ("sale", "items", 2, "lines field removed"),
        ("sale", None, 1, "entity removed"),
    ]
    sale = rows[2][3]
    assert {k: sale[k] for k in ("id", "number", "customer", "version", "archived")} == {
        "id": 1, "number": "S1", "customer": 1, "version": 1, "archived": False,
    }
    assert sale["created_at"].startswith("2024-05-01T08:00:00")


def test_narrowing_archives_then_converts(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml", "max_length: 100", "max_length: 10")
    files = change(files, "entities/customer.yaml", "precision: 12, scale: 2",
                   "precision: 12, scale: 1")
    files = change(files, "entities/customer.yaml", "tel: {type: string, max_length: 40",
                   "tel: {type: integer")
    _r, schema, plan = migrate(seeded, tmp_path, files, allow_destructive=True)
    assert plan.describe() == [
        'Change field "name" on Customer from string(100) to string(10) — 3 values will be '
        "copied to the archive; 2 will change",
        'Change field "tel" on Customer from string(40) to integer — 2 values will be copied to '
        "the archive; none will change",
        'Change field "amount" on Customer from decimal(12,2) to decimal(12,1) — 2 values will be '
        "copied to the archive; 1 will change",
    ]
    assert column_values(seeded, schema, "customer", "name", "tel", "amount") == [
        (1, "Acme Corpo", 111, Decimal("10.5")),
        (2, "Bolt", 222, Decimal("7.3")),
        (3, "Cobalt Ind", None, None),
    ]
    assert archived(seeded, schema) == [
        ("customer", "name", 1, "Acme Corporation", "type changed from string(100) to string(10)"),
        ("customer", "name", 2, "Bolt", "type changed from string(100) to string(10)"),
        ("customer", "name", 3, "Cobalt Industries Limited",
         "type changed from string(100) to string(10)"),
        ("customer", "tel", 1, "111", "type changed from string(40) to integer"),
        ("customer", "tel", 2, "222", "type changed from string(40) to integer"),
        ("customer", "amount", 1, "10.50", "type changed from decimal(12,2) to decimal(12,1)"),
        ("customer", "amount", 2, "7.25", "type changed from decimal(12,2) to decimal(12,1)"),
    ]
    # the index on tel survived the change of type
    assert "ix_customer_tel" in {i["name"] for i in inspect(seeded).get_indexes("customer")}


def test_unconvertible_values_become_empty(seeded, tmp_path):
    with seeded.begin() as conn:
        table = build_schema(load(tmp_path, V1)[0]).table("customer")
        conn.execute(table.update().where(table.c.id == 2).values(tel="+86 21"))
    files = change(V1, "entities/customer.yaml", "tel: {type: string, max_length: 40",
                   "tel: {type: integer")
    _r, schema, _plan = migrate(seeded, tmp_path, files, allow_destructive=True)
    assert column_values(seeded, schema, "customer", "tel") == [(1, 111), (2, None), (3, None)]
    assert [row[3] for row in archived(seeded, schema)] == ["111", "+86 21"]


def test_removed_choice_is_archived_then_cleared(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml", "{a: A, b: B, c: C}", "{b: B, c: C}")
    files = change(files, "entities/customer.yaml", "{x: X, y: Y, z: Z}", "{x: X, z: Z}")
    _r, schema, plan = migrate(seeded, tmp_path, files, allow_destructive=True)
    assert plan.describe() == [
        'Remove choice "a" from field "kind" on Customer — used by 2 records; the old values '
        "will be moved to the archive and cleared",
        'Remove choice "y" from field "tags" on Customer — used by 1 record; the old values '
        "will be moved to the archive and cleared",
    ]
    assert column_values(seeded, schema, "customer", "kind", "tags") == [
        (1, None, ["x"]), (2, "b", ["z"]), (3, None, None),
    ]
    assert archived(seeded, schema) == [
        ("customer", "kind", 1, "a", "choice 'a' removed"),
        ("customer", "kind", 3, "a", "choice 'a' removed"),
        ("customer", "tags", 1, ["x", "y"], "choice 'y' removed"),
    ]


def test_a_reference_pointed_elsewhere_is_archived_emptied_and_relinked(seeded, tmp_path):
    files = {**V1, "entities/supplier.yaml": "entity: supplier\nfields:\n  name: {type: string}\n"}
    files = change(files, "entities/sale.yaml", "customer: {type: reference, to: customer",
                   "customer: {type: reference, to: supplier")
    registry, schema = load(tmp_path, files)
    plan = plan_migration(seeded, registry, schema)
    assert plan.describe() == [
        'Add entity "Supplier" (supplier)',
        'Change field "customer" on Sale from reference to customer to reference to supplier — '
        "1 value will be copied to the archive; 1 will change",
    ]
    _r, schema, _plan = migrate(seeded, tmp_path, files, allow_destructive=True)
    assert column_values(seeded, schema, "sale", "number", "customer") == [(1, "S1", None)]
    assert archived(seeded, schema) == [
        ("sale", "customer", 1, 1, "type changed from reference to customer to reference to "
         "supplier"),
    ]
    keys = [(k["constrained_columns"], k["referred_table"])
            for k in inspect(seeded).get_foreign_keys("sale")]
    assert (["customer"], "supplier") in keys and (["customer"], "customer") not in keys
    assert "ix_sale_customer" in {i["name"] for i in inspect(seeded).get_indexes("sale")}
    insert(seeded, schema, "supplier", [{"name": "S"}])
    with seeded.begin() as conn:
        table = schema.table("sale")
        conn.execute(table.update().values(customer=1))
    assert column_values(seeded, schema, "sale", "customer") == [(1, 1)]
    assert len(column_values(seeded, schema, "sale", "product", lines="items")) == 2


def test_a_single_choice_becomes_a_multiple_one(seeded, tmp_path):
    files = change(V1, "entities/customer.yaml", "kind: {type: choice,",
                   "kind: {type: choice, multiple: true,")
    _r, schema, plan = migrate(seeded, tmp_path, files, allow_destructive=True)
    assert plan.describe() == [
        'Change field "kind" on Customer from choice to choice (several) — 3 values will be '
        "copied to the archive; none will change",
    ]
    assert column_values(seeded, schema, "customer", "kind") == [(1, ["a"]), (2, ["b"]), (3, ["a"])]


# -- all or nothing -------------------------------------------------------------------


def test_a_failing_step_rolls_back_everything(seeded, tmp_path, monkeypatch):
    files = change(V1, "entities/customer.yaml",
                   "tel: {type: string, max_length: 40, index: true, label: Tel}",
                   "phone: {type: string, max_length: 40, index: true, label: Phone, "
                   "renamed_from: tel}")
    files = change(files, "entities/customer.yaml", "      email:",
                   "      priority: {type: integer, label: Priority}\n      email:")
    files = change(files, "entities/customer.yaml", "      fax: {type: string, max_length: 40, "
                   "label: Fax}\n", "")
    files = {**files, "entities/supplier.yaml": "entity: supplier\nfields:\n  name: {type: string}\n"}
    registry, schema = load(tmp_path, files)
    before = db_state(seeded)
    original = RuntimeError("disk on fire")

    def boom(self, op):
        raise original

    monkeypatch.setattr(Executor, "add_index", boom)  # after create, rename and add column ran
    seen: list[str] = []
    with pytest.raises(MigrationFailed) as caught:
        apply_migration(seeded, registry, schema, allow_destructive=True, progress=seen.append)
    assert seen[-1] == "Add index on Customer (phone)"
    assert caught.value.message == (
        "The migration failed at step 5 of 6 (Add index on Customer (phone)): disk on fire. "
        "The database was rolled back; nothing was changed."
    )
    assert caught.value.__cause__ is original
    assert db_state(seeded) == before
    assert definitions_rows(seeded) == 1


def test_database_errors_are_reported_without_sql(seeded, tmp_path, monkeypatch):
    files = change(V1, "entities/customer.yaml", "email: {type: string, label: Email}",
                   "email: {type: string, label: Email, unique: true}")
    registry, schema = load(tmp_path, files)
    # A duplicate that the plan did not see (as if written by someone else meanwhile).
    monkeypatch.setattr("engine.storage.migration.planner.Planner.duplicates",
                        lambda self, name, keys: ([], 0))
    before = db_state(seeded)
    with pytest.raises(MigrationFailed) as caught:
        apply_migration(seeded, registry, schema)
    message = caught.value.message
    assert message.startswith("The migration failed at step 1 of 1 (Make field \"email\" on "
                              "Customer unique): ")
    assert "[SQL" not in message and "ON customer" not in message and "\n" not in message
    assert "rolled back" in message
    assert db_state(seeded) == before


@pytest.fixture
def sqlite_seeded(sqlite_url: str, tmp_path: Path):
    """Like ``seeded`` but always SQLite: these tests are about SQLite's PRAGMAs, so they
    run in every pass of the suite instead of being skipped on PostgreSQL."""
    engine = create_db_engine(sqlite_url)
    _registry, schema, _plan = migrate(engine, tmp_path, V1)
    seed(engine, schema)
    yield engine
    engine.dispose()


def test_sqlite_foreign_keys_are_off_during_and_on_after(sqlite_seeded, tmp_path):
    seeded = sqlite_seeded
    files = change(V1, "entities/customer.yaml", "max_length: 100", "max_length: 200")
    migrate(seeded, tmp_path, files)  # recreates customer, the parent of sale
    with seeded.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert len(column_values(seeded, build_schema(load(tmp_path, V1)[0]), "sale")) == 1


def test_sqlite_broken_references_fail_the_migration(sqlite_seeded, tmp_path):
    seeded = sqlite_seeded
    with seeded.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute("INSERT INTO sale (id, created_at, updated_at, version, archived, customer)"
                    " VALUES (2, '2024-01-01', '2024-01-01', 1, 0, 99)")
        raw.execute("PRAGMA foreign_keys=ON")
    before = db_state(seeded)
    files = change(V1, "entities/customer.yaml", "      email:",
                   "      priority: {type: integer, label: Priority}\n      email:")
    registry, schema = load(tmp_path, files)
    with pytest.raises(MigrationFailed, match=r"1 row\(s\) in sale would point to records"):
        apply_migration(seeded, registry, schema)
    assert db_state(seeded) == before
