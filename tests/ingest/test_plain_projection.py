"""The push path reads a plain projection's rows off the events' table instead of running it
on DuckDB (`featql.jobs.ingest_query`): the same values as DuckDB, NULLs included, for every
view the finder calls plain; every other query shape left to DuckDB; and whole pushes giving
the same cells either way."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featql.compiler.project import compile_project
from featql.core.ir import Manifest
from featql.dialects.events import EVENT_TS, input_column, lower_events
from featql.dialects.lower import lower_view
from featql.engines.duckdb import DuckDBEngine
from featql.jobs import ingest
from featql.jobs.ingest_query import OTHER, plain_projection, plain_rows, run_query

from .project import events_table, write_project

PLAIN_AGGS = (
    "-- @feature_view(name = user_plain, entity = user, timestamp = ts, windows = ['1h'],\n"
    "--               slide = '1h', start = '2024-03-01')\n"
    "SELECT user_id, COUNT(*) AS n, SUM(amount) AS total, LAST_N(kind, 2) AS kinds,\n"
    "       MAX(event_id) AS top_id, STDDEV_SAMP(amount) AS spread\n"
    "FROM events WHERE kind <> 'test' AND amount >= -1 GROUP BY user_id\n")
COMPUTED_ROW = (
    "-- @feature_view(name = user_double, entity = user, timestamp = ts, ttl = '7d',\n"
    "--               start = '2024-03-01')\n"
    "SELECT user_id, ts, amount * 2 AS double_amount FROM events\n")
FILTERED_ROW = (
    "-- @feature_view(name = user_filtered, entity = user, timestamp = ts, ttl = '7d',\n"
    "--               start = '2024-03-01')\n"
    "SELECT user_id, ts, amount AS amt, kind FROM events\n"
    "WHERE ((amount > 0 OR amount IS NULL) AND NOT kind = 'x' AND -2.5 < amount)\n"
    "   OR (event_id >= 5 AND kind >= 'b') OR (kind IS NOT NULL AND amount <> 1.5)\n")
FUNCTION_FILTER = (
    "-- @feature_view(name = user_long_kinds, entity = user, timestamp = ts, windows = ['1h'],\n"
    "--               slide = '1h', start = '2024-03-01')\n"
    "SELECT user_id, COUNT(*) AS n FROM events WHERE LENGTH(kind) > 1 GROUP BY user_id\n")
PLAIN = {"user_last", "user_plain", "user_filtered"}  # the views the finder must call plain
# a computed feature; a function in WHERE; APPROX_COUNT_DISTINCT's input is computed
NOT_PLAIN = {"user_double", "user_long_kinds", "user_aggs"}


TYPES = {"event_id": "BIGINT", "user_id": "BIGINT", "amount": "DOUBLE", "kind": "STRING",
         "ts": "TIMESTAMP"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    root = write_project(tmp_path_factory.mktemp("plain") / "proj", extra={
        "views/user_plain.sql": PLAIN_AGGS, "views/user_double.sql": COMPUTED_ROW,
        "views/user_filtered.sql": FILTERED_ROW, "views/user_long_kinds.sql": FUNCTION_FILTER})
    result = compile_project(root)
    assert result.ok, [d.headline() for d in result.diagnostics]
    return root, result.manifest


def _sql(manifest: Manifest, view: str) -> tuple[str, set[str] | None]:
    v = manifest.view(view)
    assert v is not None
    if v.kind == "row":
        return lower_view(manifest, view, "duckdb"), None
    return lower_events(manifest, view, "duckdb"), {
        *(k.name for k in v.keys), EVENT_TS, *(input_column(a.name) for a in v.aggregations)}


_TS = st.datetimes(dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 3))
_EVENT = st.fixed_dictionaries({
    "event_id": st.integers(-2**63, 2**63 - 1), "user_id": st.none() | st.integers(1, 4),
    "amount": st.none() | st.floats() | st.sampled_from(
        [-0.0, 0.0, 1.5, -2.5, 2.0, math.nan, math.inf, -math.inf]),
    "kind": st.none() | st.sampled_from(["a", "b", "x", "test", "", "é", "B"]),
    "ts": st.none() | _TS})


@settings(max_examples=80, deadline=None)
@given(st.lists(_EVENT, max_size=12))
def test_plain_rows_equal_duckdb(project: tuple[Path, Manifest],
                                 events: list[dict[str, Any]]) -> None:
    _, manifest = project
    rows = events_table(events)
    engine = DuckDBEngine(threads=1)
    try:
        engine.register_arrow("events", rows)
        for view in sorted(PLAIN):
            text, needed = _sql(manifest, view)
            found = plain_projection(text, "events", TYPES)
            assert found is not None, view
            got = plain_rows(found, rows, needed)
            assert got is not None, view
            want = run_query(engine, {}, view, text)
            assert got.num_rows == want.num_rows
            for name in got.names:  # every output read off the table is DuckDB's, in order
                assert list(map(repr, got.column(name))) == list(map(repr, want.column(name))), \
                    (view, name)  # repr: NaN equals NaN, -0.0 is not 0.0, 1 is not 1.0
            assert {n for n in want.names if needed is None or n in needed} <= set(got.names)
    finally:
        engine.close()


def test_other_shapes_run_on_duckdb(project: tuple[Path, Manifest]) -> None:
    _, manifest = project
    for view in sorted(NOT_PLAIN):
        text, needed = _sql(manifest, view)
        found = plain_projection(text, "events", TYPES)
        assert found is None or plain_rows(found, events_table([]), needed) is None, view
    cols = TYPES
    for text in (
            "SELECT user_id FROM events WHERE amount > event_id",
            "SELECT user_id FROM events WHERE kind IN ('a', 'b')",
            "SELECT user_id FROM events WHERE kind LIKE 'a%'",
            "SELECT user_id FROM events WHERE amount BETWEEN 1 AND 2",
            "SELECT user_id FROM events WHERE amount > 1e3",
            "SELECT user_id FROM events WHERE amount",
            "SELECT user_id FROM events WHERE -kind = 'a'",
            "SELECT DISTINCT user_id FROM events",
            "SELECT user_id FROM events ORDER BY ts LIMIT 2",
            "SELECT user_id, COUNT(*) AS n FROM events GROUP BY user_id",
            "SELECT e.user_id FROM events AS e JOIN other AS o ON e.user_id = o.user_id",
            "SELECT user_id FROM other",
            "SELECT user_id FROM db.events",
            "SELECT nope FROM events",
            "SELECT user_id, user_id FROM events",
            "WITH a AS (SELECT user_id FROM events WHERE LENGTH(kind) = 1) SELECT * FROM a",
            "SELECT x.user_id FROM events AS e",
            "SELECT 1",
    ):
        assert plain_projection(text, "events", cols) is None, text
    computed = plain_projection("SELECT user_id, amount + 1 AS a1, CAST(user_id AS INT) AS u,"
                                " CAST(CAST(kind AS VARCHAR) AS TEXT) AS k FROM events",
                                "events", cols)
    assert computed is not None and computed.outputs[1:] == (
        ("a1", OTHER), ("u", OTHER), ("k", "kind"))  # a real conversion; a no-op one
    assert plain_rows(computed, events_table([]), {"a1"}) is None
    assert plain_rows(computed, events_table([]), {"user_id"}) is not None
    mistyped = plain_projection("SELECT user_id FROM events WHERE kind > 1", "events", cols)
    assert mistyped is not None and plain_rows(mistyped, events_table([{"kind": "a"}])) is None


def test_a_zoned_timestamp_is_left_to_duckdb() -> None:
    import pyarrow as pa

    rows = pa.table({"ts": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us", "UTC"))})
    found = plain_projection("SELECT ts FROM events", "events", {"ts": "TIMESTAMPTZ"})
    assert found is not None and plain_rows(found, rows) is None


def test_pushes_give_the_same_cells_either_way(project: tuple[Path, Manifest],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root, manifest = project
    from featql.online.sqlite import SqliteStore

    start = dt.datetime(2024, 3, 1, 5)
    events = [{"event_id": i, "user_id": 1 + i % 3,
               "amount": None if i % 4 == 0 else float(i % 7) - 2.5,
               "kind": [None, "a", "test", "b"][i % 4],
               "ts": start + dt.timedelta(minutes=7 * i, microseconds=i % 2)}
              for i in range(40)]
    rows = events_table(events)
    read_off: list[str] = []

    def counted(projection: Any, table: Any, needed: Any = None) -> Any:
        got = plain_rows(projection, table, needed)
        read_off.append("plain" if got is not None else "duckdb")
        return got

    monkeypatch.setattr(ingest, "plain_rows", counted)
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("FEATQL_PUSH_PLAIN", flag)
        ingest._ENGINES.clear()
        store = SqliteStore(root / f".featql/plain-{flag}.db", "dev")
        try:
            cells = ingest.online_cells(root, manifest, store, "events", rows)
        finally:
            store.close()
        out[flag] = sorted((c.item, c.view, c.payload) for c in cells)
    assert read_off.count("plain") == len(PLAIN)  # with the flag on only, once per plain view
    assert out["1"] == out["0"]
    assert {v.split("@")[0] for _, v, _ in out["1"]} >= PLAIN | NOT_PLAIN
