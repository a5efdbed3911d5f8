"""The ingest process of a multi-worker `featql serve` (featql.server.ingest_host): pushes
that land on either worker are applied by it (one process: they group), it answers like a
worker would, it never outlives the master (a `kill -9` of the master alone leaves no process
holding the ingest lock), and a worker that cannot reach it answers 503, never a hang."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from .project import write_project
from .server import Server, cli


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(entry))
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _host_pid(master: int) -> int:
    hosts = [p for p in _children(master) if "multiprocessing.spawn" in _cmdline(p)]
    assert len(hosts) == 1, [(p, _cmdline(p)) for p in _children(master)]
    return hosts[0]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _rec(i: int) -> dict:
    return {"event_id": i, "user_id": 1 + i % 3, "amount": 1.0, "kind": "a",
            "ts": "2024-03-02T12:00:00"}


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_the_host_dies_with_the_master_and_a_new_server_pushes(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    assert cli(root, "apply", "--yes").returncode == 0
    first = Server(root, workers=2)
    try:
        host = _host_pid(first.proc.pid)
        for i in range(20):  # over fresh connections: both workers take some
            status, body = first.push("events", [_rec(i)])
            assert status == 200 and body["ingested"] == 1, body
        os.kill(first.proc.pid, signal.SIGKILL)  # the master alone
        deadline = time.monotonic() + 10
        while _alive(host) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(host), "the ingest process outlived its master"
    finally:
        first.kill()  # the workers, if granian left any behind
    second = Server(root, workers=2)  # the ingest lock is free: its pushes go through
    try:
        status, body = second.push("events", [_rec(i) for i in range(15, 25)])
        assert status == 200, body
        assert (body["ingested"], body["duplicates"]) == (5, 5), body
        status, got = second.lookup("svc", [{"user_id": 1}], "2024-03-02T12:30:00")
        assert status == 200 and got["features"][0]["user_aggs.n_events_1h"] == 9, got
    finally:
        second.stop()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_worker_without_its_host_answers_503(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    assert cli(root, "apply", "--yes").returncode == 0
    server = Server(root, workers=2)
    try:
        assert server.push("events", [_rec(0)])[0] == 200
        os.kill(_host_pid(server.proc.pid), signal.SIGKILL)
        started = time.monotonic()
        status, body = server.push("events", [_rec(1)])
        assert status == 503 and body["error"]["code"] == "ingest_unavailable", body
        assert "retrying it is safe" in body["error"]["message"]
        assert time.monotonic() - started < 5
        status, _ = server.lookup("svc", [{"user_id": 1}], "2024-03-02T12:30:00")
        assert status == 200  # lookups are not touched
    finally:
        server.stop()
