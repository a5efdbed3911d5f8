"""A real `featql serve` process for the hostile-input tests, and what they read about it.

Black box on purpose: the tests speak to the server only through sockets and read its processes
only through /proc (the process tree under the `featql serve` master, their CPU time and RSS), so
they hold for whichever HTTP server implementation serves. Nothing of featql.server is imported.
"""

from __future__ import annotations

import http.client
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve.conftest import free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
AT = "2024-01-31T00:00:00"  # the example data ends here
NOFILE = 8192  # the slowloris holds 1,000+ sockets: the server inherits this limit from us


def raise_nofile(want: int = NOFILE) -> int:
    """Raise this process's soft open-file limit towards `want` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants (the server's master and its workers)."""
    kids = _children()
    tree = [root]
    i = 0
    while i < len(tree):
        tree.extend(kids.get(tree[i], []))
        i += 1
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            continue
    return total


class ReadProbe:
    """How many bytes the server has not read yet from its end of a loopback connection: the
    receive queue of its socket, asked of the kernel by an exact sock_diag lookup (netlink;
    /proc/net/tcp lists every socket of the machine and costs milliseconds per read)."""

    _BY_FAMILY = 20  # SOCK_DIAG_BY_FAMILY
    _LOOPBACK = socket.inet_aton("127.0.0.1") + bytes(12)

    def __init__(self, server_port: int):
        self.server_port = server_port
        self.nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4)  # NETLINK_SOCK_DIAG

    def unread(self, client_port: int) -> int:
        sockid = (struct.pack("!HH16s16s", self.server_port, client_port, self._LOOPBACK,
                              self._LOOPBACK) + struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF))
        req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
        body = req + sockid
        self.nl.send(struct.pack("=IHHII", 16 + len(body), self._BY_FAMILY, 1, 0, 0) + body)
        data = self.nl.recv(65536)
        if struct.unpack_from("=H", data, 4)[0] != self._BY_FAMILY:
            return 0  # no such socket (closed): nothing left unread
        return int(struct.unpack_from("=I", data, 16 + 4 + 48 + 4)[0])  # idiag_rqueue

    def wait_read(self, client_ports: list[int], timeout: float = 0.05) -> bool:
        """Wait until the server has read everything sent on these connections; False when
        it has not within `timeout` (a server may leave bytes unread, e.g. a body the
        application has not asked for yet)."""
        deadline = time.monotonic() + timeout
        while any(self.unread(p) for p in client_ports):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0002)
        return True

    def close(self) -> None:
        self.nl.close()


class ServerProcess:
    """`python -m featql.cli serve` on 127.0.0.1 in its own process group."""

    def __init__(self, root: Path, log: Path, workers: int = 2):
        raise_nofile()
        self.port = free_port()
        self.log_path = log
        # a file, not a pipe: hostile input may make it chatty
        self._log = open(log, "wb")  # noqa: SIM115 (closed by stop())
        env = {**os.environ, "FEATQL_LOG_LEVEL": "error"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "featql.cli", "serve", "--project", str(root), "--host",
             "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"featql serve exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                if self.get("/healthz", timeout=1.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"/healthz did not answer 200 within {timeout}s:\n" + self.log_tail())

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    @property
    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    @property
    def worker_pids(self) -> list[int]:
        """The master's descendants; the master itself when it serves alone."""
        return self.pids[1:] or [self.proc.pid]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def _cli(root: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "featql.cli", *args, "--project", str(root)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"featql {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def hostile_project(example_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the example project, applied to `dev` and loaded online, through the
    CLI only (what a user does before `featql serve`)."""
    root = tmp_path_factory.mktemp("hostile") / "features"
    shutil.copytree(example_project, root, ignore=shutil.ignore_patterns(".featql", "target"))
    _cli(root, "apply", "--yes")
    _cli(root, "materialize", "--online")
    return root


@pytest.fixture()
def server(hostile_project: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of its own for one test (2 workers)."""
    srv = ServerProcess(hostile_project, tmp_path / "server.log")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def shared_server(hostile_project: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[ServerProcess]:
    """One server for a module's many small cases (2 workers)."""
    srv = ServerProcess(hostile_project, tmp_path_factory.mktemp("shared") / "server.log")
    try:
        yield srv
    finally:
        srv.stop()
