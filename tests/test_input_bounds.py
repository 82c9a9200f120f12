"""Input at the edges: numbers, dates, text and nesting no column or parser can hold.

Every door (API, import, filters, paths, paging, the calendar, definition
files) answers such input with a field-level 422, a row error or a located
definition problem, and writes nothing; none of it reaches the database
driver or a recursive parser as a crash.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Context, Decimal

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from engine.cli import main
from engine.errors import DefinitionError
from engine.metadata.model import Field
from engine.metadata.values import INT_MAX, INT_MIN, ValueProblem, check_limits, coerce, coercer
from engine.metadata.yaml_source import MAX_DEPTH, load_yaml_text
from engine.web import create_app
from tests.api_support import PASSWORD, api_for, core_site
from tests.web_support import login

PROBLEM = "application/problem+json"
HUGE = str(2**70)


# -- coercion, property-based ------------------------------------------------------------

def _field(kind: str, **extra) -> Field:
    return Field(key="x", type=kind, label=None, **extra)  # type: ignore[arg-type]


FIELDS = [
    _field("string", max_length=200), _field("text"), _field("email"), _field("phone"),
    _field("url"), _field("integer"), _field("decimal", precision=14, scale=2),
    _field("decimal", precision=38, scale=10), _field("decimal", precision=10, scale=0),
    _field("boolean"), _field("date"), _field("datetime"),
    _field("choice", choices={"a": "A", "b": "B"}),
    _field("choice", choices={"a": "A", "b": "B"}, multiple=True),
    _field("reference", to="customer"), _field("sequence"),
]

EXTREME_TEXT = st.sampled_from([
    "1" * 29, "9" * 5000, "0" * 5000 + "1", "1e400", "-1e400", "1e-999999999", "1E+999999999",
    "0E+999999999", "NaN", "-Infinity", "sNaN", str(2**63), str(-(2**63) - 1), HUGE,
    "0001-01-01", "9999-12-31", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
    "99999-01-01", "a\r\nBcc: x@y", "a\x00b", "\u2028", "1,234,567,890,123,456,789,012,345",
])
EXTREMES = st.one_of(
    EXTREME_TEXT, st.text(max_size=40), st.integers(), st.integers(min_value=2**62),
    st.floats(allow_nan=True, allow_infinity=True), st.decimals(allow_nan=True),
    st.booleans(), st.none(), st.dates(), st.datetimes(timezones=st.timezones()),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                        max_size=2))


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(index=st.integers(0, len(FIELDS) - 1), value=EXTREMES)
def test_coercion_of_extreme_values_is_a_value_or_a_value_problem(index, value):
    field = FIELDS[index]
    results = []
    for convert in (lambda v: coerce(field, v), coercer(field)):
        try:
            typed = convert(value)
        except ValueProblem as problem:
            results.append(("refused", problem.key))
            continue
        assert check_limits(field, typed) is None or isinstance(check_limits(field, typed),
                                                                ValueProblem)
        _assert_storable(field, typed)
        results.append(("typed", typed))
    assert results[0] == results[1]  # the bulk coercer never disagrees with coerce


def _assert_storable(field: Field, typed) -> None:
    kind = field.value_type
    if typed is None:
        return
    if kind in ("integer", "reference"):
        assert type(typed) is int and INT_MIN <= typed <= INT_MAX
    elif kind == "decimal":
        scale = field.scale if field.scale is not None else 2
        exact = Context(prec=100)
        assert typed.is_finite() and typed == exact.quantize(typed, Decimal(1).scaleb(-scale))
        assert len(typed.as_tuple().digits) <= field.precision
    elif kind == "datetime":
        assert typed.tzinfo is dt.UTC and 1 <= typed.year <= 9999
        typed.astimezone(dt.timezone(dt.timedelta(hours=14)))  # any clock can show it
        typed.astimezone(dt.timezone(dt.timedelta(hours=-12)))
    elif kind in ("string", "sequence", "email", "phone", "url"):
        assert all(c >= " " and c != "\x7f" for c in typed)
    elif kind == "text":
        assert "\x00" not in typed


def test_the_named_edges_get_their_own_messages():
    assert _key(FIELDS[6], "1" * 29) == "too_large_number"
    assert _key(FIELDS[6], "1e400") == "too_large_number"
    assert _key(FIELDS[6], "1e-999999999") == "too_many_decimals"
    assert coerce(FIELDS[6], "0E+999999999") == Decimal("0.00")
    assert _key(FIELDS[5], str(2**63)) == "integer_out_of_range"
    assert coerce(FIELDS[5], str(INT_MAX)) == INT_MAX
    assert coerce(FIELDS[5], str(INT_MIN)) == INT_MIN
    assert _key(FIELDS[5], 1e300) == "integer_out_of_range"
    assert _key(FIELDS[11], "0001-01-01T00:00:00+05:00") == "datetime_out_of_range"
    assert _key(FIELDS[0], "Acme\r\nBcc: x@example.com") == "single_line"
    assert coerce(FIELDS[1], "line one\r\nline two\tend") == "line one\r\nline two\tend"
    assert _key(FIELDS[1], "a\x00b") == "control_character"


def _key(field: Field, value) -> str:
    with pytest.raises(ValueProblem) as refused:
        coerce(field, value)
    with pytest.raises(ValueProblem):
        coercer(field)(value)
    return refused.value.key


# -- the API ------------------------------------------------------------------------------

@pytest.fixture
def site(tmp_path, db_url):
    opened = core_site(tmp_path, db_url)
    yield opened
    opened.close()


@pytest.fixture
def rep(site):
    return api_for(site, "rep")


def _count(site, entity: str) -> int:
    table = site.schema.table(entity)
    with site.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _field_problem(response, field: str) -> str:
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["code"] == "validation_failed" and body["errors"][field], body
    return body["errors"][field][0]


def test_numbers_out_of_range_are_field_errors_and_write_nothing(site, rep):
    customer = rep.post("/customer", json={"name": "Acme"}).get_json()["id"]
    cases = [
        ({"amount": "1" * 29}, "amount", "at most 12 digits"),
        ({"amount": "1e400"}, "amount", "at most 12 digits"),
        ({"amount": 1e300}, "amount", "at most 12 digits"),
        ({"amount": "NaN"}, "amount", "Expected a number"),
        ({"probability": 2**70}, "probability", "out of range"),
        ({"customer": 2**70}, "customer", "Expected the id of a customer"),
    ]
    for change, field, words in cases:
        body = {"name": "Big", "customer": customer, **change}
        assert words in _field_problem(rep.post("/opportunity", json=body), field)
    assert _count(site, "opportunity") == 0


def test_filters_and_paging_out_of_range_are_field_errors(rep):
    assert "at most 12 digits" in _field_problem(rep.get("/opportunity?amount__gt=1e400"),
                                                 "amount")
    assert "at most 12 digits" in _field_problem(
        rep.get("/opportunity?amount__between=0," + "9" * 30), "amount")
    assert "out of range" in _field_problem(rep.get(f"/customer?id={HUGE}"), "id")
    assert "out of range" in _field_problem(rep.get(f"/opportunity?customer__in=1,{HUGE}"),
                                            "customer")
    assert _field_problem(rep.get(f"/customer?offset={HUGE}"), "offset").startswith(
        "Must be from 0 to")
    assert _field_problem(rep.get("/customer?offset=-1"), "offset").startswith("Must be from 0")
    assert _field_problem(rep.get("/customer?limit=0"), "limit") == "Must be from 1 to 1000."
    assert _field_problem(rep.get("/customer?limit=1001"), "limit") == "Must be from 1 to 1000."
    assert rep.get("/customer?limit=1000&offset=0").status_code == 200


def test_path_ids_beyond_64_bits_are_not_found_for_every_method(site):
    admin = api_for(site, "admin")
    for method, path in [("GET", f"/customer/{HUGE}"), ("DELETE", f"/customer/{HUGE}"),
                         ("PATCH", f"/customer/{HUGE}"), ("GET", f"/customer/{HUGE}/history"),
                         ("POST", f"/customer/{HUGE}/archive"),
                         ("GET", f"/customer/{'9' * 5000}")]:
        answer = admin.call(method, path, json={"name": "x"}, headers={"If-Match": '"1"'})
        assert answer.status_code == 404, (method, path, answer.get_data(as_text=True))
        assert answer.mimetype == PROBLEM
    web = create_app(site, testing=True).test_client()
    login(web, "rep", PASSWORD)
    assert web.get(f"/r/customer/{HUGE}").status_code == 404
    assert web.get(f"/r/customer?offset={HUGE}").status_code == 200


def test_pages_given_ids_no_column_holds_answer_without_a_crash(site):
    from tests.web_support import post
    web = create_app(site, testing=True).test_client()
    login(web, "admin", PASSWORD)
    for digits in (HUGE, "\u00b2", "9" * 5000):
        assert web.get(f"/r/customer/new?owner={digits}").status_code == 200
        assert web.get(f"/r/opportunity/new?customer={digits}").status_code == 200
        assert web.get(f"/r/opportunity?customer={digits}").status_code in (200, 422)
        assert post(web, "/inbox/read", {"id": digits}).status_code in (200, 302)
        assert post(web, "/r/customer/rules", {"record_id": digits}).status_code in (200, 404)
        moved = post(web, "/r/opportunity/kanban/move", {"record_id": digits, "to": "won"},
                     headers={"Accept": "application/json"})
        assert moved.status_code in (404, 422), moved.get_data(as_text=True)[:200]
        bulk = post(web, "/r/customer/bulk", {"action": "reassign", "reassign_value": digits,
                                               "ids": [digits]})
        assert bulk.status_code == 302
        moved = post(web, f"/calendar/move/opportunity/{digits}", {"start": "2026-06-02"})
        assert moved.status_code in (404, 422)
    assert _count(site, "customer") == 0


def test_forms_show_out_of_range_values_as_field_errors(site):
    from tests.web_support import post
    web = create_app(site, testing=True).test_client()
    login(web, "rep", PASSWORD)
    answer = post(web, "/r/customer/new", {"name": "Acme\r\nBcc: x@example.com"})
    assert answer.status_code == 422
    assert "Line breaks and control characters are not allowed" in answer.get_data(as_text=True)
    customer = api_for(site, "rep").post("/customer", json={"name": "Acme"}).get_json()["id"]
    for amount, words in (("1" * 29, "at most 12 digits"), ("1e400", "at most 12 digits"),
                          ("NaN", "Expected a number")):
        answer = post(web, "/r/opportunity/new", {"name": "Big", "customer": str(customer),
                                                  "amount": amount})
        assert answer.status_code == 422 and words in answer.get_data(as_text=True)
    assert _count(site, "opportunity") == 0


def test_the_calendar_refuses_windows_at_the_ends_of_time(site, rep):
    for query, field in [("start=0001-01-01", "start"), ("start=9999-12-31", "start"),
                         ("start=0001-01-01T00:00:00%2B05:00", "start"),
                         ("end=9999-12-31T23:59:59-12:00", "end")]:
        assert "Expected a year from 1900 to 2999" in _field_problem(
            rep.get("/calendar?" + query), field)
    web = create_app(site, testing=True).test_client()
    login(web, "rep", PASSWORD)
    for start in ("9999-12-31", "0001-01-01"):
        assert web.get(f"/calendar?span=month&start={start}").status_code == 200


def test_an_event_at_the_end_of_time_moves_and_shows_without_overflow(site, rep):
    customer = rep.post("/customer", json={"name": "Acme"}).get_json()["id"]
    created = rep.post("/opportunity", json={"name": "Late", "customer": customer,
                                             "expected_close": "2026-06-03"}).get_json()
    moved = rep.post(f"/calendar/opportunity/{created['id']}/move",
                     json={"start": "9999-12-31", "version": created["version"]})
    assert moved.status_code == 200 and moved.get_json()["start"] == "9999-12-31"
    far = rep.post(f"/calendar/activity/{created['id']}/move",
                   json={"start": "9999-12-31T23:00:00-05:00", "version": 1})
    assert far.status_code in (404, 422)


def test_line_breaks_in_one_line_fields_are_refused_and_text_keeps_them(site, rep):
    answer = rep.post("/customer", json={"name": "Acme\r\nBcc: victim@example.com"})
    assert "Line breaks" in _field_problem(answer, "name")
    assert _count(site, "customer") == 0
    created = rep.post("/customer", json={"name": "Acme", "notes": "first line\nsecond line"})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["notes"] == "first line\nsecond line"
    assert "Control characters" in _field_problem(
        rep.post("/customer", json={"name": "B", "notes": "a\x00b"}), "notes")
    assert "Line breaks" in _field_problem(
        rep.get("/customer?name=a%0d%0ab"), "name")
    # PostgreSQL refuses NUL in any text parameter: searches say so instead of failing
    assert "Control characters" in _field_problem(rep.get("/customer?q=a%00b"), "q")
    assert "Control characters" in _field_problem(
        rep.get("/customer?name__contains=a%00b"), "name")
    web = create_app(site, testing=True).test_client()
    login(web, "rep", PASSWORD)
    assert web.get("/r/customer?q=a%00b").status_code in (200, 422)


def test_json_nested_too_deep_is_422_and_too_large_is_413(site, rep):
    for depth in (40, 1000, 100_000):
        raw = '{"name": ' + "[" * depth + "]" * depth + "}"
        answer = rep.call("POST", "/customer", data=raw,
                          headers={"Content-Type": "application/json"})
        assert _field_problem(answer, "body") == "JSON nested deeper than 32 levels."
    big = '{"name": "' + "a" * (1024 * 1024) + '"}'
    answer = rep.call("POST", "/customer", data=big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.mimetype == PROBLEM
    assert _count(site, "customer") == 0


# -- HTTP semantics -----------------------------------------------------------------------

def test_405_names_the_allowed_methods(rep):
    answer = rep.call("PUT", "/customer/1")
    assert answer.status_code == 405 and answer.mimetype == PROBLEM
    assert answer.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH"
    assert rep.call("PUT", "/customer").headers["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_if_match_star_takes_the_current_version_and_delete_requires_one(site):
    rep = api_for(site, "admin")
    created = rep.post("/customer", json={"name": "Acme"}).get_json()
    rep.patch(f"/customer/{created['id']}", json={"name": "Acme 2"},
              headers={"If-Match": f'"{created["version"]}"'})
    updated = rep.patch(f"/customer/{created['id']}", json={"name": "Acme 3"},
                        headers={"If-Match": "*"})
    assert updated.status_code == 200 and updated.get_json()["name"] == "Acme 3"
    assert updated.headers["ETag"] == f'"{updated.get_json()["version"]}"'
    stale = rep.patch(f"/customer/{created['id']}", json={"name": "x"},
                      headers={"If-Match": f'"{created["version"]}"'})
    assert stale.status_code == 409
    assert _field_problem(rep.patch(f"/customer/{created['id']}", json={"name": "x"},
                                    headers={"If-Match": '"1", "2"'}), "version")
    missing = rep.delete(f"/customer/{created['id']}")
    assert missing.status_code == 428 and missing.get_json()["code"] == "version_required"
    document = rep.get("/openapi.json").get_json()
    delete = document["paths"]["/customer/{id}"]["delete"]
    assert delete["parameters"][0]["name"] == "If-Match" and delete["parameters"][0]["required"]
    assert rep.delete(f"/customer/{created['id']}", headers={"If-Match": "*"}).status_code == 204
    assert _count(site, "customer") == 0


def test_the_document_states_the_paging_and_number_bounds(rep):
    document = rep.get("/openapi.json").get_json()
    params = {p["name"]: p["schema"] for p in document["paths"]["/customer"]["get"]["parameters"]}
    assert params["limit"]["minimum"] == 1 and params["limit"]["maximum"] == 1000
    assert params["offset"]["minimum"] == 0 and params["offset"]["maximum"] < INT_MAX
    opportunity = document["components"]["schemas"]["OpportunityInput"]
    assert opportunity["additionalProperties"] is False
    assert opportunity["properties"]["probability"]["maximum"] == 100
    assert opportunity["properties"]["customer"]["maximum"] == INT_MAX
    assert opportunity["properties"]["amount"]["pattern"] == r"^-?[0-9]{1,12}(\.[0-9]{1,2})?$"


# -- imports ------------------------------------------------------------------------------

def test_an_import_reports_huge_numbers_as_row_errors(site, tmp_path):
    source = tmp_path / "products.csv"
    source.write_text("code,name,list_price\nP1,Big," + "1" * 29 + "\nP2,Huge,1e400\n"
                      "P3,Good,10\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--site", str(site.config.root), "import", "product",
                                       str(source), "--dry-run", "--json", "--as", "admin"],
                                catch_exceptions=False)
    assert "Traceback" not in result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert sorted(e["line"] for e in report["row_errors"]) == [2, 3]
    admin = api_for(site, "admin")
    data = {"file": (io.BytesIO(source.read_bytes()), "products.csv"), "dry_run": "true"}
    answer = admin.call("POST", "/product/import", data=data, content_type="multipart/form-data")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json() == report
    assert _count(site, "product") == 0


# -- definition files ---------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "a:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(1000)) + "  " * 1001 + "x: 1\n",
    "a: " + "[" * 1000 + "]" * 1000 + "\n",
    "- " * 1000 + "x\n",
])
def test_yaml_nested_too_deep_is_a_located_problem(text):
    with pytest.raises(DefinitionError) as refused:
        load_yaml_text(text, "deep.yaml")
    [problem] = refused.value.problems
    assert problem.file == "deep.yaml" and problem.line and problem.column
    assert problem.message == f"nested deeper than {MAX_DEPTH} levels"


def test_crm_check_names_the_deep_file(tmp_path):
    runner = CliRunner()
    folder = tmp_path / "acme"
    runner.invoke(main, ["init", str(folder), "--pack", "core"], catch_exceptions=False)
    nested = "extend: customer\nfields:\n  x:\n    label: " + "[" * 1000 + "]" * 1000 + "\n"
    (folder / "custom" / "customer.yaml").write_text(nested, encoding="utf-8")
    result = runner.invoke(main, ["--site", str(folder), "check"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "custom/customer.yaml:4:" in result.output
    assert f"nested deeper than {MAX_DEPTH} levels" in result.output
    assert "Traceback" not in result.output and "RecursionError" not in result.output
