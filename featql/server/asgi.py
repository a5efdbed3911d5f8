"""The entry granian serves: ASGI over the app's one Dispatcher.

Why ASGI and not granian's WSGI mode: under WSGI a handler reads its body from `wsgi.input` on
its Python thread, which blocks until the body has arrived. With one thread per worker (the
default for stores on this machine), two clients that send a head and then trickle (or stop
sending) their bodies froze both workers: /healthz on a fresh connection got no answer within
8 s. Here the event loop reads the body (a slow one holds a coroutine, never a thread), within
BODY_SECONDS, then the same handlers run on the whole request: inline in the loop with one
thread (a SQLite read is ~30 µs of C and does not wait), in a pool of `threads` threads
otherwise (reads that wait on the network).

The environ the handlers get is built from the ASGI scope with WSGI's names (REQUEST_METHOD,
PATH_INFO, QUERY_STRING, HTTP_*, CONTENT_LENGTH, SERVER_PROTOCOL), the body read whole in
`wsgi.input`; repeated header lines are joined with ",", so `refusal` sees two Host lines.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from featql.server.app import DRAIN_BYTES, Dispatcher, Reply, error_body, refusal
from featql.server.metrics import OTHER

BODY_SECONDS = 30.0  # a request body must arrive whole within this, or the request is a 408

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Disconnected(Exception):
    """The body stopped before its end: the client went away, or its framing is broken."""


class BadBody(Exception):
    """The body could not be read: its framing is broken (a bad chunk size, a short body)."""


class AsgiEntry:
    def __init__(self, dispatcher: Dispatcher, threads: int, max_body: int,
                 body_seconds: float | None = BODY_SECONDS):
        """`body_seconds`: the body's deadline; None when the server enforces one itself
        (featql.server.uvicorn_server), which saves a timer per request."""
        self.dispatcher, self.max_body, self.body_seconds = dispatcher, max_body, body_seconds
        self.pool = ThreadPoolExecutor(threads, "featql-req") if threads > 1 else None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        environ = environ_of(scope)
        problem = refusal(environ, environ["REQUEST_METHOD"], environ["PATH_INFO"])
        try:
            if problem is None and self.body_seconds is None:
                problem = await self._body(environ, receive)
            elif problem is None:
                async with asyncio.timeout(self.body_seconds):  # no task of its own
                    problem = await self._body(environ, receive)
        except Disconnected:  # granian says so of a broken body too (a bad chunk size, a body
            # shorter than its Content-Length): answer, or granian answers a 500
            problem = Reply(400, error_body(400, "bad_body", "the request body ended early or "
                                            "its framing is broken", "body"), service=OTHER)
        except BadBody as e:
            problem = Reply(400, error_body(400, "bad_body", f"the request body could not be "
                                            f"read: {e}", "body"), service=OTHER)
        except TimeoutError:
            problem = Reply(408, error_body(408, "body_timeout", "the request body did not "
                                            f"arrive within {self.body_seconds:g} s", "body"),
                            service=OTHER)
        if problem is not None:
            self.dispatcher.count(problem, started)
            reply = problem
        elif self.pool is None:
            reply = self.dispatcher.reply_for(environ, started, False)
        else:
            loop = asyncio.get_running_loop()
            reply = await loop.run_in_executor(self.pool, self.dispatcher.reply_for, environ,
                                               started, False)
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(b"content-type", reply.content_type.encode()),
                                (b"content-length", str(len(reply.body)).encode())]})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else reply.body})

    async def _body(self, environ: dict[str, Any], receive: Receive) -> Reply | None:
        """Read the body into environ["wsgi.input"]; a reply instead when it is refused."""
        length = environ.get("CONTENT_LENGTH")
        declared = int(length) if length and length.isdigit() else None
        if declared is not None and declared > self.max_body:
            if declared <= DRAIN_BYTES:  # read and drop: the client then reads the 413
                await self._read(receive, DRAIN_BYTES)
            return _too_large(f"request body of {declared} bytes exceeds the limit of "
                              f"{self.max_body}")
        body = await self._read(receive, self.max_body)
        if body is None:
            return _too_large(f"request body exceeds the limit of {self.max_body} bytes")
        environ["wsgi.input"] = io.BytesIO(body)
        if declared is None and length is None and body:  # chunked: now of a known length
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return None

    @staticmethod
    async def _read(receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None past `limit` bytes (the rest left unread)."""
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                message = await receive()
            except Exception as e:  # granian: the body's framing is broken (chunk sizes)
                raise BadBody(str(e) or type(e).__name__) from None
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)


def _too_large(message: str) -> Reply:
    return Reply(413, error_body(413, "body_too_large", message, "body"), service=OTHER)


def environ_of(scope: dict[str, Any]) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "PATH_INFO": scope["path"],
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.input": io.BytesIO(b""),
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        key = name if name in ("CONTENT_LENGTH", "CONTENT_TYPE") else "HTTP_" + name
        value = raw_value.decode("latin-1").strip(" \t")  # OWS is not the value's (llhttp
        # keeps trailing whitespace; RFC 9110 §5.5)
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ

