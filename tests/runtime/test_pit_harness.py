"""Engines against the oracle on random cases (PRODUCT §3): value for value, NULL-aware."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sampling import samples

from featql.jobs.join import join_spine
from runtime import oracle
from runtime.cases import SPINE_SCHEMA, Case, cases, merge, node, tables


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return bool(a == b) and type(a) is type(b)


def check(engine: Any, case: Case, verify: bool = False) -> None:
    tabs = tables(case)
    for name, table in tabs.items():
        if name != "spine":
            engine.register_arrow(name, table)
    plan = node(case)
    if verify:  # join row-level views undeduplicated, then check the matched rows for twins
        plan = replace(plan, views=tuple(replace(v, unique=True, verify=True)
                                         if v.kind == "row" else v for v in plan.views))
    got = join_spine(engine, plan, tabs["spine"], "t").to_pylist()
    want = oracle.training_set(case.spine, "t", [case.a, case.b, case.c])
    assert len(got) == len(case.spine)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert list(g) == [*SPINE_SCHEMA.names, *(k for k in w if "__" in k)]
        bad = {k: (g[k], w[k]) for k in w if not _same(g[k], w[k])}
        assert not bad, f"spine row {i} {case.spine[i]}: engine vs oracle {bad}"


@pytest.fixture(scope="module")
def duck() -> Any:
    from featql.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine()
    yield engine
    engine.close()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_duckdb_matches_oracle(duck: Any, case: Case) -> None:
    check(duck, case)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_duckdb_verified_join_matches_oracle(duck: Any, case: Case) -> None:
    check(duck, case, verify=True)


@pytest.mark.slow
@pytest.mark.parametrize("at", [1, 2])
def test_spark_matches_oracle(spark_engine: Any, at: int) -> None:
    """40 random cases per run in one Spark job (their keys made disjoint), drawn from a fixed
    seed (`tests.sampling`: not hypothesis's simplest example, which is 40 empty cases)."""
    batch = samples(cases(), 40, at)
    assert sum(len(c.spine) for c in batch) > 0
    check(spark_engine, merge(batch))


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(cases(), min_size=2, max_size=5))
def test_batching_keeps_cases_apart(batch: list[Case]) -> None:
    """A merged batch answers each case as the case alone would (what the Spark test relies on;
    merged cases share the first case's TTLs, so the cases are compared with those)."""
    ttl_a, ttl_c = batch[0].a.ttl, batch[0].c.ttl
    batch = [replace(c, a=replace(c.a, ttl=ttl_a), c=replace(c.c, ttl=ttl_c)) for c in batch]
    merged = merge(batch)
    want_all = oracle.training_set(merged.spine, "t", [merged.a, merged.b, merged.c])
    offset = 0
    for case in batch:
        want = oracle.training_set(case.spine, "t", [case.a, case.b, case.c])
        got = want_all[offset:offset + len(case.spine)]
        assert [[v for k, v in w.items() if "__" in k] for w in want] == \
            [[v for k, v in m.items() if "__" in k] for m in got]
        offset += len(case.spine)
