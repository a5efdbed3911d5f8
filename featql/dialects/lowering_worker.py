"""Lower views while the compiler is still type-checking the rest of the project.

`featql compile` is one long single-threaded compile followed by the lowering of every view.
A view can be lowered as soon as its IR exists: lowering reads only the view, the sources and
the views it reads, and those are compiled before it (views are compiled in DAG order). So the
compiler hands each finished view to a `StreamingLowerer` (its `ViewSink`), which for a large
project feeds it, in batches, to the one worker of a `featql.core.pool.ForkPool` on the
otherwise idle core (the queue, the claims and the lock are inherited by the fork). When
the compile is done, this process lowers the batches the worker has not started yet, from the
last one back, while the worker goes on from the front.

The result equals `lower_views(manifest, targets)`: the worker lowers each view against a
manifest holding the sources and every view compiled before it, and lowering looks nothing
else up. Any view the worker did not lower (a small project, a batch taken back, a view object
other than the one the final manifest holds, a worker that died) is lowered here, against the
final manifest.
"""

from __future__ import annotations

import os
import queue
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from featql.core import pool
from featql.core.diagnostics import Diagnostic
from featql.core.ir import FeatureView, LineageEdge, Manifest, Source
from featql.core.manifest import unchanged
from featql.dialects.errors import Target
from featql.dialects.parallel import PARALLEL_MIN_VIEWS, Lowered, _lower_one

BATCH = 10  # views per message to the worker, and per claim of either process
POLL_SECONDS = 1.0  # how often an idle worker checks that its parent still runs
# The worker runs under `featql.core.pool`'s garbage-collection policy: lowering leaves ~0.1 MB
# of cyclic garbage per view, collected once per `pool.COLLECT_EVERY` views.


@dataclass(frozen=True)
class Staged:
    """SQL the worker wrote to `path` in the staging folder; `path=None`: the final file
    already holds exactly this text."""

    path: Path | None


@dataclass(frozen=True)
class SqlFiles:
    """Where lowered SQL goes: `place(view, target)` is a view's final file; staged files are
    written under `staging` (same file system, so moving one is a rename)."""

    place: Callable[[str, Target], Path]
    staging: Path


Result = dict[Target, "str | Diagnostic | Staged"]


class StreamingLowerer:
    """A `featql.compiler.project.ViewSink` that lowers the views it is given."""

    def __init__(self, targets: Sequence[Target], *, min_views: int = PARALLEL_MIN_VIEWS,
                 files: SqlFiles | None = None, lineage: bool = False):
        self.targets = tuple(targets)
        self.min_views = min_views
        self.files = files
        self.with_lineage = lineage
        # view name → its lineage edges, for the views the worker lowered (after `finish`)
        self.lineage: dict[str, list[LineageEdge]] = {}
        self._sources: tuple[Source, ...] = ()
        self._batches: list[list[FeatureView]] = []  # sent to the worker, in order
        self._pending: list[FeatureView] = []
        self._pool: pool.ForkPool | None = None
        self._future: Future[tuple[dict[str, Result], dict[str, list[LineageEdge]]]] | None = None
        self._inbox: Any = None  # multiprocessing.Queue: view batches to the worker, then None
        self._claims: Any = None  # [batches the worker took, first batch this process took]
        self._lock: Any = None

    def begin(self, sources: Mapping[str, Source], views: int) -> None:
        self._sources = tuple(sources.values())
        if views >= self.min_views and pool.can_fork():
            self._start()

    def add(self, view: FeatureView) -> None:
        self._pending.append(view)
        if self._future is not None and len(self._pending) >= BATCH:
            self._send()

    def finish(self, manifest: Manifest) -> dict[str, Result]:
        """view name → target → SQL text or diagnostic, for every view of `manifest`, in
        manifest order (as `featql.dialects.parallel.lower_views`); with `files`, `Staged`
        for the views the worker wrote."""
        done: dict[str, Result] = {}
        with pool.gc_paused():
            if self._future is not None:
                self._send()
                self._inbox.put(None)
                done = self._lower_tail(manifest)
                done.update(self._collect())
            sent = {v.name: v for batch in self._batches for v in batch}
            # a result is kept only for the very view object the final manifest holds
            kept = {v.name for v in manifest.views if v.name in done and sent.get(v.name) is v}
            self.lineage = {n: e for n, e in self.lineage.items() if n in kept}
            return {v.name: done[v.name] if v.name in kept
                    else dict(_lower_one(manifest, v.name, self.targets))
                    for v in manifest.views}

    def close(self) -> None:
        """Stop the worker if it still runs (a failed compile never calls `finish`) and drop
        the staged files not moved into place."""
        self._stop()
        if self.files is not None:
            shutil.rmtree(self.files.staging, ignore_errors=True)

    def _stop(self) -> None:
        """Take back every batch the worker has not begun, end its inbox, join it (it ends the
        batch it is lowering, at most `BATCH` views)."""
        if self._pool is not None:
            with self._lock:
                self._claims[1] = 0
            self._inbox.put(None)
            self._pool.close()
            self._pool = None
        if self._inbox is not None:
            self._inbox.cancel_join_thread()
            self._inbox.close()
            self._inbox = None

    def __enter__(self) -> StreamingLowerer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _start(self) -> None:
        ctx = pool.fork_context()
        self._inbox = ctx.Queue()
        self._lock = ctx.Lock()
        self._claims = ctx.RawArray("i", [0, 2**31 - 1])
        # the worker inherits the queue, the claims and the lock: made before it is forked
        self._pool = pool.ForkPool(1, shared=Work(self._inbox, self._claims, self._lock,
                                                  self._sources, self.targets, self.files,
                                                  self.with_lineage))
        self._future = self._pool.submit(_work)

    def _send(self) -> None:
        if self._pending:
            self._inbox.put(self._pending)
            self._batches.append(self._pending)
            self._pending = []

    def _lower_tail(self, manifest: Manifest) -> dict[str, Result]:
        """Take batches back from the end while the worker has not claimed them."""
        out: dict[str, Result] = {}
        claims = self._claims
        while True:
            with self._lock:
                last = min(claims[1], len(self._batches)) - 1
                if last < claims[0]:
                    break
                claims[1] = last
            for view in self._batches[last]:
                out[view.name] = dict(_lower_one(manifest, view.name, self.targets))
        return out

    def _collect(self) -> dict[str, Result]:
        assert self._future is not None
        try:
            done, self.lineage = self._future.result()
        except Exception:  # the worker died or failed: its views are lowered here
            done = {}
        self._stop()
        return done


