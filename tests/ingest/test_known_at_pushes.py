"""A push into a source that feeds a `known_at` aggregate view is refused before anything is
logged or written: the push path does not write that view's cells (partials per known time),
and a half-applied push would be a wrong value online."""

from __future__ import annotations

import pytest

from featql.jobs.ingest import ingest_events
from featql.online.lookup import RequestError

KNOWN_SOURCE = (
    "-- @source(name = events, timestamp = ts, batch = parquet('data/events/'),\n"
    "--         created = arrived, known_at = arrived)\n"
    "CREATE TABLE events (event_id BIGINT, user_id BIGINT, amount DOUBLE, kind STRING, "
    "ts TIMESTAMP, arrived TIMESTAMP);\n")


def test_a_push_into_a_known_at_aggregate_view_is_refused_and_writes_nothing(
        stream_project) -> None:
    root, manifest = stream_project(stream=False, extra={"sources/events.sql": KNOWN_SOURCE})
    agg = manifest.view("user_aggs")
    assert agg is not None and agg.known_at  # the aggregate view is known_at through its source
    record = {"event_id": 1, "user_id": 5, "amount": 2.0, "kind": "a",
              "ts": "2024-03-02T10:10:00", "arrived": "2024-03-02T10:11:00"}
    with pytest.raises(RequestError) as got:
        ingest_events(root, manifest, "dev", "events", [record])
    assert got.value.status == 422
    assert "known_at aggregate view(s) user_aggs" in str(got.value)
    assert "featql materialize --online" in str(got.value)
    logged = list((root / "data/events").rglob("ingest/**/*.parquet"))
    assert logged == []  # nothing went to the log
    assert not (root / ".featql" / "online.db").exists()  # nor to the online store
