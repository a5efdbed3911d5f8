"""Terminal output: one rich console per stream, diagnostics rendering, user-facing errors.

rich writes colour only to a terminal, so redirected output and files never get ANSI codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from featql.compiler.diagnostics import Diagnostic, Severity

if TYPE_CHECKING:
    from rich.console import Console


@lru_cache(maxsize=2)
def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class UserError(Exception):
    """A mistake of the user's that is not tied to a file position (exit code 1)."""


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
