"""`featql check`: parse and type-check everything; diagnostics as path:line:col."""

from __future__ import annotations

import argparse
import json
import time

from featql.cli.commands._common import LARGE_PROJECT_VIEWS, project_root
from featql.cli.console import console, print_diagnostics, summary_line
from featql.compiler.project import compile_project
from featql.core.pool import gc_paused


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="diagnostics as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    # a short-lived command: a large project's garbage is left to process exit
    with gc_paused() as pause:
        # fingerprints too: duplicate features (W802) are found from them
        result = compile_project(project_root(args.project), with_lineage=False,
                                 parallel=True)
        pause.leave_to_exit = result.manifest is not None and (
            len(result.manifest.views) >= LARGE_PROJECT_VIEWS)
    diags = result.diagnostics
    if args.json:
        print(json.dumps([d.to_json() for d in diags.sorted()], indent=2))
        return 1 if diags.has_errors() else 0
    print_diagnostics(diags.sorted(), result.source_text)
    out = console()
    if diags.has_errors():
        out.print(f"[bold red]✗[/] {summary_line(len(diags.errors), len(diags.warnings))}")
        return 1
    m = result.manifest
    assert m is not None
    n_features = sum(len(v.features) for v in m.views)
    out.print(
        f"[bold green]✓[/] {len(m.sources)} sources, {len(m.entities)} entities, "
        f"{len(m.views)} feature views ({n_features} features), {len(m.transforms)} transforms, "
        f"{len(m.services)} services: {summary_line(0, len(diags.warnings))} "
        f"[dim]({time.perf_counter() - started:.2f}s)[/]")
    return 0
