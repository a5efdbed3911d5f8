"""The aggregate registry: partials, the SQL each dialect gets, finalize, empty windows."""

from __future__ import annotations

import pytest

from featql.core.ir import Aggregation
from featql.semantics.aggregates import (
    FUNCTIONS,
    ListWindow,
    is_additive,
    partial_column,
    supported,
    tile_partials,
)


def test_the_registry_is_what_the_compiler_accepts() -> None:
    from sqlglot import exp

    from featql.compiler import typecheck
    from featql.semantics import calls

    exact = ["count", "sum", "avg", "min", "max", "stddev_samp", "stddev_pop", "var_samp",
             "var_pop", "last_n", "last_distinct_n", "first_n", "first_distinct_n", "top_k"]
    assert list(FUNCTIONS)[:len(exact)] == exact
    assert supported() == ", ".join(f.sql_name for f in FUNCTIONS.values()) \
        == typecheck.SUPPORTED_AGGS
    assert supported().startswith("COUNT, SUM, AVG, MIN, MAX, STDDEV_SAMP, STDDEV_POP, "
                                  "VAR_SAMP, VAR_POP, LAST_N, LAST_DISTINCT_N, FIRST_N, "
                                  "FIRST_DISTINCT_N, TOP_K")
    want = {exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
            exp.StddevSamp: "stddev_samp", exp.Stddev: "stddev_samp",
            exp.StddevPop: "stddev_pop", exp.Variance: "var_samp", exp.VariancePop: "var_pop",
            calls.LastN: "last_n", calls.LastDistinctN: "last_distinct_n",
            calls.FirstN: "first_n", calls.FirstDistinctN: "first_distinct_n",
            calls.TopK: "top_k"}
    assert want == {c: n for c, n in typecheck.AGG_FUNCTIONS.items() if n in exact}
    assert set(typecheck.AGG_FUNCTIONS.values()) == set(FUNCTIONS)


@pytest.mark.parametrize(("function", "input_type", "result", "partials"), [
    ("count", None, "BIGINT", (("count", "BIGINT"),)),
    ("count", "STRING", "BIGINT", (("count", "BIGINT"),)),
    ("sum", "INT", "BIGINT", (("sum", "BIGINT"), ("count", "BIGINT"))),
    ("sum", "BOOLEAN", "BIGINT", (("sum", "BIGINT"), ("count", "BIGINT"))),
    ("sum", "FLOAT", "DOUBLE", (("sum", "DOUBLE"), ("count", "BIGINT"))),
    ("avg", "BIGINT", "DOUBLE", (("sum", "DOUBLE"), ("count", "BIGINT"))),
    ("min", "STRING", "STRING", (("min", "STRING"),)),
    ("max", "DOUBLE", "DOUBLE", (("max", "DOUBLE"),)),
])
def test_result_types_and_partials(function: str, input_type: str | None, result: str,
                                   partials: tuple[tuple[str, str], ...]) -> None:
    fn = FUNCTIONS[function]
    assert fn.accepts(input_type)
    assert fn.result_type(input_type) == result
    agg = Aggregation("a", function, None, input_type, result)  # type: ignore[arg-type]
    assert tile_partials(agg) == partials


def test_refused_inputs() -> None:
    assert not FUNCTIONS["sum"].accepts("STRING") and not FUNCTIONS["avg"].accepts("TIMESTAMP")
    assert FUNCTIONS["sum"].accepts("BOOLEAN") and FUNCTIONS["min"].accepts("TIMESTAMP")


def test_build_sql_per_dialect() -> None:
    assert FUNCTIONS["count"].build_sql("duckdb", None, None, "BIGINT") == (("count", "COUNT(*)"),)
    assert FUNCTIONS["avg"].build_sql("duckdb", "x", "BOOLEAN", "DOUBLE") == (
        ("sum", "SUM(CAST(x AS INTEGER))"), ("count", "COUNT(CAST(x AS INTEGER))"))
    assert FUNCTIONS["sum"].build_sql("spark", "x", "BOOLEAN", "BIGINT") == (
        ("sum", "SUM(CAST(x AS INT))"), ("count", "COUNT(CAST(x AS INT))"))
    assert FUNCTIONS["max"].build_sql("spark", "x", "DOUBLE", "DOUBLE") == (("max", "MAX(x)"),)


def test_merge_sql() -> None:
    f = "OVER w"
    cols = {"count": "c", "sum": "s", "min": "lo", "max": "hi"}
    assert FUNCTIONS["count"].merge_sql("duckdb", cols, f) == "COALESCE(SUM(c) OVER w, 0)"
    assert FUNCTIONS["sum"].merge_sql("spark", cols, f) == (
        "CASE WHEN COALESCE(SUM(c) OVER w, 0) > 0 THEN SUM(s) OVER w END")
    assert FUNCTIONS["avg"].merge_sql("duckdb", cols, f) == (
        "CAST(SUM(s) OVER w AS DOUBLE) / CAST(NULLIF(SUM(c) OVER w, 0) AS DOUBLE)")
    assert FUNCTIONS["min"].merge_sql("duckdb", cols, f) == "MIN(lo) OVER w"
    assert FUNCTIONS["max"].merge_sql("spark", cols, f) == "MAX(hi) OVER w"


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_an_empty_window_finalizes_to_empty(name: str) -> None:
    fn = FUNCTIONS[name]
    cols = {partial_column("a", p): [] for p in fn.merge_ops()}
    for t in ("BIGINT", "DOUBLE"):
        assert fn.finalize(fn.merge(ListWindow(cols, 0, 0), "a"), t) == fn.empty
    assert fn.empty == (0 if name in ("count", "approx_count_distinct") else None)


def test_fold_merge_finalize() -> None:
    values = [3, None, 1, 2]
    cases = {"count": 3, "sum": 6, "avg": 2.0, "min": 1, "max": 3}
    for name, want in cases.items():
        fn = FUNCTIONS[name]
        one, two = fn.fold(values[:2]), fn.fold(values[2:])
        cols = {partial_column("a", p): [one[p], two[p]] for p in one}
        got = fn.finalize(fn.merge(ListWindow(cols, 0, 2), "a"), "BIGINT" if name != "avg"
                          else "DOUBLE")
        assert got == want and type(got) is type(want), name
    assert FUNCTIONS["sum"].fold([None]) == {"sum": None, "count": 0}
    assert FUNCTIONS["sum"].fold([True, True, False]) == {"sum": 2, "count": 3}
    assert FUNCTIONS["min"].fold([]) == {"min": None}


def test_additive_partials() -> None:
    assert is_additive("x__count") and is_additive("amount_sum__sum")
    assert not is_additive("x__min") and not is_additive("x__max") and not is_additive("count")
