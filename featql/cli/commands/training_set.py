"""`featql training-set SERVICE --spine FILE --out FILE`: point-in-time-correct training data.

One row per spine row, in spine order, spine columns kept, then `<view>__<feature>` columns and
the service's request-transform outputs. Reads the offline store where it is materialized, the
sources elsewhere (no materialization needed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from featql.cli.commands._common import compile_or_report
from featql.cli.console import UserError, console

NAME = "training-set"
ORDER = 75


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
    p.add_argument("--workspace", "-w", metavar="W",
                   help="workspace whose offline store is read (default: the selected one)")


def run(args: argparse.Namespace) -> int:
    result = compile_or_report(args.project, quiet_ok=True)
    if result is None:
        return 1
    assert result.manifest is not None
    from featql.cli.commands.materialize import _workspace
    from featql.jobs.training import TrainingReport, training_set

    report = TrainingReport()
    table = training_set(result.root, result.manifest, result.config, args.service, args.spine,
                         engine=args.engine, timestamp=args.timestamp,
                         workspace=_workspace(result.root, args.workspace), report=report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, out)
    elif suffix in (".json", ".jsonl"):
        import json

        with out.open("w") as f:
            for row in table.to_pylist():
                f.write(json.dumps(row, default=str) + "\n")
    elif suffix in ("", ".parquet", ".pq"):
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    else:
        raise UserError(f"unknown output format '{suffix}'; use .parquet, .csv or .json")
    stored = sorted(v for v, where in report.reads.items() if where == "store")
    c = console()
    c.print(f"[green]✓[/] {table.num_rows:,} rows × {table.num_columns} columns → {out}")
    c.print(f"  views from the offline store: {', '.join(stored) or 'none'}; "
            f"from the sources: {len(report.reads) - len(stored)}")
    if report.transforms_skipped:
        c.print(f"  [yellow]request transforms not applied:[/] {report.transforms_skipped}")
    return 0
