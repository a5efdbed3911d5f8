"""Progress reporting as an interface: jobs report, the CLI draws.

Long-running stages (materialization, the online load) take a `Progress` and call
`progress.task(description, total)`, a context manager giving a function that advances the
task. The stages never import a terminal library: `featql.cli.console.RichProgress` draws the
bars, and `SILENT` (the default, used by the Python API) draws nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Advance(Protocol):
    def __call__(self, n: int = 1, description: str | None = None) -> None:
        """Advance the task by `n` steps, optionally renaming what it is doing."""
        ...


class Progress(Protocol):
    def task(self, description: str, total: int) -> AbstractContextManager[Advance]:
        """A task of `total` steps; the context gives `advance(n)`."""
        ...


class _Silent:
    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        yield _nothing


def _nothing(n: int = 1, description: str | None = None) -> None:
    return None


SILENT: Progress = _Silent()
