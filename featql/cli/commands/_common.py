"""Helpers shared by commands: compile a project and report its diagnostics."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from featql.cli.console import UserError, console, print_diagnostics, summary_line
from featql.compiler.project import CompileResult, ViewSink, compile_project


def project_root(arg: str) -> Path:
    root = Path(arg)
    if not root.is_dir():
        raise UserError(f"project folder '{arg}' does not exist")
    return root


def compile_or_report(project: str, *, quiet_ok: bool = False, sink: ViewSink | None = None,
                      lineage: bool = True) -> CompileResult | None:
    """Compile; print diagnostics; None when there were errors. `sink`: see
    `compile_project`; `lineage=False` leaves the manifest's lineage empty."""
    result = compile_project(project_root(project), sink=sink, with_lineage=lineage)
    diags = result.diagnostics
    print_diagnostics(diags.sorted(), result.source_text)
    if diags.has_errors():
        counts = summary_line(len(diags.errors), len(diags.warnings))
        console(stderr=True).print(f"[bold red]featql check failed:[/] {counts}")
        return None
    if not quiet_ok and diags.warnings:
        console(stderr=True).print(summary_line(0, len(diags.warnings)))
    return result


class ShortLivedHeap:
    """Set `large` once the project is known to be large: its trees are then left to exit."""

    large = False


LARGE_PROJECT_VIEWS = 200


@contextmanager
def short_lived_heap() -> Iterator[ShortLivedHeap]:
    """A command's compile without cyclic garbage collection.

    sqlglot trees are cyclic (parent links): copies made to generate SQL from are garbage only
    the cyclic collector frees, and collecting costs a tenth of a large compile. A command is
    short: it runs without collections; a large project's garbage (some 50 MB per 1,000 views)
    is frozen and left to process exit, a small one's is collected afterwards."""
    heap = ShortLivedHeap()
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield heap
    finally:
        if heap.large:
            gc.freeze()  # frozen objects are never collected, not even at interpreter exit
        if collecting:
            gc.enable()
