"""A `featql stream` running in a thread of the test (the session's one SparkSession), following
the applies, with bounded waits on what it reports and a bounded stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from featql.jobs.stream import SourceStats, run_stream
from featql.registry import load_applied

WAIT_S = 180.0


class Notes:
    """A Progress keeping each task's description (what the stream did on an apply)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Any]:
        yield lambda n=1, description=None: None
        self.lines.append(description)


class RunningStream:
    """`run_stream` over the workspace's head apply, following later ones every 0.3 s, until
    `stop()` (at most 600 s). `stats[view]` is the running query's own `SourceStats` object
    (a restarted query has a new one)."""

    def __init__(self, root: Path, spark: Any) -> None:
        self.root, self.spark = root, spark
        self.applied = load_applied(root, None)
        self.notes = Notes()
        self.stats: dict[str, SourceStats] = {}
        self.out: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-stream")

    def _seen(self, rows: Sequence[SourceStats]) -> None:
        self.stats = {s.view: s for s in rows}

    def _run(self) -> None:
        try:
            self.out["report"] = run_stream(
                self.root, self.applied.run_manifest, self.applied.workspace,
                spark=self.spark, trigger_seconds=0.3, stop=self._stop, max_seconds=600,
                applied_id=self.applied.apply_id, reload_seconds=0.3, progress=self.notes,
                on_progress=self._seen)
        except BaseException as e:  # raised again by the test's thread
            self.out["error"] = e

    def start(self) -> RunningStream:
        self._thread.start()
        return self

    def counts(self, view: str) -> tuple[int, int, int]:
        """(events read, ingested, duplicates) of the view's query, (0, 0, 0) before it runs."""
        s = self.stats.get(view)
        return (s.events, s.ingested, s.duplicates) if s is not None else (0, 0, 0)

    def noted(self, text: str) -> bool:
        return any(text in line for line in self.notes.lines)

    def until(self, what: Callable[[], bool], why: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not what():
            assert "error" not in self.out, self.out["error"]
            assert time.monotonic() < deadline, (why, {v: self.counts(v) for v in self.stats},
                                                 self.notes.lines)
            time.sleep(0.1)

    def stop(self) -> Any:
        """Stop the stream, bounded; its report (its error raised)."""
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the stream did not stop within 120 s"
        if "error" in self.out:
            raise self.out["error"]
        return self.out["report"]
