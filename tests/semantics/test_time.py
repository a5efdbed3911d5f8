"""floor(t, S) and the window boundaries, in Python and in the SQL of both dialects."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featql.semantics.time import (
    batch_window,
    floor,
    floor_datetime,
    floor_s,
    floor_us,
    floor_us_sql,
    stream_window,
    tile_range,
)

US = 1_000_000
HOUR = 3600


@pytest.mark.parametrize(("t", "s", "want"), [
    (0, 3600, 0), (3599, 3600, 0), (3600, 3600, 3600), (-1, 3600, -3600),
    (-3600, 3600, -3600), (-3601, 3600, -7200), (7, 7, 7), (13, 7, 7),
])
def test_floor_rounds_down_also_before_1970(t: int, s: int, want: int) -> None:
    assert floor(t, s) == want
    assert floor_us(t * US, s) == want * US
    assert floor_s(t * US + 999_999, s) == want
    assert floor_datetime(dt.datetime(1970, 1, 1) + dt.timedelta(seconds=t), s) == (
        dt.datetime(1970, 1, 1) + dt.timedelta(seconds=want))


@given(st.integers(-(10 ** 16), 10 ** 16), st.integers(1, 10 ** 6))
def test_floor_is_the_greatest_multiple_not_after_t(t: int, s: int) -> None:
    f = floor(t, s)
    assert f % s == 0 and f <= t < f + s


@given(st.integers(-(10 ** 15), 10 ** 15), st.integers(1, 10), st.integers(1, 7 * 86400))
def test_windows(t: int, m: int, slide: int) -> None:
    lo, hi = batch_window(t, m * slide, slide)
    assert hi == floor(t, slide) and hi - lo == m * slide
    assert stream_window(t, m * slide, slide) == (lo, t)


def test_tile_range_is_half_open() -> None:
    starts = [0, 10, 20, 30]
    assert tile_range(starts, 10, 30) == (1, 3)
    assert tile_range(starts, 11, 30) == (2, 3)
    assert tile_range(starts, -100, 0) == (0, 0)
    assert tile_range(starts, 40, 50) == (4, 4)
    assert tile_range([], 0, 10) == (0, 0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-(10 ** 15), 10 ** 15), min_size=1, max_size=30),
       st.sampled_from([1, 7, 3600, 86400]))
def test_floor_sql_on_duckdb_equals_python(times: list[int], slide: int) -> None:
    import duckdb

    values = ", ".join(f"({t})" for t in times)
    con = duckdb.connect()
    try:
        got = con.execute(f"SELECT {floor_us_sql('duckdb', 'us', slide)} FROM (VALUES {values}) "
                          "AS v(us)").fetchall()
    finally:
        con.close()
    assert [g for (g,) in got] == [floor_us(t, slide) for t in times]


@pytest.mark.slow
def test_floor_sql_on_spark_equals_python(spark: object) -> None:
    times = [-(10 ** 15), -HOUR * US - 1, -1, 0, 1, HOUR * US - 1, HOUR * US, 10 ** 15 + 17]
    for slide in (1, 7, HOUR, 86400):
        values = ", ".join(f"({t}L)" for t in times)
        rows = spark.sql(  # type: ignore[attr-defined]
            f"SELECT {floor_us_sql('spark', 'us', slide)} FROM VALUES {values} AS v(us)"
        ).collect()
        assert [r[0] for r in rows] == [floor_us(t, slide) for t in times]
