"""Terminal output: one rich console per stream, diagnostics rendering, user-facing errors.

rich writes colour only to a terminal, so redirected output and files never get ANSI codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

from featql.core.diagnostics import Diagnostic, Severity
from featql.core.errors import UserError
from featql.core.progress import Advance

__all__ = ["RichProgress", "UserError", "console", "print_diagnostics", "summary_line"]

if TYPE_CHECKING:
    from rich.console import Console


@lru_cache(maxsize=2)
def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_diagnostics(diags: Iterable[Diagnostic], source_of: object = None) -> None:
    from rich.markup import escape

    err = console(stderr=True)
    for d in diags:
        text = source_of(d.span.path) if callable(source_of) else None
        rendered = d.render(text).split("\n")
        style = "bold red" if d.severity is Severity.ERROR else "bold yellow"
        err.print(f"[{style}]{escape(rendered[0])}[/]")
        for line in rendered[1:]:
            if line.startswith("  = help:"):
                err.print(f"[cyan]{escape(line)}[/]")
            else:
                err.print(escape(line))


def summary_line(n_errors: int, n_warnings: int) -> str:
    parts = []
    if n_errors:
        parts.append(f"{n_errors} error{'s' if n_errors != 1 else ''}")
    if n_warnings:
        parts.append(f"{n_warnings} warning{'s' if n_warnings != 1 else ''}")
    return ", ".join(parts) if parts else "no problems"


class RichProgress:
    """`featql.core.progress.Progress` drawn as rich bars on stderr (nothing off a terminal
    beyond rich's own plain rendering; tasks of fewer than 2 steps draw nothing)."""

    def __init__(self, transient: bool = True) -> None:
        self.transient = transient

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        if total < 2:
            yield _no_advance
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console(stderr=True),
                      transient=self.transient) as bar:
            task = bar.add_task(description, total=total)

            def advance(n: int = 1, description: str | None = None) -> None:
                if description is None:
                    bar.advance(task, n)
                else:
                    bar.update(task, advance=n, description=description)

            yield advance


def _no_advance(n: int = 1, description: str | None = None) -> None:
    return None
