"""POST /v1/ingest/<source> against a real `featql serve` (issue 13 item 3): validation errors
name the record and the field, the answer comes once the online store holds the values, a
repeated event counts once, a replayed batch id changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .project import write_project
from .server import Server, cli

AT = "2024-03-02T12:30:00"


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
           ) -> Iterator[Server]:
    """Both shapes: one worker applies its pushes itself; with two, each worker hands them to
    the server's ingest process (featql.server.ingest_host), which must answer the same."""
    root = write_project(tmp_path_factory.mktemp("push") / "proj")
    done = cli(root, "apply", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    srv = Server(root, workers=request.param)
    try:
        yield srv
    finally:
        srv.stop()


def _rec(i: int, user: int = 7, amount: float = 10.0, minute: int = 0) -> dict:
    return {"event_id": i, "user_id": user, "amount": amount, "kind": "a",
            "ts": f"2024-03-02T12:{minute:02d}:00"}


def _error(reply: tuple[int, dict]) -> tuple[int, str, str, str]:
    status, body = reply
    err = body["error"]
    return status, err["code"], err.get("field"), err["message"]


def test_unknown_source_is_a_404_with_a_hint(server: Server) -> None:
    status, code, field, message = _error(server.push("event", [_rec(1)]))
    assert (status, code, field) == (404, "unknown_source", "source")
    assert "did you mean 'events'?" in message


def test_malformed_bodies_are_400s_naming_the_field(server: Server) -> None:
    status, body = server.request("POST", "/v1/ingest/events", raw=b'{"records": [')
    assert status == 400 and body["error"]["code"] == "invalid_json"
    assert _error(server.request("POST", "/v1/ingest/events", {"rows": []}))[:3] == \
        (400, "unknown_field", "rows")
    assert _error(server.request("POST", "/v1/ingest/events", {}))[:3] == \
        (400, "missing_field", "records")
    assert _error(server.push("events", {"event_id": 1}))[:3] == \
        (400, "invalid_field", "records")
    assert _error(server.push("events", [_rec(1), 5]))[:3] == \
        (400, "invalid_field", "records[1]")


def test_record_errors_name_the_record_index_and_the_field(server: Server) -> None:
    no_key = _rec(3)
    del no_key["event_id"]
    status, code, field, message = _error(server.push("events", [_rec(1), _rec(2), no_key]))
    assert (status, code, field) == (400, "missing_field", "records[2].event_id")
    assert "key" in message
    no_time = {**_rec(4), "ts": None}
    assert _error(server.push("events", [no_time]))[:3] == \
        (400, "missing_field", "records[0].ts")
    wrong = {**_rec(5), "amount": "ten"}
    status, code, field, message = _error(server.push("events", [_rec(6), wrong]))
    assert (status, code, field) == (400, "invalid_field", "records[1].amount")
    assert message == "records[1].amount must be DOUBLE, got string"
    bad_time = {**_rec(7), "ts": "yesterday"}
    assert _error(server.push("events", [bad_time]))[:3] == \
        (400, "invalid_field", "records[0].ts")
    unknown = {**_rec(8), "amout": 3.0}
    status, code, field, message = _error(server.push("events", [unknown]))
    assert (status, code, field) == (400, "unknown_field", "records[0].amout")
    assert "did you mean 'amount'?" in message
    too_many = [_rec(i) for i in range(1001)]
    assert _error(server.push("events", too_many))[:3] == \
        (413, "too_many_records", "records")
    # nothing of the refused calls was ingested
    status, body = server.lookup("svc", [{"user_id": 7}], AT)
    assert status == 200
    assert body["features"][0]["user_aggs.n_events_1h"] == 0


def test_a_push_is_read_after_write_and_counted_once(server: Server) -> None:
    records = [_rec(100 + i, user=9, amount=float(i), minute=i) for i in range(10)]
    status, body = server.push("events", records)
    assert status == 200, body
    assert (body["received"], body["ingested"], body["duplicates"]) == (10, 10, 0)
    assert body["views"] == {"user_aggs": 1, "user_last": 1}
    status, got = server.lookup("svc", [{"user_id": 9}], AT)
    row = got["features"][0]
    assert row["user_aggs.n_events_1h"] == 10
    assert row["user_aggs.f_sum_1h"] == sum(range(10))
    assert row["user_last.last_amount"] == 9.0
    # the same events again, plus one new: the repeats count once
    status, body = server.push("events", [*records[:5], _rec(200, user=9, amount=100.0,
                                                              minute=20)])
    assert (body["ingested"], body["duplicates"]) == (1, 5)
    status, got = server.lookup("svc", [{"user_id": 9}], AT)
    assert got["features"][0]["user_aggs.n_events_1h"] == 11
    assert got["features"][0]["user_aggs.f_sum_1h"] == sum(range(10)) + 100.0
    # a repeat inside one call counts once too
    status, body = server.push("events", [_rec(300, user=9, minute=25)] * 3)
    assert (body["ingested"], body["duplicates"]) == (1, 2)
    # a replayed batch id changes nothing, even with other records
    first = server.push("events", [_rec(400, user=9, minute=26)], batch_id="b-1")[1]
    again = server.push("events", [_rec(401, user=9, minute=27)], batch_id="b-1")[1]
    assert first["ingested"] == 1 and again["replayed"] and again["ingested"] == 0
    status, got = server.lookup("svc", [{"user_id": 9}], AT)
    assert got["features"][0]["user_aggs.n_events_1h"] == 13


def test_pushed_events_are_in_the_offline_log(server: Server) -> None:
    import pyarrow.parquet as pq

    files = sorted((Path(server.root) / "data/events/ingest").rglob("*.parquet"))
    assert files and all(f.parent.name == "2024-03-02" for f in files)
    ids = [i for f in files for i in pq.read_table(f).column("event_id").to_pylist()]
    assert len(ids) == len(set(ids))  # each event once
    assert {100, 105, 109, 200, 300, 400} <= set(ids) and 401 not in ids
