"""Crash safety of `featql stream` (issue 13): 20 runs of the real command, each killed with
SIGKILL at a random point (a quarter while Spark starts, the others at a random moment after
the run applied its first micro-batch: reading, applying or committing one), while events
keep arriving on a 3-partition topic, each followed by a restart from the checkpoint. At the
end the offline log holds every event exactly once, and the online store and a training set
equal a brute-force recomputation from the same events: none lost, none counted twice."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from featql.cli.main import main

from .broker import create_topic
from .project import START, check_online_and_training, make_events, message, produce, write_project

KILLS = 20
FEATQL = [sys.executable, "-m", "featql.cli"]
RUN_TIMEOUT_S = 120
STATE = ".featql/stream/dev/txns/state.json"


def _featql(root: Path, *args: str) -> list[str]:
    return [*FEATQL, *args, "--project", str(root)]


def _batches(root: Path) -> int:
    """The number of the last micro-batch applied (its state is written after it)."""
    try:
        return int(json.loads((root / STATE).read_text())["batch"])
    except (OSError, ValueError):
        return -1


def _log_ids(root: Path) -> list[int]:
    ids: list[int] = []
    for path in sorted((root / "data/txns").rglob("*.parquet")):
        if not path.name.startswith((".", "_")):
            ids.extend(pq.read_table(path, columns=["txn_id"]).column("txn_id").to_pylist())
    return ids


@pytest.mark.slow
def test_twenty_kills_lose_nothing_and_count_nothing_twice(kafka_broker: str,
                                                           tmp_path: Path) -> None:
    rng = random.Random(1313)
    topic = "txns-crash"
    create_topic(kafka_broker, topic, 3)
    history = make_events(rng, 0, 100, START, 12)
    root = write_project(tmp_path / "proj", topic, kafka_broker, history)
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    assert main(["materialize", "--project", str(root), "--online"]) == 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYSPARK_SUBMIT_ARGS", None)  # the command puts the connector on its own classpath

    produced: list[dict[str, Any]] = []
    start = START + dt.timedelta(hours=12)
    progressed = 0  # runs killed after applying at least one micro-batch
    for run in range(KILLS):
        wave = make_events(rng, 10_000 + 100 * run, 50, start + dt.timedelta(hours=run), 1)
        dupes = rng.sample(produced, min(5, len(produced)))
        produce(kafka_broker, topic, [(str(e["user_id"]).encode(), message(e))
                                      for e in wave + dupes])
        produced += wave
        proc = subprocess.Popen(_featql(root, "stream", "--trigger", "0.5", "--max-batch", "25"),
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        before = _batches(root)
        if run % 4 == 0:  # while Spark starts (or reads its checkpoint)
            time.sleep(rng.uniform(0.5, 4.0))
        else:  # a random moment after this run applied its first micro-batch
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while _batches(root) == before and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        progressed += _batches(root) > before
    final = subprocess.run(_featql(root, "stream", "--until-idle"), env=env,
                           capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "streamed until idle" in final.stdout
    # most kills landed while events were being applied, not while Spark started
    assert progressed >= KILLS * 3 // 4 - 1, progressed

    ids = _log_ids(root)
    everything = history + produced
    assert len(ids) == len(set(ids)), "an event is in the offline log twice"
    assert sorted(ids) == sorted(e["txn_id"] for e in everything), "an event is missing"
    last = max(e["event_ts"] for e in everything)
    times = [last + dt.timedelta(microseconds=1), last + dt.timedelta(minutes=41),
             last + dt.timedelta(hours=5)]
    assert check_online_and_training(root, everything, times) > 0
