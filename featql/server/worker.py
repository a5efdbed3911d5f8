"""gunicorn worker classes for `featql serve`.

`LoopWorker` (the default when a worker has one thread, i.e. on SQLite): one thread per
process runs a selector loop over the listening socket and every kept-alive connection, parses
requests itself (`featql.server.http1`) and calls the Flask app inline. gunicorn's gthread
worker spends most of a 1-entity request outside the app: its poller thread hands each
readable connection to a pool thread and takes it back afterwards (a pipe write, a lock, two
GIL hand-offs), and its pure-Python parser builds a request object and an environ in several
passes. A SQLite lookup never blocks on I/O, so a second thread buys nothing and the hand-off
costs CPU on every request (see the README's serve benchmark for the figures).

`balanced_thread_worker()` (more than one thread, the DynamoDB default): gthread, whose pool
threads overlap lookups that wait on the network.

Both let an idler worker take a new connection first: every worker waits on the same listening
socket and all wake when a client connects; the one scheduled first wins, often the one that
just took the previous connection, and keep-alive clients then pile onto one process (one GIL)
while the other idles. Waiting 0.25 ms per connection held (at most 1 ms) before `accept()`
lets the least loaded worker win; the losers get EAGAIN, as any herd does. Only connection
set-up is delayed, once per kept-alive connection.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import time
from typing import Any

from gunicorn.workers import base

from featql.server import http1
from featql.server.http1 import Chunked, Head, HTTPError, Limits

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
DRAIN_SECONDS = 2.0  # after an error response: read and discard, so the client sees the error


def accept_delay(held: int) -> float:
    """Seconds to wait before accepting while holding `held` connections (the rule above)."""
    return min(0.001, 0.00025 * held) if held else 0.0


def balanced_thread_worker() -> type:
    """gunicorn's gthread worker with the idler-worker-accepts-first rule above."""
    from gunicorn.workers.gthread import ThreadWorker

    class BalancedThreadWorker(ThreadWorker):
        def accept(self, listener: Any) -> None:
            if self.nr_conns:
                time.sleep(accept_delay(self.nr_conns))
            super().accept(listener)

    return BalancedThreadWorker


class _Conn:
    __slots__ = ("buf", "chunks", "client", "close_after", "continued", "drain_until", "out",
                 "seen", "server", "sock")

    def __init__(self, sock: socket.socket, client: tuple[str, str], server: tuple[str, str]):
        self.sock, self.client, self.server = sock, client, server
        self.buf = bytearray()
        self.out: memoryview | None = None  # response bytes not yet sent
        self.close_after = False
        self.seen = time.monotonic()
        self.continued = False  # 100 Continue sent for the request being read
        self.chunks: Chunked | None = None  # progress through its chunked body
        self.drain_until = 0.0  # > 0: an error was sent; discarding input until then


def _address(addr: Any) -> tuple[str, str]:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return str(addr[0]), str(addr[1])
    return str(addr or ""), ""


