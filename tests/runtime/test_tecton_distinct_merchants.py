"""Tecton's public fraud sample `user_distinct_merchant_transaction_count_30d` (the number of
distinct merchants a user paid in 30 days) written in featql on the example project, against a
brute-force oracle over the raw transactions (the DuckDB training set of the example's spine;
the online read and Spark are covered by tests/runtime/test_sketch_aggregates.py). With at most
a few dozen merchants per user and month the HLL sketch keeps exact coupons, so the count is
exact (the documented bound allows 3 x 1.625 % + 1; the test holds the value to it and checks
it is exact here)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from featql.jobs.training import training_set
from runtime.conftest import compiled

VIEW = """\
-- @feature_view(name = user_distinct_merchant_transaction_count, entity = user,
--               timestamp = event_ts, windows = ['30d'], slide = '1d', start = '2024-01-01')
-- @description('Tecton sample: the number of distinct merchants a user transacted with')
SELECT user_id, APPROX_COUNT_DISTINCT(merchant_id) AS distinct_merchants
FROM transactions
GROUP BY user_id
"""
SERVICE = ("-- @feature_service(name = distinct_merchants, "
           "features = [user_distinct_merchant_transaction_count.*])\n")
FEATURE = "user_distinct_merchant_transaction_count__distinct_merchants_30d"


def _floor_day(t: datetime) -> datetime:
    return datetime(t.year, t.month, t.day)


def test_user_distinct_merchant_transaction_count_30d_matches_the_oracle(
        small_example: Path) -> None:
    (small_example / "views" / "user_distinct_merchant_transaction_count.sql").write_text(VIEW)
    (small_example / "services" / "distinct_merchants.sql").write_text(SERVICE)
    c = compiled(small_example)
    view = c.manifest.view("user_distinct_merchant_transaction_count")
    assert {f.name: f.type for f in view.features} == {"distinct_merchants_30d": "BIGINT"}
    spine = pq.read_table(small_example / "data" / "spine.parquet",
                          columns=["user_id", "event_ts"])
    got = training_set(small_example, c.manifest, c.config, "distinct_merchants", spine,
                       engine="duckdb", use_store=False).to_pylist()
    txns = pq.read_table(small_example / "data" / "transactions",
                         columns=["user_id", "merchant_id", "event_ts"]).to_pylist()
    by_user: dict[Any, list[tuple[datetime, int]]] = {}
    for r in txns:
        if r["merchant_id"] is not None and r["user_id"] is not None:
            by_user.setdefault(r["user_id"], []).append((r["event_ts"], r["merchant_id"]))
    nonzero = 0
    for row in got:
        hi = _floor_day(row["event_ts"])
        exact = len({m for t, m in by_user.get(row["user_id"], [])
                     if hi - timedelta(days=30) <= t < hi})
        value = row[FEATURE]
        assert abs(value - exact) <= 3 * 1.04 / 64 * exact + 1
        assert value == exact
        nonzero += value > 0
    assert nonzero > len(got) // 2  # the spine mostly asks users with history
