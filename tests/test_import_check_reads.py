"""A check of a file (an import's dry run) reads only, and says what the import would.

- Over a file with every kind of refusal — a cell that is no number, a
  required or conditional field, a pattern, a range, a length, a unique
  value given twice or already taken, a reference that finds none or two,
  a read-only field, an owner outside the importer's scope, a row too wide,
  a likely duplicate — and over an upsert, the check's report is the real
  import's, message for message, on SQLite and PostgreSQL, whatever the
  batch size.
- On SQLite, while a big file is checked another connection that will not
  wait at all (busy timeout 0) writes and commits in the middle of the
  check's batches: the check never holds the write lock.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import event, func, select

from engine.context import FixedClock
from engine.services.dataio.importing import Importer
from tests.api_support import NOW, PASSWORD
from tests.support import open_migrated, write_pack, write_site

PACK = {
    "entities/region.yaml": """
        entity: region
        title_field: name
        fields:
          name: {type: string, required: true, label: {en: Name, zh: 名称}}
    """,
    "entities/customer.yaml": """
        entity: customer
        title_field: name
        label: {en: Customer, zh: 客户}
        plural: {en: Customers, zh: 客户}
        fields:
          name: {type: string, required: true, max_length: 30, label: {en: Name, zh: 名称}}
          code: {type: string, unique: true, pattern: "[A-Z]{2}-[0-9]+", label: {en: Code, zh: 代码}}
          phone: {type: phone, label: {en: Phone, zh: 电话}}
          budget: {type: decimal, precision: 10, scale: 2, min: 0, label: {en: Budget, zh: 预算}}
          kind: {type: choice, default: lead, choices: {lead: Lead, lost: Lost}, label: {en: Kind, zh: 类型}}
          reason: {type: text, required_if: "kind == 'lost'", visible_if: "kind == 'lost'",
                   label: {en: Reason, zh: 原因}}
          region: {type: reference, to: region, label: {en: Region, zh: 区域}}
          grade: {type: integer, label: {en: Grade, zh: 等级}}
          double: {type: computed, returns: decimal, expression: "budget * 2", label: {en: Double, zh: 双倍}}
    """,
    "entities/stock_move.yaml": """
        entity: stock_move
        fields:
          region: {type: reference, to: region, required: true, label: {en: Region, zh: 区域}}
          quantity: {type: decimal, scale: 2, required: true, label: {en: Quantity, zh: 数量}}
        ledger:
          quantity: quantity
          dimensions: [region]
    """,
    "roles.yaml": """
        roles:
          boss:
            label: Boss
            entities:
              "*": {rights: all, scope: all}
          sales:
            label: Sales
            entities:
              "*": {rights: [read, create, update, import], scope: own}
              customer: {fields: {grade: readonly}}
    """,
}

HEADER = "Name,Code,Phone,Budget,Kind,Reason,Region,Grade,Owner\n"
#: One row per kind of answer (the comment says which); lines count from 2.
ROWS = [
    "Alpha,AA-1,021 5555 0101,100,,,East,,",            # good
    "Bravo,AB-2,,abc,,,,,",                             # not a number
    ",AC-3,,,,,,,",                                     # required
    "Charlie,bad code,,,,,,,",                          # pattern
    "Delta,AA-1,,,,,,,",                                # the same unique value in the file
    "Echo,EX-1,,,,,,,",                                 # a unique value already taken
    "Foxtrot,AF-6,,,,,Nowhere,,",                       # a reference that finds nothing
    "Golf,AG-7,,,,,North,,",                            # a reference that finds two
    "Hotel,AH-8,,,Lost,,,,",                            # required when lost
    "India,AI-9,,,,Moved away,,,",                      # given where it does not apply
    "Juliet,AJ-10,,,,,,5,",                             # a read-only field
    "Kilo,AK-11,,,,,,,other",                           # an owner outside the scope
    "Existing Co.,AL-12,,,,,,,",                        # good, but likely a duplicate
    "Lima,AM-13,,-5,,,,,",                              # below the minimum
    "Mike,AN-14,,,,,,,,surplus",                        # more cells than columns
    "Alpha Ltd,AO-15,021-5555-0101,,,,East,,",          # good, like row 2 (same phone)
    "November " + "x" * 30 + ",AP-16,,,,,,,",           # too long
    "Oscar,AQ-17,,1e400,,,,,",                          # out of range
    "Papa,AR-18,,12.345,,,,,",                          # too many decimals
    "Quebec,AS-19,,,Gone,,,,",                          # no such choice
    "Romeo,AT-20,,,,,Nowhere;East,,",                   # not a single region
    "Sierra,AU-21,,,,,,,nobody",                        # no such user
]


@pytest.fixture
def site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "shop", PACK)
    root = write_site(tmp_path / "site", db_url, ["shop"], pack_paths=["../packs"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    opened.users.create("admin", password=PASSWORD, roles=["boss"], is_admin=True)
    opened.users.create("rep", password=PASSWORD, roles=["sales"])
    opened.users.create("other", password=PASSWORD, roles=["sales"])
    rep, other = opened.users.actor("rep"), opened.users.actor("other")
    for name in ("East", "North", "North"):
        opened.records.create(rep, "region", {"name": name})
    opened.records.create(rep, "customer", {"name": "Existing Co", "code": "EX-1"})
    opened.records.create(other, "customer", {"name": "Other's", "code": "OT-1"})
    yield opened
    opened.close()


def snapshot(site) -> dict[str, list[dict]]:
    """Every row of the entities and of the audit trail, to compare before and after."""
    found = {}
    with site.engine.connect() as conn:
        for table in (site.schema.table("customer"), site.schema.table("region"),
                      site.schema.system("crm_audit"), site.schema.system("crm_sequence")):
            found[table.name] = [dict(r) for r in conn.execute(
                select(table).order_by(*table.primary_key.columns)).mappings()]
    return found


def compared(report) -> dict:
    """What a check and the import it stands for must agree on."""
    found = report.to_dict()
    for key in ("dry_run", "written", "ok"):
        found.pop(key)
    return found


@pytest.mark.parametrize("batch_size", [1000, 4])
def test_a_check_gives_the_real_imports_messages_row_for_row(site, batch_size):
    rep = site.users.actor("rep")
    data = (HEADER + "\n".join(ROWS) + "\n").encode()
    importer = Importer(site.records, batch_size=batch_size)
    before = snapshot(site)
    check = importer.run(rep, "customer", data, "customers.csv", dry_run=True,
                         good_rows=True)
    assert snapshot(site) == before  # the check wrote nothing at all
    real = importer.run(rep, "customer", data, "customers.csv", good_rows=True)
    assert real.written and not check.written
    assert compared(check) == compared(real)

    # and the file did hold every kind of answer: each bad row refused, on its column
    refused = {e.line: e.errors for e in real.row_errors}
    good = {2, 14, 17}
    assert set(refused) == set(range(2, len(ROWS) + 2)) - good
    assert refused[3] == {"Budget": [refused[3]["Budget"][0]]}
    assert list(refused[4]) == ["Name"] and list(refused[5]) == ["Code"]
    assert "line 2" in refused[6]["Code"][0]  # the same value earlier in the file
    assert list(refused[7]) == ["Code"]  # taken in the database
    assert "Nowhere" in refused[8]["Region"][0] and "2" in refused[9]["Region"][0]
    assert list(refused[10]) == ["Reason"] and list(refused[11]) == ["Reason"]
    assert list(refused[12]) == ["Grade"] and list(refused[13]) == ["Owner"]
    assert real.created == len(good) and real.updated == 0
    assert {d.line for d in real.likely_duplicates} == {14, 17}


def test_a_check_of_an_upsert_gives_the_real_imports_messages(site):
    rep = site.users.actor("rep")
    data = (b"Code,Name,Budget,Kind\n"
            b"EX-1,Existing Co,abc,\n"          # not a number, in an update
            b"EX-1,Existing Co,5,\n"            # the same key twice
            b"OT-1,Not mine,,\n"                # another's record: a new one, whose code is taken
            b"NN-1,New one,,Lost\n"             # a new record, refused (no reason)
            b"NN-2,Brand new,7,\n")    # a new record
    importer = Importer(site.records, batch_size=2)
    before = snapshot(site)
    check = importer.run(rep, "customer", data, "up.csv", dry_run=True, good_rows=True,
                         upsert_on="code")
    assert snapshot(site) == before
    real = importer.run(rep, "customer", data, "up.csv", good_rows=True, upsert_on="code")
    assert compared(check) == compared(real)
    assert {e.line for e in real.row_errors} == {2, 3, 4, 5} and real.created == 1

    fixed = b"Code,Name,Budget,Kind,Reason\nEX-1,,9,Lost,Moved\nNN-3,Third,1,,\n"
    check = importer.run(rep, "customer", fixed, "up.csv", dry_run=True, upsert_on="code")
    real = importer.run(rep, "customer", fixed, "up.csv", upsert_on="code")
    assert compared(check) == compared(real)
    assert real.written and real.updated == 1 and real.created == 1 and real.ok


@pytest.mark.parametrize("batch_size", [1000, 2])
def test_a_check_counts_the_files_earlier_movements_as_the_import_does(site, batch_size):
    """A stock ledger: each row is held against the balance after the rows before it."""
    rep = site.users.actor("rep")
    data = b"Region,Quantity\nEast,5\nEast,-3\nEast,-4\nEast,-2\nEast,1\nEast,-2\n"
    importer = Importer(site.records, batch_size=batch_size)
    check = importer.run(rep, "stock_move", data, "moves.csv", dry_run=True, good_rows=True)
    assert count(site, "stock_move") == 0
    real = importer.run(rep, "stock_move", data, "moves.csv", good_rows=True)
    assert compared(check) == compared(real)
    assert [e.line for e in real.row_errors] == [4, 7] and real.created == 4


def count(site, entity: str) -> int:
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(site.schema.table(entity))).scalar()


def test_a_check_holds_no_write_lock_while_others_commit(site, tmp_path):
    """In the middle of a 50,000-row check's batches (the check's own connection stopped
    inside its transaction), a connection that will not wait writes and commits."""
    if site.engine.dialect.name != "sqlite":
        pytest.skip("the write lock a check must not take is SQLite's")
    admin = site.users.actor("admin")
    rows = 50_000
    data = ("Name,Code,Budget\n" + "".join(
        f"Account {i},KA-{i},{i % 1000}\n" for i in range(rows))).encode()
    path = site.engine.url.database
    checker = threading.get_ident()
    meet = threading.Barrier(2, timeout=60)
    written = threading.Event()
    results: list[str] = []
    transactions = {"count": 0, "armed": False}
    stops = 5

    def began(conn):
        if threading.get_ident() == checker:
            transactions["count"] += 1  # a batch's transaction; stop in every tenth
            transactions["armed"] = transactions["count"] % 10 == 1

    def inside_the_check(conn, cursor, statement, parameters, context, executemany):
        if threading.get_ident() != checker or not transactions["armed"] \
                or statement.startswith("BEGIN"):
            return
        transactions["armed"] = False
        if len(results) < stops:
            meet.wait()  # the check is inside a batch's transaction: the other may write
            assert written.wait(60)
            written.clear()

    def other_user() -> None:
        for number in range(stops):
            meet.wait()
            other = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # fails at once if the check held the lock
                other.execute("INSERT INTO region (name, created_at, updated_at, version, "
                              "archived) VALUES (?, '2026-01-01', '2026-01-01', 1, 0)",
                              (f"Written {number}",))
                other.execute("COMMIT")
                results.append("committed")
            except sqlite3.OperationalError as exc:
                results.append(str(exc))
            finally:
                other.close()
                written.set()

    thread = threading.Thread(target=other_user)
    event.listen(site.engine, "begin", began)
    event.listen(site.engine, "before_cursor_execute", inside_the_check)
    thread.start()
    try:
        report = Importer(site.records).run(admin, "customer", data, "big.csv", dry_run=True)
    finally:
        event.remove(site.engine, "before_cursor_execute", inside_the_check)
        event.remove(site.engine, "begin", began)
        thread.join(60)
    assert results == ["committed"] * stops
    assert report.ok and report.rows == rows and report.created == rows and not report.written
    with site.engine.connect() as conn:
        table = site.schema.table("region")
        assert conn.execute(select(func.count()).select_from(table).where(
            table.c.name.like("Written %"))).scalar() == stops
        assert conn.execute(select(func.count()).select_from(
            site.schema.table("customer"))).scalar() == 2
