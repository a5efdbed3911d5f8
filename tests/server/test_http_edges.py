"""Edges of the HTTP API answered with a 400 naming the field, never a 500 (issue 15 item 6)."""

from __future__ import annotations

import http.client
import json

import pytest

from .conftest import ServerProcess
from .corpus import AT

pytestmark = pytest.mark.slow


def post(port: int, body: object) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/features/merchant_risk", body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


CASES = [
    ("at-before-year-one-in-utc", {"entities": [{"merchant_id": 3}],
                                   "at": "0001-01-01T00:00:00+14:00"},
     "at", "'at' is out of range once converted to UTC: '0001-01-01T00:00:00+14:00'"),
    ("at-after-year-9999-in-utc", {"entities": [{"merchant_id": 3}],
                                   "at": "9999-12-31T23:59:59-14:00"},
     "at", "'at' is out of range once converted to UTC: '9999-12-31T23:59:59-14:00'"),
    ("bigint-key-2-to-the-63", {"entities": [{"merchant_id": 2**63}], "at": AT.decode()},
     "entities[0].merchant_id",
     "entities[0].merchant_id = 9223372036854775808 is out of the BIGINT range"),
    # the JSON parser reads an integer beyond 64 bits as a (float) number
    ("bigint-key-below-range", {"entities": [{"merchant_id": -(2**63) - 1}], "at": AT.decode()},
     "entities[0].merchant_id", "entities[0].merchant_id must be an integer (BIGINT), got number"),
]


@pytest.mark.parametrize(("body", "field", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_edge_is_a_400_naming_the_field(shared_server: ServerProcess, body: object, field: str,
                                        message: str) -> None:
    status, answer = post(shared_server.port, body)
    assert status == 400, answer
    error = answer["error"]
    assert isinstance(error, dict)
    assert error["field"] == field and error["message"] == message


def test_the_largest_bigint_key_is_served(shared_server: ServerProcess) -> None:
    status, answer = post(shared_server.port, {"entities": [{"merchant_id": 2**63 - 1}],
                                               "at": AT.decode()})
    assert status == 200, answer
    assert isinstance(answer["features"], list) and len(answer["features"]) == 1
