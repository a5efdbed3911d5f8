"""The entry granian serves: RSGI (granian's own interface) over the app's one Dispatcher.

Why not granian's WSGI mode: there a handler reads its body from `wsgi.input` on its Python
thread, and granian's `wsgi.input.read` waits on the socket in that thread (granian's
src/wsgi/types.rs: `read` blocks on the body stream; nothing is buffered before the app is
called). With one thread per worker (the default for stores on this machine), two clients that
send a head and then stall their bodies froze both workers. Here granian's Rust side reads the
body while the coroutine waits (`await protocol()`, or chunk by chunk when the body is
chunked, so that the size limit is enforced while it arrives): a stalled body holds a coroutine,
never a thread, for at most BODY_SECONDS (then a 408). The same handlers then run on the whole
request: inline in the event loop with one thread (a SQLite read is ~30 µs of C and does not
wait), in a pool of `threads` threads otherwise (reads that wait on the network).

Why not ASGI (featql.server.asgi, what served before): the same safety, at more CPU per
request (a scope dict, a receive() message per body part, two send() messages); the README has
the interleaved measurement.

The environ the handlers get has WSGI's names (REQUEST_METHOD, PATH_INFO, QUERY_STRING,
HTTP_*, CONTENT_LENGTH, SERVER_PROTOCOL), the body read whole in `wsgi.input`; repeated header
lines are joined with ",", so `refusal` sees two Host lines.
"""

from __future__ import annotations

import asyncio
import io
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from featql.server.app import DRAIN_BYTES, Dispatcher, Reply, error_body, refusal
from featql.server.balance import Balancer
from featql.server.metrics import OTHER

INGEST_THREADS = 8  # pushes applied at once per worker (they queue on the ingest lock)
BODY_SECONDS = 30.0  # a request body must arrive whole within this, or the request is a 408


class BodyError(Exception):
    """The body could not be read whole: the client went away, or its framing is broken."""


class RsgiEntry:
    def __init__(self, dispatcher: Dispatcher, threads: int, max_body: int,
                 balancer: Balancer | None = None):
        self.dispatcher, self.max_body = dispatcher, max_body
        self.balancer = balancer  # featql.server.balance: spreads keep-alive connections
        self.pool = ThreadPoolExecutor(threads, "featql-req") if threads > 1 else None
        # pushes run off the event loop, several at once: lookups are not held behind a push,
        # and pushes that wait on the ingest lock together are applied as one group
        # (featql.jobs.ingest_group)
        self.ingest_pool = ThreadPoolExecutor(INGEST_THREADS, "featql-ingest")

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        started = time.perf_counter()
        environ = environ_of(scope)
        problem = refusal(environ, environ["REQUEST_METHOD"], environ["PATH_INFO"])
        if problem is None:
            problem = await self._body(environ, protocol)
        if problem is not None:
            self.dispatcher.count(problem, started)
            reply = problem
        elif environ["PATH_INFO"].startswith("/v1/ingest/"):
            loop = asyncio.get_running_loop()
            reply = await loop.run_in_executor(self.ingest_pool, self.dispatcher.reply_for,
                                               environ, started, False)
        elif self.pool is None:
            reply = self.dispatcher.reply_for(environ, started, False)
        else:
            loop = asyncio.get_running_loop()
            reply = await loop.run_in_executor(self.pool, self.dispatcher.reply_for, environ,
                                               started, False)
        headers = [("content-type", reply.content_type),
                   ("content-length", str(len(reply.body)))]
        if self.balancer is not None and self.balancer.close_after(scope.client):
            headers.append(("connection", "close"))
        if environ["REQUEST_METHOD"] == "HEAD":
            protocol.response_empty(reply.status, headers)
        else:
            protocol.response_bytes(reply.status, headers, reply.body)

    async def _body(self, environ: dict[str, Any], protocol: Any) -> Reply | None:
        """Read the body into environ["wsgi.input"]; a reply instead when it is refused or
        cannot be read."""
        length = environ.get("CONTENT_LENGTH")
        chunked = "HTTP_TRANSFER_ENCODING" in environ
        if length is None and not chunked:
            return None  # no body (RFC 9112 §6.3): nothing to wait for
        declared = int(length) if length and length.isdigit() else None
        try:
            async with asyncio.timeout(BODY_SECONDS):
                if declared is not None and declared > self.max_body:
                    if declared <= DRAIN_BYTES:  # read and drop: the client then reads the 413
                        await _read_whole(protocol)
                    return _too_large(f"request body of {declared} bytes exceeds the limit "
                                      f"of {self.max_body}")
                if declared is not None:  # hyper reads exactly `declared` bytes, no more
                    body: bytes | None = await _read_whole(protocol)
                else:
                    body = await _read_chunks(protocol, self.max_body)
        except BodyError as e:
            return Reply(400, error_body(400, "bad_body", "the request body ended early or "
                                         f"its framing is broken{e}", "body"), service=OTHER)
        except TimeoutError:
            return Reply(408, error_body(408, "body_timeout", "the request body did not "
                                         f"arrive within {BODY_SECONDS:g} s", "body"),
                         service=OTHER)
        if body is None:
            return _too_large(f"request body exceeds the limit of {self.max_body} bytes")
        environ["wsgi.input"] = io.BytesIO(body)
        if declared is None:  # chunked: now of a known length
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return None


async def _read_whole(protocol: Any) -> bytes:
    """The body of a declared length (granian reads it in Rust, up to its Content-Length)."""
    try:
        return bytes(await protocol())
    except RuntimeError as e:  # RSGIProtocolClosed: short body, client gone
        raise BodyError(f" ({e})" if str(e) else "") from None


async def _read_chunks(protocol: Any, limit: int) -> bytes | None:
    """A chunked body chunk by chunk (so that no more than `limit` bytes are ever held), None
    once past `limit` (the rest left unread).

    granian (src/rsgi/io.rs, `__anext__`) yields each data frame, then one b"" at the end; a
    frame that is not data yields b"" too, and so does a read error (a bad chunk size, a client
    that stopped before the last chunk), after which the stream ends as if whole. So a b""
    before the last one means the body broke or carried trailer fields, which this iteration
    cannot tell apart: both are refused (a 400), never served as a whole body."""
    parts: list[bytes] = []
    size = 0
    empty = 0
    try:
        async for chunk in protocol:
            if not chunk:
                empty += 1
                continue
            if empty:  # data after a b"": not granian's documented order; refuse
                raise BodyError(" (data after the end of the stream)")
            size += len(chunk)
            if size > limit:
                return None
            parts.append(bytes(chunk))
    except RuntimeError as e:
        raise BodyError(f" ({e})" if str(e) else "") from None
    if empty > 1:
        raise BodyError(" (a chunked body must end with its last chunk; trailer fields are "
                        "not accepted)")
    return b"".join(parts)


def _too_large(message: str) -> Reply:
    return Reply(413, error_body(413, "body_too_large", message, "body"), service=OTHER)


def environ_of(scope: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope.method,
        "PATH_INFO": scope.path,
        "QUERY_STRING": scope.query_string,
        "SERVER_PROTOCOL": "HTTP/1.0" if scope.http_version == "1" else
                           f"HTTP/{scope.http_version}",
        "wsgi.input": io.BytesIO(b""),
    }
    for name, value in scope.headers.items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ
