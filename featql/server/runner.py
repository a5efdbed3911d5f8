"""Run the feature server: gunicorn in production (with featql.server.worker's worker
classes), Flask's dev server with `--reload`. The master process compiles the project once (or
reuses a fresh target/manifest.json); each worker builds its app from that manifest after the
fork."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from featql.server.app import ServeSettings, create_app

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def fresh_manifest(root: Path) -> Path | None:
    """target/manifest.json when no definition file or featql.toml is newer than it."""
    path = root / "target" / "manifest.json"
    if not path.exists():
        return None
    built = path.stat().st_mtime
    skip = {"target", ".featql", "data", ".venv", "node_modules", "__pycache__"}
    for p in root.rglob("*"):
        if skip.intersection(p.relative_to(root).parts):
            continue
        if p.suffix in (".sql", ".py", ".toml") and p.stat().st_mtime > built:
            return None
    return path


def worker_class(threads: int, max_body: int) -> type:
    """The event-loop worker for one thread per worker, gthread for more (featql.server.worker
    says why)."""
    from featql.server.worker import balanced_thread_worker, loop_worker

    return loop_worker(max_body) if threads == 1 else balanced_thread_worker()


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


def serve(settings: ServeSettings, host: str, port: int, workers: int, threads: int,
          reload: bool = False) -> None:
    if reload:
        _plain_dev_server_log()
        app = create_app(settings)
        app.run(host=host, port=port, use_reloader=True, threaded=True)
        return
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", worker_class(threads, settings.max_body_bytes))
            self.cfg.set("threads", threads)
            self.cfg.set("keepalive", 30)
            self.cfg.set("backlog", 2048)
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("accesslog", None)
            self.cfg.set("errorlog", "-")
            self.cfg.set("loglevel", os.environ.get("FEATQL_LOG_LEVEL", "warning"))
            self.cfg.set("proc_name", "featql-serve")

        def load(self) -> Any:
            return create_app(settings)  # in each worker, after the fork

    _App().run()


@contextlib.contextmanager
def metrics_directory() -> Any:
    path = Path(tempfile.mkdtemp(prefix="featql-metrics-"))
    owner = os.getpid()
    try:
        yield path
    finally:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)
