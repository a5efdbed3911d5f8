"""Prometheus metrics that stay correct across gunicorn worker processes.

Each worker process owns one file `<dir>/worker-<pid>.bin`, memory-mapped as an array of
doubles (one writer per file: a lock guards the worker's threads). `/metrics`, whichever worker
answers it, sums every file in the directory, so counts of all workers (even restarted ones)
add up. The layout (which label set owns which slots) is fixed by the services of the manifest,
the same in every worker.
"""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path
from typing import Any

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CODES = ("2xx", "4xx", "5xx")
# per label set: requests per code class, entities, latency sum, bucket counts (+Inf last)
_SLOTS = len(CODES) + 2 + len(BUCKETS) + 1
OTHER = "_other"  # requests naming no known service (404s, bad routes)


class Metrics:
    def __init__(self, directory: Path, services: list[str]):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.labels = [*sorted(services), OTHER]
        self.index = {s: i for i, s in enumerate(self.labels)}
        self._lock = threading.Lock()
        self._pid = -1
        self._values: Any = None

    def _mine(self) -> Any:
        pid = os.getpid()
        if self._values is None or self._pid != pid:  # first use in this (forked) process
            size = len(self.labels) * _SLOTS * 8
            path = self.dir / f"worker-{pid}.bin"
            with open(path, "wb") as f:
                f.write(b"\0" * size)
            with open(path, "r+b") as f:
                mm = mmap.mmap(f.fileno(), size)
            self._values = memoryview(mm).cast("d")
            self._pid = pid
        return self._values

    def observe(self, service: str, status: int, seconds: float, entities: int = 0) -> None:
        base = self.index.get(service, self.index[OTHER]) * _SLOTS
        code = 0 if status < 400 else 1 if status < 500 else 2
        b = len(BUCKETS)
        for i, edge in enumerate(BUCKETS):
            if seconds <= edge:
                b = i
                break
        with self._lock:
            v = self._mine()
            v[base + code] += 1
            v[base + 3] += entities
            v[base + 4] += seconds
            v[base + 5 + b] += 1

    def totals(self) -> list[float]:
        width = len(self.labels) * _SLOTS
        total = [0.0] * width
        for path in self.dir.glob("worker-*.bin"):
            data = path.read_bytes()
            if len(data) != width * 8:
                continue
            vals = memoryview(data).cast("d")
            for i in range(width):
                total[i] += vals[i]
        return total

    def render(self) -> str:
        t = self.totals()
        out = [
            "# HELP featql_requests_total Feature-server requests, by service and status class.",
            "# TYPE featql_requests_total counter",
        ]
        for s, i in self.index.items():
            for c, code in enumerate(CODES):
                out.append(f'featql_requests_total{{service="{s}",code="{code}"}} '
                           f"{int(t[i * _SLOTS + c])}")
        out += ["# HELP featql_request_errors_total Requests answered with a 4xx or 5xx.",
                "# TYPE featql_request_errors_total counter"]
        for s, i in self.index.items():
            errs = t[i * _SLOTS + 1] + t[i * _SLOTS + 2]
            out.append(f'featql_request_errors_total{{service="{s}"}} {int(errs)}')
        out += ["# HELP featql_entities_total Entities looked up.",
                "# TYPE featql_entities_total counter"]
        for s, i in self.index.items():
            out.append(f'featql_entities_total{{service="{s}"}} {int(t[i * _SLOTS + 3])}')
        out += ["# HELP featql_request_duration_seconds Time to answer a request.",
                "# TYPE featql_request_duration_seconds histogram"]
        for s, i in self.index.items():
            base = i * _SLOTS
            cum = 0.0
            for k, edge in enumerate((*BUCKETS, float("inf"))):
                cum += t[base + 5 + k]
                le = "+Inf" if edge == float("inf") else repr(edge)
                out.append(f'featql_request_duration_seconds_bucket{{service="{s}",le="{le}"}} '
                           f"{int(cum)}")
            out.append(f'featql_request_duration_seconds_sum{{service="{s}"}} {t[base + 4]!r}')
            out.append(f'featql_request_duration_seconds_count{{service="{s}"}} {int(cum)}')
        return "\n".join(out) + "\n"
