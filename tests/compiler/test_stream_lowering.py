"""Lowering views while the project compiles gives exactly what lowering afterwards gives."""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys
from pathlib import Path

import pytest

from featql.compiler.ir import Manifest, Source
from featql.compiler.project import compile_project
from featql.dialects import stream
from featql.dialects.lower import lower_targets

BENCH = Path(__file__).resolve().parents[2] / "bench" / "compile_bench.py"
TARGETS = ("duckdb", "spark")


def _generate(root: Path, views: int, sources: int) -> None:
    spec = importlib.util.spec_from_file_location("compile_bench_gen", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compile_bench_gen"] = module
    spec.loader.exec_module(module)
    module.generate(root, views, sources)


def _compiled_for_worker(root: Path, views: int, monkeypatch: pytest.MonkeyPatch
                        ) -> tuple[Manifest, dict[str, Source]]:
    """A compiled generated project (2 sources), with the worker allowed on any machine."""
    _generate(root, views, 2)
    monkeypatch.setattr(stream, "_cpus", lambda: 2)
    manifest = compile_project(root).manifest
    assert manifest is not None
    return manifest, {s.name: s for s in manifest.sources}


needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="the streaming worker is forked")


@needs_fork
def test_streamed_lowering_equals_lowering_afterwards(tmp_path: Path, monkeypatch):
    _generate(tmp_path, 120, 4)
    monkeypatch.setattr(stream, "_cpus", lambda: 2)
    with stream.StreamingLowerer(TARGETS, min_views=15) as lowerer:
        result = compile_project(tmp_path, sink=lowerer)
        assert result.ok, [d.headline() for d in result.diagnostics.errors][:3]
        manifest = result.manifest
        assert lowerer._process is not None, "the worker started"
        streamed = lowerer.finish(manifest)
    # every view went to the worker, in DAG order, to be lowered there or taken back
    assert sum(len(b) for b in lowerer._batches) == len(manifest.views)
    afterwards = {v.name: lower_targets(manifest, v.name, TARGETS) for v in manifest.views}
    assert list(streamed) == [v.name for v in manifest.views]
    assert streamed == {n: {t: getattr(s, "diagnostic", s) for t, s in by.items()}
                        for n, by in afterwards.items()}
    assert all(isinstance(s, str) and s.startswith("-- featql feature view")
               for by in streamed.values() for s in by.values())


@needs_fork
def test_a_view_the_manifest_holds_differently_is_lowered_again(tmp_path: Path, monkeypatch):
    """Only a view object identical to the manifest's is taken from the worker."""
    manifest, sources = _compiled_for_worker(tmp_path, 40, monkeypatch)
    first, *rest = manifest.views
    from dataclasses import replace

    stale = replace(first, fingerprint="0" * 16)  # as if the compiler had built it twice
    with stream.StreamingLowerer(TARGETS, min_views=1) as lowerer:
        lowerer.begin(sources, len(manifest.views))
        for v in (stale, *rest):
            lowerer.add(v)
        streamed = lowerer.finish(manifest)
    assert f"-- fingerprint: {first.fingerprint}" in streamed[first.name]["duckdb"]
    assert "0" * 16 not in streamed[first.name]["spark"]


@needs_fork
def test_close_stops_the_worker_of_a_failed_compile(tmp_path: Path, monkeypatch):
    manifest, sources = _compiled_for_worker(tmp_path, 30, monkeypatch)
    lowerer = stream.StreamingLowerer(TARGETS, min_views=1)
    lowerer.begin(sources, len(manifest.views))
    for v in manifest.views:
        lowerer.add(v)
    process = lowerer._process
    assert process is not None and process.is_alive()
    lowerer.close()  # what `with` does when the compile reports errors: finish is never called
    assert not process.is_alive()


def test_small_projects_lower_in_process(tmp_path: Path):
    _generate(tmp_path, 40, 2)
    with stream.StreamingLowerer(TARGETS) as lowerer:
        result = compile_project(tmp_path, sink=lowerer)
        assert result.manifest is not None
        streamed = lowerer.finish(result.manifest)
        assert lowerer._process is None
    assert set(streamed) == {v.name for v in result.manifest.views}
