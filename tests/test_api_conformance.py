"""The server keeps its own OpenAPI document: a bounded schemathesis run against /api/openapi.json.

Every operation of the document is called in-process (WSGI) with a bearer token of a user
who gave consent, with inputs generated from its schemas (a fixed seed and a few examples
per operation, so the run is the same each time and stays within a few minutes), and every
answer must be:

- no server error (5xx other than the documented 503s),
- a status code the document lists for that operation,
- of a content type it lists, and
- a body that fits the documented schema.

An earlier, unbounded probe (~10,000 calls) found a 500 (``GET /api/statistics?modality=text``)
and undocumented 415s; those are fixed or documented and stay checked here.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Api

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 5


@pytest.fixture
def bearer_app(app: Any) -> tuple[Any, str]:
    """The app with one consenting user and that user's API token."""
    api = Api(app.test_client())
    assert api.register().status_code == 201
    assert api.give_consent().status_code == 200
    token = api.post("/api/tokens", json={"name": "conformance"}).get_json()["token"]
    return app, token


def _exercise(operation: Any, headers: dict[str, str], calls: list[str], failures: list[str]) -> None:
    """Call one operation with a few generated cases and note every check that fails."""
    documented = operation.definition.raw["responses"]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,  # a fixed seed: the same cases every run
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        calls.append(operation.label)
        response = case.call(headers=headers)
        # A documented 503 (model not installed or loading, /readyz before the models) is an answer.
        documented_503 = response.status_code == 503 and "503" in documented
        try:
            case.validate_response(response, checks=CHECKS[1:] if documented_503 else CHECKS)
        except FailureGroup as failure:
            details = "; ".join(f"{f.title}: {f.message[:200]}" for f in failure.exceptions)
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {details}")

    call()


def test_every_operation_answers_as_documented(bearer_app: tuple[Any, str]) -> None:
    app, token = bearer_app
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    calls: list[str] = []
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        _exercise(operation, headers, calls, failures)
    print(f"conformance: {len(calls)} calls over {len(set(calls))} operations, {len(failures)} failures")
    assert len(set(calls)) == len(operations), "every operation was called"
    assert failures == [], "\n".join(failures)
