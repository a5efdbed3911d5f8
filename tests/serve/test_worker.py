"""The event-loop gunicorn worker (featql.server.worker.LoopWorker) as a real gunicorn process on
127.0.0.1, driven over raw sockets: keep-alive, pipelining, requests split at every byte,
chunked bodies, 100-continue, large responses read slowly, refusals that close the connection
but still reach the client, app errors, idle timeouts, max_requests restarts, graceful stop."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from serve.conftest import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
APP = """
import hashlib, os, sys, orjson
from gunicorn.app.base import BaseApplication
from featql.server.worker import loop_worker

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom")
    body = environ["wsgi.input"].read()
    if path == "/big":
        data = b"x" * (4 << 20)
    else:
        data = orjson.dumps({
            "method": environ["REQUEST_METHOD"], "path": path,
            "query": environ["QUERY_STRING"], "pid": os.getpid(), "length": len(body),
            "sha": hashlib.sha256(body).hexdigest(),
            "spoof": environ.get("HTTP_X_FORWARDED_FOR"),
            "ctype": environ.get("CONTENT_TYPE")})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]

class App(BaseApplication):
    def load_config(self):
        port, workers, keepalive, max_requests = map(int, sys.argv[1:5])
        for k, v in {"bind": f"127.0.0.1:{port}", "workers": workers, "keepalive": keepalive,
                     "max_requests": max_requests, "worker_class": loop_worker(64 << 10),
                     "graceful_timeout": 5, "loglevel": "critical"}.items():
            self.cfg.set(k, v)

    def load(self):
        return app

App().run()
"""


class Server:
    def __init__(self, tmp: Path, workers: int = 1, keepalive: int = 30, max_requests: int = 0):
        script = tmp / "loop_app.py"
        script.write_text(textwrap.dedent(APP))
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(self.port), str(workers), str(keepalive),
             str(max_requests)], env={**os.environ, "PYTHONPATH": str(REPO)})
        wait_port(self.port, proc=self.proc)

    def connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("loop"))
    yield srv
    srv.stop()


class Reader:
    """Reads HTTP/1.1 responses framed by Content-Length off a socket."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, b""

    def _more(self) -> bytes:
        data = self.sock.recv(1 << 16)
        self.buf += data
        return data

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            if not self._more():
                raise EOFError(f"connection closed after {len(self.buf)} bytes")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        if status == 100:
            return status, headers, b""
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            if not self._more():
                raise EOFError(f"connection closed after {len(self.buf)} bytes")
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed(self) -> bool:
        """True when the server closes the connection (EOF, nothing more)."""
        return self.buf == b"" and self._more() == b""


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_keep_alive_and_pipelining(server: Server) -> None:
    s = server.connect()
    r = Reader(s)
    for i in range(3):
        s.sendall(post(f"/a?i={i}", b"x" * i))
        status, headers, body = r.response()
        assert status == 200 and headers["connection"] == "keep-alive"
        assert orjson.loads(body)["query"] == f"i={i}"
    bodies = [os.urandom(n) for n in (0, 10, 5000)]
    s.sendall(b"".join(post(f"/p{k}", b) for k, b in enumerate(bodies)))  # one send
    for k, b in enumerate(bodies):
        status, _, body = r.response()
        got = orjson.loads(body)
        assert (got["path"], got["length"], got["sha"]) == (
            f"/p{k}", len(b), hashlib.sha256(b).hexdigest())
    s.close()


def test_request_split_at_every_byte(server: Server) -> None:
    payload = b'{"entities": [1, 2, 3]}'
    raw = post("/split", payload)
    s = server.connect()
    r = Reader(s)
    for i in range(len(raw)):  # one byte at a time, flushed separately
        s.sendall(raw[i:i + 1])
        if i % 7 == 0:
            time.sleep(0.001)
    status, _, body = r.response()
    assert status == 200 and orjson.loads(body)["sha"] == hashlib.sha256(payload).hexdigest()
    s.close()


