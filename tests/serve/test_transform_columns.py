"""SQL request transforms evaluated column-wise (`sql_columns`) give what the row closures give,
value for value (types, NaN and -0.0 included), and errors at the row the row closures fail."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featql.core.ir import Column
from featql.transforms import CompiledTransform, TransformError
from featql.transforms.sql_columns import Batch
from featql.transforms.sql_eval import compile_sql_transform

from .test_sql_transforms import EXPRESSIONS, TYPES, row

NESTED = [
    "(request.a + request.b) * 2 - request.a // 3",
    "request.x / NULLIF(request.y, 0) > 1.5 OR (v.f AND request.a < request.b)",
    "NOT (request.x >= request.a) AND request.b IS NULL",
    "NULLIF(request.x * 2, request.y) + request.a",
    "CASE WHEN v.f THEN request.a + 1 ELSE request.b - 1 END * 3",
    "COALESCE(request.x / request.y, request.a, 0) < 2",
    "request.a * 1000000000000 + request.b",
    "-(request.a + request.x)",
    "'k' = v.s OR 2 = request.a",
]
COMPILED = {e: compile_sql_transform(f"SELECT {e} AS out, request.a AS a", TYPES)
            for e in EXPRESSIONS + NESTED}


def rows_of(envs: list[dict[str, Any]], compiled: Any) -> list[Any] | None:
    """The row closures' `out` per row, or None when some row raises."""
    try:
        return [compiled.evaluate(env)["out"] for env in envs]
    except Exception:
        return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envs=st.lists(row, min_size=1, max_size=6), drop=st.sampled_from([None, "request.y"]))
def test_columns_give_the_row_values(envs: list[dict[str, Any]], drop: str | None) -> None:
    if drop is not None:  # an environment key absent: NULL, as env.get gives it
        for env in envs:
            del env[drop]
    cols = {k: [env.get(k) for env in envs] for k in TYPES if k != drop}
    for expr, compiled in COMPILED.items():
        expected = rows_of(envs, compiled)
        if expected is None:
            with pytest.raises(Exception):  # noqa: B017 - whichever row's error comes first
                compiled.columns(Batch(cols, len(envs)))
            continue
        got, a = compiled.columns(Batch(cols, len(envs)))
        assert [repr(v) for v in got] == [repr(v) for v in expected], expr
        assert [type(v) for v in got] == [type(v) for v in expected], expr
        assert list(a) == cols["request.a"]


def test_an_error_names_the_first_failing_row() -> None:
    compiled = compile_sql_transform("SELECT request.a // request.b AS q", TYPES)
    envs = [{"request.a": 4, "request.b": b} for b in (2, 1, 0, 0)]

    def fn(env: Any) -> dict[str, Any]:
        return compiled.evaluate(env)

    def batch(b: Batch) -> list[Any]:
        return compiled.columns(b)

    ct = CompiledTransform("q", (), (), (Column("q", "BIGINT"),), fn, batch=batch)
    cols = {k: [env[k] for env in envs] for k in envs[0]}
    with pytest.raises(TransformError) as err:
        ct.columns(cols, len(envs))
    assert err.value.row == 2
    assert "Division by zero" in str(err.value)
    assert ct.columns({k: v[:2] for k, v in cols.items()}, 2) == [[2, 4]]
