"""Pushes of a multi-worker server applied by one process: the ingest host.

Pushes are serialized by the project's ingest lock (`featql.jobs.ingest_log`), and calls
waiting on it together in one process are applied as one group (`featql.jobs.ingest_group`).
With N server workers the lock went back and forth between N processes: every hand-over woke
another process, whose SQLite pages of the ledger and of the online store were stale (another
process had written), and each process only grouped its own share of the waiting calls. In
the same run (`bench/stream_bench.py`, 4 clients at 1,000 events/s in pushes of 10), 2 workers
gave push freshness p50 296 ms against 46 ms with 1 worker: the two processes together applied
fewer pushes per second than one did alone.

So `featql serve` with more than one worker starts one more process, the host, before the
workers: it loads the same manifest file the workers do (what the server validated), opens
the online store and listens on a Unix socket in the server's private temporary directory.
A worker's `POST /v1/ingest/<source>` checks the source (404) and reads the body within the
limit (413) as before, then sends `(source, body)` to the host and answers with the host's
reply: the host runs the same handler (`ingest_reply`), so a push gets the same validation,
errors and report whichever process applied it, and all pushes group in one process.

- **Framing.** Request: `>II` (source length, body length), source (UTF-8), body. Reply:
  `>HI` (HTTP status, body length), body. One request at a time per connection; each worker
  thread keeps its connection open.
- **Lifetime.** The master waits for the socket before it starts the workers, and stops the
  host after the workers have stopped (their pushes in flight are answered first). The host
  ignores Ctrl-C (the master stops it) and exits when the master dies (a watchdog on its
  parent, and the kernel's parent-death signal on Linux), so a `kill -9` of the master leaves no
  host holding the ingest lock; a push it was applying is finished by the next one, as after
  any crash (`ingest_log`).
- **Failures.** A worker that cannot reach the host, or loses the connection before the
  reply, answers 503 `ingest_unavailable`: the push may or may not have been applied, and a
  retry is safe (events are deduplicated by key, a batch by its `batch_id`). It never resends
  a push by itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import socketserver
import struct
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from featql.online.lookup import RequestError

if TYPE_CHECKING:
    from featql.core.ir import Manifest
    from featql.online.base import OnlineStore
    from featql.server.app import Reply, ServeSettings

SOCKET_NAME = "ingest.sock"
_REQUEST = struct.Struct(">II")
_REPLY = struct.Struct(">HI")
READY_S = 60.0  # the master waits this long for the host's socket
REPLY_S = 600.0  # a push may wait on the ingest lock (a `materialize --online` holds it)


def socket_path(settings: ServeSettings) -> Path:
    return settings.metrics_dir / SOCKET_NAME


def ingest_reply(settings: ServeSettings, manifest: Manifest, store: OnlineStore,
                 source_name: str, raw: bytes) -> Reply:
    """POST /v1/ingest/<source> given its body: validated, deduplicated, logged, answered once
    the online store holds the values (featql.jobs.ingest)."""
    from featql.core.errors import UserError
    from featql.jobs.ingest import find_source, ingest_events
    from featql.online.base import OnlineStoreError
    from featql.server.app import (
        INGEST_FIELDS,
        Reply,
        error_body,
        error_reply,
        json_object,
        known_fields,
    )
    from featql.server.metrics import OTHER

    try:
        find_source(manifest, source_name)  # unknown source first: 404 with a hint
        body = json_object(raw)
        known_fields(body, INGEST_FIELDS)
        if "records" not in body:
            raise RequestError(400, "missing_field", "body lacks 'records'", "records")
        batch_id = body.get("batch_id")
        if batch_id is not None and not isinstance(batch_id, str):
            raise RequestError(400, "invalid_field", "'batch_id' must be a string",
                               "batch_id")
        report = ingest_events(settings.root, manifest, settings.workspace, source_name,
                               body["records"], batch_id=batch_id, store=store)
    except RequestError as e:
        return error_reply(e, OTHER)
    except UserError as e:
        if isinstance(e, OnlineStoreError):
            return error_reply(e, OTHER)
        return Reply(422, error_body(422, "ingest_refused", str(e), "source"), service=OTHER)
    except Exception as e:
        return error_reply(e, OTHER)
    return Reply(200, orjson.dumps(report.to_json()), service=OTHER)


# -- the worker's side ----------------------------------------------------------------------------
class Forwarder:
    """A worker's connections to the host, one per request thread."""

    def __init__(self, path: Path):
        self.path = str(path)
        self._local = threading.local()

    def _connection(self) -> socket.socket:
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(REPLY_S)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            self._local.sock = sock
        return sock

    def forward(self, source: str, body: bytes) -> tuple[int, bytes]:
        """The host's (status, body) for this push; a 503 RequestError when it cannot be had."""
        name = source.encode()
        try:
            sock = self._connection()
            sock.sendall(_REQUEST.pack(len(name), len(body)) + name + body)
            status, size = _REPLY.unpack(_read(sock, _REPLY.size))
            return status, _read(sock, size)
        except OSError as e:
            self.close()
            raise RequestError(503, "ingest_unavailable", "the server's ingest process did not "
                               f"answer ({type(e).__name__}): the push may or may not have been "
                               "applied; retrying it is safe (events are deduplicated by key, "
                               "a batch by its batch_id)", "source") from None

    def close(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def _read(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError(f"connection closed after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# -- the host -------------------------------------------------------------------------------------
class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        answer = self.server.answer  # type: ignore[attr-defined]
        while True:
            head = self.rfile.read(_REQUEST.size)
            if len(head) < _REQUEST.size:
                return  # the worker closed its connection
            n_source, n_body = _REQUEST.unpack(head)
            source = self.rfile.read(n_source).decode("utf-8", "replace")
            body = self.rfile.read(n_body)
            if len(body) < n_body:
                return
            reply = answer(source, body)
            self.wfile.write(_REPLY.pack(reply.status, len(reply.body)) + reply.body)
            self.wfile.flush()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _die_with(parent: int) -> None:
    """Exit when the master is gone: the kernel's parent-death signal where there is one,
    and a watchdog on the parent pid in any case."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(0)

    threading.Thread(target=watch, name="featql-ingest-watchdog", daemon=True).start()


def run_host(settings: ServeSettings, parent: int) -> None:
    """The host process's main (see the module doc)."""
    from featql.core.config import load_config
    from featql.core.diagnostics import Diagnostics
    from featql.core.manifest import load_manifest
    from featql.online.stores import open_store

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)
    manifest = load_manifest(settings.manifest_path)
    config = load_config(settings.root, "featql.toml", Diagnostics())
    store = open_store(config, settings.root, settings.workspace, create=False)
    path = socket_path(settings)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = _Server(str(path), _Handler)
    server.answer = lambda source, body: ingest_reply(  # type: ignore[attr-defined]
        settings, manifest, store, source, body)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        store.close()


class IngestHost:
    """The master's handle on the host process."""

    def __init__(self, settings: ServeSettings):
        import multiprocessing

        self.path = socket_path(settings)
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads
        self.process: Any = ctx.Process(target=run_host, args=(settings, os.getpid()),
                                        name="featql-ingest", daemon=False)

    def start(self) -> None:
        """Start the host and wait for its socket; a UserError when it does not come up."""
        from featql.core.errors import UserError

        self.process.start()
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if not self.process.is_alive():
                raise UserError(f"the ingest process exited at start (code "
                                f"{self.process.exitcode}); see the messages above")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(self.path))
                return
            except OSError:
                time.sleep(0.05)
            finally:
                probe.close()
        self.stop()
        raise UserError(f"the ingest process did not listen on {self.path} within "
                        f"{READY_S:g} s")

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(15)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
