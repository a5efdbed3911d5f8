"""A micro-batch sorted into events and dead letters, and the late count (no Spark needed):
every message lands in exactly one pile, with the checker's reason for a dead letter."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pyarrow as pa

from featql.compiler.project import compile_project
from featql.core.ir import Source
from featql.jobs.stream_events import split_batch

from .project import write_project


def _source(tmp_path: Path) -> Source:
    root = write_project(tmp_path / "p", "txns", "127.0.0.1:9", [])
    src = compile_project(root).manifest.source("txns")
    assert src is not None
    return src


def _raw(values: list[str | None]) -> pa.Table:
    return pa.table({"value": pa.array(values, pa.string()),
                     "origin": [f"0:{i}" for i in range(len(values))]})


def _good(i: int, ts: str) -> str:
    return json.dumps({"txn_id": i, "user_id": 1, "amount": 2.5, "channel": "web",
                       "event_ts": ts, "created_ts": None})


def test_every_message_lands_in_one_pile(tmp_path: Path) -> None:
    src = _source(tmp_path)
    bad = {"{oops": "not JSON", "[1]": "not a JSON object (a list)", "null": "not a JSON object",
           json.dumps({"user_id": 1, "event_ts": "2024-03-01T00:00:00"}): "txn_id is missing",
           json.dumps({"txn_id": 1, "user_id": "x", "event_ts": "2024-03-01T00:00:00"}):
               "user_id must be BIGINT",
           json.dumps({"txn_id": 2, "user_id": 1, "event_ts": "yesterday"}):
               "event_ts is not an ISO timestamp",
           json.dumps({"txn_id": 3, "user_id": 1, "event_ts": "2024-03-01T00:00:00",
                       "colour": "red"}): "has no column 'colour'"}
    rng = random.Random(3)
    good = [_good(100 + i, f"2024-03-01T0{i % 10}:00:00Z") for i in range(30)]
    values: list[str | None] = [*good, *bad, None]
    rng.shuffle(values)
    split = split_batch(src, _raw(values), watermark=None)
    assert split.events is not None
    assert sorted(split.events.column("txn_id").to_pylist()) == list(range(100, 130))
    assert len(split.dead) == len(bad) + 1
    by_value = {d.value: d.reason for d in split.dead}
    for value, reason in bad.items():
        assert reason in by_value[value], (value, by_value[value])
    assert by_value[None] == "the message has no value"
    assert {d.origin for d in split.dead} <= {f"0:{i}" for i in range(len(values))}
    assert split.late == 0  # no watermark yet
    assert split.events.column("event_ts").type == pa.timestamp("us")


def test_late_is_more_than_lateness_behind_the_watermark(tmp_path: Path) -> None:
    src = _source(tmp_path)  # lateness 1h
    watermark = dt.datetime(2024, 3, 1, 12)
    times = ["2024-03-01T10:59:59", "2024-03-01T11:00:00", "2024-03-01T11:30:00",
             "2024-03-01T13:00:00"]
    split = split_batch(src, _raw([_good(i, t) for i, t in enumerate(times)]), watermark)
    assert split.late == 1  # only the one more than 1h behind; all four are events
    assert split.events is not None and split.events.num_rows == 4
    assert split.newest == dt.datetime(2024, 3, 1, 13)
    assert split.oldest == dt.datetime(2024, 3, 1, 10, 59, 59)


def test_a_batch_of_only_bad_messages(tmp_path: Path) -> None:
    src = _source(tmp_path)
    split = split_batch(src, _raw(["x"] * 40 + [json.dumps({"txn_id": i}) for i in range(40)]),
                        None)
    assert split.events is None and len(split.dead) == 80
