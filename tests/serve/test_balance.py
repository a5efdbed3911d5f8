"""featql.server.balance: when a worker holds 2 more busy keep-alive connections than the least
busy one, it closes one of them (one response with `Connection: close`), and only then.

Two balancers in this process stand for two workers: their files are named after two live
pids (this process and its parent), and time is passed in, so that nothing here waits."""

from __future__ import annotations

import os
from pathlib import Path

from featql.server.balance import COOLDOWN, TICK, WINDOW, Balancer


def workers(tmp_path: Path) -> tuple[Balancer, Balancer]:
    return Balancer(tmp_path, pid=os.getpid()), Balancer(tmp_path, pid=os.getppid())


def serve(worker: Balancer, clients: list[str], start: float, rounds: int) -> list[str]:
    """Each client sends `rounds` requests, one every TICK; the clients told to close."""
    closed = []
    for i in range(rounds):
        for c in clients:
            if c not in closed and worker.close_after(c, start + i * TICK):
                closed.append(c)
    return closed


def test_both_connections_on_one_worker_one_is_closed_once(tmp_path: Path) -> None:
    a, b = workers(tmp_path)
    closed = serve(a, ["127.0.0.1:1000", "127.0.0.1:1002"], 10.0, 4)
    assert len(closed) == 1
    # the client reconnects and the kernel hands the new connection to the other worker
    assert serve(b, ["127.0.0.1:1004"], 10.2, 6) == []
    kept = next(c for c in ["127.0.0.1:1000", "127.0.0.1:1002"] if c not in closed)
    assert serve(a, [kept], 10.2, 6) == []  # 1 and 1: nothing more to move


def test_a_reconnection_to_the_same_worker_is_closed_again_after_the_cooldown(
        tmp_path: Path) -> None:
    a, _ = workers(tmp_path)
    first = serve(a, ["127.0.0.1:1000", "127.0.0.1:1002"], 10.0, 4)
    assert len(first) == 1
    kept = next(c for c in ["127.0.0.1:1000", "127.0.0.1:1002"] if c not in first)
    # the new connection lands on the same worker
    again = serve(a, [kept, "127.0.0.1:1006"], 10.0 + 4 * TICK, int(COOLDOWN / TICK) + 4)
    assert len(again) == 1


def test_one_connection_more_than_the_other_worker_is_left_alone(tmp_path: Path) -> None:
    a, b = workers(tmp_path)
    serve(b, ["127.0.0.1:2000"], 10.0, 3)
    assert serve(a, ["127.0.0.1:1000", "127.0.0.1:1002"], 10.0, 8) == []  # 2 against 1


def test_a_lone_connection_and_single_request_connections_are_never_closed(
        tmp_path: Path) -> None:
    a, _ = workers(tmp_path)
    assert serve(a, ["127.0.0.1:1000"], 10.0, 50) == []  # a pipelining client, say
    fresh = [f"127.0.0.1:{3000 + i}" for i in range(200)]  # a new connection per request
    assert serve(a, fresh, 20.0, 1) == []


def test_an_idle_workers_old_count_reads_as_zero(tmp_path: Path) -> None:
    a, b = workers(tmp_path)
    serve(b, ["127.0.0.1:2000", "127.0.0.1:2002"], 10.0, 3)  # b's count was 2, long ago
    later = 10.0 + 3 * TICK + WINDOW + 1.0
    assert len(serve(a, ["127.0.0.1:1000", "127.0.0.1:1002"], later, 4)) == 1


def test_a_gone_workers_file_is_removed(tmp_path: Path) -> None:
    a, _ = workers(tmp_path)
    (tmp_path / "999999999").write_bytes(bytes(16))  # no such pid
    serve(a, ["127.0.0.1:1000"], 10.0, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([str(os.getpid()),
                                                                 str(os.getppid())])
