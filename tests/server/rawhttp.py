"""A raw-socket HTTP/1.1 client for hostile input: send exact bytes, then read what comes back.

It records every way an exchange can end: complete responses (1xx interim ones skipped), the
server closing (`closed`), a reset (`reset`), or nothing within the deadline (`timed_out`).
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None


@dataclass
class Outcome:
    responses: list[Response] = field(default_factory=list)
    closed: bool = False  # the server closed its side (EOF)
    reset: bool = False  # ECONNRESET / EPIPE
    timed_out: bool = False  # the deadline passed while waiting for a response
    trailing: bytes = b""  # bytes after the last complete response
    seconds: float = 0.0

    def describe(self) -> str:
        got = [r.status for r in self.responses]
        how = ("reset" if self.reset else "closed" if self.closed
               else "timed out" if self.timed_out else "open")
        extra = (f", {len(self.trailing)} stray bytes {self.trailing[:60]!r}"
                 if self.trailing else "")
        return f"statuses {got}, connection {how} after {self.seconds:.2f}s{extra}"


class Incomplete(Exception):
    pass


def _parse_one(buf: bytes, head_only: bool, eof: bool) -> tuple[Response, int]:
    """One response from the start of `buf` and its length; Incomplete when more is needed."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        raise Incomplete
    lines = buf[:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {buf[:80]!r}")
    status = int(parts[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    resp_head = Response(status, tuple(headers), b"")
    start = end + 4
    if head_only or status < 200 or status in (204, 304):
        return resp_head, start
    te = resp_head.header(b"transfer-encoding")
    if te is not None and b"chunked" in te.lower():
        pos, body = start, bytearray()
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                raise Incomplete
            size = int(buf[pos:nl].split(b";")[0], 16)
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", nl)
                if trailer_end < 0 and buf[nl:nl + 4] != b"\r\n\r\n":
                    raise Incomplete
                done = (trailer_end if trailer_end >= 0 else nl) + 4
                return Response(status, resp_head.headers, bytes(body)), done
            if len(buf) < nl + 2 + size + 2:
                raise Incomplete
            body += buf[nl + 2:nl + 2 + size]
            pos = nl + 2 + size + 2
    length = resp_head.header(b"content-length")
    if length is not None:
        n = int(length)
        if len(buf) < start + n:
            raise Incomplete
        return Response(status, resp_head.headers, buf[start:start + n]), start + n
    if not eof:  # delimited by the close
        raise Incomplete
    return Response(status, resp_head.headers, buf[start:]), len(buf)


def parse_responses(buf: bytes, head_only: bool = False, eof: bool = False
                    ) -> tuple[list[Response], int]:
    """The final (non-1xx) responses complete in `buf`, and how many bytes they used."""
    out: list[Response] = []
    pos = 0
    while pos < len(buf):
        try:
            resp, used = _parse_one(buf[pos:], head_only, eof)
        except Incomplete:
            break
        pos += used
        if resp.status >= 200:
            out.append(resp)
    return out, pos


def exchange(port: int, segments: list[bytes], *, want: int = 1, timeout: float = 5.0,
             head_only: bool = False, shut_wr: bool = False, linger: float = 0.0,
             pause: float = 0.0) -> Outcome:
    """Send `segments` (pausing `pause` s between them, reading as we go), then read until
    `want` final responses arrived, the server closed or reset, or `timeout` passed; then keep
    reading `linger` s more (to see a smuggled extra response or the close that must follow)."""
    out = Outcome()
    buf = bytearray()
    t0 = time.monotonic()
    deadline = t0 + timeout
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def drain(wait: float) -> bool:
        """Wait up to `wait` s for data, then read all there is; False once the connection
        is over."""
        while True:
            ready, _, _ = select.select([sock], [], [], wait)
            if not ready:
                return True
            try:
                data = sock.recv(1 << 20)
            except (ConnectionResetError, BrokenPipeError):
                out.reset = True
                return False
            if not data:
                out.closed = True
                return False
            buf.extend(data)
            wait = 0.0

    try:
        live = True
        for i, seg in enumerate(segments):
            try:
                sock.sendall(seg)
            except (ConnectionResetError, BrokenPipeError):
                out.reset = True
                live = False
                break
            except TimeoutError:  # the server stopped reading: see whether it answers
                break
            live = drain(pause if i + 1 < len(segments) else 0.0)
            if not live:
                break
        if live and shut_wr:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        while live:
            done, _ = parse_responses(bytes(buf), head_only)
            if len(done) >= want:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                out.timed_out = True
                break
            live = drain(min(left, 0.25))
        if live and linger > 0:
            end = time.monotonic() + linger
            while live and time.monotonic() < end:
                live = drain(end - time.monotonic())
    finally:
        sock.close()
    out.seconds = time.monotonic() - t0
    eof = out.closed or out.reset
    out.responses, used = parse_responses(bytes(buf), head_only, eof=eof)
    out.trailing = bytes(buf[used:])
    return out
