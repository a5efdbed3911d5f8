"""The stream job's bookkeeping without Spark: the per-batch state a replay starts from, the
checkpoint identity and its reset when the stream location changes, and the hand-over's key
check against the batch log's own files (not featql's appended ones)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featql.compiler.project import compile_project
from featql.core.ir import Source
from featql.jobs.stream_handover import drop_logged
from featql.jobs.stream_state import State, identity

from .project import SCHEMA, START, write_project


def test_a_replayed_batch_starts_from_the_state_before_it(tmp_path: Path) -> None:
    state = State.load(tmp_path / "state.json")
    assert state.start(0) == {}
    state.commit(0, {}, {"newest": "2024-03-01T01:00:00", "events": 10})
    state.commit(1, state.start(1), {"newest": "2024-03-01T02:00:00", "events": 25})
    again = State.load(tmp_path / "state.json")  # a restart
    assert again.start(1) == {"newest": "2024-03-01T01:00:00", "events": 10}  # the replay
    assert again.start(2) == {"newest": "2024-03-01T02:00:00", "events": 25}  # the next one


def _source(tmp_path: Path) -> Source:
    root = write_project(tmp_path / "p", "txns", "127.0.0.1:9", [])
    src = compile_project(root).manifest.source("txns")
    assert src is not None
    return src


def test_the_checkpoint_identity_is_kept_and_reset_with_the_location(tmp_path: Path) -> None:
    src = _source(tmp_path)
    folder = tmp_path / "s"
    first, reset = identity(folder, src)
    assert not reset
    (folder / "checkpoint").mkdir()
    assert identity(folder, src) == (first, False)  # a restart keeps it
    assert src.stream is not None
    moved = dataclasses.replace(src, stream=dataclasses.replace(src.stream, topic="other"))
    (folder / "state.json").write_text("{}")
    second, reset = identity(folder, moved)
    assert reset and second != first
    assert not (folder / "checkpoint").exists() and not (folder / "state.json").exists()


def test_the_hand_over_drops_what_the_batch_log_holds(tmp_path: Path) -> None:
    root = tmp_path / "p"
    write_project(root, "txns", "127.0.0.1:9", [
        {"txn_id": i, "user_id": 1, "amount": 1.0, "channel": "web",
         "event_ts": START + dt.timedelta(minutes=i), "created_ts": None} for i in range(50)])
    src = compile_project(root).manifest.source("txns")
    assert src is not None
    # featql's own appended events (ingest/) are the ledger's business, not the hand-over's
    (root / "data/txns/ingest/2024-03-01").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"txn_id": 500, "user_id": 1, "amount": 1.0,
                                          "channel": "web", "event_ts": START,
                                          "created_ts": None}], schema=SCHEMA),
                   root / "data/txns/ingest/2024-03-01/ingest-1.parquet")
    events = pa.Table.from_pylist(
        [{"txn_id": i, "user_id": 2, "amount": 2.0, "channel": "app",
          "event_ts": START + dt.timedelta(minutes=t), "created_ts": None}
         for i, t in ((10, 10), (49, 49), (500, 5), (77, 30), (78, 90))], schema=SCHEMA)
    kept, dropped = drop_logged(root, src, events)
    assert dropped == 2
    assert kept.column("txn_id").to_pylist() == [500, 77, 78]
    # events all newer than the log's newest event time are not looked up at all
    newer = events.filter(pc.greater(events.column("event_ts"),
                                             pa.scalar(START + dt.timedelta(minutes=60),
                                                       pa.timestamp("us"))))
    assert drop_logged(root, src, newer) == (newer, 0)
