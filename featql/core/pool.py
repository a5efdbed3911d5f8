"""The one process pool and the one garbage-collection policy of featql's long CPU-bound runs.

**Garbage collection.** sqlglot trees are cyclic (every node links to its parent), so parsing,
type-checking and lowering leave garbage only the cyclic collector frees, and running it at the
default threshold costs 10–15 % of a large compile. `gc_paused()` turns automatic collection off
while such work runs and restores it afterwards; a long run (a worker that lowers thousands of
views) bounds its memory with `GcPause.worked(n)`, one full collection per `COLLECT_EVERY`
units; a short-lived command (the CLI) may set `leave_to_exit` so that what remains is frozen
and left to process exit instead of being collected.

**Processes.** `ForkPool` is a `concurrent.futures.ProcessPoolExecutor` on the "fork" start
method: workers inherit the parent's heap, so the large read-only state they work on (a
manifest, a list of paths, queues made beforehand) is passed as `shared` and read in the worker
with `shared()`, never pickled; only task arguments and results cross. The heap alive when the
workers start is frozen so that they do not copy it on write. Workers ignore Ctrl-C (the parent
stops them) and run under the same garbage-collection policy.

Only the CLI's `check` and `compile` use a pool (they pass `parallel=True` down); the Python API
and every library use parse and lower in the calling process: `can_fork` is asked only then.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # imported when a pool starts: a small project's command never needs them
    import multiprocessing.context
    from concurrent.futures import Future

T = TypeVar("T")
R = TypeVar("R")

COLLECT_EVERY = 2000  # work units (views) between full collections in a long paused run


# -- garbage collection -------------------------------------------------------------------------
class GcPause:
    """The state of one `gc_paused()` block."""

    def __init__(self) -> None:
        # set by a short-lived process once its garbage is known to be large: freeze it at the
        # end of the block (frozen objects are never collected, not even at interpreter exit)
        self.leave_to_exit = False
        self._units = 0

    def worked(self, units: int = 1) -> None:
        """Count units of work done; one full collection per `COLLECT_EVERY` bounds memory."""
        before = self._units
        self._units += units
        if before // COLLECT_EVERY != self._units // COLLECT_EVERY:
            gc.collect()


@contextmanager
def gc_paused() -> Iterator[GcPause]:
    """Automatic cyclic collection off inside the block (nestable); restored on leaving."""
    pause = GcPause()
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield pause
    finally:
        if pause.leave_to_exit:
            gc.freeze()
        if collecting:
            gc.enable()


# -- processes ----------------------------------------------------------------------------------
def cpus() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """A forked worker can help: the fork start method exists, there are two cores or more,
    and no other thread runs (forking a threaded process can copy a lock another thread
    holds)."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods() and cpus() >= 2 \
        and threading.active_count() == 1


def fork_context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context of the pool's workers (for queues and locks they inherit)."""
    import multiprocessing

    return multiprocessing.get_context("fork")


_shared: Any = None  # the running pool's `shared` object, inherited by its workers
_running = False


def shared() -> Any:
    """In a pool's worker: the `shared` object its parent gave the pool."""
    return _shared


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops the pool
    gc.disable()  # the policy of `gc_paused`; a long task collects with `GcPause.worked`
    _die_with(parent)


def _die_with(parent: int) -> None:
    """A worker whose parent is killed would wait for its next task (or block sending a
    result nobody reads) forever: on Linux the kernel kills it with its parent."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent's exit closes the pipes
        return
    if os.getppid() != parent:  # it died before prctl
        os._exit(1)


_PR_SET_PDEATHSIG = 1


class ForkPool:
    """`workers` forked processes that inherit `shared`; use as a context manager.

    One pool runs at a time. Leaving the block waits for running tasks and joins the workers;
    `submit` and `map` are those of `ProcessPoolExecutor` (results in submission order)."""

    def __init__(self, workers: int, shared: Any = None):
        global _shared, _running
        if _running:
            raise RuntimeError("another ForkPool is running")
        self._frozen = self._closed = False
        _shared, _running = shared, True
        # objects alive now are never collected in the workers: no copy-on-write of the heap
        gc.freeze()
        self._frozen = True
        from concurrent.futures import ProcessPoolExecutor

        self._executor = ProcessPoolExecutor(
            workers, mp_context=fork_context(), initializer=_start_worker,
            initargs=(os.getpid(),))

    def submit(self, fn: Callable[..., R], /, *args: Any) -> Future[R]:
        return self._executor.submit(fn, *args)

    def map(self, fn: Callable[[T], R], items: Iterable[T], chunksize: int = 1) -> Iterator[R]:
        return self._executor.map(fn, items, chunksize=chunksize)

    def close(self) -> None:
        """Wait for the running tasks, drop the queued ones, join the workers (idempotent)."""
        global _shared, _running
        if self._closed:
            return
        self._closed = True
        try:
            self._executor.shutdown(wait=True, cancel_futures=True)
        finally:
            if self._frozen:
                gc.unfreeze()
                self._frozen = False
            _shared, _running = None, False

    def __enter__(self) -> ForkPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def pid_alive(pid: int) -> bool:
    """Is process `pid` running on this machine? (A zombie, exited but not reaped, is not.)"""
    import os
    from pathlib import Path

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
