"""`featql training-set SERVICE --spine FILE --out FILE`: point-in-time-correct training data.

One row per spine row, in spine order, spine columns kept, then `<view>__<feature>` columns and
the service's request-transform outputs. Runs the definitions applied to the workspace: each
view is read from the offline store where it is materialized, from the sources elsewhere.
`--working-tree` (or a workspace with nothing applied yet) computes everything from the
sources with the working tree's definitions, unapplied edits included (the authoring loop),
and says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from featql.cli.commands._common import applied_run, compile_or_report, project_root, workspace
from featql.cli.commands._registry import add_workspace_argument
from featql.cli.console import UserError, console

if TYPE_CHECKING:
    import pyarrow as pa


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", metavar="SERVICE", help="feature service")
    p.add_argument("--spine", required=True, metavar="FILE",
                   help="entity keys and a timestamp per row (Parquet, CSV or JSON lines)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output file: .parquet (default), .csv or .json")
    p.add_argument("--engine", choices=("duckdb", "spark"),
                   help="offline engine (default: [offline] engine in featql.toml)")
    p.add_argument("--timestamp", metavar="COL",
                   help="the spine's timestamp column, when it has several")
    add_workspace_argument(p)
    p.add_argument("--working-tree", action="store_true",
                   help="compute from the sources with the working tree's definitions "
                        "(unapplied edits included) instead of the workspace's applied ones")


def run(args: argparse.Namespace) -> int:
    from featql.jobs.training import TrainingReport, training_set
    from featql.registry import RegistryError
    from featql.registry.applied import check_hook_paths, find_applied

    root = project_root(args.project)
    out = _writable_output(Path(args.out))  # before any work: a bad --out costs nothing
    ws = workspace(root, args.workspace)
    try:
        has_apply = not args.working_tree and find_applied(root, ws) is not None
    except RegistryError as e:
        raise UserError(str(e)) from e
    c = console()
    if has_apply:
        run_ = applied_run(args.project, ws)
        manifest, config, use_store = run_.applied.run_manifest, run_.config, True
        using = f"the definitions of {run_.applied.label}"
    else:
        result = compile_or_report(args.project, quiet_ok=True)
        if result is None:
            return 1
        assert result.manifest is not None
        try:
            check_hook_paths(root, result.manifest)
        except RegistryError as e:
            raise UserError(str(e)) from e
        manifest, config, use_store = result.manifest, result.config, False
        why = "--working-tree" if args.working_tree else f"nothing is applied to workspace '{ws}'"
        using = "the working tree's definitions (unapplied edits included), from the sources"
        console(stderr=True).print(f"[bold yellow]note:[/] computed from the sources with the "
                                   f"working tree's definitions ({why})", highlight=False)
    report = TrainingReport()
    with console(stderr=True).status(f"computing the training set of {args.service} ..."):
        table = training_set(root, manifest, config, args.service, args.spine,
                             engine=args.engine, timestamp=args.timestamp, workspace=ws,
                             use_store=use_store, report=report)
    try:
        _write(table, out)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from e
    stored = sorted(v for v, where in report.reads.items() if where == "store")
    c.print(f"[green]✓[/] {table.num_rows:,} rows × {table.num_columns} columns → {out}")
    c.print(f"  using {using}", markup=False)
    c.print(f"  views from the offline store: {', '.join(stored) or 'none'}; "
            f"from the sources: {len(report.reads) - len(stored)}")
    return 0


FORMATS = {".parquet": "parquet", ".pq": "parquet", "": "parquet", ".csv": "csv",
           ".json": "json", ".jsonl": "json"}


def _writable_output(out: Path) -> Path:
    """`--out`, checked up front: a known format, in a folder this process can write."""
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"unknown output format '{out.suffix}' in --out {out}; use .parquet, "
                        ".csv or .json")
    probe = out.with_name(f".{out.name}.featql-probe")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write --out {out}: {e.strerror or e}") from e
    return out


def _write(table: pa.Table, out: Path) -> None:
    kind = FORMATS[out.suffix.lower()]
    if kind == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, out)
    elif kind == "json":
        import json

        with out.open("w") as f:
            for row in table.to_pylist():
                f.write(json.dumps(row, default=str) + "\n")
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, out)
