"""APPROX_COUNT_DISTINCT and APPROX_PERCENTILE: Apache DataSketches sketches as tile partials.

Both are defined once, here, on the maintained DataSketches libraries: the Python binding
(`datasketches`, pinned) and the Java library inside Spark (`hll_sketch_agg`). A tile's
partial is the serialized sketch (BINARY); a window merges its tiles' sketches, with the same
Python code on every engine (DuckDB and Spark call it as UDFs) and in the online read.

APPROX_COUNT_DISTINCT(x): an HLL sketch, lgConfigK = 12 (4,096 buckets), target HLL_8, serialized
*updatable* — exactly what Spark's `hll_sketch_agg(x, 12)` produces, so a tile sketch built by
Spark and one built by DuckDB/Python are the same bytes for the same values in the same order,
and either merges with the other. Hashing (MurmurHash3 of the value's bytes, seed 9001) is the
library's for each input kind: BIGINT/INT/BOOLEAN as a 64-bit integer, DOUBLE/FLOAT as the bits
of the canonical double (-0.0 is 0.0, every NaN one NaN), STRING as its UTF-8 bytes (the empty
string is not counted: DataSketches ignores it, in Java and C++ alike). Spark cannot hash a
DOUBLE natively (`hll_sketch_agg` takes INT, BIGINT, STRING or BINARY), so the event stage turns
a DOUBLE into the bits of its canonical value (`Double.doubleToLongBits`, a BIGINT, computed in
SQL: `spark_double_bits`) and hashes that, which is what the library's own double update does.
DuckDB has no DataSketches: the tile stage hands
`list(x)` to a Python UDF (`featql_hll_build`, each value tagged with its kind). Every engine
estimates a window with the same Python code: DuckDB's `featql_hll_estimate(list(sketch) OVER
(frame))`, Spark's same-named Python (Arrow) UDF over `collect_list` (`SPARK_ARROW_UDFS`), the
online read:
the union of the tile sketches, estimated from its registers alone (`register_estimate`: the
library's composite estimator, never the HIP accumulator, which depends on the order and the
grouping of the unions: without it a compacted read differed from the all-fine one by up to
~1 % past 384 distinct values), rounded half up; an empty window is 0 (NULL never counts).
Error: relative standard error 1.04 / sqrt(4096) = 1.625 % (`HLL_RSE`); up to 384 distinct
values the sketch holds exact 26-bit coupons (about 4 bytes a value; above, 4,136 bytes) and
the estimate is exact but for hash collisions. The bound the tests hold it to, in >= 99 % of
windows: |estimate - exact| <= 3 * HLL_RSE * exact (`hll_bound`), plus one for rounding.

APPROX_PERCENTILE(x, p): a KLL sketch of doubles, k = 200, in the DataSketches serialized
format (either library reads it), p a constant in (0, 1). The value is a *nearest-rank*
percentile (as PERCENTILE_DISC): the smallest input value v with rank(v) = #{x <= v} >=
ceil(p * n), n the window's non-NULL, non-NaN inputs, as DOUBLE (BIGINT inputs beyond 2**53
lose precision). The libraries' own KLL compaction is random (C++: a clock-seeded generator;
Java: the JVM-wide `KllSketch.random`), so past 200 values a tile differed between runs and
engines, and Spark's `kll_merge_agg_double` compacted again. featql builds the tile sketch
itself, deterministically, from the sorted values (`featql.semantics.quantiles`: one item of
weight 2^i per contiguous block of 2^i values), in Python on every engine (DuckDB's and
Spark's `featql_kll_build` UDF over `list(x)` / `collect_list(x)`), and merges a window by
taking every item of its tiles, with no further compaction, and picking the nearest rank
(`kll_quantile`; DuckDB's and Spark's `featql_kll_quantile`, the online read): the same bytes
and the same value everywhere. Error, deterministic (every window): the returned value's
normalized rank is within 1/k = 0.5 % of p over fine tiles, 0.75 % when coarse (compacted)
tiles are merged too (`KLL_EPSILON`); a tile of at most k values is kept whole (exact).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from featql.core.types import NUMERIC
from featql.semantics import quantiles
from featql.semantics.aggregates import AggregateFunction, Partial, Window, partial_column

if TYPE_CHECKING:
    from sqlglot import exp

LG_K = 12
"""HLL lgConfigK: 4,096 buckets (Spark's default)."""
KLL_K = quantiles.K
"""KLL k (Spark's and the library's default)."""
HLL_RSE = 1.04 / math.sqrt(1 << LG_K)
"""Relative standard error of the HLL estimate (1.625 %)."""
KLL_EPSILON = quantiles.COARSE_RANK_ERROR
"""The bound on a percentile's normalized rank error, in every window: 1/200 over fine tiles,
0.75 % with coarse tiles (`featql.semantics.quantiles`); tighter than KLL's own 1.33 % at 99 %
confidence (the library's `get_normalized_rank_error(200, False)`)."""

HASH_KINDS = {"BIGINT": "i", "INT": "i", "BOOLEAN": "i", "DOUBLE": "d", "FLOAT": "d",
              "STRING": "s"}
"""How APPROX_COUNT_DISTINCT hashes each accepted input type: as an integer, a double, text."""
_KEY_CAST = {"i": "BIGINT", "d": "DOUBLE", "s": "STRING"}
_SIGN = 1 << 63
_HLL_MODE, _OUT_OF_ORDER = 2, 16  # HLL preamble: mode byte 7 (low 2 bits), flags byte 5


def hll_bound(exact: int) -> float:
    """The documented bound on |estimate - exact| (3 standard errors, plus rounding)."""
    return 3 * HLL_RSE * exact + 1


# -- Python: build, merge, estimate (the DuckDB UDFs and the online read) ---------------------
def _hll() -> Any:
    import datasketches as ds

    return ds.hll_sketch(LG_K, ds.tgt_hll_type.HLL_8)


def hll_update(sketch: Any, value: Any) -> None:
    """Add one input value as the library hashes its Python type (bool as an integer)."""
    if value is None:
        return
    if isinstance(value, bool):
        value = int(value)
    sketch.update(value)


def hll_build(values: Sequence[Any]) -> bytes:
    """A tile's sketch from its input values (None skipped), serialized as Spark does."""
    sketch = _hll()
    for v in values:
        hll_update(sketch, v)
    return bytes(sketch.serialize_updatable())


def hll_union(sketches: Sequence[bytes | None]) -> Any:
    """The union of serialized sketches (None skipped), or None when there is none."""
    import datasketches as ds

    union = None
    for b in sketches:
        if b is None:
            continue
        if union is None:
            union = ds.hll_union(LG_K)
        union.update(ds.hll_sketch.deserialize(bytes(b)))
    return union


def hll_estimate(sketches: Sequence[bytes | None]) -> int:
    """The distinct-count estimate over serialized sketches: 0 over none, else the union's
    `register_estimate` rounded half up (as Java's Math.round)."""
    union = hll_union(sketches)
    return 0 if union is None else _round(register_estimate(union))


def register_estimate(union: Any) -> float:
    """The union's estimate as a function of its registers alone, whatever the order and the
    grouping of the sketches unioned. A union in HLL mode keeps a flag, "out of order", that
    picks the estimator: unset (the result copies one HLL sketch, or a list/set of coupons
    grew into HLL mode inside the union), the library returns the HIP accumulator, which
    depends on the order of the updates; set, the composite estimator over the registers.
    So the union of the fine tiles and the union of coarse and fine edge tiles (the same
    registers) could differ (up to ~1 % in tests past 384 distinct values). featql sets the
    flag in the result's serialized form (preamble byte 5, bit 16) and lets the library
    estimate: always the composite estimator (error 1.04 / sqrt(K)). In list or set mode
    (at most 384 coupons) the estimate is the coupons' and needs nothing."""
    import datasketches as ds

    result = union.get_result(ds.tgt_hll_type.HLL_8)
    packed = bytearray(result.serialize_updatable())
    if packed[7] & 3 != _HLL_MODE:
        return float(result.get_estimate())
    packed[5] |= _OUT_OF_ORDER
    return float(ds.hll_sketch.deserialize(bytes(packed)).get_estimate())


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def _tagged(value: str) -> Any:
    """A DuckDB tile value (`featql_hll_build`'s input): kind tag + text, back to its value."""
    kind, text = value[0], value[1:]
    if kind == "i":
        return int(text)
    if kind == "d":
        return float(text)  # DuckDB prints doubles shortest round-trip: exact
    return text


def kll_build(values: Sequence[Any]) -> bytes:
    """A tile's KLL sketch from its input values (None and NaN skipped), deterministic: the
    same bytes for the same values in any order (`featql.semantics.quantiles`)."""
    return quantiles.build(values)


def kll_items(sketches: Sequence[bytes | None]) -> list[tuple[float, int]]:
    """The (value, weight) items every sketch retains, sorted by value (weights sum to n)."""
    return quantiles.items(sketches)


def natural_rank(p: float, n: int) -> int:
    """ceil(p * n), with DataSketches Java's rounding of p * n to 1e-7 first (so 0.3 * 10 is 3,
    not 3.0000000000000004 -> 4), at least 1."""
    rank = p * n
    if n <= 10_000_000:
        rank = math.floor(rank * 1e7 + 0.5) / 1e7
    return max(1, math.ceil(rank))


def kll_quantile(sketches: Sequence[bytes | None], p: float,
                 cache: quantiles.Decoded | None = None) -> float | None:
    """The nearest-rank percentile over the items of the sketches (None when they hold no
    value): the smallest item whose cumulative weight reaches natural_rank(p, n). With a
    `cache` (the Spark UDFs': a batch of windows), the same value by `quantiles.nearest_rank`
    (numpy, the decoded sketches reused across calls)."""
    if cache is not None:
        return quantiles.nearest_rank(sketches, lambda n: natural_rank(p, n), cache)
    items = kll_items(sketches)
    n = sum(w for _, w in items)
    if n == 0:
        return None
    need, seen = natural_rank(p, n), 0
    for value, weight in items:
        seen += weight
        if seen >= need:
            return float(value)
    return float(items[-1][0])


# -- DuckDB: Python UDFs the engine registers on each connection -------------------------------
def _duck_hll_build(values: list[str | None]) -> bytes:
    return hll_build([None if v is None else _tagged(v) for v in values])


def _duck_kll_quantile(sketches: list[bytes | None], p: float) -> float | None:
    return kll_quantile(sketches, p)


DUCKDB_UDFS: tuple[tuple[str, Callable[..., Any], tuple[str, ...], str], ...] = (
    ("featql_hll_build", _duck_hll_build, ("VARCHAR[]",), "BLOB"),
    ("featql_hll_estimate", hll_estimate, ("BLOB[]",), "BIGINT"),
    ("featql_kll_build", kll_build, ("DOUBLE[]",), "BLOB"),
    ("featql_kll_quantile", _duck_kll_quantile, ("BLOB[]", "DOUBLE"), "DOUBLE"),
)
"""(name, Python function, DuckDB parameter types, return type) of every UDF the sketch SQL
calls on DuckDB; `featql.engines.duckdb` registers them on its connections (`register_udfs`)."""


SPARK_UDFS: tuple[tuple[str, Callable[..., Any], str], ...] = (
    ("featql_hll_estimate", lambda sketches: hll_estimate(list(sketches or ())), "bigint"),
    ("featql_kll_build", lambda values: kll_build(list(values or ())), "binary"),
    ("featql_kll_quantile", lambda sketches, p: kll_quantile(list(sketches or ()), p),
     "double"),
)
"""(name, Python function, Spark return type): the Python UDFs the Spark sketch SQL calls
(`register_spark_udfs`), the same functions as DuckDB's and the online read's. Spark builds
HLL tiles natively (`hll_sketch_agg`: the library's bytes) but estimates a window in Python
(`register_estimate`), and builds and reads KLL tiles in Python (its own KLL compacts with
random bits)."""


def _arrow_hll_estimate(sketches: Any) -> Any:
    import pyarrow as pa

    return pa.array([hll_estimate(s or ()) for s in sketches.to_pylist()], pa.int64())


def _arrow_kll_build(values: Any) -> Any:
    import pyarrow as pa

    return pa.array([kll_build(v or ()) for v in values.to_pylist()], pa.binary())


def _arrow_kll_quantile(sketches: Any, p: Any) -> Any:
    import pyarrow as pa

    cache: quantiles.Decoded = {}  # a window's frame shares most tiles with the next row's
    return pa.array([kll_quantile(s or (), q, cache)
                     for s, q in zip(sketches.to_pylist(), p.to_pylist(), strict=True)],
                    pa.float64())


SPARK_ARROW_UDFS: tuple[tuple[str, Callable[..., Any], str], ...] = (
    ("featql_hll_estimate", _arrow_hll_estimate, "bigint"),
    ("featql_kll_build", _arrow_kll_build, "binary"),
    ("featql_kll_quantile", _arrow_kll_quantile, "double"),
)
"""`SPARK_UDFS` as Arrow UDFs (`pyspark.sql.functions.arrow_udf`, Spark >= 4.1; no pandas):
the same functions over a batch of rows at a time (pyarrow arrays in and out), the decoded
KLL sketches of a batch shared by its windows; the same bytes and values."""


def register_spark_udfs(spark: Any, arrow: bool = True) -> None:
    """Register the sketch UDFs on a SparkSession (again is harmless): `SPARK_ARROW_UDFS`
    where pyspark has `arrow_udf` (and `arrow`), else the row-at-a-time `SPARK_UDFS`."""
    try:
        from pyspark.sql.functions import ArrowUDFType, arrow_udf
    except ImportError:
        arrow = False
    if arrow:
        import warnings

        with warnings.catch_warnings():  # "preferred to specify type hints": explicit here
            warnings.simplefilter("ignore", UserWarning)
            for name, fn, ret in SPARK_ARROW_UDFS:
                spark.udf.register(name, arrow_udf(fn, ret, ArrowUDFType.SCALAR))
        return
    for name, fn, ret in SPARK_UDFS:
        spark.udf.register(name, fn, ret)


def register_udfs(con: Any) -> None:
    """Register `DUCKDB_UDFS` on a DuckDB connection (once; types parsed by the connection)."""
    for name, fn, params, ret in DUCKDB_UDFS:
        try:
            con.create_function(name, fn, [con.sql(f"SELECT NULL::{t}").types[0] for t in params],
                                con.sql(f"SELECT NULL::{ret}").types[0], null_handling="special")
        except Exception as e:  # already registered on this connection
            if "already" not in str(e).lower():
                raise


# -- SQL: the input key of the event stage, the tile build, the window merge ------------------
def key_sql(dialect: str, kind: str, input_sql: str) -> str:
    """APPROX_COUNT_DISTINCT's input as the tile build hashes it. DuckDB: the value as text
    tagged with its kind (`featql_hll_build` parses it back; doubles print shortest round-trip).
    Spark: integers and text as they are; a double as the BIGINT bits of its canonical value
    (`spark_double_bits`)."""
    x = input_sql
    if dialect == "duckdb":
        return f"('{kind}' || CAST(CAST({x} AS {_duck(kind)}) AS VARCHAR))"
    if kind == "d":
        return spark_double_bits(f"CAST({x} AS DOUBLE)")
    return f"CAST({x} AS {_KEY_CAST[kind]})"


def spark_double_bits(d: str) -> str:
    """Java's `Double.doubleToLongBits` of the canonical double `d` (-0.0 as 0.0), in
    deterministic Spark SQL (Spark has no bit cast, and its `reflect` may not appear inside an
    aggregate): the exponent from LOG2, corrected by one either way against exact powers of
    two, the mantissa by exact scaling (dividing by a power of two loses nothing); subnormals,
    infinities and NaN apart. `double_bits` is the same in Python (the tests compare them)."""
    a = f"ABS({d})"
    e0 = f"CAST(FLOOR(LOG2({a})) AS INT)"
    e = (f"({e0} - CASE WHEN POWER(2, {e0}) > {a} THEN 1 ELSE 0 END "
         f"+ CASE WHEN POWER(2, {e0} + 1) <= {a} THEN 1 ELSE 0 END)")
    m52 = "4503599627370496"  # 2^52
    normal = (f"CAST({e} + 1023 AS BIGINT) * {m52} + "
              f"CAST(({a} / POWER(2, {e}) - 1) * {m52} AS BIGINT)")
    sub = f"CAST({a} * POWER(2, 1022) * {m52} AS BIGINT)"
    mag = (f"CASE WHEN {a} = CAST('Infinity' AS DOUBLE) THEN 9218868437227405312 "
           f"WHEN {a} < 2.2250738585072014E-308D THEN {sub} ELSE {normal} END")
    return (f"CASE WHEN {d} IS NULL THEN NULL WHEN isnan({d}) THEN 9221120237041090560 "
            f"WHEN {d} = 0 THEN CAST(0 AS BIGINT) ELSE ({mag}) + CASE WHEN {d} < 0 "
            "THEN -9223372036854775807 - 1 ELSE 0 END END")


def _duck(kind: str) -> str:
    return {"i": "BIGINT", "d": "DOUBLE", "s": "VARCHAR"}[kind]


def double_bits(value: float) -> int:
    """`Double.doubleToLongBits` of the canonical double (-0.0 as 0.0, NaN canonical): what the
    Spark key of a DOUBLE is, and what the library hashes for a double (tests)."""
    if value != value:
        return 0x7FF8000000000000
    bits: int = struct.unpack("<q", struct.pack("<d", 0.0 if value == 0 else value))[0]
    return bits


def _literal(dialect: str, p: float) -> str:
    return f"CAST('{p!r}' AS DOUBLE)"


def _p(args: Sequence[int | float]) -> float:
    if not args:
        raise ValueError("APPROX_PERCENTILE needs its p (Aggregation.args)")
    return float(args[0])


class ApproxCountDistinct(AggregateFunction):
    """APPROX_COUNT_DISTINCT(x): a DataSketches HLL sketch per tile, unioned per window."""

    name = "approx_count_distinct"
    sql_name = "APPROX_COUNT_DISTINCT"
    wants = "a BIGINT, INT, DOUBLE, FLOAT, BOOLEAN or STRING input"
    empty = 0

    def sqlglot_class(self) -> type[exp.AggFunc]:
        from sqlglot import exp

        return exp.ApproxDistinct

    def accepts(self, input_type: str | None) -> bool:
        return input_type in HASH_KINDS

    def result_type(self, input_type: str | None) -> str:
        return "BIGINT"

    def input_node(self, arg: exp.Expr, input_type: str | None) -> exp.Expr:
        """The event stage's input column: the key the tile build hashes (`key_sql`)."""
        from featql.semantics.sketch_key import sketch_key

        return sketch_key(arg, HASH_KINDS.get(input_type or "", "s"))

    def partials(self, result_type: str) -> tuple[Partial, ...]:
        return (Partial("hll", "BINARY", "custom", "custom"),)

    def partial_sql(self, dialect: str, partial: str, input_sql: str,
                    time_sql: str | None) -> str:
        if dialect == "duckdb":
            return f"featql_hll_build(list({input_sql}))"
        return f"hll_sketch_agg({input_sql}, {LG_K})"

    def build_sql(self, dialect: str, input_sql: str | None, input_type: str | None,
                  result_type: str, time_sql: str | None = None) -> tuple[tuple[str, str], ...]:
        key = key_sql(dialect, HASH_KINDS.get(input_type or "", "s"), input_sql or "NULL")
        return (("hll", self.partial_sql(dialect, "hll", key, time_sql)),)

    def merge_sql(self, dialect: str, columns: Mapping[str, str], frame: str) -> str:
        col = columns["hll"]
        if dialect == "duckdb":
            return f"featql_hll_estimate(list({col}) {frame})"
        return f"featql_hll_estimate(collect_list({col}) {frame})"

    def finalize_sql(self, dialect: str, merged: Mapping[str, str]) -> str:
        raise NotImplementedError("merged by merge_sql")

    def fold(self, values: Sequence[Any]) -> dict[str, Any]:
        return {"hll": hll_build(values)}

    def merge(self, window: Window, aggregation: str) -> dict[str, Any]:
        return {"hll": hll_union(window.present(partial_column(aggregation, "hll")))}

    def finalize(self, merged: Mapping[str, Any], result_type: str) -> Any:
        union = merged["hll"]
        return 0 if union is None else _round(register_estimate(union))


class ApproxPercentile(AggregateFunction):
    """APPROX_PERCENTILE(x, p): a DataSketches KLL sketch of doubles per tile; the window's
    nearest-rank percentile over its tiles' items."""

    name = "approx_percentile"
    sql_name = "APPROX_PERCENTILE"
    wants = "a numeric input (BIGINT, INT, DOUBLE, FLOAT)"
    arity = ("p",)
    examples = ("0.5",)

    def sqlglot_class(self) -> type[exp.AggFunc]:
        from featql.semantics.calls import ApproxPercentileCall

        return ApproxPercentileCall

    def check_args(self, args: Sequence[Any]) -> str | None:
        if len(args) != 1:
            return "APPROX_PERCENTILE() takes 2 arguments: APPROX_PERCENTILE(x, p)"
        p = args[0]
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p < 1:
            return f"APPROX_PERCENTILE's p must be a number strictly between 0 and 1, got {p}"
        return None

    def accepts(self, input_type: str | None) -> bool:
        return input_type in NUMERIC

    def result_type(self, input_type: str | None) -> str:
        return "DOUBLE"

    def input_cast(self, input_type: str | None) -> str | None:
        return "DOUBLE"

    def partials(self, result_type: str) -> tuple[Partial, ...]:
        return (Partial("kll", "BINARY", "custom", "custom"),)

    def partial_sql(self, dialect: str, partial: str, input_sql: str,
                    time_sql: str | None) -> str:
        if dialect == "duckdb":
            return f"featql_kll_build(list({input_sql}))"
        return f"featql_kll_build(collect_list({input_sql}))"

    def merge_sql(self, dialect: str, columns: Mapping[str, str], frame: str) -> str:
        col, p = columns["kll"], _literal(dialect, _p(self.args))
        if dialect == "duckdb":
            return f"featql_kll_quantile(list({col}) {frame}, {p})"
        return f"featql_kll_quantile(collect_list({col}) {frame}, {p})"

    def finalize_sql(self, dialect: str, merged: Mapping[str, str]) -> str:
        raise NotImplementedError("merged by merge_sql")

    def fold(self, values: Sequence[Any]) -> dict[str, Any]:
        return {"kll": kll_build(values)}

    def merge(self, window: Window, aggregation: str) -> dict[str, Any]:
        return {"kll": list(window.present(partial_column(aggregation, "kll")))}

    def finalize(self, merged: Mapping[str, Any], result_type: str) -> Any:
        sketches = merged["kll"]
        return kll_quantile(sketches, _p(self.args)) if sketches else None


SKETCHES: tuple[AggregateFunction, ...] = (ApproxCountDistinct(), ApproxPercentile())
"""The sketch functions, registered in `featql.semantics.aggregates.FUNCTIONS`."""
