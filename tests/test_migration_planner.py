"""The planning layer on its exact output: operation wording, plans, type rules.

Operations and the conversion rules are plain data and functions, tested
without a database; plans are made against the database under test and
compared line by line, since ``crm migrate --plan`` shows these lines to
consultants as they are.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from engine.storage.migration import (
    AddChoices,
    AddColumn,
    AddIndex,
    ChangeType,
    CreateTable,
    DropColumn,
    DropIndex,
    DropTable,
    MigrationPlan,
    Place,
    RemoveChoices,
    RenameColumn,
    RenameTable,
    plan_migration,
)
from engine.storage.migration.convert import ColumnSpec, convert, widens
from tests.test_migrations import V1, change, db_state, load, migrate, seed

CUSTOMER = Place("customer", "customer", "Customer")
ITEMS = Place("sale__items", "sale", "Sale", "items", "Items")
STRING_100 = ColumnSpec("string", length=100)
STRING_10 = ColumnSpec("string", length=10)


# -- operations say what they do --------------------------------------------------

DESCRIBED = [
    (CreateTable(Place("crm_user", "crm_user", "crm_user"), "system", "crm_user", "crm_user"),
     'Create system table "crm_user"', None),
    (CreateTable(Place("deal", "deal", "Deal"), "entity", "deal", "Deal"),
     'Add entity "Deal" (deal)', None),
    (CreateTable(ITEMS, "lines", "items", "Items"), 'Add lines field "Items" (items) to Sale', None),
    (RenameTable(ITEMS, "lines", "sale__rows", "rows", "items"),
     'Rename lines field "rows" to "items" on Sale (data kept)', None),
    (AddColumn(CUSTOMER, "priority", "Priority", "integer"),
     'Add field "Priority" (priority: integer) to Customer', None),
    (AddColumn(ITEMS, "discount", "Discount", "decimal(5,2)"),
     'Add field "Discount" (discount: decimal(5,2)) to Sale lines "Items"', None),
    (RenameColumn(CUSTOMER, "tel", "phone"),
     'Rename field "tel" to "phone" on Customer (data kept)', None),
    (DropColumn(CUSTOMER, "fax", 12),
     'Remove field "fax" from Customer — 12 values will be moved to the archive',
     'removing field "fax" from Customer would lose 12 values'),
    (DropColumn(CUSTOMER, "fax", 1),
     'Remove field "fax" from Customer — 1 value will be moved to the archive',
     'removing field "fax" from Customer would lose 1 value'),
    (DropColumn(CUSTOMER, "fax", 0), 'Remove field "fax" from Customer (no values)', None),
    (DropTable(Place("lead", "lead", "Lead"), "entity", "lead", 5),
     'Remove entity "lead" — 5 records will be moved to the archive',
     'removing entity "lead" would lose 5 records'),
    (DropTable(Place("lead", "lead", "Lead"), "entity", "lead", 0),
     'Remove entity "lead" (no records)', None),
    (DropTable(ITEMS, "lines", "items", 7),
     'Remove lines field "items" from Sale — 7 lines will be moved to the archive',
     'removing lines field "items" from Sale would lose 7 lines'),
    (ChangeType(CUSTOMER, "name", "string(10)", "string(100)", STRING_10, STRING_100, True, 3, 0),
     'Widen field "name" on Customer from string(10) to string(100)', None),
    (ChangeType(CUSTOMER, "name", "string(100)", "string(10)", STRING_100, STRING_10, False, 12, 3),
     'Change field "name" on Customer from string(100) to string(10) — 12 values will be copied '
     "to the archive; 3 will change",
     'changing field "name" on Customer from string(100) to string(10) would alter 3 of its '
     "12 values (cut, rounded or emptied)"),
    (ChangeType(CUSTOMER, "name", "string(100)", "string(10)", STRING_100, STRING_10, False, 2, 0),
     'Change field "name" on Customer from string(100) to string(10) — 2 values will be copied '
     "to the archive; none will change",
     'changing field "name" on Customer from string(100) to string(10) narrows it; its 2 values '
     "fit but would all be converted"),
    (ChangeType(CUSTOMER, "name", "string(100)", "string(10)", STRING_100, STRING_10, False, 0, 0),
     'Change field "name" on Customer from string(100) to string(10) (no values)', None),
    (AddChoices(CUSTOMER, "kind", ("vip",)), 'Add choice "vip" to field "kind" on Customer', None),
    (AddChoices(CUSTOMER, "kind", ("vip", "gold")),
     'Add choices "vip", "gold" to field "kind" on Customer', None),
    (RemoveChoices(CUSTOMER, "kind", ("dealer",), False, (("dealer", 3),), 3),
     'Remove choice "dealer" from field "kind" on Customer — used by 3 records; the old values '
     "will be moved to the archive and cleared",
     'removing choice "dealer" from field "kind" on Customer would clear it in 3 records '
     '(used: "dealer" by 3 records)'),
    (RemoveChoices(CUSTOMER, "kind", ("a", "b"), True, (("a", 1),), 1),
     'Remove choices "a", "b" from field "kind" on Customer — used by 1 record; the old values '
     "will be moved to the archive and cleared",
     'removing choices "a", "b" from field "kind" on Customer would clear it in 1 record '
     '(used: "a" by 1 record)'),
    (RemoveChoices(CUSTOMER, "kind", ("x",), False, (), 0),
     'Remove choice "x" from field "kind" on Customer (not used)', None),
    (AddIndex(CUSTOMER, "ix_customer_region", ("region",), False),
     "Add index on Customer (region)", None),
    (AddIndex(CUSTOMER, "uq_customer_email", ("email",), True),
     'Make field "email" on Customer unique', None),
    (AddIndex(CUSTOMER, "uq_c", ("a", "b"), True), "Add unique index on Customer (a, b)", None),
    (DropIndex(CUSTOMER, "ix_customer_tel", ("tel",), False), "Remove index on Customer (tel)",
     None),
    (DropIndex(CUSTOMER, "uq_customer_code", ("code",), True),
     "Remove unique rule on Customer (code)", None),
]


@pytest.mark.parametrize(("operation", "line", "reason"), DESCRIBED,
                         ids=[d[1][:50] for d in DESCRIBED])
def test_operations_describe_themselves(operation, line, reason):
    assert operation.describe() == line
    assert operation.reason == reason
    assert operation.destructive is (reason is not None)
    assert operation.blocked is False


def test_unique_with_duplicates_is_blocked_and_names_the_values():
    op = AddIndex(CUSTOMER, "uq_customer_email", ("email",), True,
                  (('"a@x.com"', 3), ('"b@x.com"', 2)), 7)
    assert op.blocked and op.destructive
    assert op.reason == (
        'field "email" on Customer cannot be made unique: "a@x.com" is used by 3 records, '
        '"b@x.com" is used by 2 records, and 5 other values more; change those records first '
        "(the migration cannot choose which ones)"
    )


def test_plan_properties():
    drop = DropColumn(CUSTOMER, "fax", 2)
    add = AddColumn(CUSTOMER, "priority", "Priority", "integer")
    plan = MigrationPlan((add, drop), "a", "b")
    assert plan.destructive == (drop,) and not plan.is_empty and plan.blocked == ()
    assert plan.describe() == [add.describe(), drop.describe()]
    assert MigrationPlan((), "a", "a").is_empty
    assert MigrationPlan((), "a", "a").describe() == []
    assert MigrationPlan((), "a", "b").describe() == [
        "Record the new definitions (no change to the tables)"
    ]


# -- type rules ---------------------------------------------------------------------

DEC_12_2 = ColumnSpec("decimal", precision=12, scale=2)


@pytest.mark.parametrize(("old", "new", "widening"), [
    (STRING_10, STRING_100, True),
    (STRING_100, STRING_10, False),
    (STRING_100, ColumnSpec("text"), True),
    (ColumnSpec("text"), STRING_100, False),
    (ColumnSpec("integer"), ColumnSpec("decimal", precision=21, scale=2), True),
    (ColumnSpec("integer"), ColumnSpec("decimal", precision=18, scale=2), False),
    (DEC_12_2, ColumnSpec("decimal", precision=14, scale=4), True),
    (DEC_12_2, ColumnSpec("decimal", precision=13, scale=4), False),  # integer digits 10 → 9
    (DEC_12_2, ColumnSpec("decimal", precision=12, scale=1), False),
    (DEC_12_2, ColumnSpec("integer"), False),
    (ColumnSpec("integer"), STRING_100, False),
    (ColumnSpec("reference", target="a"), ColumnSpec("reference", target="b"), False),
    (ColumnSpec("string", length=60, choice=True), ColumnSpec("string", length=60), True),
])
def test_widening_rules(old, new, widening):
    assert widens(old, new) is widening


@pytest.mark.parametrize(("value", "old", "new", "expected"), [
    ("Acme Corporation", STRING_100, STRING_10, ("Acme Corpo", False)),
    ("Acme", STRING_100, STRING_10, ("Acme", True)),
    (Decimal("7.25"), DEC_12_2, ColumnSpec("decimal", precision=12, scale=1),
     (Decimal("7.3"), False)),
    (Decimal("7.20"), DEC_12_2, ColumnSpec("decimal", precision=12, scale=1),
     (Decimal("7.2"), True)),
    (Decimal("123456.00"), DEC_12_2, ColumnSpec("decimal", precision=6, scale=2), (None, False)),
    (Decimal("3.00"), DEC_12_2, ColumnSpec("integer"), (3, True)),
    (Decimal("3.50"), DEC_12_2, ColumnSpec("integer"), (4, False)),
    (" 42 ", STRING_100, ColumnSpec("integer"), (42, True)),
    ("+86 21", STRING_100, ColumnSpec("integer"), (None, False)),
    (5, ColumnSpec("integer"), DEC_12_2, (Decimal("5.00"), True)),
    ("yes", STRING_100, ColumnSpec("boolean"), (True, True)),
    ("maybe", STRING_100, ColumnSpec("boolean"), (None, False)),
    (True, ColumnSpec("boolean"), STRING_100, ("true", True)),
    ("2024-05-01", STRING_100, ColumnSpec("date"), (dt.date(2024, 5, 1), True)),
    (dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC), ColumnSpec("datetime"), ColumnSpec("date"),
     (dt.date(2024, 5, 1), False)),
    (dt.date(2024, 5, 1), ColumnSpec("date"), ColumnSpec("datetime"),
     (dt.datetime(2024, 5, 1, tzinfo=dt.UTC), True)),
    ("a", ColumnSpec("string", length=60, choice=True), ColumnSpec("list"), (["a"], True)),
    (["a", "b"], ColumnSpec("list"), ColumnSpec("string", length=60, choice=True), ("a", False)),
    (["a"], ColumnSpec("list"), ColumnSpec("string", length=60, choice=True), ("a", True)),
    ([], ColumnSpec("list"), ColumnSpec("string", length=60, choice=True), (None, True)),
    (7, ColumnSpec("reference", target="a"), ColumnSpec("reference", target="b"), (None, False)),
    (None, STRING_100, STRING_10, (None, True)),
])
def test_value_conversion(value, old, new, expected):
    assert convert(value, old, new) == expected


# -- plans against a database -------------------------------------------------------

V2_CUSTOMER = [
    ("tel: {type: string, max_length: 40, index: true, label: Tel}",
     "phone: {type: string, max_length: 40, index: true, label: Phone, renamed_from: tel}"),
    ("      fax: {type: string, max_length: 40, label: Fax}\n", ""),
    ("max_length: 100", "max_length: 200"),
    ("{a: A, b: B, c: C}", "{a: A, b: B, d: D}"),
    ("qty: {type: integer", "qty: {type: decimal, precision: 10, scale: 2"),
    ("      email:", "      priority: {type: integer, label: Priority}\n      email:"),
]
V2_SALE = [
    ("          product: {type: string, max_length: 50, label: Product}",
     "          article: {type: string, max_length: 50, label: Article, renamed_from: product}\n"
     "          discount: {type: decimal, precision: 5, scale: 2, label: Discount}"),
]


def v2() -> dict[str, str]:
    files = dict(V1)
    for old, new in V2_CUSTOMER:
        files = change(files, "entities/customer.yaml", old, new)
    for old, new in V2_SALE:
        files = change(files, "entities/sale.yaml", old, new)
    files["entities/supplier.yaml"] = "entity: supplier\nlabel: Supplier\nfields:\n  name: {type: string}\n"
    return files


@pytest.fixture
def engine(db_url):
    from engine.storage.database import create_db_engine

    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


def test_plan_of_a_change_set_line_by_line(engine, tmp_path):
    _registry, schema, _plan = migrate(engine, tmp_path, V1)
    seed(engine, schema)
    before = db_state(engine)
    registry, schema = load(tmp_path, v2())
    plan = plan_migration(engine, registry, schema)
    assert plan.describe() == [
        'Add entity "Supplier" (supplier)',
        "Remove index on Customer (tel)",
        'Rename field "tel" to "phone" on Customer (data kept)',
        'Rename field "product" to "article" on Sale lines "Items" (data kept)',
        'Add field "Priority" (priority: integer) to Customer',
        'Add field "Discount" (discount: decimal(5,2)) to Sale lines "Items"',
        'Widen field "name" on Customer from string(100) to string(200)',
        'Remove choice "c" from field "kind" on Customer (not used)',
        'Add choice "d" to field "kind" on Customer',
        'Change field "qty" on Customer from integer to decimal(10,2) — 2 values will be copied '
        "to the archive; none will change",
        "Add index on Customer (phone)",
        'Remove field "fax" from Customer — 2 values will be moved to the archive',
    ]
    assert [op.reason for op in plan.destructive] == [
        'changing field "qty" on Customer from integer to decimal(10,2) narrows it; its 2 values '
        "fit but would all be converted",
        'removing field "fax" from Customer would lose 2 values',
    ]
    assert plan.previous_hash != plan.new_hash == registry.definitions_hash
    assert db_state(engine) == before  # planning changes nothing


def test_plan_of_a_fresh_database(engine, tmp_path):
    registry, schema = load(tmp_path, V1)
    plan = plan_migration(engine, registry, schema)
    system = sorted(f'Create system table "{n}"' for n in schema.metadata.tables
                    if n.startswith("crm_"))
    entities = [line for line in plan.describe() if not line.startswith("Create system table")]
    assert sorted(set(plan.describe()) - set(entities)) == system
    assert entities == [
        'Add entity "Customer" (customer)',
        'Add entity "Sale" (sale)',
        'Add lines field "Items" (items) to Sale',
    ]
    assert plan.previous_hash is None and plan.destructive == ()


def test_a_removed_entity_is_still_ours_through_the_applied_snapshot(engine, tmp_path):
    migrate(engine, tmp_path, V1)
    registry, schema = load(tmp_path, {"entities/customer.yaml": V1["entities/customer.yaml"]})
    assert plan_migration(engine, registry, schema).describe() == [
        'Remove lines field "items" from Sale (no lines)',
        'Remove entity "sale" (no records)',
    ]
