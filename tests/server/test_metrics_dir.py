"""`featql serve` keeps its manifest copy and its Prometheus multiprocess files in a private
temporary directory (featql-metrics-<pid>-*): a server stopped by SIGTERM or SIGINT removes it,
and one killed outright (SIGKILL: nothing of it runs) has it removed by the next `featql serve`
on the machine, which removes the directories of servers that are no longer running."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from .conftest import ServerProcess

pytestmark = pytest.mark.slow


def served_directory(srv: ServerProcess) -> Path:
    """The temporary directory whose metric files the server's workers hold open."""
    assert srv.get("/healthz")[0] == 200  # a request: every answering worker writes metrics
    for pid in srv.pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = Path(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
            for part in (target, *target.parents):
                if part.name.startswith("featql-metrics-"):
                    return part
    raise AssertionError(f"no featql-metrics-* file open in {srv.pids}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_server_removes_its_directory(hostile_project: Path, tmp_path: Path,
                                                sig: signal.Signals) -> None:
    srv = ServerProcess(hostile_project, tmp_path / "server.log")
    try:
        directory = served_directory(srv)
        assert directory.name.startswith(f"featql-metrics-{srv.proc.pid}-")
        srv.proc.send_signal(sig)
        srv.proc.wait(30)
    finally:
        srv.stop()
    assert not directory.exists(), sorted(p.name for p in directory.rglob("*"))


def test_the_next_server_removes_the_directory_of_a_killed_one(hostile_project: Path,
                                                                tmp_path: Path) -> None:
    killed = ServerProcess(hostile_project, tmp_path / "killed.log")
    try:
        directory = served_directory(killed)
        os.killpg(killed.proc.pid, signal.SIGKILL)  # the master and its workers
        killed.proc.wait(10)
    finally:
        killed.stop()
    assert directory.exists()  # nothing ran at SIGKILL
    nxt = ServerProcess(hostile_project, tmp_path / "next.log")
    try:
        own = served_directory(nxt)
        assert not directory.exists()
        assert own.exists()  # its own, of a running master, is kept
    finally:
        nxt.stop()
    assert not own.exists()
