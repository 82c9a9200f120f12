"""Decimals hold every value their definition promises, or the definition is refused.

On SQLite a decimal is a scaled 64-bit integer: 18 digits fit, 19 do not
all fit.  So a site on SQLite asking for more is refused by ``crm check``
(and by opening or migrating it) at the field's file and line; PostgreSQL
keeps NUMERIC up to 38 digits, and an integer widens there to a decimal
with room for every BIGINT.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main
from engine.errors import DefinitionError
from engine.site import Site
from engine.storage.database import create_db_engine
from engine.storage.migration import plan_migration
from engine.testing.files import write_pack, write_site
from tests.test_migrations import V1, change, db_state, insert, load, migrate

WIDE = """
    entity: deal
    label: Deal
    fields:
      name: {type: string, label: Name}
      total:
        type: decimal
        precision: 24
        scale: 2
        label: Total
"""


def _site(tmp_path: Path, db_url: str) -> Path:
    write_pack(tmp_path / "packs", "wide", {"entities/deal.yaml": WIDE})
    return write_site(tmp_path / "site", db_url, ["wide"], pack_paths=[tmp_path / "packs"])


def test_sqlite_refuses_more_than_18_digits_at_check_with_file_and_line(sqlite_url, tmp_path):
    root = _site(tmp_path, sqlite_url)
    result = CliRunner().invoke(main, ["--site", str(root), "check"], catch_exceptions=False)
    assert result.exit_code != 0
    assert "deal.yaml:6:5: [deal.total.precision] error" in result.output, result.output
    assert "precision 24 is more digits than a decimal holds on SQLite (18" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(DefinitionError) as refused:
        Site.open(root)
    [problem] = refused.value.problems
    assert problem.file.endswith("deal.yaml") and problem.line == 6  # the field
    assert problem.path == "deal.total.precision"


def test_sqlite_keeps_the_largest_18_digit_values_exactly(sqlite_url, tmp_path):
    engine = create_db_engine(sqlite_url)
    files = change(V1, "entities/customer.yaml", "precision: 12, scale: 2",
                   "precision: 18, scale: 2")
    _r, schema, _p = migrate(engine, tmp_path, files)
    largest = Decimal("9999999999999999.99")
    insert(engine, schema, "customer", [{"name": "Big", "amount": largest},
                                        {"name": "Small", "amount": -largest}])
    table = schema.table("customer")
    with engine.connect() as conn:
        assert conn.execute(select(table.c.amount).order_by(table.c.amount)).scalars().all() == [
            -largest, largest]
    engine.dispose()


def test_sqlite_refuses_an_integer_widened_past_18_digits_before_touching_a_table(
        sqlite_url, tmp_path):
    engine = create_db_engine(sqlite_url)
    _r, schema, _p = migrate(engine, tmp_path, V1)
    insert(engine, schema, "customer", [{"name": "Huge", "qty": 10**17 + 1}])
    before = db_state(engine)
    registry, wide = load(tmp_path, change(V1, "entities/customer.yaml", "qty: {type: integer",
                                           "qty: {type: decimal, precision: 24, scale: 2"))
    with pytest.raises(DefinitionError, match="precision 24 is more digits than a decimal holds"):
        plan_migration(engine, registry, wide)
    assert db_state(engine) == before
    engine.dispose()


def test_postgresql_widens_an_integer_to_decimal_24_2_exactly(db_url, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite refuses decimal(24,2) (the tests above)")
    engine = create_db_engine(db_url)
    _r, schema, _p = migrate(engine, tmp_path, V1)
    insert(engine, schema, "customer", [{"name": "Huge", "qty": 10**17 + 1},
                                        {"name": "Negative", "qty": -(2**63) + 1}])
    files = change(V1, "entities/customer.yaml", "qty: {type: integer",
                   "qty: {type: decimal, precision: 24, scale: 2")
    _r, schema, plan = migrate(engine, tmp_path, files)
    assert plan.describe() == ['Widen field "qty" on Customer from integer to decimal(24,2)']
    assert plan.destructive == ()
    table = schema.table("customer")
    with engine.connect() as conn:
        values = conn.execute(select(table.c.qty).order_by(table.c.id)).scalars().all()
    assert values == [Decimal("100000000000000001.00"),
                      Decimal(-(2**63) + 1).quantize(Decimal("0.01"))]
    engine.dispose()
