"""`featql compile`: write target/manifest.json and the generated SQL per view and target."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from featql.cli.commands._common import LARGE_PROJECT_VIEWS, compile_or_report
from featql.cli.console import console, print_diagnostics
from featql.compiler.loader import display_path
from featql.core.ir import Manifest
from featql.core.manifest import unchanged, write_manifest
from featql.core.pool import gc_paused

if TYPE_CHECKING:
    from featql.compiler.project import CompileResult
    from featql.dialects.errors import Target
    from featql.dialects.lowering_worker import Result

TARGETS = ("duckdb", "spark")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=TARGETS, action="append",
                   help="engine to generate SQL for (repeatable; default: all)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: <project>/target)")


def sql_file_name(view: str) -> str:
    return view.replace(":", "__") + ".sql"


def out_folder(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else Path(args.project) / "target"


def run(args: argparse.Namespace) -> int:
    from featql.compiler.lineage import build_lineage
    from featql.dialects.lowering_worker import SqlFiles, StreamingLowerer

    targets = args.target or list(TARGETS)
    sql_dir = out_folder(args) / "sql"
    files = SqlFiles(lambda view, target: sql_dir / target / sql_file_name(view),
                     sql_dir / f".staging-{os.getpid()}")
    # each view is planned once for all targets; on large projects a second core lowers (and
    # writes) the views already compiled while the compiler works on the rest
    # a short-lived command: a large project's garbage is left to process exit
    with gc_paused() as pause, \
            StreamingLowerer(targets, files=files, lineage=True) as lowerer:
        result = compile_or_report(args.project, sink=lowerer, lineage=False, parallel=True)
        if result is None:
            return 1
        manifest = result.manifest
        assert manifest is not None
        pause.leave_to_exit = len(manifest.views) >= LARGE_PROJECT_VIEWS
        lowered = lowerer.finish(manifest)
        # lineage last: the worker computed it for the views it lowered
        manifest = build_lineage(manifest, result.typed, lowerer.lineage)
        # inside `with`: files staged by the worker are moved before it drops the rest
        return _write(args, result, manifest, targets, lowered)


def _write(args: argparse.Namespace, result: CompileResult, manifest: Manifest,
           targets: list[Target], lowered: dict[str, Result]) -> int:
    """Report the views that cannot be lowered, or write the manifest and the SQL files."""
    from featql.core.diagnostics import Diagnostic
    from featql.dialects.lowering_worker import Staged

    out_dir = out_folder(args)
    # results are reported target by target, views in manifest order
    written: dict[Path, str | Staged] = {}
    failures = []
    for target in targets:
        for view in manifest.views:
            sql = lowered[view.name][target]
            if isinstance(sql, Diagnostic):
                # lowering reports at the view's project-relative location: show it as a path
                shown = display_path(result.root / sql.span.path)
                failures.append(replace(sql, span=replace(sql.span, path=shown)))
                continue
            written[out_dir / "sql" / target / sql_file_name(view.name)] = sql
    if failures:
        # a view the planner refuses gives the same diagnostic for every target: show it once
        failures = list(dict.fromkeys(failures))
        print_diagnostics(failures, result.source_text)
        console(stderr=True).print(f"[bold red]✗[/] {len(failures)} view(s) cannot be lowered")
        return 1
    path = write_manifest(manifest, out_dir)
    for folder in sorted({file.parent for file in written}):
        folder.mkdir(parents=True, exist_ok=True)
    for file, sql in sorted(written.items(), key=lambda item: item[0]):
        if isinstance(sql, Staged):  # the lowering worker wrote it already, or found it
            if sql.path is not None:
                file.unlink(missing_ok=True)  # not renamed over: see below
                os.rename(sql.path, file)
            continue
        if unchanged(file, sql):
            continue  # a recompile leaves identical files alone (and their times)
        # a new file rather than truncating the old one: on ext4, rewriting a truncated file
        # waits for its old blocks to be flushed (seconds for 2,000 files on a recompile)
        file.unlink(missing_ok=True)
        file.write_text(sql)
    console().print(f"[bold green]✓[/] wrote {path} and {len(written)} SQL files "
                    f"({', '.join(targets)}) under {out_dir / 'sql'}")
    _read_report(manifest)
    return 0


def _read_report(manifest: Manifest) -> None:
    """Per service, what one lookup (one entity row) reads at most: a cell per view, its tiles
    and bytes (`featql.semantics.read_cost`), against the service's `max_read_kb`."""
    if not manifest.services:
        return
    from rich.table import Table

    from featql.compiler.budgets import kb
    from featql.core.durations import format_duration
    from featql.semantics.read_cost import service_read

    table = Table(title="Read per lookup (one entity row, at most)", title_justify="left")
    for col in ("service / view", "window", "tiles", "bytes"):
        table.add_column(col, justify="left" if col == "service / view" else "right")
    notes: dict[str, None] = {}
    for service in manifest.services:
        read = service_read(manifest, service)
        total = "no bound" if read.bytes is None else kb(read.bytes) + (" + text" if read.text
                                                                         else "")
        budget = f" / {service.max_read_kb:g} KB" if service.max_read_kb is not None else ""
        table.add_row(f"{service.name} ({read.cells} cells)", "", str(read.tiles),
                      total + budget, style="bold")
        for v in read.views:
            window = format_duration(v.window) if v.window is not None else "row"
            tiles = f"{v.tiles} of {v.fine_tiles}" if v.tiles != v.fine_tiles else str(v.tiles)
            size = "no bound" if v.bytes is None else kb(v.bytes) + (" + text" if v.text else "")
            table.add_row(f"  {v.view}", window, tiles, size)
            if v.why is not None:
                notes[f"{v.view}: {'no bound' if v.bytes is None else '+ text'}: {v.why}"] = None
    console().print(table)
    for note in notes:
        console().print(f"  {note}")
