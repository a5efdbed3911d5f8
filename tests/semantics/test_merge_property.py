"""Property: every aggregate function merges identically in DuckDB SQL, Spark SQL and Python.

Each case is one entity with a slide S, random raw events (NULL inputs included, times before
and after 1970, many on tile edges) and 1-3 lookup times (many exactly on a slide boundary or
one microsecond before it). The events are folded into tiles (`AggregateFunction.fold`), and
every aggregation of `FUNCTIONS` over a BIGINT, a DOUBLE and a BOOLEAN input is computed over
windows of 1, 2, 3 and 5 slides at each time:

- by the point-in-time join's SQL merge, on DuckDB (`DuckDBEngine.point_in_time`) and on Spark;
- by the online read: the tiles packed as an online cell and merged by `TileMerger`;
- by `featql.semantics.windows.batch_merge` over plain Python lists;
- and, as an independent oracle, by aggregating the raw events of `[floor(t,S) - W, floor(t,S))`.

All five must be equal, exactly: DOUBLE inputs are multiples of 1/4 in [-256, 256], so every
sum is exact in any order and AVG is one IEEE division everywhere. STDDEV/VAR are the exception
against the oracle only: the merges (both SQL folds and Python's) are the same IEEE operations in
tile order and must be equal bit for bit to each other, but they differ from a two-pass
computation over the raw events by rounding (relative 1e-9, `featql.semantics.spread`); the
functions with an argument (LAST_N, TOP_K, ...) are built with n = 2. Every spine row also asks
the views of the other slides, where its entity has no tile: empty windows everywhere (COUNT 0,
the others NULL). The tiles themselves are checked too: DuckDB's and Spark's `build_sql` over
the raw events give the tiles `fold` gives.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sampling import samples

from featql.core.ir import Aggregation, Column, Feature, FeatureView, Location
from featql.dialects.pit import RID, SPINE_TS, TILE_START, OutputFeature, PointInTimeJoin, ViewJoin
from featql.online.tiles import TileMerger, encode_tiles
from featql.semantics import sql
from featql.semantics.aggregates import FUNCTIONS, for_aggregation, partial_column, tile_columns
from featql.semantics.time import floor, floor_us_sql
from featql.semantics.types import arrow_type, python_value
from featql.semantics.windows import batch_merge

US = 1_000_000
SLIDES = (1, 2, 3, 7)  # seconds
MULTIPLES = (1, 2, 3, 5)  # windows, in slides
INPUTS = {"i": "BIGINT", "d": "DOUBLE", "b": "BOOLEAN"}
BASES = (int(dt.datetime(2024, 3, 1).timestamp()) * US, -90 * US)  # after and before 1970
EPOCH = dt.datetime(1970, 1, 1)


P = 0.3  # APPROX_PERCENTILE's p (ceil(0.3 * n) is where float rounding would bite)


def _args(name: str, arity: tuple[str, ...]) -> tuple[int | float, ...]:
    return (P,) if name == "approx_percentile" else tuple(2 for _ in arity)


def _aggregations() -> tuple[Aggregation, ...]:
    out = [Aggregation("n", "count", None, None, "BIGINT")]
    for col, t in INPUTS.items():
        for name, fn in FUNCTIONS.items():
            if fn.accepts(t):
                out.append(Aggregation(f"{name}_{col}", name, col, t,  # type: ignore[arg-type]
                                       fn.result_type(t), args=_args(name, fn.arity)))
    return tuple(out)


AGGS = _aggregations()


def _view(slide: int) -> FeatureView:
    windows = tuple(m * slide for m in MULTIPLES)
    return FeatureView(
        name=f"v{slide}", base_name=f"v{slide}", variant=None, location=Location("v.sql", 1, 1),
        kind="aggregate", entity="e", keys=(Column("k", "BIGINT"),), timestamp="ts", sql="",
        depends_on=(), features=tuple(Feature(f"{a.name}_{w}", a.type, "", a.name, w)
                                      for a in AGGS for w in windows),
        fingerprint="f", schedule_seconds=slide, start="2024-01-01", windows=windows,
        slide_seconds=slide, aggregations=AGGS)


VIEWS = {s: _view(s) for s in SLIDES}
AGG = {a.name: a for a in AGGS}


def _join(view: FeatureView) -> ViewJoin:
    feats = tuple(OutputFeature(f.name, f"{view.name}__{f.name}", f.type,
                                AGG[f.aggregation or ""].function, f.aggregation,
                                f.window_seconds, AGG[f.aggregation or ""].args)
                  for f in view.features)
    return ViewJoin(view.name, "aggregate", f"tiles_{view.name}", ("k",), TILE_START, feats,
                    slide_seconds=view.slide_seconds)


NODE = PointInTimeJoin(("k",), tuple(_join(VIEWS[s]) for s in SLIDES))


# -- cases -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    slide: int
    base: int  # us
    events: tuple[tuple[int, int | None, float | None, bool | None], ...]  # (ts us, i, d, b)
    times: tuple[int, ...]  # us


def _times(slide: int) -> st.SearchStrategy[int]:
    step = slide * US
    return st.one_of(st.integers(-8, 8).map(lambda m: m * step),
                     st.integers(-8, 8).map(lambda m: m * step - 1),
                     st.integers(-8, 8).map(lambda m: m * step + 1),
                     st.integers(-8 * step, 8 * step))


def _case(slide: int) -> st.SearchStrategy[Case]:
    dyadic = st.integers(-1024, 1024).map(lambda q: q / 4)
    event = st.tuples(_times(slide), st.none() | st.integers(-100, 100), st.none() | dyadic,
                      st.none() | st.booleans())
    return st.builds(
        lambda base, evs, ts: Case(slide, base, tuple((base + e[0], *e[1:]) for e in evs),
                                   tuple(base + t for t in ts)),
        st.sampled_from(BASES), st.lists(event, max_size=10), st.lists(_times(slide),
                                                                       min_size=1, max_size=3))


cases = st.sampled_from(SLIDES).flatmap(_case)


def _input(agg: Aggregation, event: tuple[int, Any, Any, Any]) -> Any:
    return 1 if agg.input_sql is None else event[1 + list(INPUTS).index(agg.input_sql)]


def tiles_of(case: Case) -> tuple[list[int], dict[str, list[Any]]]:
    """(tile starts in us, partial columns) of one case's events, folded per tile."""
    step = case.slide * US
    by_tile: dict[int, list[tuple[int, Any, Any, Any]]] = {}
    for e in case.events:
        by_tile.setdefault(floor(e[0], step), []).append(e)
    starts = sorted(by_tile)
    columns: dict[str, list[Any]] = {c: [] for c, _ in tile_columns(VIEWS[case.slide])}
    for s in starts:
        for a in AGGS:
            fn = for_aggregation(a)
            folded = fn.fold([(e[0], _input(a, e)) if fn.ordered else _input(a, e)
                              for e in by_tile[s]])
            for p, v in folded.items():
                columns[partial_column(a.name, p)].append(v)
    return starts, columns


