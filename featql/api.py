"""The Python API (PRODUCT §6): `featql.Project(path, workspace=...)`."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from featql.compiler.diagnostics import FeatqlError
from featql.compiler.ir import Manifest
from featql.compiler.project import CompileResult, compile_project


class Project:
    """A feature repository on disk, compiled on first use."""

    def __init__(self, path: str | Path = ".", workspace: str = "dev"):
        self.root = Path(path)
        self.workspace = workspace

    @cached_property
    def compiled(self) -> CompileResult:
        return compile_project(self.root)

    @property
    def manifest(self) -> Manifest:
        """The compiled manifest; raises FeatqlError carrying every diagnostic on errors."""
        result = self.compiled
        if not result.ok or result.manifest is None:
            raise FeatqlError(result.diagnostics.errors)
        return result.manifest
