"""A real `featql serve` on 127.0.0.1 for the push tests (own process group, killable)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "featql.cli", *args, "--project", str(root)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


class Server:
    def __init__(self, root: Path, port: int | None = None, workers: int = 1,
                 timeout: float = 30.0):
        self.root, self.port, self.timeout = root, port or free_port(), timeout
        self.log = open(root / f"serve-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "featql.cli", "serve", "--project", str(root), "--host",
             "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"featql serve exited with {self.proc.returncode}")
            try:
                status, _ = self.request("GET", "/healthz", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("featql serve did not become healthy")

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                timeout: float | None = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=self.timeout if timeout is None else timeout)
        try:
            data = raw if raw is not None else (None if body is None else orjson.dumps(body))
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, orjson.loads(payload) if payload else None
        finally:
            conn.close()

    def push(self, source: str, records: Any, **extra: Any) -> tuple[int, Any]:
        return self.request("POST", f"/v1/ingest/{source}", {"records": records, **extra})

    def lookup(self, service: str, entities: list[dict[str, Any]], at: str | None = None
               ) -> tuple[int, Any]:
        body: dict[str, Any] = {"entities": entities}
        if at is not None:
            body["at"] = at
        return self.request("POST", f"/v1/features/{service}", body)

    def kill(self) -> None:
        """kill -9 of the server's whole process group (master and workers)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