class LoopWorker(base.Worker):
    """A single-threaded, selector-driven keep-alive worker (see the module docstring).

    Follows gunicorn's worker contract: `notify()` each loop turn, `max_requests`, `keepalive`
    (idle kept-alive connections and stalled partial requests are closed after it),
    `worker_connections`, `graceful_timeout` on SIGTERM, exit when the master goes away, and
    the request line / header limits. A request occupies the worker until it is answered:
    suited to apps that do not wait on I/O. Not supported: TLS, gunicorn's access log and
    pre/post-request hooks, streamed (unbuffered) responses.
    """

    limits = Limits()
    alive: bool  # set by gunicorn's Worker

    def init_process(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.conns: dict[int, _Conn] = {}
        self.listening = False
        cfg = self.cfg
        self.limits = Limits(cfg.limit_request_line or 8190, cfg.limit_request_fields or 32768,
                             cfg.limit_request_field_size or 8190, type(self).limits.body)
        super().init_process()

    # -- loop ------------------------------------------------------------------------------
    def run(self) -> None:
        for s in self.sockets:
            s.setblocking(False)
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, None)
        self._listen(True)
        swept = time.monotonic()
        stop_by = None
        while True:
            self.notify()
            if not self.alive:
                if stop_by is None:
                    stop_by = time.monotonic() + self.cfg.graceful_timeout
                    self._listen(False)
                    for conn in list(self.conns.values()):
                        if not conn.buf and conn.out is None:
                            self._close(conn)
                if not self.conns or time.monotonic() > stop_by:
                    break
            for key, mask in self.selector.select(1.0):
                data = key.data
                if data is None:
                    self._drain_pipe()
                elif isinstance(data, _Conn):
                    try:
                        if mask & selectors.EVENT_WRITE:
                            self._flush(data)
                        if mask & selectors.EVENT_READ and data.sock.fileno() >= 0:
                            self._read(data)
                    except Exception:  # a bug here must cost one connection, not all
                        self.log.exception("closing a connection after an internal error")
                        self._close(data)
                else:
                    self._accept(data)
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            now = time.monotonic()
            if now - swept >= 1.0:
                swept = now
                self._sweep(now)
        for conn in list(self.conns.values()):
            self._close(conn)

    def _drain_pipe(self) -> None:
        try:
            while os.read(self.PIPE[0], 64):
                pass
        except OSError:
            pass

    def _listen(self, on: bool) -> None:
        if on == self.listening:
            return
        self.listening = on
        for s in self.sockets:
            if on:
                self.selector.register(s, selectors.EVENT_READ, s)
            else:
                self.selector.unregister(s)

    def _accept(self, listener: Any) -> None:
        delay = accept_delay(len(self.conns))
        if delay:
            time.sleep(delay)
        try:
            sock, addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                # out of descriptors or memory: stop accepting until the next sweep rather
                # than spin on a listener that stays readable, or die with every connection
                self.log.error("accept failed, pausing new connections for 1 s: %s", e)
                self._listen(False)
            return
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock, _address(addr), _address(listener.getsockname()))
        self.conns[sock.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_READ, conn)
        if len(self.conns) >= self.cfg.worker_connections:
            self._listen(False)

    def _close(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if fd >= 0:
            self.conns.pop(fd, None)
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn.sock)
            conn.sock.close()
        if self.alive and len(self.conns) < self.cfg.worker_connections:
            self._listen(True)

    def _sweep(self, now: float) -> None:
        """Close connections idle past keepalive, stalled mid-request or mid-response past
        the timeout, and drained error connections."""
        if self.alive and len(self.conns) < self.cfg.worker_connections:
            self._listen(True)  # after an accept failure
        keepalive = self.cfg.keepalive
        for conn in list(self.conns.values()):
            idle = now - conn.seen
            if conn.drain_until:
                if now > conn.drain_until:
                    self._close(conn)
            elif conn.out is not None:
                if idle > self.timeout:
                    self._close(conn)
            elif idle > keepalive:
                self._close(conn)

    # -- reading and answering ------------------------------------------------------------
    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        conn.seen = time.monotonic()
        if conn.drain_until:
            return
        conn.buf += data
        self._serve(conn)

    def _serve(self, conn: _Conn) -> None:
        """Answer every complete request in conn.buf, in order, while the responses go out
        whole; the rest waits until the pending response is flushed."""
        while conn.buf and conn.out is None and not conn.drain_until:
            try:
                end = http1.find_head_end(conn.buf, self.limits)
                if end < 0:
                    return
                head = http1.parse_head(bytes(conn.buf[:end]), self.limits)
                if head.chunked:
                    if conn.chunks is None:
                        conn.chunks = Chunked(end)
                    got = http1.read_chunked(conn.buf, end, self.limits.body, conn.chunks)
                else:
                    stop = end + (head.length or 0)
                    got = (bytes(conn.buf[end:stop]), stop) if len(conn.buf) >= stop else None
            except HTTPError as e:
                self._refuse(conn, e)
                return
            if got is None:
                if head.expect_continue and not conn.continued:
                    conn.continued = True
                    self._send(conn, CONTINUE, close=False)
                return
            body, stop = got
            del conn.buf[:stop]
            conn.continued, conn.chunks = False, None
            self._answer(conn, head, body)
            if conn.sock.fileno() < 0:
                return

    def _refuse(self, conn: _Conn, e: HTTPError) -> None:
        self.log.debug("refused a request from %s: %s", conn.client[0], e.message)
        conn.buf.clear()
        conn.chunks = None
        refusal = http1.error_response(e.status, e.message, e.field, time.time())
        self._send(conn, refusal, close=True)

    def _answer(self, conn: _Conn, head: Head, body: bytes) -> None:
        keep = head.keep_alive and self.alive
        self.nr += 1
        if self.nr >= self.max_requests:
            if self.alive:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            keep = False
        env = http1.environ(head, body, conn.server, conn.client)
        state: list[Any] = []
        pieces: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Any:
            if exc_info and state:
                raise exc_info[1].with_traceback(exc_info[2])
            state[:] = [status, headers]
            return pieces.append

        try:
            result = self.wsgi(env, start_response)
            try:
                pieces.extend(p for p in result if p)
            finally:
                if hasattr(result, "close"):
                    result.close()
            data = http1.response(state[0], state[1], b"".join(pieces), keep_alive=keep,
                                  head_only=head.method == "HEAD", now=time.time())
        except Exception:
            self.log.exception("Error handling request %s", env.get("RAW_URI"))
            data = http1.error_response(500, "internal error", "server", time.time())
            keep = False
        self._send(conn, data, close=not keep)

    # -- writing ---------------------------------------------------------------------------
    def _send(self, conn: _Conn, data: bytes, close: bool) -> None:
        try:
            sent = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent < len(data):
            conn.out, conn.close_after = memoryview(data)[sent:], close
            self.selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        elif close:
            self._finish(conn)

    def _flush(self, conn: _Conn) -> None:
        assert conn.out is not None
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.seen = time.monotonic()
        conn.out = conn.out[sent:]
        if len(conn.out):
            return
        conn.out = None
        self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
        if conn.close_after:
            self._finish(conn)
        else:
            self._serve(conn)

    def _finish(self, conn: _Conn) -> None:
        """Close after the last response: shut the write side, then read and discard what
        the client still sends for a moment (closing with unread input would reset the
        connection and could destroy the response before the client reads it)."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.buf.clear()
        conn.drain_until = time.monotonic() + DRAIN_SECONDS


def loop_worker(max_body: int) -> type:
    """LoopWorker refusing bodies over `max_body` bytes before reading them."""
    limits = Limits(body=max_body)
    return type("FeatqlLoopWorker", (LoopWorker,), {"limits": limits})
