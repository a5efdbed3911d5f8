"""Parsing a large project's files in two processes gives what parsing them in one gives:
the same parsed files, the same diagnostics in the same order, the same manifest. Only the
CLI asks for it (`parallel=True`): the Python API never forks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import featql
from featql.compiler import loader
from featql.compiler.project import CompileResult, compile_project
from featql.core import pool
from featql.core.manifest import dumps

from .projects import ROW_VIEW, write_project

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the second parser is forked")

BROKEN = {
    # sorted file order: these land in both halves of the 64 files
    "views/a_bad_duration.sql": ROW_VIEW.replace("user_last", "a_bad").replace("'30d'", "'9x'"),
    "views/b_syntax.sql": ROW_VIEW.replace("user_last", "b_syntax").replace("FROM", "FROM FROM"),
    "views/y_unknown_column.sql": ROW_VIEW.replace("user_last", "y_col").replace("amount", "amout"),
    "views/z_two_statements.sql": ROW_VIEW.replace("user_last", "z_two") + ";\nSELECT 1\n",
    # one name twice, once in each half: the later file in order is the duplicate
    "views/a_dup.sql": ROW_VIEW.replace("user_last", "dup"),
    "views/z_dup.sql": ROW_VIEW.replace("user_last", "dup"),
}


def _project(root: Path, broken: bool) -> Path:
    files = {f"views/v{i:03d}.sql": ROW_VIEW.replace("user_last", f"v{i:03d}") for i in range(56)}
    write_project(root, {**files, **(BROKEN if broken else {})})
    if broken:
        (root / "views" / "m_not_utf8.sql").write_bytes(b"-- @feature_view(\xff\xfe\n")
    return root


def _compile(root: Path, monkeypatch: pytest.MonkeyPatch, *, parallel: bool) -> CompileResult:
    calls: list[int] = []
    real = loader._parse_in_two

    def counted(*args):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args)

    with monkeypatch.context() as m:
        m.setattr(loader, "PARALLEL_MIN_FILES", 1)
        m.setattr(pool, "cpus", lambda: 2)
        m.setattr(loader, "_parse_in_two", counted)
        result = compile_project(root, parallel=parallel)
    assert bool(calls) == parallel
    return result


def _headlines(result: CompileResult) -> list[str]:
    return [d.headline() for d in result.diagnostics.items]  # in the order they were found


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "with-mistakes"])
def test_two_processes_parse_like_one(tmp_path: Path, monkeypatch, broken: bool):
    root = _project(tmp_path, broken)
    one = _compile(root, monkeypatch, parallel=False)
    two = _compile(root, monkeypatch, parallel=True)
    assert _headlines(two) == _headlines(one)
    assert sorted(two.files) == sorted(one.files)
    if broken:
        assert len(one.diagnostics.errors) >= 5, _headlines(one)
        codes = {d.code for d in one.diagnostics.errors}
        assert {"E106", "E112"} <= codes, codes
    else:
        assert one.ok and two.ok
        assert one.manifest is not None and two.manifest is not None
        assert dumps(two.manifest) == dumps(one.manifest)


def test_a_failing_second_parser_is_replaced_by_this_process(tmp_path: Path, monkeypatch):
    root = _project(tmp_path, broken=True)
    expected = _headlines(_compile(root, monkeypatch, parallel=False))
    parent = os.getpid()
    real = loader._parse_all

    def dies_in_the_child(*args):  # type: ignore[no-untyped-def]
        if os.getpid() != parent:
            raise RuntimeError("child crashed")
        return real(*args)

    monkeypatch.setattr(loader, "_parse_all", dies_in_the_child)
    assert _headlines(_compile(root, monkeypatch, parallel=True)) == expected


def test_the_python_api_and_library_calls_never_fork(tmp_path: Path, monkeypatch):
    """`featql.Project` and a plain `compile_project` parse a large project in this process."""
    root = _project(tmp_path, broken=False)
    monkeypatch.setattr(loader, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(pool, "cpus", lambda: 2)

    def no_fork(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a library call started a process pool")

    monkeypatch.setattr(pool, "ForkPool", no_fork)
    project = featql.Project(root)
    assert [d.headline() for d in project.compiled.diagnostics.errors] == []
    assert len(project.manifest.views) == 56
    assert compile_project(root).ok


def test_the_cli_check_parses_a_large_project_in_two(tmp_path: Path, monkeypatch, capsys):
    from featql.cli.main import main

    root = _project(tmp_path, broken=True)
    calls: list[int] = []
    real = loader._parse_in_two

    def counted(*args):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(loader, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    monkeypatch.setattr(loader, "_parse_in_two", counted)
    assert main(["check", "--project", str(root)]) == 1
    assert calls == [1]
    err = capsys.readouterr().err
    assert "error[E106]: invalid duration '9x'" in err
