"""Lowering views while the project compiles gives exactly what lowering afterwards gives."""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys
from pathlib import Path

import pytest

from featql.compiler.project import compile_project
from featql.core import pool
from featql.core.ir import Manifest, Source
from featql.core.manifest import dumps
from featql.dialects import lowering_worker as stream
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
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    manifest = compile_project(root).manifest
    assert manifest is not None
    return manifest, {s.name: s for s in manifest.sources}


needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="the streaming worker is forked")


@needs_fork
def test_streamed_lowering_equals_lowering_afterwards(tmp_path: Path, monkeypatch):
    _generate(tmp_path, 120, 4)
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    with stream.StreamingLowerer(TARGETS, min_views=15) as lowerer:
        result = compile_project(tmp_path, sink=lowerer)
        assert result.ok, [d.headline() for d in result.diagnostics.errors][:3]
        manifest = result.manifest
        assert lowerer._future is not None, "the worker started"
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
    assert lowerer._future is not None
    workers = multiprocessing.active_children()
    assert workers and all(w.is_alive() for w in workers)
    lowerer.close()  # what `with` does when the compile reports errors: finish is never called
    assert lowerer._future.done()
    assert not any(w.is_alive() for w in workers)
    assert multiprocessing.active_children() == []


def test_small_projects_lower_in_process(tmp_path: Path):
    _generate(tmp_path, 40, 2)
    with stream.StreamingLowerer(TARGETS) as lowerer:
        result = compile_project(tmp_path, sink=lowerer)
        assert result.manifest is not None
        streamed = lowerer.finish(result.manifest)
        assert lowerer._future is None
    assert set(streamed) == {v.name for v in result.manifest.views}


def _compile_cli(root: Path, out: Path) -> int:
    from featql.cli.main import main

    return main(["compile", "--project", str(root), "--out", str(out)])


@pytest.fixture
def staged_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file the forked worker appends to: how many files it staged per view."""
    log = tmp_path / "staged.log"
    original = stream._stage

    def counting(view, lowered, files):
        result = original(view, lowered, files)
        with open(log, "a") as f:
            f.write(f"{sum(isinstance(r, stream.Staged) for r in result.values())}\n")
        return result

    monkeypatch.setattr(stream, "_stage", counting)
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    return log


def _staged(log: Path) -> int:
    return sum(int(n) for n in log.read_text().split()) if log.exists() else 0


@needs_fork
def test_compile_moves_the_worker_s_files_into_place(tmp_path: Path, staged_log: Path,
                                                     capsys):
    """`featql compile` on a large project: the worker writes SQL files to a staging folder,
    the command moves them into place; the files equal lowering afterwards, no staging folder
    is left, and a recompile rewrites exactly the changed view's files."""
    root, out = tmp_path / "p", tmp_path / "out"
    _generate(root, 200, 2)
    assert _compile_cli(root, out) == 0
    assert _staged(staged_log) > 0, "the worker staged files"
    manifest = compile_project(root).manifest
    assert manifest is not None
    # the lineage the worker computed, the rest compiled here: the in-process manifest
    assert manifest.lineage
    assert (out / "manifest.json").read_text() == dumps(manifest)
    for v in manifest.views:
        for target, sql in lower_targets(manifest, v.name, TARGETS).items():
            assert (out / "sql" / target / f"{v.name}.sql").read_text() == sql
    assert sorted(p.name for p in (out / "sql").iterdir()) == ["duckdb", "spark"]

    times = {p: p.stat().st_mtime_ns for p in (out / "sql").rglob("*.sql")}
    view = root / "views" / "g000" / "v0000.sql"
    view.write_text(view.read_text().replace("amount * 1.0", "amount * 2.0"))
    assert _compile_cli(root, out) == 0
    changed = {p.name for p, t in times.items() if p.stat().st_mtime_ns != t}
    assert "v0000.sql" in changed and len(changed) <= 2 * 6, changed  # the view and its chain
    assert "2.0" in (out / "sql" / "duckdb" / "v0000.sql").read_text()
    assert sorted(p.name for p in (out / "sql").iterdir()) == ["duckdb", "spark"]


@needs_fork
def test_a_failed_compile_leaves_no_files(tmp_path: Path, staged_log: Path, capsys):
    """The worker staged files for the views compiled before the error; none is kept."""
    root, out = tmp_path / "p", tmp_path / "out"
    _generate(root, 200, 2)
    last = sorted((root / "views").rglob("*.sql"))[-1]
    last.write_text(last.read_text().replace("SELECT ", "SELECT no_such_column, ", 1))
    assert _compile_cli(root, out) == 1
    assert "no_such_column" in capsys.readouterr().err
    assert _staged(staged_log) > 0
    assert not (out / "sql").exists() or not any((out / "sql").rglob("*"))
