"""Prometheus metrics of the feature server, correct across worker processes: prometheus_client
in multiprocess mode.

Every worker writes its samples to its own files in one directory (`PROMETHEUS_MULTIPROC_DIR`,
set by `Metrics` before prometheus_client is first imported, so workers forked later inherit
it); `/metrics`, whichever worker answers it, aggregates every file of the directory, so the
counts of all workers, restarted ones included, add up. `featql_workers` (a live-sum gauge) is
1 per running worker: the files of workers that died are marked dead (`mark_process_dead`)
when a worker starts and on every scrape, so it counts live workers only.

Series (PRODUCT §5: request rate, errors, latency histogram per service):
`featql_requests_total{service,code}` (code: 2xx/4xx/5xx), `featql_request_errors_total{service}`,
`featql_entities_total{service}`, `featql_request_duration_seconds{service}` (histogram),
`featql_workers`. `service` is one of the manifest's services, or `_other` for requests that
name none (unknown service, unknown route).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from featql.core.pool import pid_alive

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CODES = ("2xx", "4xx", "5xx")
OTHER = "_other"  # requests naming no known service (404s, bad routes)
ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LIVE = re.compile(r"gauge_live\w*?_(\d+)\.db$")


def use_directory(directory: Path) -> None:
    """Point prometheus_client's multiprocess mode at `directory`; call it before any worker
    starts (runner) — Metrics() does too, for the process that builds the first app."""
    directory.mkdir(parents=True, exist_ok=True)
    from prometheus_client import values

    if os.environ.get(ENV) == str(directory) and getattr(values.ValueClass, "_multiprocess",
                                                          False):
        return
    os.environ[ENV] = str(directory)
    # The value class was chosen when prometheus_client was imported (before the variable was
    # set, by a library or a test), or it keeps the files of another directory open (a second
    # app in one process): choose a fresh one; metrics made from now on write here.
    values.ValueClass = values.MultiProcessValue()




class Metrics:
    def __init__(self, directory: Path, services: list[str]):
        self.dir = Path(directory)
        use_directory(self.dir)
        from prometheus_client import Counter, Gauge, Histogram

        self.labels = [*sorted(services), OTHER]
        # registry=None: the samples live in the directory's files, and a worker forked from a
        # process that built an app too must not find the names registered twice
        requests = Counter("featql_requests", "Feature-server requests, by service and status "
                           "class.", ("service", "code"), registry=None)
        errors = Counter("featql_request_errors", "Requests answered with a 4xx or 5xx.",
                         ("service",), registry=None)
        entities = Counter("featql_entities", "Entities looked up.", ("service",),
                           registry=None)
        duration = Histogram("featql_request_duration_seconds", "Time to answer a request.",
                             ("service",), buckets=BUCKETS, registry=None)
        self._workers = Gauge("featql_workers", "Worker processes serving.", registry=None,
                              multiprocess_mode="livesum")
        self._pid = -1
        # one child per label set, created up front: every series exists (at 0) from the start,
        # and observe() does no label lookup
        self._series = {
            s: ([requests.labels(s, c) for c in CODES], errors.labels(s), entities.labels(s),
                duration.labels(s)) for s in self.labels}
        self._lock = threading.Lock()

    def _started(self) -> None:
        """Once per process (workers are forked): count this worker, forget dead ones."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.mark_dead()
            self._workers.set(1)

    def mark_dead(self) -> None:
        from prometheus_client import multiprocess

        for path in self.dir.glob("gauge_live*.db"):
            m = _LIVE.search(path.name)
            if m and not pid_alive(int(m.group(1))):
                multiprocess.mark_process_dead(int(m.group(1)), str(self.dir))

    def observe(self, service: str, status: int, seconds: float, entities: int = 0) -> None:
        if self._pid != os.getpid():
            self._started()
        codes, errors, ents, duration = self._series.get(service) or self._series[OTHER]
        code = 0 if status < 400 else 1 if status < 500 else 2
        codes[code].inc()
        if code:
            errors.inc()
        if entities:
            ents.inc(entities)
        duration.observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess

        if self._pid != os.getpid():
            self._started()
        self.mark_dead()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.dir))
        return generate_latest(registry)

    def __repr__(self) -> str:
        return f"Metrics({self.dir}, {self.labels})"

