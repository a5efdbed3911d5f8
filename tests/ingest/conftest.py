"""Fixtures of the push-path tests: a compiled stream project in a temporary folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from featql.compiler.project import compile_project
from featql.core.ir import Manifest

from .project import write_project


@pytest.fixture
def stream_project(tmp_path: Path) -> Callable[..., tuple[Path, Manifest]]:
    def make(stream: bool = True, name: str = "proj",
             extra: dict[str, str] | None = None) -> tuple[Path, Manifest]:
        root = write_project(tmp_path / name, stream=stream, extra=extra)
        result = compile_project(root)
        assert result.ok, [d.headline() for d in result.diagnostics]
        return root, result.manifest
    return make