def test_chunked_body_and_expect_continue(server: Server) -> None:
    payload = os.urandom(3000)
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(payload[i:i + 700]), payload[i:i + 700])
                      for i in range(0, len(payload), 700))
    s = server.connect()
    r = Reader(s)
    s.sendall(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
              + b"0\r\nX-Trailer: 1\r\n\r\n")
    status, _, body = r.response()
    got = orjson.loads(body)
    assert status == 200 and got["length"] == len(payload)
    assert got["sha"] == hashlib.sha256(payload).hexdigest()
    # Expect: 100-continue: the interim answer comes before the body is sent
    s.sendall(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert r.response()[0] == 100
    s.sendall(b"abcd")
    status, _, body = r.response()
    assert status == 200 and orjson.loads(body)["length"] == 4
    s.close()


def test_large_response_read_slowly(server: Server) -> None:
    s = server.connect()
    s.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n" + post("/after", b"z"))
    time.sleep(0.5)  # 4 MB do not fit the socket buffers: the server must wait for us
    r = Reader(s)
    status, _, body = r.response()
    assert status == 200 and len(body) == 4 << 20 and body == b"x" * (4 << 20)
    status, _, body = r.response()  # the pipelined request behind it is answered after
    assert orjson.loads(body)["path"] == "/after"
    s.close()


def test_head_and_http10(server: Server) -> None:
    s = server.connect()
    r = Reader(s)
    s.sendall(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n")
    s.settimeout(1)
    while b"\r\n\r\n" not in r.buf:
        r._more()
    head, rest = r.buf.split(b"\r\n\r\n", 1)
    assert rest == b"" and b"Content-Length: " in head  # the length of the GET body, no body
    s.close()
    s = server.connect()
    s.sendall(b"GET /old HTTP/1.0\r\n\r\n")
    r = Reader(s)
    status, headers, _ = r.response()
    assert status == 200 and headers["connection"] == "close" and r.closed()
    s.close()


@pytest.mark.parametrize("raw, status, field", [
    (post("/big-body", b"") .replace(b"Content-Length: 0", b"Content-Length: 999999"), 413,
     "body"),
    (b"GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     400, "headers"),
    (b"GET /x HTTP/2.0\r\n\r\n", 505, "request_line"),
    (b"GET x HTTP/1.1\r\n\r\n", 400, "path"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "path"),
    (b"GET /x HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400, "headers"),
])
def test_refusals_reach_the_client_then_close(server: Server, raw: bytes, status: int,
                                              field: str) -> None:
    s = server.connect()
    s.sendall(raw)

    def flood() -> None:  # input the server will not parse: closing on it unread would reset
        with contextlib.suppress(OSError):  # the connection and destroy the response
            s.sendall(b"y" * (2 << 20))

    sender = threading.Thread(target=flood)
    sender.start()
    time.sleep(0.3)
    r = Reader(s)
    got, headers, body = r.response()
    sender.join(10)
    assert got == status and headers["connection"] == "close"
    assert orjson.loads(body)["error"]["field"] == field
    assert r.closed()
    s.close()
    assert _alive(server)


def test_underscored_header_cannot_spoof(server: Server) -> None:
    s = server.connect()
    s.sendall(post("/s", b"", "X_Forwarded_For: 6.6.6.6\r\n"))
    assert orjson.loads(Reader(s).response()[2])["spoof"] is None
    s.close()


def test_app_error_is_a_500_and_the_worker_lives(server: Server) -> None:
    s = server.connect()
    s.sendall(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
    r = Reader(s)
    status, headers, body = r.response()
    assert headers["connection"] == "close"
    assert status == 500 and orjson.loads(body)["error"]["code"] == "internal"
    assert r.closed()
    s.close()
    assert _alive(server)


def _alive(server: Server) -> bool:
    s = server.connect()
    s.sendall(post("/ok", b"{}"))
    ok = Reader(s).response()[0] == 200
    s.close()
    return ok


def test_idle_timeout_max_requests_and_graceful_stop(tmp_path: Path) -> None:
    srv = Server(tmp_path, workers=1, keepalive=1, max_requests=5)
    try:
        idle = srv.connect()
        idle.sendall(post("/first", b""))
        r = Reader(idle)
        r.response()
        t0 = time.monotonic()
        assert r.closed()  # the server closes the idle kept-alive connection
        assert 0.5 < time.monotonic() - t0 < 4
        pids = set()
        for i in range(12):  # max_requests=5: the worker is replaced, no request fails
            s = srv.connect()
            s.sendall(post(f"/n{i}", b""))
            status, _, body = Reader(s).response()
            assert status == 200
            pids.add(orjson.loads(body)["pid"])
            s.close()
            if len(pids) < 2:
                time.sleep(0.05)
        assert len(pids) >= 2
        held = srv.connect()  # open, idle: SIGTERM must not wait for it
        time.sleep(0.2)
        t0 = time.monotonic()
        assert srv.stop() == 0
        assert time.monotonic() - t0 < 4
        held.close()
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
