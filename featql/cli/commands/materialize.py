"""`featql materialize [--view V] [--start T] [--end T] [--overwrite]`: fill the offline store.

Incremental by default: only the schedule intervals not yet recorded as done for each view's
current definition are computed. `--overwrite` recomputes the range and swaps it in atomically;
`--online` then loads the online store.
"""

from __future__ import annotations

import argparse

from featql.cli.commands._common import compile_or_report
from featql.cli.console import RichProgress, console

ORDER = 70


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--view", action="append", metavar="V",
                   help="feature view to materialize (repeatable; default: all offline views)")
    p.add_argument("--start", metavar="T", help="first event time (date or timestamp, UTC)")
    p.add_argument("--end", metavar="T",
                   help="end of event time, exclusive (default: the end of the data)")
    p.add_argument("--overwrite", action="store_true",
                   help="recompute intervals already done and replace them atomically")
    p.add_argument("--online", action="store_true",
                   help="then load the latest values into the online store")
    p.add_argument("--engine", choices=("duckdb", "spark"),
                   help="offline engine (default: [offline] engine in featql.toml)")
    p.add_argument("--workspace", "-w", metavar="W",
                   help="workspace (default: the selected one, initially dev)")


def _workspace(root: object, arg: str | None) -> str:
    if arg:
        return arg
    try:
        from featql.registry.workspaces import selected
    except ImportError:
        return "dev"
    return selected(root)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    result = compile_or_report(args.project, quiet_ok=True)
    if result is None:
        return 1
    assert result.manifest is not None
    from featql.jobs.materialize import materialize

    workspace = _workspace(result.root, args.workspace)
    report = materialize(result.root, result.manifest, workspace, args.view, args.start,
                         args.end, args.overwrite, args.engine, progress=RichProgress(),
                         config=result.config, online=args.online)
    out = console()
    for v in report.views:
        if v.written:
            out.print(f"[green]✓[/] {v.view}: {v.written} interval(s), {v.rows:,} rows, "
                      f"{v.files} file(s)  [dim]{v.fingerprint}[/]")
        else:
            out.print(f"[dim]·[/] {v.view}: {v.note} ({v.intervals} interval(s))")
    out.print(f"materialized {report.written} interval(s) into workspace '{workspace}' "
              f"with {report.engine}")
    if report.online is not None:
        views = getattr(report.online, "views", ())
        out.print(f"online store loaded: {len(views)} view(s)")
    return 0