def _ts(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


def tile_tables(batch: list[Case]) -> dict[str, pa.Table]:
    out = {}
    for slide, view in VIEWS.items():
        types = dict(tile_columns(view))
        rows: dict[str, list[Any]] = {"k": [], TILE_START: [], **{c: [] for c in types}}
        for k, case in enumerate(batch):
            if case.slide != slide:
                continue
            starts, columns = tiles_of(case)
            rows["k"].extend([k] * len(starts))
            rows[TILE_START].extend(_ts(s) for s in starts)
            for c in types:
                rows[c].extend(columns[c])
        schema = pa.schema([("k", pa.int64()), (TILE_START, pa.timestamp("us")),
                            *((c, arrow_type(t)) for c, t in types.items())])
        out[f"tiles_{view.name}"] = pa.table(rows, schema=schema)
    return out


def spine_of(batch: list[Case]) -> pa.Table:
    keys = [k for k, c in enumerate(batch) for _ in c.times]
    times = [_ts(t) for c in batch for t in c.times]
    return pa.table({RID: pa.array(range(len(keys)), pa.int64()), "k": pa.array(keys, pa.int64()),
                     SPINE_TS: pa.array(times, pa.timestamp("us"))})


# -- the Python sides and the oracle ------------------------------------------------------------
def online_values(batch: list[Case]) -> list[dict[str, Any]]:
    """Per spine row, every feature as the online read merges it (`TileMerger` over a cell)."""
    out = []
    cells = {}
    for k, case in enumerate(batch):
        starts, columns = tiles_of(case)
        cells[k] = encode_tiles([s // US for s in starts], columns) if starts else None
    for k, case in enumerate(batch):
        for t in case.times:
            row: dict[str, Any] = {}
            for slide, view in VIEWS.items():
                payload = cells[k] if case.slide == slide else None
                values = TileMerger(view)(payload, t)
                assert values is not None
                row.update({f"{view.name}__{f.name}": v for f, v in zip(view.features, values,
                                                                         strict=True)})
            out.append(row)
    return out


def list_values(batch: list[Case]) -> list[dict[str, Any]]:
    """Per spine row, every feature by `batch_merge` over plain lists."""
    out = []
    for case in batch:
        starts, columns = tiles_of(case)
        for t in case.times:
            row: dict[str, Any] = {}
            for slide, view in VIEWS.items():
                mine = case.slide == slide
                for f in view.features:
                    a = AGG[f.aggregation or ""]
                    row[f"{view.name}__{f.name}"] = batch_merge(
                        for_aggregation(a), a.name, starts if mine else [],
                        columns, t, (f.window_seconds or 0) * US, slide * US, f.type)
            out.append(row)
    return out


SPREAD = ("stddev_samp", "stddev_pop", "var_samp", "var_pop")


def _direct(function: str, values: list[Any], result_type: str,
            times: list[int] | None = None, n: int = 2) -> Any:
    """The aggregate of raw input values, written from the definition (not the library)."""
    present = [int(v) if isinstance(v, bool) and function in ("sum", "avg") else v
               for v in values if v is not None]
    if function == "count":
        return len(present)
    if function == "approx_count_distinct":  # at most 10 values: the sketch's coupons are exact
        return len({int(v) if isinstance(v, bool) else v for v in present})
    if not present:
        return None
    if function == "approx_percentile":  # nearest rank; at most 10 values: KLL is exact
        ordered = sorted(float(v) for v in present)
        return ordered[max(1, math.ceil(Fraction(str(P)) * len(ordered))) - 1]
    if function in SPREAD:
        mean = sum(present) / len(present)
        ss = sum((x - mean) ** 2 for x in present)
        sample = function.endswith("samp")
        if sample and len(present) < 2:
            return None
        var = ss / (len(present) - 1 if sample else len(present))
        return var ** 0.5 if function.startswith("stddev") else var
    if function == "top_k":
        counts: dict[Any, int] = {}
        for v in present:
            counts[v] = counts.get(v, 0) + 1
        return [float(v) if result_type == "ARRAY<DOUBLE>" else v for v, _ in
                sorted(counts.items(), key=lambda e: (-e[1], e[0]))[:n]]
    if function.endswith("_n"):
        assert times is not None
        entries = sorted(((t, v) for t, v in zip(times, values, strict=True) if v is not None),
                         reverse=function.startswith("last"))
        picked: list[Any] = []
        for _, v in entries:
            if "distinct" in function and v in picked:
                continue
            picked.append(v)
        return [float(v) if result_type == "ARRAY<DOUBLE>" else v for v in picked[:n]]
    value = {"sum": lambda: sum(present), "avg": lambda: sum(present) / len(present),
             "min": lambda: min(present), "max": lambda: max(present)}[function]()
    return python_value(value, result_type)


def oracle(batch: list[Case]) -> list[dict[str, Any]]:
    out = []
    for case in batch:
        for t in case.times:
            row: dict[str, Any] = {}
            for slide, view in VIEWS.items():
                hi = t - t % (slide * US)
                for f in view.features:
                    a = AGG[f.aggregation or ""]
                    lo = hi - (f.window_seconds or 0) * US
                    evs = [e for e in case.events if lo <= e[0] < hi] if case.slide == slide \
                        else []
                    row[f"{view.name}__{f.name}"] = _direct(
                        a.function, [_input(a, e) for e in evs], f.type, [e[0] for e in evs])
            out.append(row)
    return out


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    assert table.column(RID).to_pylist() == list(range(table.num_rows))
    return [{k: v for k, v in r.items() if k != RID} for r in table.to_pylist()]


def _spread_column(column: str) -> bool:
    return any(f"__{f}_" in column for f in SPREAD)


def _close(x: Any, y: Any) -> bool:
    """STDDEV/VAR against the oracle: equal up to rounding (see the module doc)."""
    if x is None or y is None:
        return x is y
    return type(x) is type(y) and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]], what: str,
          oracle: bool = True) -> None:
    """Equal, exactly; with `oracle` (b is the raw events' oracle), STDDEV/VAR up to rounding."""
    assert len(a) == len(b), what
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        bad = {c: (x[c], y[c]) for c in x
               if (not _close(x[c], y[c]) if oracle and _spread_column(c)
                   else x[c] != y[c] or type(x[c]) is not type(y[c]))}
        assert not bad, f"{what}, spine row {i}: {dict(list(bad.items())[:6])}"


