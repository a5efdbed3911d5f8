"""Helpers shared by commands: compile a project and report its diagnostics."""

from __future__ import annotations

from pathlib import Path

from featql.compiler.project import CompileResult, ViewSink, compile_project
from featql.console import UserError, console, print_diagnostics, summary_line


def project_root(arg: str) -> Path:
    root = Path(arg)
    if not root.is_dir():
        raise UserError(f"project folder '{arg}' does not exist")
    return root


def compile_or_report(project: str, *, quiet_ok: bool = False,
                      sink: ViewSink | None = None) -> CompileResult | None:
    """Compile; print diagnostics; None when there were errors. `sink`: see
    `compile_project`."""
    result = compile_project(project_root(project), sink=sink)
    diags = result.diagnostics
    print_diagnostics(diags.sorted(), result.source_text)
    if diags.has_errors():
        counts = summary_line(len(diags.errors), len(diags.warnings))
        console(stderr=True).print(f"[bold red]featql check failed:[/] {counts}")
        return None
    if not quiet_ok and diags.warnings:
        console(stderr=True).print(summary_line(0, len(diags.warnings)))
    return result
