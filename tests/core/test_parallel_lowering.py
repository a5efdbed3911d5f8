"""Lowering many views on forked workers gives exactly what one process gives."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from featql.compiler.project import compile_project
from featql.core import pool
from featql.dialects import parallel
from featql.dialects.lower import lower_targets

BENCH = Path(__file__).resolve().parents[2] / "bench" / "compile_bench.py"


def _bench_generate():
    spec = importlib.util.spec_from_file_location("compile_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compile_bench"] = module
    spec.loader.exec_module(module)
    return module.generate


@pytest.mark.slow
def test_forked_lowering_equals_in_process(tmp_path: Path, monkeypatch):
    _bench_generate()(tmp_path, 240, 6)
    result = compile_project(tmp_path)
    assert result.ok, [d.headline() for d in result.diagnostics.errors][:3]
    manifest = result.manifest
    assert len(manifest.views) >= parallel.PARALLEL_MIN_VIEWS
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    pools: list[int] = []
    real = pool.ForkPool

    def counted(workers, shared=None):  # type: ignore[no-untyped-def]
        pools.append(workers)
        return real(workers, shared)

    monkeypatch.setattr(pool, "ForkPool", counted)
    assert parallel.lower_views(manifest, ("duckdb",)) is not None and pools == [], \
        "lowering forks only when asked"
    forked = parallel.lower_views(manifest, ("duckdb", "spark"), parallel=True)
    assert pools == [2]
    one_by_one = {v.name: lower_targets(manifest, v.name, ("duckdb", "spark"))
                  for v in manifest.views}
    assert list(forked) == [v.name for v in manifest.views]
    assert forked == one_by_one
