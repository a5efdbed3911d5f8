"""Row-level rules: TTL visibility and the tie-break, in Python and in DuckDB and Spark SQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sampling import samples

from featql.semantics import sql
from featql.semantics.rows import (
    before_sql,
    latest,
    order_key,
    tiebreak_order_sql,
    tiebreak_struct_sql,
    ttl_sql,
    visible,
)

US = 1_000_000
EPOCH = dt.datetime(1970, 1, 1)


def test_visible_is_strictly_before_and_within_the_ttl() -> None:
    assert not visible(10 * US, 10 * US, None)  # the event being scored is not its own feature
    assert visible(10 * US - 1, 10 * US, None)
    assert visible(0, 10 * US, 10)  # exactly the TTL old: still seen
    assert not visible(-1, 10 * US, 10)
    assert visible(-(10 ** 15), 10 * US, None)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5), st.integers(0, 20)),
                min_size=1, max_size=30))
def test_ttl_and_before_sql_equal_visible(cases: list[tuple[int, int, int]]) -> None:
    import duckdb

    con = duckdb.connect()
    try:
        for ts, t, ttl in cases:
            for limit in (ttl, None):
                cond = " AND ".join(c for c in (before_sql(str(t * US), str(ts * US)),
                                                ttl_sql(str(t * US), str(ts * US), limit)) if c)
                (got,), = con.execute(f"SELECT {cond}").fetchall()
                assert got == visible(ts * US, t * US, limit), (ts, t, limit)
    finally:
        con.close()


def test_order_key_puts_null_lowest_and_compares_in_order() -> None:
    rows = [(5, None, (1, 2)), (5, 3, (None, 0)), (5, 3, (0, None)), (4, 9, (9, 9))]
    assert latest(rows, lambda r: order_key(*r)) == (5, 3, (0, None))
    assert latest([], lambda r: r) is None
    assert order_key(1, None, [None]) < order_key(1, 0, [None]) < order_key(1, 0, [0])
    assert order_key(2, None, [None]) > order_key(1, 5, [5])


def test_tiebreak_order_sql() -> None:
    assert tiebreak_order_sql("duckdb", "_featql_created", ["a", "b"]) == (
        '_featql_created DESC NULLS LAST, "a" DESC NULLS LAST, "b" DESC NULLS LAST')
    assert tiebreak_order_sql("spark", None, ["a"], timestamp="ts") == (
        "`ts` DESC, `a` DESC NULLS LAST")


# rows of few keys, times, created values and features: ties on (key, ts) are the rule here
Row = tuple[int, int, int | None, int | None, str | None]
rows_strategy = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2),
                                   st.none() | st.integers(0, 2), st.none() | st.integers(0, 2),
                                   st.none() | st.sampled_from(["a", "b"])), max_size=40)


def expected(rows: list[Row]) -> list[Row]:
    """The winner per key by `order_key` (event time, created, features with NULL smallest)."""
    by: dict[int, list[Row]] = {}
    for r in rows:
        by.setdefault(r[0], []).append(r)
    out = [latest(rs, lambda r: order_key(r[1], r[2], r[3:])) for rs in by.values()]
    return sorted(r for r in out if r is not None)


def _table(rows: list[Row]) -> Any:
    import pyarrow as pa

    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(5)]
    return pa.table({"k": pa.array(cols[0], pa.int64()),
                     "ts": pa.array([EPOCH + dt.timedelta(seconds=s) for s in cols[1]],
                                    pa.timestamp("us")),
                     "created": pa.array([None if c is None else EPOCH + dt.timedelta(seconds=c)
                                          for c in cols[2]], pa.timestamp("us")),
                     "f1": pa.array(cols[3], pa.int64()), "f2": pa.array(cols[4], pa.string())})


def _plain(r: dict[str, Any]) -> Row:
    sec = int((r["ts"] - EPOCH).total_seconds())
    created = None if r["created"] is None else int((r["created"] - EPOCH).total_seconds())
    return (r["k"], sec, created, r["f1"], r["f2"])


@settings(max_examples=50, deadline=None)
@given(rows_strategy)
def test_duckdb_tiebreak_picks_the_python_winner(rows: list[Row]) -> None:
    import duckdb

    con = duckdb.connect()
    try:
        con.register("r", _table(rows))
        order = tiebreak_order_sql("duckdb", '"created"', ["f1", "f2"], timestamp="ts")
        rel = con.sql(f"SELECT * FROM r QUALIFY row_number() OVER (PARTITION BY k "
                      f"ORDER BY {order}) = 1")
        fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
        got = sorted(_plain(r) for r in fetch().to_pylist())
    finally:
        con.close()
    assert got == expected(rows)


@pytest.mark.slow
def test_spark_struct_order_picks_the_python_winner(spark: Any) -> None:
    """30 row sets in one Spark query: the greatest struct (what `last(struct, ignoreNulls)`
    over the ascending order picks) per (batch, key) is the Python winner. The sets are drawn
    from a fixed seed (`tests.sampling`), not hypothesis's simplest example (30 empty sets)."""
    batches = samples(rows_strategy, 30, 1)
    assert any(batches)
    rows = [(b * 10 + r[0], *r[1:]) for b, rs in enumerate(batches) for r in rs]
    df = spark.createDataFrame(_table(rows))
    df.createOrReplaceTempView("tie_rows")
    struct = tiebreak_struct_sql(sql.epoch_us("spark", "ts"), "created", ["f1", "f2"])
    got = spark.sql(f"SELECT k, max({struct}) AS w FROM tie_rows GROUP BY k").collect()
    picked = sorted((r["k"], r["w"]["ts"] // US,
                     None if r["w"]["c"] is None else int((r["w"]["c"] - EPOCH).total_seconds()),
                     r["w"]["t0"], r["w"]["t1"]) for r in got)
    assert picked == expected(rows)
