"""Lower views while the compiler is still type-checking the rest of the project.

`featql compile` is one long single-threaded compile followed by the lowering of every view.
A view can be lowered as soon as its IR exists: lowering reads only the view, the sources and
the views it reads, and those are compiled before it (views are compiled in DAG order). So the
compiler hands each finished view to a `StreamingLowerer`, which (for large projects) feeds it
to one forked worker process running on the otherwise idle core.

The result equals `lower_views(manifest, targets)`: each view is lowered against a manifest
holding the sources and every view compiled before it, and lowering looks nothing else up.
Any view the worker did not lower (a small project, a view built differently from the one
the final manifest holds, a worker that died) is lowered in this process at `finish`.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import queue
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from featql.compiler.ir import FeatureView, Manifest, Source
from featql.dialects.errors import Target
from featql.dialects.parallel import Lowered, _cpus, _fewer_gc_pauses, _lower_one

START_AFTER = 100  # views compiled before a worker is worth starting (small projects: none)
BATCH = 10  # views per message to the worker
JOIN_SECONDS = 5.0


class StreamingLowerer:
    """Collects compiled views (`add`, the compiler's `on_view` hook) and lowers them."""

    def __init__(self, targets: Sequence[Target], *, start_after: int = START_AFTER):
        self.targets = tuple(targets)
        self.start_after = start_after
        self._sources: tuple[Source, ...] = ()
        self._sent: dict[str, FeatureView] = {}  # name -> the view object the worker got
        self._pending: list[FeatureView] = []
        self._process: Any = None
        self._inbox: Any = None  # multiprocessing.Queue of view batches, to the worker
        self._results: multiprocessing.connection.Connection | None = None
        self._usable = _cpus() >= 2 and "fork" in multiprocessing.get_all_start_methods()

    def add(self, view: FeatureView, sources: Mapping[str, Source]) -> None:
        """The compiler built `view`; `sources`: every source of the project."""
        if not self._sources:
            self._sources = tuple(sources.values())
        self._pending.append(view)
        if self._process is None:
            if not self._usable or len(self._pending) < self.start_after:
                return
            self._start()
        if len(self._pending) >= BATCH:
            self._send()

    def finish(self, manifest: Manifest) -> dict[str, Lowered]:
        """view name → target → SQL text or diagnostic, for every view of `manifest`, in
        manifest order (as `featql.dialects.parallel.lower_views`)."""
        done: dict[str, Lowered] = {}
        if self._process is not None:
            self._send()
            done = self._collect()
        out: dict[str, Lowered] = {}
        with _fewer_gc_pauses():
            for view in manifest.views:
                got = done.get(view.name)
                if got is None or self._sent.get(view.name) is not view:
                    got = _lower_one(manifest, view.name, self.targets)
                out[view.name] = got
        return out

    def close(self) -> None:
        """Stop the worker if it still runs (a failed compile never calls `finish`)."""
        if self._process is not None:
            if self._process.is_alive():
                self._process.terminate()
            self._process.join(JOIN_SECONDS)
            self._process = None
        if self._inbox is not None:
            self._inbox.cancel_join_thread()
            self._inbox.close()
            self._inbox = None
        if self._results is not None:
            self._results.close()
            self._results = None

    def __enter__(self) -> StreamingLowerer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self._inbox = ctx.Queue()
        receive, send = ctx.Pipe(duplex=False)
        # objects alive now are never collected in the worker: no copy-on-write of the heap
        gc.freeze()
        try:
            self._process = ctx.Process(
                target=_work, args=(self._inbox, send, self._sources, self.targets),
                name="featql-lower", daemon=True)
            self._process.start()
        finally:
            gc.unfreeze()
        send.close()
        self._results = receive

    def _send(self) -> None:
        if self._pending:
            self._inbox.put(self._pending)
            self._sent.update((v.name, v) for v in self._pending)
            self._pending = []

    def _collect(self) -> dict[str, Lowered]:
        assert self._results is not None
        self._inbox.put(None)
        try:
            done: dict[str, Lowered] = self._results.recv()
        except (EOFError, OSError):  # the worker died: lower everything here
            done = {}
        self.close()
        return done


def _work(inbox: Any, results: multiprocessing.connection.Connection,
          sources: tuple[Source, ...], targets: tuple[Target, ...]) -> None:
    """Worker: lower each batch against the views received so far; send all results at the
    end. A view whose lowering fails unexpectedly is left out (the parent lowers it again and
    reports the error as it would without a worker)."""
    views: list[FeatureView] = []
    out: dict[str, Lowered] = {}
    broken = False
    with _fewer_gc_pauses():
        while True:
            try:
                batch = inbox.get()
            except (EOFError, OSError, queue.Empty):
                break
            if batch is None:
                break
            views.extend(batch)
            if broken:
                continue
            manifest = Manifest("", sources, (), tuple(views), (), ())
            for view in batch:
                try:
                    out[view.name] = _lower_one(manifest, view.name, targets)
                except Exception:  # the parent lowers it again and reports the error
                    broken = True
                    break
    results.send(out)
    results.close()
