"""A small stream project for the push path: one stream source with a key and a lateness, a
row-level view, an aggregate view over every function the semantics core supports, a service."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from featql.semantics.aggregates import FUNCTIONS

START = dt.datetime(2024, 3, 1)
WINDOWS = ("1h", "2h", "1d")

# calls of the functions that take constant arguments after their input
_CALLS = {"last_n": "LAST_N(amount, 3)", "first_n": "FIRST_N(amount, 3)",
          "last_distinct_n": "LAST_DISTINCT_N(amount, 3)",
          "first_distinct_n": "FIRST_DISTINCT_N(amount, 3)", "top_k": "TOP_K(kind, 2)",
          "approx_percentile": "APPROX_PERCENTILE(amount, 0.5)",
          "approx_count_distinct": "APPROX_COUNT_DISTINCT(kind)"}


def aggregate_calls() -> dict[str, str]:
    """One call per function of `FUNCTIONS` (COUNT(*) and COUNT(amount) both)."""
    import os

    only = os.environ.get("FEATQL_TEST_FUNCTIONS")  # debugging aid: a comma-separated subset
    calls = {"n_events": "COUNT(*)"}
    for name, fn in FUNCTIONS.items():
        if only and name not in only.split(","):
            continue
        calls[f"f_{name}"] = _CALLS.get(name, f"{fn.sql_name}(amount)")
    return calls


def write_project(root: Path, stream: bool = True, rows: pa.Table | None = None,
                  extra: dict[str, str] | None = None) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for d in ("sources", "entities", "views", "services", "data/events", "data/events_stream"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "featql.toml").write_text(
        '[project]\nname = "pushes"\n[offline]\nengine = "duckdb"\npath = "data/offline"\n'
        '[online]\nstore = "sqlite"\npath = ".featql/online.db"\n')
    stream_part = (",\n--         stream = files('data/events_stream/', format = json), "
                   "lateness = '1h', key = event_id" if stream else "")
    (root / "sources/events.sql").write_text(
        "-- @source(name = events, timestamp = ts, batch = parquet('data/events/')"
        f"{stream_part})\n"
        "CREATE TABLE events (event_id BIGINT, user_id BIGINT, amount DOUBLE, kind STRING, "
        "ts TIMESTAMP);\n")
    (root / "entities/user.sql").write_text("-- @entity(name = user, keys = [user_id])\n")
    select = ",\n       ".join(f"{call} AS {name}" for name, call in aggregate_calls().items())
    windows = ", ".join(f"'{w}'" for w in WINDOWS)
    (root / "views/user_aggs.sql").write_text(
        f"-- @feature_view(name = user_aggs, entity = user, timestamp = ts,\n"
        f"--               windows = [{windows}], slide = '1h', start = '2024-03-01')\n"
        f"SELECT user_id,\n       {select}\nFROM events\nWHERE kind <> 'test'\n"
        "GROUP BY user_id\n")
    (root / "views/user_last.sql").write_text(
        "-- @feature_view(name = user_last, entity = user, timestamp = ts, ttl = '7d',\n"
        "--               schedule = '1d', start = '2024-03-01')\n"
        "SELECT user_id, ts, amount AS last_amount, kind AS last_kind FROM events\n")
    (root / "services/svc.sql").write_text(
        "-- @feature_service(name = svc, features = [user_aggs.*, user_last.*])\n")
    (root / "services/aggs.sql").write_text(
        "-- @feature_service(name = aggs, features = [user_aggs.*])\n")
    for path, text in (extra or {}).items():
        (root / path).write_text(text)
    if rows is None:
        rows = events_table([])
    pq.write_table(rows, root / "data/events/part-000.parquet")
    return root


SCHEMA = pa.schema([("event_id", pa.int64()), ("user_id", pa.int64()), ("amount", pa.float64()),
                    ("kind", pa.string()), ("ts", pa.timestamp("us"))])


def events_table(records: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=SCHEMA)
