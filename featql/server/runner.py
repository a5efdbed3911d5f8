"""Run the feature server: granian (a maintained Rust HTTP server: HTTP/1.1 parsing,
keep-alive, pipelining, timeouts and the worker processes are its own) serving the app through
its RSGI entry (featql.server.rsgi) on granian's Rust event loop (rloop), N worker processes,
T request threads each; Flask's dev server with `--reload`. The master process (`featql
serve`) loads the workspace's applied manifest once and writes it to
`settings.manifest_path`; each worker builds its app from that file after the fork."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from featql.core.pool import pid_alive
from featql.server.app import ServeSettings, create_app
from featql.server.choice import chosen_server
from featql.server.metrics import use_directory

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A request head must arrive whole within this, counted from its first byte or, on a kept-alive
# connection, from the previous response (so it is the keep-alive idle limit too; 30 s as
# before): a slowloris that trickles bytes is closed then, however steady its trickle.
HEADER_READ_TIMEOUT_MS = 30_000
# connections a worker serves at once (granian's default is backlog / workers, 1,024 here): a
# slowloris holds one per connection while its head trickles, and once they are all held a
# fresh client is not served; the process's descriptor limit is the real bound
CONNECTIONS_PER_WORKER = 16_384
# "0": granian's workers do not spread kept-alive connections (featql.server.balance; the
# bench's A/B)
REBALANCE_ENV = "FEATQL_REBALANCE"


class _PlainFormatter(logging.Formatter):
    """Log lines without ANSI colour codes: werkzeug colours its dev-server banner and 4xx/5xx
    request lines even when stderr is a file or a pipe."""

    def format(self, record: logging.LogRecord) -> str:
        return _ANSI.sub("", super().format(record))


def _plain_dev_server_log() -> None:
    """Give the dev server's `werkzeug` logger a handler of our own (werkzeug then adds none)
    that writes plain text, when stderr is not a terminal."""
    if sys.stderr.isatty():
        return
    handler = logging.StreamHandler()
    handler.setFormatter(_PlainFormatter("%(message)s"))
    log = logging.getLogger("werkzeug")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def describe(workers: int, threads: int, reload: bool = False, server: str | None = None
             ) -> str:
    """The server, for the startup line."""
    if reload:
        return "Flask dev server (--reload)"
    shape = f"{workers} worker(s) × {threads} thread{'s' if threads != 1 else ''}"
    if chosen_server(server) == "uvicorn":
        from uvicorn import __version__ as uvicorn_version

        return f"uvicorn {uvicorn_version} (httptools, uvloop), {shape}"
    from granian import __version__

    return f"granian {__version__} (RSGI), {shape}"


def balance_directory(settings: ServeSettings) -> Path:
    """Where granian's workers publish how many connections they hold (featql.server.balance),
    beside the metrics directory (in `featql serve`'s temporary directory)."""
    return settings.metrics_dir.with_name(settings.metrics_dir.name + "-balance")


def rebalancing(workers: int) -> bool:
    """Whether granian's workers spread kept-alive connections (featql.server.balance): with
    more than one worker, unless REBALANCE_ENV is "0"."""
    return workers > 1 and os.environ.get(REBALANCE_ENV, "1") != "0"


def _worker_app(settings: ServeSettings, threads: int, interface: str, balance: bool = False
                ) -> Any:
    """In each worker process, after the fork: the app, built from the manifest, behind the
    RSGI entry (featql.server.rsgi says why RSGI), or the ASGI or WSGI one (the bench)."""
    dispatcher = create_app(settings).extensions["featql.dispatcher"]
    if interface == "wsgi":
        return dispatcher
    if interface == "rsgi":
        from featql.server.balance import Balancer
        from featql.server.rsgi import RsgiEntry

        balancer = Balancer(balance_directory(settings)) if balance else None
        return RsgiEntry(dispatcher, threads, settings.max_body_bytes, balancer)
    from featql.server.asgi import AsgiEntry

    return AsgiEntry(dispatcher, threads, settings.max_body_bytes)


def serve(settings: ServeSettings, host: str, port: int, workers: int, threads: int,
          reload: bool = False, interface: str | None = None, loop: str | None = None,
          server_name: str | None = None, granian_options: dict[str, Any] | None = None
          ) -> None:
    """`interface` (for the bench's comparisons): "rsgi" (the default, what `featql serve`
    runs), "asgi" (featql.server.asgi, what served before), or "wsgi": granian's WSGI mode,
    where T Python threads read bodies and run handlers, at less CPU per request but a body
    that stalls holds its thread. `loop`: the event loop of the RSGI/ASGI workers, "rloop"
    (granian's own Rust loop: RSGI's default) or "asyncio" (ASGI's default, as it served
    before); the README has the measurements."""
    use_directory(settings.metrics_dir)  # before any worker starts: they inherit it
    interface = interface or "rsgi"
    if reload:
        _plain_dev_server_log()
        app = create_app(settings)
        app.run(host=host, port=port, use_reloader=True, threaded=True)
        return
    if workers <= 1:
        _serve(settings, host, port, workers, threads, interface, loop, server_name,
               granian_options)
        return
    from featql.server.ingest_host import IngestHost

    host_process = IngestHost(settings)  # pushes of all workers applied in one process
    host_process.start()
    try:
        _serve(dataclasses.replace(settings, ingest_socket=host_process.path), host, port,
               workers, threads, interface, loop, server_name, granian_options)
    finally:
        host_process.stop()


def _serve(settings: ServeSettings, host: str, port: int, workers: int, threads: int,
           interface: str, loop: str | None, server_name: str | None,
           granian_options: dict[str, Any] | None) -> None:
    level = os.environ.get("FEATQL_LOG_LEVEL", "warning").lower()
    if chosen_server(server_name) == "uvicorn":
        from featql.server.uvicorn_server import serve_uvicorn

        serve_uvicorn(settings, host, port, workers, threads, level)
        return
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    wsgi = interface == "wsgi"
    kind = {"wsgi": Interfaces.WSGI, "rsgi": Interfaces.RSGI}.get(interface, Interfaces.ASGINL)
    server = Server(
        "featql.server.rsgi:RsgiEntry", address=host, port=port,
        interface=kind, workers=workers,
        blocking_threads=threads if wsgi else 1,
        loop=Loops(loop or ("rloop" if interface == "rsgi" else "asyncio")),
        http=HTTPModes.http1, websockets=False, backlog=2048,
        backpressure=CONNECTIONS_PER_WORKER,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        log_level=LogLevels(level) if level in LogLevels.__members__ else LogLevels.warning,
        respawn_failed_workers=True, workers_kill_timeout=10, **(granian_options or {}))
    server.serve(target_loader=functools.partial(_worker_app, settings, threads, interface,
                                                 rebalancing(workers)),
                 wrap_loader=False)


METRICS_PREFIX = "featql-metrics-"  # + the master's pid + "-" + mkdtemp's random part


def remove_orphaned_directories(parent: Path | None = None) -> list[Path]:
    """Remove the temporary directories of `featql serve` masters that no longer run (killed
    by SIGKILL, or by a crash: their own cleanup never ran); the ones removed."""
    parent = parent or Path(tempfile.gettempdir())
    removed = []
    for path in parent.glob(METRICS_PREFIX + "*"):
        pid = path.name[len(METRICS_PREFIX):].partition("-")[0]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue  # a running server's, or of a name this code did not give
        with contextlib.suppress(OSError):
            if path.is_dir() and path.stat().st_uid == os.getuid():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _exit_on(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def metrics_directory() -> Any:
    """A private temporary directory for the manifest copy and the metrics files, removed when
    the master leaves (normally, on an exception, or on SIGTERM/SIGINT before the server has
    set its own handlers); a killed master's is removed by the next one."""
    remove_orphaned_directories()
    owner = os.getpid()
    path = Path(tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{owner}-"))
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL:  # the default action would skip the cleanup below
        signal.signal(signal.SIGTERM, _exit_on)
    try:
        yield path
    finally:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)
            if previous == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, previous)
