"""An SQLite site built before ids were kept unique: ``crm migrate`` rebuilds its tables as
AUTOINCREMENT without losing a row, and no id a deleted record used is given again —
neither one its audit or file rows still name, nor one freed just before a later rebuild.
Always SQLite: PostgreSQL's sequences never went back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, delete, insert, select, text

from engine.storage import tables
from engine.storage.database import create_db_engine
from engine.storage.migration import apply_migration, is_up_to_date, plan_migration
from tests.test_migrations import NOW, V1, change, db_state, load, migrate, seed


def _new_id(engine: Engine, schema, entity: str, **values) -> int:
    with engine.begin() as conn:
        return conn.execute(insert(schema.table(entity)).values(
            created_at=NOW, updated_at=NOW, **values)).inserted_primary_key[0]


def _sql(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())


def test_an_old_sqlite_site_keeps_every_row_and_never_reuses_an_id(sqlite_url, tmp_path: Path,
                                                                    monkeypatch):
    engine = create_db_engine(sqlite_url)
    with monkeypatch.context() as old_version:  # tables as an earlier VisionCRM made them
        old_version.setattr(tables, "never_reuse_ids", lambda metadata: None)
        _r, old, _p = migrate(engine, tmp_path, V1)
    assert "AUTOINCREMENT" not in _sql(engine)["customer"]
    seed(engine, old)  # customers 1-3, sale 1 with lines 1-2
    for name in ("Dora", "Emil"):
        _new_id(engine, old, "customer", name=name)
    audit, files = old.system("crm_audit"), old.system("crm_attachment")
    with engine.begin() as conn:
        conn.execute(delete(old.table("customer")).where(old.table("customer").c.id >= 4))
        # Customers 7 and 9 were created and deleted long ago: only their audit and files say so.
        conn.execute(insert(audit), [
            {"at": NOW, "entity": "customer", "record_id": 9, "action": "delete",
             "change_id": "c9"},
            {"at": NOW, "entity": "customer", "record_id": 4, "action": "create",
             "change_id": "c4"},
        ])
        conn.execute(insert(files).values(
            key="k" * 43, entity="customer", record_id=7, name="old.pdf",
            content_type="application/pdf", size=1, sha256="0" * 64, store="folder",
            created_at=NOW))
    with engine.connect() as conn, conn.begin() as trial:  # the defect, shown and undone
        reused = conn.execute(insert(old.table("customer")).values(
            name="x", created_at=NOW, updated_at=NOW)).inserted_primary_key[0]
        trial.rollback()
    assert reused == 4

    registry, schema = load(tmp_path, V1)
    assert not is_up_to_date(engine, registry)  # the site asks to be migrated first
    plan = plan_migration(engine, registry, schema)
    described = plan.describe()
    assert ("Never give the id of a deleted row of Customer again (table rebuilt, 3 rows kept; "
            "next id 10)") in described
    assert ("Never give the id of a deleted row of Sale lines \"Items\" again (table rebuilt, "
            "2 rows kept; next id 3)") in described
    assert plan.destructive == ()
    before = db_state(engine)
    apply_migration(engine, registry, schema)
    after = db_state(engine)
    for name, state in before.items():
        if name != "crm_definitions":
            assert after[name] == state, name  # every row, column and index kept
    assert len(after["crm_definitions"]["rows"]) == len(before["crm_definitions"]["rows"]) + 1
    sql = _sql(engine)
    for name in ("customer", "sale", "sale__items", "crm_audit", "crm_attachment", "crm_user"):
        assert "AUTOINCREMENT" in sql[name], name
    assert is_up_to_date(engine, registry)
    assert plan_migration(engine, registry, schema).is_empty
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []

    assert _new_id(engine, schema, "customer", name="Fay") == 10  # above 9, 7 and 5
    assert _new_id(engine, schema, "sale", number="S2") == 2

    # A later migration that rebuilds the table keeps the counter: a freed 10 stays used.
    with engine.begin() as conn:
        conn.execute(delete(schema.table("customer")).where(schema.table("customer").c.id == 10))
    _r, schema, plan = migrate(engine, tmp_path, change(V1, "entities/customer.yaml",
                                                         "max_length: 100", "max_length: 200"))
    assert "AUTOINCREMENT" in _sql(engine)["customer"]
    assert _new_id(engine, schema, "customer", name="Gus") == 11
    with engine.connect() as conn:
        names = conn.execute(select(schema.table("customer").c.name)
                             .order_by(schema.table("customer").c.id)).scalars().all()
    assert names == ["Acme Corporation", "Bolt", "Cobalt Industries Limited", "Gus"]
    engine.dispose()


def test_a_fresh_sqlite_site_continues_after_a_deleted_highest_id(sqlite_url, tmp_path: Path):
    engine = create_db_engine(sqlite_url)
    _r, schema, _p = migrate(engine, tmp_path, V1)
    first = _new_id(engine, schema, "customer", name="A")
    second = _new_id(engine, schema, "customer", name="B")
    with engine.begin() as conn:
        conn.execute(delete(schema.table("customer")).where(schema.table("customer").c.id == second))
    assert _new_id(engine, schema, "customer", name="C") == second + 1 > first
    engine.dispose()
