"""The batched create path is the single create, row for row.

``create_many`` (what every import goes through) coerces plain values with
coercers made once per field and checks only the fields with something to
check; these tests hold it to :meth:`RecordService.create` on an entity
with every kind of rule — types, required and conditional fields, limits,
patterns, choices, references, unique values, defaults, computed fields,
numbering, and fields hidden from or read-only for the actor — comparing
the messages, the records written and their audit rows.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.context import FixedClock
from engine.errors import ValidationFailed
from engine.metadata.values import ValueProblem, coerce, coercer
from tests.support import open_migrated, write_pack, write_site

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
PACK = {
    "entities/firm.yaml": """
        entity: firm
        title_field: name
        fields:
          name: {type: string, required: true}
    """,
    "entities/lead.yaml": """
        entity: lead
        title_field: name
        fields:
          number: {type: sequence, sequence_pattern: "L-{YYYY}-{####}"}
          name: {type: string, required: true, max_length: 12}
          code: {type: string, unique: true, pattern: "[A-Z]{2}-[0-9]+"}
          notes: {type: text, max_length: 20}
          email: {type: email}
          phone: {type: phone}
          site: {type: url}
          amount: {type: decimal, precision: 8, scale: 2, min: 0}
          rate: {type: decimal, precision: 5, scale: 3, max: 10}
          quantity: {type: integer, min: 0, max: 1000, default: 1}
          due: {type: date, default_expression: "today() + days(7)"}
          met_at: {type: datetime}
          kind: {type: choice, default: new, choices: {new: New, hot: Hot, lost: Lost}}
          tags: {type: choice, multiple: true, choices: {a: A, b: B}}
          vip: {type: boolean, default: false}
          reason: {type: text, required_if: "kind == 'lost'", visible_if: "kind == 'lost'"}
          firm: {type: reference, to: firm, on_delete: set_null}
          peers: {type: many_to_many, to: firm}
          total: {type: computed, returns: decimal, expression: "amount * quantity"}
          secret: {type: string}
          grade: {type: integer}
    """,
    "roles.yaml": """
        roles:
          clerk:
            label: Clerk
            entities:
              "*": {rights: all, scope: all}
              lead: {fields: {secret: hidden, grade: readonly}}
    """,
}

ROWS: list[dict[str, Any]] = [
    {"name": "Plain", "code": "AB-1", "amount": "12.50", "quantity": "3", "kind": "hot"},
    {"name": " Spaces ", "code": " CD-2 ", "email": " Ann@Example.COM ", "phone": "+86 21 555",
     "site": "https://example.com", "rate": "1.25", "due": "2026-07-01",
     "met_at": "2026-06-01T10:00:00+08:00", "tags": "a,b", "vip": "是", "firm": 1},
    {"name": "Typed", "amount": Decimal("7"), "quantity": 4, "due": dt.date(2026, 8, 1),
     "met_at": dt.datetime(2026, 6, 2, 9, 0, tzinfo=dt.UTC), "vip": True, "peers": [1, 2]},
    {"name": "", "code": "bad code", "email": "nope", "phone": "x", "site": "ftp://x"},
    {"name": "Far too long a name", "amount": "-1", "rate": "11", "quantity": "1001"},
    {"name": "Decimals", "amount": "1.234", "rate": "abc", "quantity": "1.5"},
    {"name": "Huge", "amount": "1000000", "quantity": "", "due": "tomorrow"},
    {"name": "Lost", "kind": "lost"},
    {"name": "Lost why", "kind": "lost", "reason": "price"},
    {"name": "Reason", "kind": "hot", "reason": "not asked"},
    {"name": "Choices", "kind": "vip", "tags": ["a", "z"], "vip": "maybe"},
    {"name": "Refs", "firm": 999, "peers": [1, 999]},
    {"name": "Ref text", "firm": "acme", "met_at": "soon"},
    {"name": "Dup", "code": "AB-1"},
    {"name": "Hidden", "secret": "x"},
    {"name": "Readonly", "grade": 3},
    {"name": "RO blank", "grade": ""},
    {"name": "Unknown", "colour": "red"},
    {"name": "System", "id": 5, "created_at": "2026-01-01"},
    {"name": "Computed", "total": "5", "number": "L-1"},
    {"name": "By keys", "firm": {"name": "Acme"}},
    {"name": "Full width", "quantity": "１２", "amount": "１,234.5"},
    {"name": "Notes", "notes": "a note far longer than twenty"},
    {"name": "Notes ok", "notes": "  keeps its spaces  "},
    {"name": "Owner", "owner": "abc"},
]


@pytest.fixture
def site(tmp_path, db_url):
    write_pack(tmp_path / "packs", "batch", PACK)
    root = write_site(tmp_path / "site", db_url, ["batch"], pack_paths=["../packs"])
    opened = open_migrated(root, clock=FixedClock(NOW))
    opened.users.create("clerk", password="correct-horse", roles=["clerk"])
    admin = opened.users.actor(opened.users.create("admin", password="correct-horse",
                                                   is_admin=True)["login"])
    for name in ("Acme", "Beta"):
        opened.records.create(admin, "firm", {"name": name})
    yield opened
    opened.close()


def _one_by_one(site, actor) -> list[tuple[dict | None, dict | None, list]]:
    """Each row through ``create`` (in one transaction, rolled back afterwards)."""
    found = []
    with site.engine.connect() as conn:
        outer = conn.begin()
        for values in ROWS:
            try:
                with conn.begin_nested():
                    made = site.records.create(actor, "lead", values, conn=conn)
                record = site.records.get(actor, "lead", made["id"], conn=conn)
                found.append((record, None, site.records.history(actor, "lead", made["id"],
                                                                 conn=conn)))
            except ValidationFailed as exc:
                found.append((None, exc.errors, []))
        outer.rollback()
    return found


def _in_one_batch(site, actor) -> list[tuple[dict | None, dict | None, list]]:
    found = []
    with site.engine.connect() as conn:
        outer = conn.begin()
        outcome = site.records.create_many(actor, "lead", ROWS, conn=conn)
        for record_id, errors in zip(outcome.ids, outcome.errors, strict=True):
            if record_id is None:
                found.append((None, errors, []))
            else:
                found.append((site.records.get(actor, "lead", record_id, conn=conn), None,
                              site.records.history(actor, "lead", record_id, conn=conn)))
        outer.rollback()
    return found


def _comparable(record: dict | None, history: list) -> tuple[Any, Any]:
    """What must agree: everything but the record's id (ids differ on PostgreSQL)."""
    if record is None:
        return None, None
    kept = {k: v for k, v in record.items() if k != "id"}
    rows = [{k: v for k, v in h.items() if k not in ("id", "record_id", "change_id")}
            for h in history]
    return kept, rows