@dataclass(frozen=True)
class Work:
    """What the worker inherits (`pool.shared()`)."""

    inbox: Any  # multiprocessing.Queue of view batches, then None
    claims: Any  # RawArray: [batches the worker took, first batch the parent took]
    lock: Any
    sources: tuple[Source, ...]
    targets: tuple[Target, ...]
    files: SqlFiles | None
    lineage: bool


def _work() -> tuple[dict[str, Result], dict[str, list[LineageEdge]]]:
    """Worker: claim each batch in turn and lower it against the views received so far (and
    stage its files, and compute its lineage); return all results at the end. A view whose
    lowering fails unexpectedly is left out (the parent lowers it again and reports the error
    as it would without a worker)."""
    work: Work = pool.shared()
    with pool.gc_paused() as pause:
        return _lower_batches(work, pause)


def _lower_batches(work: Work, pause: pool.GcPause
                   ) -> tuple[dict[str, Result], dict[str, list[LineageEdge]]]:
    inbox, claims, lock, sources = work.inbox, work.claims, work.lock, work.sources
    targets, files, lineage = work.targets, work.files, work.lineage
    parent = os.getppid()
    from featql.compiler.lineage import table_columns, view_edges
    from featql.dialects.render import parse

    views: list[FeatureView] = []
    out: dict[str, Result] = {}
    edges: dict[str, list[LineageEdge]] = {}
    columns = table_columns(sources, ())  # and each view's, as it arrives
    index = 0
    while True:
        try:
            batch = inbox.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if os.getppid() != parent:  # the parent was killed: nobody wants the results
                return {}, {}
            continue
        except (EOFError, OSError):
            break
        if batch is None:
            break
        views.extend(batch)
        columns |= table_columns((), batch)
        with lock:
            mine = index < claims[1]
            if mine:
                claims[0] = index + 1
        index += 1
        if not mine:
            continue
        manifest = Manifest("", sources, (), tuple(views), (), ())
        pause.worked(len(batch))
        for view in batch:
            try:
                query = parse(view.sql)
                if lineage:  # reads the tree; lowering then takes it over
                    edges[view.name] = view_edges(view, query, columns)
                lowered = _lower_one(manifest, view.name, targets, query)
            except Exception:  # the parent lowers it again and reports the error
                edges.pop(view.name, None)
                continue
            out[view.name] = _stage(view.name, lowered, files) if files else dict(lowered)
    return out, edges


def _stage(view: str, lowered: Lowered, files: SqlFiles) -> Result:
    """Write a view's SQL to the staging folder; a view with a diagnostic, or a file that
    cannot be written, stays as text for the parent (which reports it)."""
    if any(isinstance(sql, Diagnostic) for sql in lowered.values()):
        return dict(lowered)
    out: Result = {}
    for target, sql in lowered.items():
        assert isinstance(sql, str)
        final = files.place(view, target)
        if unchanged(final, sql):
            out[target] = Staged(None)
            continue
        staged = files.staging / target / final.name
        try:
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_text(sql)
        except OSError:
            out[target] = sql
            continue
        out[target] = Staged(staged)
    return out
