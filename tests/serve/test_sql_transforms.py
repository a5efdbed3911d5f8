"""The serving evaluator of SQL request transforms agrees with DuckDB on random inputs."""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featql.transforms.sql_eval import (
    EvalError,
    TransformCompileError,
    compile_sql_transform,
)

TYPES = {"request.a": "BIGINT", "request.b": "BIGINT", "request.x": "DOUBLE",
         "request.y": "DOUBLE", "v.s": "STRING", "v.t": "STRING", "v.f": "BOOLEAN"}
DUCK = {"BIGINT": "BIGINT", "DOUBLE": "DOUBLE", "STRING": "VARCHAR", "BOOLEAN": "BOOLEAN"}

EXPRESSIONS = [
    "request.x / NULLIF(request.y, 0)",
    "request.x / request.y",
    "request.a / request.b",
    "request.a + request.b",
    "request.a - request.b * 3",
    "request.a * request.b",
    "request.a // request.b",
    "request.a % request.b",
    "request.x % request.y",
    "-request.a",
    "ABS(request.a)",
    "request.a + request.x",
    "request.x > request.y",
    "request.a >= request.x",
    "request.a = request.b",
    "request.a <> request.b",
    "request.x < 1.5 AND v.f",
    "request.x < 1.5 OR v.f",
    "NOT v.f",
    "v.f IS NULL",
    "request.x IS NOT NULL AND request.y IS NULL",
    "COALESCE(request.x, request.y, -1)",
    "COALESCE(request.a, request.b)",
    "NULLIF(request.a, request.b)",
    "CASE WHEN request.x > 0 THEN 'pos' WHEN request.x < 0 THEN 'neg' ELSE 'zero' END",
    "CASE WHEN request.a > request.b THEN request.a ELSE request.x END",
    "CASE request.a WHEN 1 THEN 'one' WHEN 2 THEN 'two' END",
    "IF(v.f, request.a, request.b)",
    "request.a BETWEEN request.b AND 100",
    "request.a IN (1, 2, NULL)",
    "request.a IN (1, 2, 3)",
    "ROUND(request.x)",
    "ROUND(request.x, 2)",
    "LEAST(request.x, request.y, 0)",
    "GREATEST(request.a, request.b)",
    "CAST(request.x AS BIGINT)",
    "CAST(request.a AS DOUBLE) / 3",
    "SQRT(request.x)",
    "LN(request.x)",
    "FLOOR(request.x)",
    "CEIL(request.y)",
    "POWER(request.x, 2)",
    "LOWER(v.s)",
    "UPPER(v.s)",
    "LENGTH(v.s)",
    "v.s || v.t",
    "CONCAT(v.s, '-', v.t)",
    "v.s < v.t",
    "v.s = v.t",
    "TRIM(v.s)",
    "v.s LIKE 'a%'",
    "v.s LIKE '%b_'",
    "v.s ILIKE 'A%'",
    "STARTS_WITH(v.s, 'a')",
    "CONTAINS(v.s, 'ab')",
    "REPLACE(v.s, 'a', 'xy')",
    "CAST(request.a AS VARCHAR)",
    "CAST(v.f AS VARCHAR)",
    "v.s IS DISTINCT FROM v.t",
]

ints = st.one_of(st.none(), st.integers(-5, 5),
                 st.integers(-(2**63), 2**63 - 1),
                 st.sampled_from([0, 1, -1, 2**62, -(2**63), 2**63 - 1]))
floats = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([0.0, -0.0, 1.5, -2.5, 0.5, 2.675, 1e308, -1e-308]))
texts = st.one_of(st.none(), st.text(alphabet="abAB _%xyé", max_size=6))
row = st.fixed_dictionaries({"request.a": ints, "request.b": ints, "request.x": floats,
                             "request.y": floats, "v.s": texts, "v.t": texts,
                             "v.f": st.one_of(st.none(), st.booleans())})


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def duck(con: duckdb.DuckDBPyConnection, expr: str, env: dict[str, Any]) -> Any:
    # A real table, not constants: DuckDB's optimizer would fold NULL arithmetic away.
    cols = ", ".join(f"{k.split('.')[1]} {DUCK[TYPES[k]]}" for k in TYPES)
    con.execute(f"CREATE OR REPLACE TEMP TABLE r ({cols})")
    con.execute(f"INSERT INTO r VALUES ({', '.join('?' * len(TYPES))})", [env[k] for k in TYPES])
    sql = expr.replace("request.", "r.").replace("v.", "r.")
    return con.execute(f"SELECT {sql} FROM r").fetchone()[0]  # type: ignore[index]


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(b, bool) or isinstance(a, bool):
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)
    return bool(a == b) and type(a) is type(b)


COMPILED = {e: compile_sql_transform(f"SELECT {e} AS out", TYPES) for e in EXPRESSIONS}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=row)
def test_evaluator_matches_duckdb(con: duckdb.DuckDBPyConnection, env: dict[str, Any]) -> None:
    for expr, compiled in COMPILED.items():
        try:
            expected = duck(con, expr, env)
            duck_error = None
        except (duckdb.OutOfRangeException, duckdb.InvalidInputException,
                duckdb.ConversionException) as e:
            expected, duck_error = None, e
        try:
            got = compiled.evaluate(env)["out"]
            ours_error = None
        except EvalError as e:
            got, ours_error = None, e
        assert (duck_error is None) == (ours_error is None), (expr, env, duck_error, ours_error)
        if duck_error is None:
            assert same(got, expected), (expr, env, got, expected)


@pytest.mark.parametrize("sql, construct", [
    ("SELECT REGEXP_MATCHES(v.s, 'a') AS o", "RegexpLike"),
    ("SELECT request.x + v.s AS o", "needs numbers"),
    ("SELECT v.s = request.a AS o", "compares"),
    ("SELECT nope.z AS o", "unknown column nope.z"),
    ("SELECT CAST(request.x AS VARCHAR) AS o", "DOUBLE to VARCHAR"),
    ("SELECT (SELECT 1) AS o", "Subquery"),
])
def test_unsupported_sql_is_a_compile_error(sql: str, construct: str) -> None:
    with pytest.raises(TransformCompileError, match=construct):
        compile_sql_transform(sql, TYPES)
