"""`featql stream [--view V] [--until-idle]`: stream events into the online store and the log.

Spark Structured Streaming reads each stream source of the workspace's applied stream views
(Kafka with Spark's own `format("kafka")`, or a folder of files) and applies every micro-batch
through the ingest path: the source's offline log, key deduplication and the online store, with
a checkpoint per workspace and view (`.featql/stream/<workspace>/<source>/<view>/`), so a
restart resumes where it stopped, a replayed batch changes nothing, and `--view V` runs (or
`--reset`s) V's checkpoint without touching its siblings. `--until-idle` processes what
is there and stops (`availableNow`); otherwise it runs until Ctrl-C. A later `featql apply`
to the workspace is followed while it runs (a stream view added, removed or changed: its query
started, stopped or restarted), each said on stderr.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from featql.cli.commands._common import applied_run
from featql.cli.commands._registry import add_workspace_argument
from featql.cli.console import console


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--view", action="append", metavar="V",
                   help="stream view to stream, with its own checkpoint (repeatable; "
                   "default: every stream view). Its siblings are not touched")
    p.add_argument("--reset", action="store_true",
                   help="start the --view checkpoints again: the stream is read from its start "
                   "and what the views hold already counts once")
    p.add_argument("--until-idle", action="store_true",
                   help="process what is there, then stop (Spark's availableNow trigger)")
    p.add_argument("--trigger", type=float, default=1.0, metavar="SECONDS",
                   help="micro-batch interval when running continuously (default: 1)")
    p.add_argument("--max-seconds", type=float, metavar="SECONDS",
                   help="stop after this long (default: run until Ctrl-C)")
    p.add_argument("--max-batch", type=int, default=50_000, metavar="N",
                   help="Kafka messages per micro-batch at most (default: 50000)")
    add_workspace_argument(p)


def run(args: argparse.Namespace) -> int:
    from featql.cli.console import UserError

    if args.trigger <= 0 or (args.max_seconds is not None and args.max_seconds <= 0):
        raise UserError("--trigger and --max-seconds must be positive numbers of seconds")
    if args.max_batch < 1:
        raise UserError("--max-batch must be at least 1")
    run_ = applied_run(args.project, args.workspace)
    from featql.jobs.stream import run_stream

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    draw = _Live()
    try:
        report = run_stream(Path(args.project), run_.applied.run_manifest, run_.workspace,
                            args.view, until_idle=args.until_idle, trigger_seconds=args.trigger,
                            config=run_.config, on_progress=draw, stop=stop,
                            max_seconds=args.max_seconds, max_batch=args.max_batch,
                            reset=args.reset, applied_id=run_.applied.apply_id,
                            progress=_Notes())
    finally:
        draw.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out = console()
    for s in report.sources:
        if s.reset:
            why = "was reset" if args.reset else "was reset (its stream location changed)"
            out.print(f"  {s.view}: its checkpoint {why}, so {s.location} is read from its "
                      "start (events the view holds already count once)", highlight=False)
        out.print(f"[green]✓[/] {s.view} ← {s.source} ({s.location}): {s.batches} batch(es), "
                  f"{s.events:,} event(s) read, {s.ingested:,} ingested, {s.duplicates:,} "
                  f"duplicate(s), {s.late:,} late, {s.dead:,} dead letter(s)",
                  highlight=False)
        if s.late:
            out.print(f"  {s.late:,} event(s) arrived more than the source's lateness behind "
                      "the watermark: applied and logged all the same, counted here",
                      highlight=False)
        if s.total_dead:
            folder = os.path.relpath(report.folder / s.source / s.view / "deadletter")
            out.print(f"  dead letters ({s.total_dead:,} since the checkpoint began): {folder}",
                      highlight=False)
    how = "until idle" if args.until_idle else "until stopped"
    out.print(f"streamed {how} into workspace '{report.workspace}' ({run_.applied.label})",
              markup=False)
    return 0


class _Notes:
    """A `featql.core.progress.Progress` printing each task as one line on stderr once done:
    what the running stream did on a later apply (`featql.jobs.stream_follow`)."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Any]:
        from rich.markup import escape

        yield lambda n=1, description=None: None
        console(stderr=True).print(f"[cyan]↻[/] {escape(description)}", highlight=False)


class _Live:
    """The progress table on stderr while the stream runs: batches, events/s, lag, late."""

    def __init__(self) -> None:
        self._live: Any = None

    def __call__(self, stats: Sequence[Any]) -> None:
        from rich.live import Live
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for col in ("view", "batches", "events", "events/s", "lag", "late", "dead letters",
                    "watermark"):
            table.add_column(col, justify="left" if col in ("view", "watermark") else "right")
        for s in stats:
            table.add_row(s.view, f"{s.batches:,}", f"{s.events:,}", f"{s.events_per_s:,.0f}",
                          "-" if s.lag is None else f"{s.lag:,}", f"{s.late:,}", f"{s.dead:,}",
                          f"{s.watermark:%Y-%m-%d %H:%M:%S}" if s.watermark else "-")
        if self._live is None:
            self._live = Live(table, console=console(stderr=True), transient=True,
                              auto_refresh=False)
            self._live.start()
        self._live.update(table, refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
