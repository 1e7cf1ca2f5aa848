"""Requests generated from /openapi.json by schemathesis, against the live service, with all of its checks:
no 5xx, and the server accepts what the schema allows and refuses what it does not, with the documented
statuses, bodies and headers.

What a schema cannot say is listed in ``UNEXPRESSIBLE``: the checks let those answers through and nothing else.
The operations are driven with Hypothesis directly: schemathesis's pytest plugin does not run on pytest 9.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

# (status, error) answers to schema-valid requests that no OpenAPI schema can rule out.
UNEXPRESSIBLE = {
    (422, "InvalidImageError"),  # a binary field must hold a decodable image of a documented format, within limits
    (404, "ItemNotFoundError"),  # an item id must exist
    (409, "ReadOnlyIndexError"),  # never here (the index is not memory-mapped), listed for completeness
}


@schemathesis.check
def positive_data_accepted_unless_unexpressible(ctx, response, case):
    """schemathesis's positive_data_acceptance, except for the answers listed in UNEXPRESSIBLE."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if (response.status_code, body.get("error")) in UNEXPRESSIBLE:
        return True
    return positive_data_acceptance(ctx, response, case)


@pytest.mark.slow
def test_generated_requests_pass_every_check(live_server: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def every_check(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance],
                                   additional_checks=[positive_data_accepted_unless_unexpressible])

        every_check()

    metrics = httpx.get(f"{live_server}/metrics").text
    sent = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("nac_hash_requests_total{"))
    assert sent >= 5 * len(operations)  # requests really reached the server


def test_the_schema_says_what_the_server_enforces(live_server: str) -> None:
    spec = httpx.get(f"{live_server}/openapi.json").json()
    query = spec["components"]["schemas"]["Query"]
    assert query["oneOf"] == [{"required": ["image_base64"]}, {"required": ["code"]}]
    assert query["properties"]["code"]["pattern"] == "^[0-9a-fA-F]{32}$"  # the served index has 128-bit codes
    multipart = spec["paths"]["/search"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert multipart["additionalProperties"] is False and set(multipart["properties"]) == {"image", "k",
                                                                                           "max_distance"}
    wrong_method = httpx.put(f"{live_server}/search")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
