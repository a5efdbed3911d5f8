"""Fixtures of the runtime tests: one Spark engine per test session, over the session's one
SparkSession (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark_engine(spark: Any) -> Iterator[Any]:
    """A SparkEngine over the session's one SparkSession (`spark` in tests/conftest.py)."""
    from featql.engines.spark import SparkEngine

    engine = SparkEngine("local[2]", {"spark.sql.shuffle.partitions": "4"})
    assert engine.spark is spark
    yield engine
    engine.close()


@pytest.fixture()
def small_example(tmp_path: Path) -> Path:
    """A private copy of the example project with a little data (8k transactions, 14 days)
    and a 500-row spine at data/spine.parquet; tests may write into it."""
    from featql.examples.generate import generate, write_spine
    from featql.examples.scaffold import copy_example

    root = tmp_path / "features"
    copy_example(root)
    generate(root, transactions=8000, days=14)
    write_spine(root, rows=500, warmup_days=3)
    return root


def compiled(root: Path) -> Any:
    from featql.compiler.project import compile_project

    result = compile_project(root)
    assert result.ok, [d.headline() for d in result.diagnostics]
    return result


def same_tables(a: Any, b: Any, rel: float = 1e-9) -> list[str]:
    """Differences between two Arrow tables: schema, row count and values (floats within rel,
    NULL-aware); [] when they agree."""
    import math

    if a.schema != b.schema:
        return [f"schemas differ: {a.schema} vs {b.schema}"]
    if a.num_rows != b.num_rows:
        return [f"{a.num_rows} vs {b.num_rows} rows"]
    problems = []
    for name in a.column_names:
        for i, (x, y) in enumerate(zip(a.column(name).to_pylist(), b.column(name).to_pylist(),
                                       strict=True)):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=rel, abs_tol=1e-12):
                    problems.append(f"{name}[{i}]: {x} vs {y}")
            elif x != y or (x is None) != (y is None):
                problems.append(f"{name}[{i}]: {x!r} vs {y!r}")
            if len(problems) > 10:
                return problems
    return problems
