"""`featql materialize [--view V] [--start T] [--end T] [--overwrite]`: fill the offline store.

Runs the definitions applied to the workspace (`featql apply`), never unapplied edits of the
working tree (a warning names them). Incremental by default: only the schedule intervals not
yet recorded as done for each view's applied definition are computed, plus the done ones that
late rows made stale (new, changed or deleted source files, or a declared `lookback`), each
reported with its cause (`featql.jobs.stale`). `--overwrite` recomputes the range and swaps it
in atomically; `--online` then loads the online store (stream views under the ingest lock,
waited for at most `--lock-timeout` seconds: `featql.jobs.stream_handover`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from featql.cli.commands._common import applied_run
from featql.cli.commands._registry import add_workspace_argument
from featql.cli.console import RichProgress, console

if TYPE_CHECKING:
    from featql.jobs.compact import LevelRun


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
    p.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="with --online: how long to wait for the ingest lock that pushes and "
                   "`featql stream` hold while they write, before loading stream views "
                   "(default: 60)")
    p.add_argument("--compact", action="store_true",
                   help="only compact: store the complete coarse periods of long windows "
                   "(materialize does it after every run)")
    p.add_argument("--engine", choices=("duckdb", "spark"),
                   help="offline engine (default: [offline] engine in featql.toml)")
    add_workspace_argument(p)


def run(args: argparse.Namespace) -> int:
    run_ = applied_run(args.project, args.workspace)
    from featql.jobs.materialize import materialize

    workspace = run_.workspace
    if args.compact:
        from featql.jobs.compact import compact_offline

        levels = compact_offline(Path(args.project), run_.applied.run_manifest, workspace,
                                 args.view, run_.config)
        _print_compacted(levels)
        console().print(f"compacted {len(levels)} level(s) in workspace '{workspace}' "
                        f"({run_.applied.label})", markup=False)
        return 0
    report = materialize(Path(args.project), run_.applied.run_manifest, workspace, args.view,
                         args.start, args.end, args.overwrite, args.engine,
                         progress=RichProgress(), config=run_.config, online=args.online,
                         lock_timeout=args.lock_timeout)
    out = console()
    for v in report.views:
        if v.written > v.recomputed:
            out.print(f"[green]✓[/] {v.view}: {v.written} interval(s), {v.rows:,} rows, "
                      f"{v.files} file(s)  [dim]{v.fingerprint}[/]")
            if v.reused:  # an older definition's tiles, only new columns computed (jobs/reuse.py)
                out.print(f"  ↳ {v.view}: {v.note}", markup=False)
        elif not v.written:
            out.print(f"[dim]·[/] {v.view}: {v.note} ({v.intervals} interval(s))")
        if v.recomputed:  # late rows (featql.jobs.stale): intervals already done, again
            n = v.recomputed
            out.print(f"↻ {v.view}: recomputed {n} interval{'s' if n != 1 else ''} "
                      f"({v.recomputed_span}): {v.reason}", markup=False)
    again = f" ({report.recomputed} recomputed)" if report.recomputed else ""
    out.print(f"materialized {report.written} interval(s){again} into workspace '{workspace}' "
              f"with {report.engine} ({run_.applied.label})", markup=False)
    _print_compacted(report.compacted)
    if report.online is not None:
        views = getattr(report.online, "views", ())
        out.print(f"online store loaded: {len(views)} view(s)")
    return 0


def _print_compacted(levels: Sequence[LevelRun]) -> None:
    from featql.core.durations import format_duration

    out = console()
    for lv in levels:
        res = format_duration(lv.resolution)
        if lv.note:
            out.print(f"[dim]·[/] {lv.view}: {res} tiles: {lv.note}")
        elif lv.written:
            out.print(f"⊞ {lv.view}: {lv.coarse_tiles:,} × {res} tiles ({lv.periods} period(s)) "
                      f"from {lv.fine_tiles:,} fine tiles", markup=False)
        else:
            out.print(f"[dim]·[/] {lv.view}: {res} tiles up to date ({lv.periods} period(s))")
