"""uvicorn serving the app's ASGI entry (featql.server.asgi): one event loop per worker
process (uvloop) with httptools (llhttp, Node's HTTP/1.1 parser) reading the requests, N
worker processes under uvicorn's own supervisor (it respawns a worker that dies).

This is the former event-loop worker's architecture (one thread per worker that parses, runs
the handler and writes the answer, no hand-off between threads) with a maintained parser and
process manager in place of featql's own. uvicorn leaves three things to the application,
which `GuardedHttpTools` adds (a subclass of uvicorn's httptools protocol, pinned to its exact
version in the `serve` extra):

- a deadline for the request head: uvicorn times out only the idle time between requests
  (`timeout_keep_alive`, cancelled by any byte), so a head trickled one byte at a time is never
  closed. Here a head must arrive whole within HEAD_SECONDS of the connection's start or of the
  previous response, however steady its trickle (then the connection is closed; a 408 when a
  part of a head came);
- a size limit for the head (uvicorn's httptools protocol has none: the target and the header
  lines are held in memory as they come): over MAX_TARGET_BYTES of target a 414, over
  MAX_HEAD_BYTES of head or MAX_FIELDS header lines a 431, and the connection is closed;
- a request line without a version (HTTP/0.9, which llhttp reads) is a 400;
- the Host and method checks (featql.server.app.refusal), done by the ASGI entry as before,
  which also strips the whitespace llhttp leaves after a field value.

llhttp is strict by default: a bare LF, a space before a chunk size, an invalid header name or
a Content-Length next to a Transfer-Encoding are 400s (tests/server's corpus).

Settings reach the workers, which uvicorn starts with multiprocessing's spawn, through the
environment (SETTINGS_ENV): each worker builds its app from the manifest file once.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from featql.server.app import ServeSettings

SETTINGS_ENV = "FEATQL_SERVE_SETTINGS"
HEAD_SECONDS = 30.0  # a request head must arrive whole within this (as under granian)
BODY_SECONDS = 30.0  # and its body within this of the head's end, or the request is a 408
MAX_HEAD_BYTES = 256 * 1024  # a larger head is a 431 (granian/hyper refused ~300 KB)
MAX_TARGET_BYTES = 16 * 1024  # a longer request target is a 414
MAX_FIELDS = 200  # more header lines are a 431


def _status(code: int, reason: str) -> bytes:
    body = json.dumps({"error": {"code": "bad_request_head", "message": reason,
                                 "field": "head"}}).encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (code, reason.encode(), len(body)) + body)


class _Corked:
    """The transport a request's response is written through: uvicorn writes a response's
    head and its body with two `transport.write` calls, which uvloop sends as two segments (two
    syscalls per request, and two reads for the client). Writes are held and sent as one when
    the response is complete (GuardedHttpTools.on_response_complete), or at the latest on the
    loop's next iteration (an interim `100 Continue`, a response whose body is still being
    written); everything else is the real transport's."""

    __slots__ = ("_flush_at", "_loop", "_parts", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport, self._loop = transport, loop
        self._parts: list[bytes] = []
        self._flush_at: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        if self._flush_at is None:
            self._flush_at = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline, head size limits, a body deadline
    and one write per response."""

    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _fields = 0
    _reading_head = True  # False from a head's end to its message's end (its body)
    _target = 0
    _refused = False
    _body_timer: asyncio.TimerHandle | None = None
    _corked: _Corked | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
        super().connection_lost(exc)

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timeout(self) -> None:
        """The body did not come whole within BODY_SECONDS: a 408, and the connection closed
        (the request's receive() then says the client is gone)."""
        self._body_timer = None
        cycle = self.cycle
        if cycle is not None and not self.transport.is_closing():
            if not cycle.response_started:
                self.transport.write(_status(408, "Request Timeout"))
            cycle.disconnected = True  # the app's receive() says so, its send() writes nothing
            cycle.message_event.set()
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_timeout)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes:
            self.transport.write(_status(408, "Request Timeout"))
        self.transport.close()

    def _refuse(self, code: int, reason: str) -> None:
        self._disarm()
        self._refused = True  # the parser's callbacks for the rest of this read do nothing
        if not self.transport.is_closing():
            self.transport.write(_status(code, reason))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:  # counts at most one read of body bytes too (see the README)
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head:
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, "Request Header Fields Too Large")
        elif self._body_timer is None and not self._refused:  # a body that spans reads
            self._body_timer = self.loop.call_later(BODY_SECONDS, self._body_timeout)

    def on_message_begin(self) -> None:
        self._fields = self._target = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._target += len(url)
        if self._target > MAX_TARGET_BYTES:
            self._refuse(414, "URI Too Long")
        if not self._refused:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > MAX_FIELDS:
            self._refuse(431, "Request Header Fields Too Large")
        if not self._refused:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        if self.parser.get_http_version() not in ("1.0", "1.1"):  # llhttp reads HTTP/0.9
            self._refuse(400, "Bad Request")
            return
        self._disarm()
        self._reading_head = False
        self._head_bytes = 0
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # not a websocket upgrade
            if self._corked is None:
                self._corked = _Corked(self.transport, self.loop)
            cycle.transport = self._corked  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._reading_head = True
        self._disarm_body()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._corked is not None:
            self._corked.flush()
        super().on_response_complete()
        if not self.transport.is_closing() and self._head_timer is None:
            self._arm()  # the next head (kept-alive or pipelined) has its own deadline


def serve_uvicorn(settings: ServeSettings, host: str, port: int, workers: int, threads: int,
                  log_level: str) -> None:
    import uvicorn

    # the workers share one listening socket, and libuv accepts every pending connection at
    # once: one worker took all 8 of a client's connections while the other idled. libuv's
    # own switch makes it accept one at a time and yield, so the workers share them
    os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
    os.environ[SETTINGS_ENV] = json.dumps({
        "root": str(settings.root), "workspace": settings.workspace,
        "manifest_path": str(settings.manifest_path), "metrics_dir": str(settings.metrics_dir),
        "max_entities": settings.max_entities, "max_body_bytes": settings.max_body_bytes,
        "threads": threads})
    uvicorn.run(
        "featql.server.uvicorn_server:worker_app", factory=True, host=host, port=port,
        workers=workers, loop="uvloop", http=GuardedHttpTools, ws="none", lifespan="off",
        interface="asgi3", log_config=None, log_level=log_level, access_log=False,
        proxy_headers=False, server_header=False, backlog=2048,
        timeout_keep_alive=int(HEAD_SECONDS), timeout_graceful_shutdown=10)


def worker_app() -> Any:
    """In each worker process (uvicorn's factory): the ASGI entry over the app built from the
    manifest file the master validated."""
    from featql.server.app import create_app
    from featql.server.asgi import AsgiEntry

    conf = json.loads(os.environ[SETTINGS_ENV])
    threads = conf.pop("threads")
    for key in ("root", "manifest_path", "metrics_dir"):
        conf[key] = Path(conf[key])
    settings = ServeSettings(**conf)
    dispatcher = create_app(settings).extensions["featql.dispatcher"]
    # the body's deadline is the protocol's (GuardedHttpTools): no timer per request here
    return AsgiEntry(dispatcher, threads, settings.max_body_bytes, body_seconds=None)