def test_create_many_agrees_with_create_row_for_row(site):
    clerk = site.users.actor("clerk")
    single = _one_by_one(site, clerk)
    batch = _in_one_batch(site, clerk)
    assert len(single) == len(batch) == len(ROWS)
    written = 0
    for values, (one, one_errors, one_history), (many, many_errors, many_history) in zip(
            ROWS, single, batch, strict=True):
        assert many_errors == one_errors, values
        assert _comparable(many, many_history) == _comparable(one, one_history), values
        written += one is not None
    # The rows above exercise both outcomes, and the refusals name the fields a form would.
    assert 5 <= written < len(ROWS)
    refused = dict(zip((r["name"] for r in ROWS), (b[1] for b in batch), strict=True))
    assert set(refused[""]) == {"name", "code", "email", "phone", "site"}
    assert set(refused["Lost"]) == {"reason"}
    assert set(refused["Hidden"]) == {"secret"} and set(refused["Readonly"]) == {"grade"}
    assert refused["RO blank"] is None and refused["Plain"] is None
    assert set(refused["Decimals"]) == {"amount", "rate", "quantity"}
    numbers = [b[0]["number"] for b in batch if b[0] is not None]
    assert numbers == [f"L-2026-{n:04d}" for n in range(1, len(numbers) + 1)]


def test_create_many_all_or_nothing_names_rows_and_fields(site):
    clerk = site.users.actor("clerk")
    with pytest.raises(ValidationFailed) as refused:
        site.records.create_many(clerk, "lead", [{"name": "Fine"}, {"name": "", "grade": 2}])
    assert set(refused.value.errors) == {"2.name", "2.grade"}
    with site.engine.connect() as conn:
        table = site.schema.table("lead")
        assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


