"""APPROX_COUNT_DISTINCT and APPROX_PERCENTILE end to end, against a brute-force oracle.

A small project (one source, one aggregate view with both sketch functions over BIGINT, DOUBLE,
STRING and BOOLEAN inputs, windows 1h and 3h on a 1h slide) gets random events. The oracle
computes each feature from the raw events of `[floor(t, S) - W, floor(t, S))`, from the
definitions in docs/language.md (nothing shared with featql): the exact number of distinct
non-NULL values (an empty string is not counted; -0.0 is 0.0) and the exact nearest-rank
percentile (the smallest value whose rank reaches ceil(p * n), p taken as the decimal written).

- Small cases (hypothesis, <= 24 events: NULLs, ties, negatives, -0.0, empty strings, single
  events, tile edges, empty windows): a window this small is exact in both sketches (HLL keeps
  exact coupons, KLL compacts nothing under k = 200 values), so DuckDB training sets, the online
  read and Spark training sets must equal the oracle exactly.
- Large cases (thousands of distinct values per tile: HLL in its estimating mode, KLL compacted):
  every value within the documented bound (distinct count: 3 standard errors of 1.625 %, plus
  one; percentile: the value is an input whose rank is within 1.33 % of p), DuckDB and the
  online read identical (one library, one merge), Spark within the bound and its distinct
  counts identical to the Python merge of Spark's own tile sketches (the same bytes).
- Cross-engine: Spark's tile sketches are byte-identical to the Python library's for BIGINT,
  STRING and DOUBLE inputs, and a Spark sketch unions with a DuckDB-built one.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from fractions import Fraction
from math import ceil
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.oracle import floor_time
from runtime.oracle_project import OracleProject, disjoint_batch

BASE = datetime(2024, 1, 1)
SLIDE = 3600
WINDOWS = {3600: "1h", 3 * 3600: "3h"}

PROJECT = {
    "featql.toml": '[project]\nname = "sketch"\n',
    "entities/user.sql": "-- @entity(name = user, keys = [user_id BIGINT])\n",
    "sources/events.sql": (
        "-- @source(name = events, timestamp = ts, batch = parquet('data/events/'))\n"
        "CREATE TABLE events (user_id BIGINT, x BIGINT, d DOUBLE, s STRING, b BOOLEAN, "
        "ts TIMESTAMP);\n"),
    "views/us.sql": (
        "-- @feature_view(name = us, entity = user, timestamp = ts,\n"
        "--               windows = ['1h', '3h'], slide = '1h', start = '2024-01-01')\n"
        "SELECT user_id, APPROX_COUNT_DISTINCT(x) AS dc_x, APPROX_COUNT_DISTINCT(d) AS dc_d,\n"
        "       APPROX_COUNT_DISTINCT(s) AS dc_s, APPROX_COUNT_DISTINCT(b) AS dc_b,\n"
        "       APPROX_PERCENTILE(x, 0.5) AS p50_x, APPROX_PERCENTILE(d, 0.9) AS p90_d,\n"
        "       approx_percentile(x, 0.3) AS p30_x, APPROX_PERCENTILE(d, 0.01) AS p01_d\n"
        "FROM events GROUP BY user_id\n"),
    "services/svc.sql": "-- @feature_service(name = svc, features = [us.*])\n",
}

# (feature alias, function, input column, p)
AGGS = [("dc_x", "distinct", "x", None), ("dc_d", "distinct", "d", None),
        ("dc_s", "distinct", "s", None), ("dc_b", "distinct", "b", None),
        ("p50_x", "percentile", "x", "0.5"), ("p90_d", "percentile", "d", "0.9"),
        ("p30_x", "percentile", "x", "0.3"), ("p01_d", "percentile", "d", "0.01")]
HLL_RSE = 1.04 / 64  # 1.04 / sqrt(2^12), docs/language.md
KLL_EPS = 0.0133  # docs/language.md

SCHEMA = pa.schema([("user_id", pa.int64()), ("x", pa.int64()), ("d", pa.float64()),
                    ("s", pa.string()), ("b", pa.bool_()), ("ts", pa.timestamp("us"))])
SPINE = pa.schema([("user_id", pa.int64()), ("t", pa.timestamp("us"))])


# -- the oracle ------------------------------------------------------------------------------------
def present(function: str, values: list[Any]) -> list[Any]:
    """The values that count: not NULL; for a distinct count not '' (DataSketches ignores it)."""
    return [v for v in values if v is not None and not (function == "distinct" and v == "")]


def oracle_value(function: str, p: str | None, values: list[Any]) -> Any:
    vals = present(function, values)
    if function == "distinct":
        return len(set(vals))  # -0.0 == 0.0, True == 1: one value each
    if not vals:
        return None
    assert p is not None
    ordered = sorted(float(v) for v in vals)
    return ordered[max(1, ceil(Fraction(p) * len(ordered))) - 1]


def windows(events: list[dict[str, Any]], row: dict[str, Any]
            ) -> dict[str, tuple[str, str | None, list[Any]]]:
    """Per feature column: (function, p, the raw input values of its window at the row)."""
    hi = floor_time(row["t"], SLIDE)
    out = {}
    for alias, function, col, p in AGGS:
        for w, suffix in WINDOWS.items():
            lo = hi - timedelta(seconds=w)
            out[f"us__{alias}_{suffix}"] = (function, p, [
                e[col] for e in events if e["user_id"] == row["user_id"] and lo <= e["ts"] < hi])
    return out


def expected(events: list[dict[str, Any]], spine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in spine:
        result: dict[str, Any] = dict(row)
        for column, (function, p, values) in windows(events, row).items():
            result[column] = oracle_value(function, p, values)
        out.append(result)
    return out


def assert_exact(got: list[dict[str, Any]], want: list[dict[str, Any]], what: str) -> None:
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for k, v in w.items():
            assert g[k] == v and type(g[k]) is type(v), (what, i, k, g[k], v)


def within_bound(function: str, p: str | None, values: list[Any], got: Any) -> bool:
    """The documented error bound of one feature (docs/language.md)."""
    vals = present(function, values)
    if function == "distinct":
        exact = len(set(vals))
        return isinstance(got, int) and abs(got - exact) <= 3 * HLL_RSE * exact + 1
    if not vals:
        return got is None
    assert p is not None
    floats = [float(v) for v in vals]
    if not isinstance(got, float) or got not in floats:  # KLL returns one of the inputs
        return False
    n = len(floats)
    below = sum(1 for v in floats if v < got) / n  # the value's ranks span [below, upto]
    upto = sum(1 for v in floats if v <= got) / n
    return below - KLL_EPS <= float(p) <= upto + KLL_EPS


def assert_bounded(events: list[dict[str, Any]], spine: list[dict[str, Any]],
                   got: list[dict[str, Any]], what: str) -> None:
    """Every feature within its bound (the issue asks >= 99 %; with 3 standard errors and the
    99 % rank bound, these fixed-seed cases are all within: any miss fails)."""
    misses = []
    for row, g in zip(spine, got, strict=True):
        for column, (function, p, values) in windows(events, row).items():
            if not within_bound(function, p, values, g[column]):
                misses.append((column, g[column], oracle_value(function, p, values)))
    assert not misses, (what, misses[:5])


# -- the cases -------------------------------------------------------------------------------------
def _at(minutes: int, n: int) -> st.SearchStrategy[datetime]:
    return st.integers(0, n).map(lambda i: BASE + timedelta(minutes=minutes * i))


@st.composite
def case(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.sampled_from([1, 2, 3]),
        "x": st.one_of(st.none(), st.integers(-5, 5), st.sampled_from([-(2**62), 2**62])),
        "d": st.one_of(st.none(), st.sampled_from([-2.5, -0.0, 0.0, 0.1, 1e300, -1e-300]),
                       st.integers(-64, 64).map(lambda q: q / 4)),
        "s": st.one_of(st.none(), st.sampled_from(["a", "b", "B", "é", "", "ab"])),
        "b": st.one_of(st.none(), st.booleans()),
        "ts": st.one_of(_at(20, 18), _at(60, 6))}), max_size=16))  # 6 h, many on tile edges
    if events and draw(st.booleans()):  # twins on (user_id, ts) with other values: ties
        for e in draw(st.lists(st.sampled_from(events), min_size=1, max_size=8)):
            events.append({**e, "x": draw(st.one_of(st.none(), st.integers(-5, 5))),
                           "s": draw(st.sampled_from(["a", "b", None]))})
    spine = draw(st.lists(st.fixed_dictionaries({
        "user_id": st.sampled_from([1, 2, 3, 4]),
        "t": st.one_of(_at(15, 40), _at(60, 10),
                       _at(60, 10).map(lambda t: t - timedelta(microseconds=1)))}),
        min_size=1, max_size=12))
    return events, spine


def large_case(seed: int, users: int = 2, per_hour: int = 1500
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Thousands of distinct values per tile over 4 hours; the spine at every quarter hour."""
    rng = random.Random(seed)
    events = []
    for u in range(1, users + 1):
        for h in range(4):
            for _ in range(per_hour * (h + 1) // 2):
                events.append({
                    "user_id": u, "x": rng.randrange(-10**9, 10**9) if rng.random() > 0.02
                    else None, "d": rng.choice([rng.gauss(100.0, 30.0), -rng.expovariate(0.1),
                                                float(rng.randrange(50))]),
                    "s": f"m{rng.randrange(per_hour * 2)}", "b": rng.random() < 0.5,
                    "ts": BASE + timedelta(hours=h, seconds=rng.randrange(3600))})
    spine = [{"user_id": u, "t": BASE + timedelta(minutes=15 * k)}
             for u in range(1, users + 2) for k in range(0, 22)]
    return events, spine


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> OracleProject:
    return OracleProject.create(tmp_path_factory.mktemp("sketch") / "project", PROJECT, SCHEMA,
                                SPINE)


def merge_tiles(project: OracleProject, tiles: pa.Table, spine: list[dict[str, Any]],
                engine: Any) -> list[dict[str, Any]]:
    """The training set's point-in-time merge (`engine`'s SQL) over given tiles."""
    from featql.dialects.pit import build_pit_join, relation_name
    from featql.jobs.join import join_spine

    service = next(s for s in project.manifest.services if s.name == "svc")
    node = build_pit_join(project.manifest, service)
    engine.register_arrow(relation_name("us", "aggregate"), tiles)
    rows: list[dict[str, Any]] = join_spine(engine, node, pa.Table.from_pylist(spine, SPINE),
                                            "t").to_pylist()
    return rows


# -- the tests -------------------------------------------------------------------------------------
def test_the_manifest_types_the_sketch_features(project: OracleProject) -> None:
    view = project.manifest.view("us")
    types = {f.name: f.type for f in view.features}
    assert types["dc_x_1h"] == types["dc_s_3h"] == types["dc_b_1h"] == "BIGINT"
    assert types["p50_x_1h"] == types["p90_d_3h"] == "DOUBLE"
    args = {a.name: (a.function, a.args) for a in view.aggregations}
    assert args["p30_x"] == ("approx_percentile", (0.3,))
    assert args["dc_d"] == ("approx_count_distinct", ())
    from featql.semantics.aggregates import tile_columns

    assert dict(tile_columns(view))["dc_x__hll"] == "BINARY"
    assert dict(tile_columns(view))["p50_x__kll"] == "BINARY"


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=case())
def test_small_windows_are_exact_on_duckdb_and_online(
        project: OracleProject, data: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    events, spine = data
    want = expected(events, spine)
    assert_exact(project.training(events, spine, "duckdb"), want, "DuckDB training set")
    assert_exact(project.online("us", project.duck_tiles("us"), spine), want, "online read")


def test_a_single_event_and_empty_windows(project: OracleProject) -> None:
    events = [{"user_id": 1, "x": -7, "d": -0.0, "s": "é", "b": False,
               "ts": BASE + timedelta(hours=1)}]
    spine = [{"user_id": 1, "t": BASE + timedelta(hours=1)},  # the window ends at the event
             {"user_id": 1, "t": BASE + timedelta(hours=2)},  # the event's tile is the 1h
             {"user_id": 1, "t": BASE + timedelta(hours=4, microseconds=1)},  # 3h: gone
             {"user_id": 9, "t": BASE + timedelta(hours=2)}]  # an entity without events
    want = expected(events, spine)
    assert want[1]["us__dc_x_1h"] == 1 and want[1]["us__p50_x_1h"] == -7.0
    assert want[0]["us__dc_x_1h"] == 0 and want[0]["us__p50_x_1h"] is None
    assert_exact(project.training(events, spine, "duckdb"), want, "DuckDB training set")
    assert_exact(project.online("us", project.duck_tiles("us"), spine), want, "online read")


def test_large_windows_are_within_the_bound_and_duckdb_equals_online(
        project: OracleProject) -> None:
    from featql.engines.duckdb import DuckDBEngine

    events, spine = large_case(7)
    got = project.training(events, spine, "duckdb")
    assert_bounded(events, spine, got, "DuckDB training set")
    tiles = project.duck_tiles("us")  # a tile of > 200 values is compacted with random bits: the
    engine = DuckDBEngine(threads=1)  # same tiles, read by both, give the same values
    try:
        merged = merge_tiles(project, tiles, spine, engine)
    finally:
        engine.close()
    assert_bounded(events, spine, merged, "DuckDB merge")
    assert_exact(project.online("us", tiles, spine), merged, "online read vs DuckDB's merge")
    # the estimating regimes were reached: the exact values are not all reproduced
    want = expected(events, spine)
    assert any(g[k] != w[k] for g, w in zip(got, want, strict=True) for k in w
               if k.startswith("us__dc_"))


@pytest.mark.slow
def test_spark_small_windows_are_exact(
        project: OracleProject, spark_engine: Any) -> None:
    """25 random cases in one Spark job (users made disjoint per case)."""
    events, spine = disjoint_batch(case, 25, 1)
    want = expected(events, spine)
    assert_exact(project.training(events, spine, spark_engine), want, "Spark training set")
    assert_exact(project.training(events, spine, "duckdb"), want, "DuckDB training set")


@pytest.mark.slow
def test_spark_large_windows_are_within_the_bound(project: OracleProject,
                                                  spark_engine: Any) -> None:
    """Spark's merge within the bound; its distinct counts equal the Python merge (the online
    read) of Spark's own tile sketches: the same bytes give the same estimate."""
    events, spine = large_case(11)
    got = project.training(events, spine, spark_engine)
    assert_bounded(events, spine, got, "Spark training set")
    tiles = project.tiles("us", spark_engine)
    got = merge_tiles(project, tiles, spine, spark_engine)
    assert_bounded(events, spine, got, "Spark's merge")
    from_spark_tiles = project.online("us", tiles, spine)
    assert_bounded(events, spine, from_spark_tiles, "online read of Spark's tiles")
    for g, o in zip(got, from_spark_tiles, strict=True):
        for k in g:
            if k.startswith("us__dc_"):
                assert g[k] == o[k], (k, g[k], o[k])


@pytest.mark.slow
def test_spark_sketches_are_the_python_librarys_bytes_and_merge_with_duckdbs(
        spark: Any) -> None:
    """Binary compatibility and the hashing of each input type: Spark's `hll_sketch_agg` over
    featql's key (a DOUBLE as its bits) gives the Python library's bytes for the same values
    in the same order; a KLL sketch from Spark reads in Python; sketches from both merge."""
    import duckdb

    from featql.semantics import sketches as sk

    rng = random.Random(5)
    columns: dict[str, tuple[str, list[Any]]] = {
        "BIGINT": ("x BIGINT", [rng.randrange(-2**63, 2**63) for _ in range(3000)] + [0, -1]),
        "STRING": ("x STRING", [f"v{rng.randrange(5000)}é" for _ in range(3000)] + ["", "a"]),
        "DOUBLE": ("x DOUBLE", [rng.uniform(-1e9, 1e9) for _ in range(3000)]
                   + [0.0, -0.0, 5e-324, float("inf"), -float("inf"), float("nan"), 1.5]),
    }
    for ftype, (schema, values) in columns.items():
        for n in (5, 100, len(values)):  # list, set and HLL modes
            df = spark.createDataFrame([(v,) for v in values[:n]], schema).coalesce(1)
            df.createOrReplaceTempView("sk_in")
            key = sk.key_sql("spark", sk.HASH_KINDS[ftype], "x")
            built = bytes(spark.sql(f"SELECT hll_sketch_agg(k, {sk.LG_K}) FROM "
                                    f"(SELECT {key} AS k FROM sk_in)").collect()[0][0])
            assert built == sk.hll_build(values[:n]), (ftype, n)
        if ftype == "DOUBLE":  # the SQL bits are Java's doubleToLongBits, as Python computes
            bits = [r[0] for r in spark.sql(f"SELECT {sk.spark_double_bits('x')} FROM sk_in")
                    .collect()]
            assert bits == [sk.double_bits(v) for v in values]
    # a tile sketch from Spark merged with one built by DuckDB's UDF
    first = list(range(0, 3000))
    second = list(range(2000, 6000))
    df = spark.createDataFrame([(v,) for v in first], "x BIGINT").coalesce(1)
    df.createOrReplaceTempView("sk_in")
    from_spark = bytes(spark.sql(f"SELECT hll_sketch_agg(x, {sk.LG_K}) FROM sk_in")
                       .collect()[0][0])
    con = duckdb.connect()
    sk.register_udfs(con)
    con.register("t", pa.table({"x": second}))
    from_duckdb = bytes(con.sql(f"SELECT featql_hll_build(list({sk.key_sql('duckdb', 'i', 'x')}))"
                                " FROM t").fetchall()[0][0])
    merged = sk.hll_estimate([from_spark, from_duckdb])
    assert abs(merged - 6000) <= 3 * HLL_RSE * 6000
    assert merged == sk.hll_estimate([sk.hll_build(first), sk.hll_build(second)])
    # Spark's own union of the DuckDB sketch and its own: the same estimate
    spark.createDataFrame([(from_spark,), (from_duckdb,)], "b BINARY").createOrReplaceTempView(
        "sk_two")
    assert spark.sql("SELECT hll_sketch_estimate(hll_union_agg(b)) FROM sk_two").collect()[0][0] \
        == merged
    # KLL: Spark's bytes read in Python; merged with a Python sketch
    kll = bytes(spark.sql(f"SELECT kll_sketch_agg_double(CAST(x AS DOUBLE), {sk.KLL_K}) "
                          "FROM sk_in").collect()[0][0])
    both = sk.kll_quantile([kll, sk.kll_build(second)], 0.5)
    assert both is not None and abs(sum(1 for v in first + second if v <= both) / 7000 - 0.5) \
        <= KLL_EPS
    small = bytes(spark.sql("SELECT kll_sketch_agg_double(CAST(x AS DOUBLE), 200) FROM "
                            "(SELECT * FROM sk_in WHERE x < 10)").collect()[0][0])
    assert sk.kll_quantile([small], 0.3) == 2.0  # ceil(0.3 * 10) = 3rd of 0..9
    spark.createDataFrame([(small,)], "b BINARY").createOrReplaceTempView("sk_small")
    assert spark.sql("SELECT kll_sketch_get_quantile_double(b, 0.3) FROM sk_small"
                     ).collect()[0][0] == 2.0
