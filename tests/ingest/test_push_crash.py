"""Crash safety of the push path (issue 13): 20 kill -9 of `featql serve` during pushes, the
clients (three at once, so the server applies their pushes in groups) retrying every batch
they got no answer for. At the end the offline log holds every event
exactly once and the online store equals a batch recomputation (the training set from the
log) and a brute-force oracle: no event lost, none counted twice."""

from __future__ import annotations

import datetime as dt
import math
import random
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featql.compiler.project import compile_project
from featql.core.config import load_config
from featql.core.diagnostics import Diagnostics
from featql.jobs.training import training_set

from .oracle import aggregate, window_events
from .project import write_project
from .server import Server, cli

KILLS = 20
CLIENTS = 3  # concurrent clients (group commit under kill -9)
USERS = tuple(range(1, 9))


def _events(n: int) -> list[dict]:
    rng = random.Random(7)
    start = dt.datetime(2024, 3, 5)
    return [{"event_id": i, "user_id": rng.choice(USERS),
             "amount": round(rng.uniform(1, 100), 2), "kind": rng.choice(["a", "b"]),
             "ts": start + dt.timedelta(seconds=rng.randrange(6 * 3600))} for i in range(n)]


@pytest.mark.slow
def test_twenty_kills_lose_nothing_and_count_nothing_twice(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    assert cli(root, "apply", "--yes").returncode == 0
    events = _events(3000)
    batches = [events[i:i + 25] for i in range(0, len(events), 25)]
    server = Server(root, workers=2)  # pushes applied by its ingest process
    acked = [0]
    retries = [0]
    stop = threading.Event()
    kills_done = threading.Event()

    lock = threading.Lock()

    def client(c: int) -> None:  # CLIENTS at once: the server applies their pushes in groups
        # Until every kill has landed, a client that has pushed all its batches pushes them
        # again (as a client replaying records it is unsure of would): the source's key makes
        # them count once, and a fast machine cannot finish the pushes before the kills end.
        mine = batches[c::CLIENTS]
        first = set()
        i = 0
        while not stop.is_set() and (len(first) < len(mine) or not kills_done.is_set()):
            n = i % len(mine)
            body = [{**e, "ts": e["ts"].isoformat()} for e in mine[n]]
            try:
                status, reply = server.push("events", body)
            except OSError:
                with lock:
                    retries[0] += 1
                time.sleep(0.05)
                continue
            assert status == 200, reply
            if n not in first:
                first.add(n)
                with lock:
                    acked[0] += 1
            i += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    rng = random.Random(3)
    kills = 0
    try:
        while kills < KILLS and any(t.is_alive() for t in threads):
            time.sleep(rng.uniform(0.05, 0.6))
            server.kill()
            kills += 1
            server = Server(root, port=server.port, workers=2)
        kills_done.set()
        for thread in threads:
            thread.join(300)
    finally:
        stop.set()
        server.stop()
    assert kills == KILLS and acked[0] == len(batches), (kills, acked[0])
    assert retries[0] >= KILLS // 2  # the kills did land during pushes

    # the offline log: every event exactly once
    files = sorted((root / "data/events/ingest").rglob("*.parquet"))
    ids = [i for f in files for i in pq.read_table(f).column("event_id").to_pylist()]
    assert sorted(ids) == list(range(len(events)))
    # one file per group that logged events (they share one day): fewer than the batches,
    # so groups of several calls were applied (and recovered) across the kills
    assert len(files) < len(batches), (len(files), len(batches))

    # the online store against the training set from the log and the oracle
    manifest = compile_project(root).manifest
    config = load_config(root, "featql.toml", Diagnostics())
    at = max(e["ts"] for e in events) + dt.timedelta(minutes=1)
    server = Server(root)
    try:
        status, got = server.lookup("aggs", [{"user_id": u} for u in USERS], at.isoformat())
    finally:
        server.stop()
    assert status == 200, got
    spine = pa.table({"user_id": pa.array(USERS, pa.int64()),
                      "ts": pa.array([at] * len(USERS), pa.timestamp("us"))})
    train = training_set(root, manifest, config, "aggs", spine, workspace="dev",
                         use_store=False)
    for r, u in enumerate(USERS):
        for w, seconds in (("1h", 3600), ("2h", 7200), ("1d", 86400)):
            evs = window_events(events, u, at, seconds, 3600)
            for agg, want in (("n_events", len(evs)),
                              ("f_count", len(evs)),
                              ("f_sum", aggregate("sum", [e["amount"] for e in evs])),
                              ("f_max", aggregate("max", [e["amount"] for e in evs]))):
                on = got["features"][r][f"user_aggs.{agg}_{w}"]
                off = train.column(f"user_aggs__{agg}_{w}")[r].as_py()
                assert math.isclose(on, want) and math.isclose(off, want), (u, w, agg, on, off,
                                                                            want)
