"""Requests generated from /openapi.json by schemathesis, against the live service: none may cause a 5xx.

The operations are driven with Hypothesis directly: schemathesis's pytest plugin does not run on pytest 9.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error


@pytest.mark.slow
def test_no_generated_request_causes_a_server_error(live_server: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error])

        no_server_error()

    metrics = httpx.get(f"{live_server}/metrics").text
    sent = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("nac_hash_requests_total{"))
    assert sent >= 5 * len(operations)  # requests really reached the server
