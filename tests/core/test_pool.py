"""featql.core.pool: the one fork pool and the one garbage-collection policy."""

from __future__ import annotations

import gc
import multiprocessing
import os

import pytest

from featql.core import pool

needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="the pool forks")


def _read_shared(i: int) -> tuple[int, int, bool]:
    data = pool.shared()
    return data[i], os.getpid(), gc.isenabled()


def _fails(_: int) -> int:
    raise ValueError("in the worker")


@needs_fork
def test_workers_inherit_shared_and_results_come_back_in_order() -> None:
    data = list(range(100, 160))  # never pickled: inherited by the fork
    parent = os.getpid()
    with pool.ForkPool(2, shared=data) as workers:
        out = list(workers.map(_read_shared, range(60), chunksize=7))
    assert [v for v, _, _ in out] == data
    assert all(pid != parent for _, pid, _ in out)
    assert not any(collecting for _, _, collecting in out), "workers run with GC paused"
    assert multiprocessing.active_children() == []
    assert pool.shared() is None


@needs_fork
def test_a_worker_s_exception_reaches_the_caller_and_one_pool_runs_at_a_time() -> None:
    with pool.ForkPool(1) as workers:
        with pytest.raises(RuntimeError, match="another ForkPool"):
            pool.ForkPool(1)
        with pytest.raises(ValueError, match="in the worker"):
            workers.submit(_fails, 0).result()
    with pool.ForkPool(1) as again:  # the first one is closed: a new one may start
        assert again.submit(abs, -3).result() == 3


def test_gc_paused_nests_and_restores() -> None:
    assert gc.isenabled()
    with pool.gc_paused():
        assert not gc.isenabled()
        with pool.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_gc_paused_collects_every_so_many_units_and_can_leave_garbage_to_exit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    collections: list[int] = []
    monkeypatch.setattr(pool.gc, "collect", lambda *a: collections.append(1) or 0)
    monkeypatch.setattr(pool, "COLLECT_EVERY", 10)
    frozen: list[int] = []
    monkeypatch.setattr(pool.gc, "freeze", lambda: frozen.append(1))
    with pool.gc_paused() as pause:
        for _ in range(25):
            pause.worked()
        assert len(collections) == 2
        pause.worked(10)
        assert len(collections) == 3
        pause.leave_to_exit = True
    assert frozen == [1] and gc.isenabled()


def test_can_fork_needs_two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "cpus", lambda: 1)
    assert not pool.can_fork()
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    assert pool.can_fork() == ("fork" in multiprocessing.get_all_start_methods())
