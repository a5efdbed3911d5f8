"""Tecton's public fraud sample `user_recent_transactions` (the last 10 distinct amounts of a
user) written in featql on the example project, against a brute-force oracle over the raw
transactions (DuckDB training set of the example's spine)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from featql.jobs.training import training_set
from runtime.conftest import compiled

VIEW = """\
-- @feature_view(name = user_recent_transactions, entity = user, timestamp = event_ts,
--               windows = ['30d', 'lifetime'], slide = '1d', start = '2024-01-01')
-- @description('Tecton sample: the last 10 distinct transaction amounts of a user')
SELECT user_id, LAST_DISTINCT_N(amount, 10) AS recent_amounts
FROM transactions
GROUP BY user_id
"""
SERVICE = ("-- @feature_service(name = recent_txns, "
           "features = [user_recent_transactions.*])\n")
EPOCH = datetime(1970, 1, 1)


def _floor_day(t: datetime) -> datetime:
    return datetime(t.year, t.month, t.day)


def _last_distinct(rows: list[tuple[datetime, float]], n: int) -> list[float] | None:
    out: list[float] = []
    for _, amount in sorted(rows, reverse=True):  # newest first; equal times: greater amount
        if amount not in out:
            out.append(amount)
    return out[:n] or None


def test_user_recent_transactions_matches_the_oracle(small_example: Path) -> None:
    (small_example / "views" / "user_recent_transactions.sql").write_text(VIEW)
    (small_example / "services" / "recent_txns.sql").write_text(SERVICE)
    c = compiled(small_example)
    view = c.manifest.view("user_recent_transactions")
    assert {f.name: f.type for f in view.features} == {
        "recent_amounts_30d": "ARRAY<DOUBLE>", "recent_amounts_lifetime": "ARRAY<DOUBLE>"}
    spine = pq.read_table(small_example / "data" / "spine.parquet",
                          columns=["user_id", "event_ts"])
    got = training_set(small_example, c.manifest, c.config, "recent_txns", spine,
                       engine="duckdb", use_store=False).to_pylist()
    txns = pq.read_table(small_example / "data" / "transactions",
                         columns=["user_id", "amount", "event_ts"]).to_pylist()
    by_user: dict[Any, list[tuple[datetime, float]]] = {}
    for r in txns:
        if r["amount"] is not None and r["user_id"] is not None:
            by_user.setdefault(r["user_id"], []).append((r["event_ts"], r["amount"]))
    ts_col = "event_ts"
    nonempty = 0
    for row in got:
        hi = _floor_day(row[ts_col])
        rows = by_user.get(row["user_id"], [])
        month = [e for e in rows if hi - timedelta(days=30) <= e[0] < hi]
        life = [e for e in rows if e[0] < hi]
        assert row["user_recent_transactions__recent_amounts_30d"] == _last_distinct(month, 10)
        assert row["user_recent_transactions__recent_amounts_lifetime"] == \
            _last_distinct(life, 10)
        nonempty += row["user_recent_transactions__recent_amounts_30d"] is not None
    assert nonempty > len(got) // 2  # the spine mostly asks users with history