# -- the tile stage in SQL -------------------------------------------------------------------------
def events_table(batch: list[Case]) -> pa.Table:
    rows = [(k, c.slide, _ts(e[0]), *e[1:]) for k, c in enumerate(batch) for e in c.events]
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(6)]
    return pa.table({"k": pa.array(cols[0], pa.int64()), "slide": pa.array(cols[1], pa.int64()),
                     "ts": pa.array(cols[2], pa.timestamp("us")),
                     "i": pa.array(cols[3], pa.int64()), "d": pa.array(cols[4], pa.float64()),
                     "b": pa.array(cols[5], pa.bool_())})


def build_sql(dialect: str) -> str:
    """Every slide's tiles of the events, as one UNION ALL, with each aggregation's
    `build_sql`; rows (slide, k, tile start us, partials...)."""
    parts = []
    for slide in SLIDES:
        start = floor_us_sql(dialect, sql.epoch_us(dialect, "ts"), slide)
        built = [f"{expr} AS {sql.quote(dialect, partial_column(a.name, p))}"
                 for a in AGGS for p, expr in for_aggregation(a).build_sql(
                     dialect, a.input_sql, a.input_type, a.type, "ts")]
        parts.append(f"SELECT {slide} AS slide, k, {start} AS start, {', '.join(built)} "
                     f"FROM events WHERE slide = {slide} GROUP BY k, {start}")
    return " UNION ALL ".join(parts)


