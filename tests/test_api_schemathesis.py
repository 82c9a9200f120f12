"""Schemathesis against the generated OpenAPI document: every operation, every check.

The whole API, as a salesperson and as an administrator see it (each gets
its own document), is fuzzed with schema-valid and schema-invalid requests
and every one of schemathesis' checks: no 5xx, status codes, content types,
headers and bodies as documented, invalid data refused, valid data accepted.

Valid data may still break a rule no schema can say (a reference to a record
that does not exist, a validation rule, a unique key, a missing version):
those answers are 422 or 428, so they count as accepted here, provided the
422 names the fields at fault.  Bounded (a few examples per operation and
mode) so one database's run stays well under two minutes.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from engine.web import create_app
from tests.api_support import core_site

#: Examples per operation and generation mode: enough to reach every parameter, few for CI.
EXAMPLES = 2
CONFIG = {"checks": {"positive_data_acceptance": {
    "expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 422, 428, 429]}}}


@pytest.fixture
def site(tmp_path, db_url):
    opened = core_site(tmp_path, db_url)
    rep = opened.users.actor("rep")
    customer = opened.records.create(rep, "customer", {"name": "Fuzz Ltd"})
    opened.records.create(rep, "opportunity", {"name": "Fuzz deal", "customer": customer["id"],
                                               "amount": "1000"})
    yield opened
    opened.close()


@pytest.mark.parametrize("login", ["rep", "admin"])
def test_every_operation_passes_every_check(site, login):
    token, _ = site.users.tokens.create(login, "schemathesis")
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(site, testing=True)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=headers,
                                            config=SchemathesisConfig.from_dict(CONFIG))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50  # every entity's operations, not a sample
    failures: list = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, headers, failures)
    assert not failures, "\n".join(map(str, failures[:20]))


def _fuzz(operation, mode, headers: dict[str, str], failures: list) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        response = case.call(headers=headers)
        label = f"{operation.label} ({mode.value})"
        if response.status_code >= 500:
            failures.append((label, response.status_code, response.text[:200]))
            return
        if response.status_code == 422 and not _names_fields(response.text):
            failures.append((label, 422, f"a 422 without field messages: {response.text[:200]}"))
        try:
            case.validate_response(response, headers=headers)
        except BaseException as exc:  # a FailureGroup is a BaseExceptionGroup
            if not isinstance(exc, AssertionError | BaseExceptionGroup):
                raise
            failures.append((label, response.status_code, _summary(exc)))

    check()


def _names_fields(text: str) -> bool:
    errors = json.loads(text).get("errors")
    return isinstance(errors, dict) and bool(errors) and all(
        isinstance(v, list) and v for v in errors.values())


def _summary(exc: BaseException) -> str:
    found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
    return "; ".join(f"{type(e).__name__}: {str(e)[:300]}" for e in found)
