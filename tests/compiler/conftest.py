"""Helpers for compiler tests: small projects written into tmp_path from a dict of files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from featql.compiler.project import CompileResult, compile_project

from .projects import write_project

Compile = Callable[..., CompileResult]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Compile:
    """Compile a project made of the base files plus the given ones, from inside its folder
    (so diagnostic paths are project-relative, as a user running `featql check` sees them)."""
    monkeypatch.chdir(tmp_path)

    def run(files: dict[str, str], *, base: bool = True) -> CompileResult:
        write_project(tmp_path, files, base=base)
        return compile_project(tmp_path)

    return run