SAMPLES: dict[str, list[Any]] = {
    "text": ["", "  ", " a ", "a", 12, Decimal("1.5"), True, None, [], 1.5],
    "number": ["", " 12 ", "12", "+3", "-4", "1.5", "1.50", "1,234.5", "１２", "1e3", "NaN",
               "Infinity", "abc", 7, -2, 0, True, False, 1.25, 2.0, Decimal("3.333"),
               Decimal("99999999"), "12345678901", None, "1_000", " ", "١٢"],
    "boolean": ["", "true", " Yes ", "NO", "是", "否", "maybe", 1, 0, 2, True, False, None],
    "date": ["", "2026-03-01", " 2026-03-01 ", "2026/3/1", dt.date(2026, 3, 1),
             dt.datetime(2026, 3, 1, 8, 0), None, 5],
    "datetime": ["", "2026-03-01T08:00:00", "2026-03-01 08:00+08:00", "2026-03-01Z", "soon",
                 dt.datetime(2026, 3, 1, 8, 0), dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC),
                 dt.date(2026, 3, 1), None],
    "choice": ["", "new", " new ", "New", "vip", 3, None, ["new"]],
    "many": ["", "a,b", ["a", "z"], "a", ["b", "a", "b"], None, 3],
    "reference": ["", "1", " 2 ", 3, 0, -1, "x", True, {"id": 4}, {"name": "x"}, None, 1.0],
    "contact": ["", " Ann@Example.COM ", "nope", "+86 21 555", "x", "https://a.b/c", "ftp://x",
                None, 5, "ÄÖ@ü.de"],
}
KINDS = {"name": "text", "notes": "text", "code": "text", "number": "text", "email": "contact",
         "phone": "contact", "site": "contact", "amount": "number", "rate": "number",
         "quantity": "number", "grade": "number", "vip": "boolean", "due": "date",
         "met_at": "datetime", "kind": "choice", "tags": "many", "firm": "reference",
         "peers": "reference"}


def _outcome(function, value: Any) -> tuple[str, Any]:
    try:
        return "value", function(value)
    except ValueProblem as problem:
        return "problem", (problem.key, problem.params)


def test_coercer_agrees_with_coerce_value_for_value(site):
    entity = site.records.entity("lead")
    checked = 0
    for key, kind in KINDS.items():
        found = entity.fields[key]
        fast = coercer(found)
        for value in SAMPLES[kind] + SAMPLES["text"]:
            expected = _outcome(lambda v, f=found: coerce(f, v), value)
            got = _outcome(fast, value)
            assert got == expected, (key, value)
            assert type(got[1]) is type(expected[1]), (key, value)
            checked += 1
    assert checked > 200


def test_a_decimal_comma_is_refused_not_read_as_thousands(site):
    """"3,5" is 3.5 or 35 depending on the writer: refused with a field message, on every door."""
    from engine.services.dataio.importing import Importer

    clerk = site.users.actor("clerk")
    data = ("name,amount,quantity\n"
            'Grouped,"1,234.5",1\n'
            'Money,"¥1,200.00",2\n'
            "Wide,１２３,３\n"
            'Comma,"3,5",1\n'
            'Odd group,"12,34",1\n'
            'Whole,1,"1,5"\n').encode()
    report = Importer(site.records).run(clerk, "lead", data, "leads.csv", good_rows=True)
    assert report.created == 3
    assert {e.line: sorted(e.errors) for e in report.row_errors} == {
        5: ["amount"], 6: ["amount"], 7: ["quantity"]}
    assert report.row_errors[0].errors["amount"] == [
        "Use a point for decimals (3.5); a comma may only group thousands (1,234.5)."]
    rows = site.records.list(clerk, "lead", limit=10).rows
    assert sorted((r["amount"], r["quantity"]) for r in rows) == [
        (Decimal("123.00"), 3), (Decimal("1200.00"), 2), (Decimal("1234.50"), 1)]
    # The form and the API read numbers through the same coerce.
    amount, quantity = (site.records.entity("lead").fields[k] for k in ("amount", "quantity"))
    for text in ("3,5", "1,23", "12,3456"):
        with pytest.raises(ValueProblem) as refused:
            coerce(amount, text)
        assert refused.value.key == "decimal_comma"
    with pytest.raises(ValueProblem) as refused:
        coerce(quantity, "1,5")
    assert refused.value.key == "expected_integer"
    assert coerce(amount, "1,234.5") == Decimal("1234.50")
    assert coerce(quantity, "1,000") == 1000 and coerce(quantity, "１２") == 12
    with pytest.raises(ValidationFailed) as refused_form:
        site.records.create(clerk, "lead", {"name": "Form", "amount": "3,5"})
    assert list(refused_form.value.errors) == ["amount"]
