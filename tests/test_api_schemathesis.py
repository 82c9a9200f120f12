"""Schemathesis against the generated OpenAPI document: no 5xx, whatever the input.

Bounded (a few examples per operation, a few entities) so it runs in seconds;
the document is fetched with a token, as a client generator would.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

from engine.web import create_app
from tests.api_support import core_site


@pytest.fixture
def site(tmp_path, db_url):
    opened = core_site(tmp_path, db_url)
    yield opened
    opened.close()


def test_no_server_errors_and_conforming_answers(site):
    token, _ = site.users.tokens.create("admin", "schemathesis")
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(site, testing=True)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=headers)
    schema = schema.include(path_regex=r"^/(customer|opportunity|meta|dashboards|attachments|calendar)\b")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    failures = []
    for operation in operations:
        _fuzz(operation, headers, failures)
    assert not failures, failures


def _fuzz(operation, headers: dict[str, str], failures: list) -> None:
    @settings(max_examples=4, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case):
        response = case.call(headers=headers)
        if response.status_code >= 500:
            failures.append((operation.label, response.status_code, response.text[:200]))
        try:
            case.validate_response(response, checks=[response_schema_conformance])
        except AssertionError as exc:  # schemathesis' failures are AssertionErrors
            failures.append((operation.label, response.status_code, str(exc)[:300]))

    check()
