"""The lean reader's HTTP/1.1 framing against a scripted server: Content-Length, chunked
encoding with a trailer, a body that runs to the close, and error answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import orjson
import pytest

from featql.online.dynamo_http import BatchGetClient, DynamoHttpError, _Wire


class Scripted:
    """Accepts connections on 127.0.0.1 and answers each request with the next canned reply
    (closing the connection after a reply when told to); records the requests' heads."""

    def __init__(self, replies: list[tuple[bytes, bool]]):
        self.replies = list(replies)
        self.heads: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            conn, _ = self.server.accept()
            with conn:
                buf = b""
                while self.replies:
                    while b"\r\n\r\n" not in buf:
                        got = conn.recv(65536)
                        if not got:
                            break
                        buf += got
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                      if line.lower().startswith(b"content-length")))
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    buf = buf[length:]
                    self.heads.append(head)
                    reply, close = self.replies.pop(0)
                    conn.sendall(reply)
                    if close:
                        break
        self.server.close()


@pytest.fixture()
def body() -> bytes:
    return orjson.dumps({"Responses": {"t": [{"item": {"S": "user#[1]"}}]}})


def _exchange(server: Scripted, n: int) -> Iterator[tuple[int, bytes, bool]]:
    wire = _Wire("127.0.0.1", server.port, None, 5.0)
    try:
        for _ in range(n):
            wire.sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            yield wire.response()
    finally:
        wire.close()


def test_wire_frames_by_length_chunks_and_close(body: bytes) -> None:
    half = len(body) // 2
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n"
               % (half, body[:half], len(body) - half, body[half:]))
    server = Scripted([
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body), False),
        (chunked, False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body, True)])
    got = list(_exchange(server, 3))
    assert [g[1] for g in got] == [body] * 3
    assert [g[0] for g in got] == [200] * 3
    assert [g[2] for g in got] == [True, True, False]


def test_reader_reports_errors_and_reconnects_after_a_close(body: bytes) -> None:
    from botocore.credentials import Credentials

    throttled = orjson.dumps({"__type": "com.amazonaws#ThrottlingException", "message": "slow"})
    denied = orjson.dumps({"__type": "com.amazonaws#AccessDeniedException", "message": "no"})
    ok = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)
    server = Scripted([
        (b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n%s" % (len(throttled), throttled),
         False),
        (b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n%s" % (len(denied), denied), False),
        (ok, True), (ok, True)])
    reader = BatchGetClient(f"http://127.0.0.1:{server.port}", "us-east-1",
                            Credentials("k", "s"))
    got = [reader.batch_get_all([{"t": {"Keys": []}}])[0] for _ in range(4)]
    assert isinstance(got[0], DynamoHttpError) and got[0].retryable
    assert isinstance(got[1], DynamoHttpError) and not got[1].retryable
    assert got[2] == got[3] == orjson.loads(body)  # the closed connection was replaced
    head = server.heads[0].decode()
    assert head.startswith("POST / HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}" in head and "authorization: AWS4-HMAC-SHA256" in head