def _same_tiles(built: list[tuple[Any, ...]], folded: list[tuple[Any, ...]]) -> None:
    """An engine's tiles equal `fold`'s: exactly, but a STDDEV/VAR tile's mean and M2 (the
    engine's VAR_POP against a two-pass fold) up to rounding."""
    cols = ["slide", "k", "start", *(c for c, _ in tile_columns(VIEWS[SLIDES[0]]))]
    assert len(built) == len(folded)
    for b, f in zip(built, folded, strict=True):
        for c, x, y in zip(cols, b, f, strict=True):
            inexact = c.endswith(("__mean", "__m2"))  # only STDDEV/VAR have them
            if c.endswith(("__hll", "__kll")):  # a sketch's bytes follow the input order
                x, y = _sketch(c, x), _sketch(c, y)
            assert (_close(x, y) if inexact else x == y), (c, x, y)


def _sketch(column: str, value: bytes) -> Any:
    """What a tile sketch holds, whatever the order its values came in."""
    from featql.semantics.sketches import hll_estimate, kll_items

    return hll_estimate([value]) if column.endswith("__hll") else kll_items([value])


def built_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(tuple(r.values()) for r in table.to_pylist())


def folded_rows(batch: list[Case]) -> list[tuple[Any, ...]]:
    out = []
    for k, case in enumerate(batch):
        starts, columns = tiles_of(case)
        cols = [c for c, _ in tile_columns(VIEWS[case.slide])]
        out.extend((case.slide, k, s, *(columns[c][n] for c in cols))
                   for n, s in enumerate(starts))
    return sorted(out)


# -- the tests -----------------------------------------------------------------------------------
def check_python(batch: list[Case]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the oracle's values, the online read's values: what each SQL merge must equal
    exactly)."""
    expected = oracle(batch)
    online = online_values(batch)
    _same(online, expected, "TileMerger vs the raw events")
    _same(list_values(batch), online, "batch_merge vs TileMerger", oracle=False)
    return expected, online


def run_engine(engine: Any, batch: list[Case]) -> pa.Table:
    for name, table in tile_tables(batch).items():
        engine.register_arrow(name, table)
    return engine.point_in_time(NODE, spine_of(batch))


@pytest.fixture(scope="module")
def duck() -> Iterator[Any]:
    from featql.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine(threads=1)
    yield engine
    engine.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(cases, min_size=1, max_size=6))
def test_duckdb_and_python_merges_agree(duck: Any, batch: list[Case]) -> None:
    expected, online = check_python(batch)
    rows = _rows(run_engine(duck, batch))
    _same(rows, expected, "DuckDB's SQL merge vs the raw events")
    _same(rows, online, "DuckDB's SQL merge vs TileMerger", oracle=False)
    duck.register_arrow("events", events_table(batch))
    _same_tiles(built_rows(duck.query(build_sql("duckdb"))), folded_rows(batch))


@pytest.fixture(scope="module")
def spark_engine(spark: Any) -> Iterator[Any]:
    from featql.engines.spark import SparkEngine

    engine = SparkEngine()
    assert engine.spark is spark
    yield engine
    engine.close()


@pytest.mark.slow
def test_spark_duckdb_and_python_merges_agree(spark_engine: Any, duck: Any) -> None:
    """40 random cases in one batch (one Spark join and one tile build), drawn from fixed seeds
    (tests/sampling.py): hypothesis's own first example of a list is its simplest one, 20
    cases without events, which compared nothing."""
    batch = samples(cases, 40, at=7)
    assert sum(len(c.events) for c in batch) >= 100, "the batch holds too few events"
    assert any(e[1] is None for c in batch for e in c.events)  # NULLs are in it
    expected, online = check_python(batch)
    duck_rows = _rows(run_engine(duck, batch))
    spark_rows = _rows(run_engine(spark_engine, batch))
    _same(duck_rows, expected, "DuckDB's SQL merge vs the raw events")
    _same(spark_rows, expected, "Spark's SQL merge vs the raw events")
    _same(duck_rows, online, "DuckDB's SQL merge vs TileMerger", oracle=False)
    _same(spark_rows, online, "Spark's SQL merge vs TileMerger", oracle=False)
    spark_engine.register_arrow("events", events_table(batch))
    _same_tiles(built_rows(spark_engine.query(build_sql("spark"))), folded_rows(batch))
