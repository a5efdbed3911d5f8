"""`featql stream --until-idle` end to end on a real broker (issue 13): events produced with a
real Kafka client over 3 partitions, read by Spark's own Kafka source, applied through the one
write path; the online store and a training set then equal a brute-force oracle. Ties, NULLs,
late events, duplicates, dead letters (malformed JSON, a missing key, a wrong type) and the
hand-over from the backfill (events of the batch log replayed on the topic, streamed events
inside the slide the backfill ended in, looked up inside it) are all included; then
`materialize --overwrite` recomputes from the log, streamed events included."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest

from featql.cli.main import main

from .broker import create_topic
from .project import (
    START,
    USERS,
    check_online_and_training,
    close,
    expected,
    make_events,
    message,
    produce,
    write_project,
)

PARTITIONS = 3


def _apply(root: Path) -> None:
    """apply (backfills the views from the batch log), then load the online store from it."""
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    assert main(["materialize", "--project", str(root), "--online"]) == 0


def _stream(root: Path, spark: Any, **kw: Any) -> Any:
    from featql.jobs.stream import run_stream
    from featql.registry import load_applied

    applied = load_applied(root, None)
    return run_stream(root, applied.run_manifest, applied.workspace, until_idle=True,
                      spark=spark, **kw)


VIEWS = ("user_aggs", "user_last")


def _check_aggs(root: Path, events: list[dict[str, Any]], times: list[dt.datetime]) -> int:
    """Lookups of service `aggs` (the aggregate view alone: a replay before a row view's newest
    row is refused) and a training set at `times` equal the oracle; values checked."""
    import pyarrow as pa

    from featql.api import Project

    project = Project(root)
    spine, wanted = [], []
    for t in times:
        rows = project.online("aggs", [{"user_id": u} for u in USERS], at=t)
        for u, row in zip(USERS, rows, strict=True):
            want = {k: v for k, v in expected(events, u, t).items()
                    if k.startswith("user_aggs.")}
            bad = {k: (row.get(k), v) for k, v in want.items() if not close(row.get(k), v)}
            assert bad == {}, ("online", u, t, bad)
            spine.append({"user_id": u, "ts": t})
            wanted.append(want)
    table = project.training_set("aggs", pa.Table.from_pylist(spine, schema=pa.schema(
        [("user_id", pa.int64()), ("ts", pa.timestamp("us"))]))).to_pylist()
    for row, want, at in zip(table, wanted, spine, strict=True):
        bad = {k: (row[k.replace(".", "__")], v) for k, v in want.items()
               if not close(row[k.replace(".", "__")], v)}
        assert bad == {}, ("training", at, bad)
    return sum(len(w) for w in wanted)


@pytest.mark.slow
def test_stream_until_idle_equals_the_oracle(kafka_spark: Any, kafka_broker: str,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(13)
    topic = "txns-e2e"
    create_topic(kafka_broker, topic, PARTITIONS)
    history = make_events(rng, 0, 200, START, 24)
    root = write_project(tmp_path / "proj", topic, kafka_broker, history)
    (root / "services/aggs.sql").write_text(
        "-- @feature_service(name = aggs, features = [user_aggs.*])\n")
    _apply(root)  # backfills the views from the batch log

    # the hand-over inside the slide the backfill ended in (23:00, its newest event 23:5x):
    # streamed events of that slide land in it, and lookups inside it stay exact
    edge = make_events(rng, 5_000, 20, START + dt.timedelta(hours=23), 1)
    produce(kafka_broker, topic, [(str(e["user_id"]).encode(), message(e)) for e in edge])
    assert [s.events for s in _stream(root, kafka_spark).sources] == [len(edge)] * len(VIEWS)
    newest = max(e["event_ts"] for e in history)
    inside = [START + dt.timedelta(hours=23, microseconds=1), newest,
              newest + dt.timedelta(microseconds=1), START + dt.timedelta(hours=23, minutes=30),
              START + dt.timedelta(hours=23, minutes=59, seconds=59)]
    assert _check_aggs(root, history + edge, inside) > 0

    live = make_events(rng, 10_000, 400, START + dt.timedelta(hours=24), 6)
    dupes = rng.sample(live, 15)
    handed_over = history[-10:]  # the topic also holds the newest events of the batch log
    bad = [(None, b"{not json"),
           (None, json.dumps({"user_id": 1, "amount": 1.0, "channel": "web",
                              "event_ts": "2024-03-02T01:00:00"}).encode()),  # no txn_id
           (None, json.dumps({"txn_id": 99_999, "user_id": 1, "amount": "lots",
                              "channel": "web", "event_ts": "2024-03-02T01:00:00"}).encode()),
           (None, b"[1, 2, 3]")]
    first = [(str(e["user_id"]).encode(), message(e)) for e in handed_over + live + dupes] + bad
    produce(kafka_broker, topic, first)
    report = _stream(root, kafka_spark)
    assert [s.view for s in report.sources] == list(VIEWS)  # a checkpoint per view
    for stats in report.sources:  # each reads every message, and applies it to its view
        assert stats.events == len(first)
        assert stats.dead == len(bad) and stats.late == 0
        assert stats.ingested == len(live), (stats.view, stats.ingested)
        letters = [json.loads(line) for f in sorted(
            (root / f".featql/stream/dev/txns/{stats.view}/deadletter").glob("*.jsonl"))
            for line in f.open()]
        assert len(letters) == len(bad)
        reasons = " | ".join(d["reason"] for d in letters)
        assert "not JSON" in reasons and "txn_id" in reasons and "amount" in reasons, reasons

    # a second run: late events (more than 1h behind the watermark), more duplicates, new ones
    newest = max(e["event_ts"] for e in live)
    late = make_events(rng, 20_000, 12, newest - dt.timedelta(hours=5), 2)
    more = make_events(rng, 30_000, 40, newest, 1)
    second = [(str(e["user_id"]).encode(), message(e)) for e in late + more + dupes[:5]]
    produce(kafka_broker, topic, second)
    report = _stream(root, kafka_spark)
    for stats in report.sources:
        assert stats.events == len(second)
        assert stats.late == len(late), (stats.late, len(late))
        assert stats.total_dead == len(bad)

    # a third run, through the command, with nothing new reads nothing and says so
    capsys.readouterr()
    assert main(["stream", "--project", str(root), "--until-idle"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for i, view in enumerate(VIEWS):
        assert lines[2 * i] == (f"✓ {view} ← txns (kafka topic '{topic}' on {kafka_broker}): "
                                "0 batch(es), 0 event(s) read, 0 ingested, 0 duplicate(s), 0 "
                                "late, 0 dead letter(s)")
        assert lines[2 * i + 1].startswith(f"  dead letters ({len(bad)} since the checkpoint "
                                           "began): ")
        assert lines[2 * i + 1].endswith(f".featql/stream/dev/txns/{view}/deadletter")
    assert lines[4] == "streamed until idle into workspace 'dev' (apply #1 of workspace 'dev')"

    everything = history + edge + live + late + more  # each event once
    last = max(e["event_ts"] for e in everything)
    times = [last + dt.timedelta(microseconds=1), last + dt.timedelta(minutes=17),
             last.replace(minute=0, second=0) + dt.timedelta(hours=1),
             last + dt.timedelta(hours=2, minutes=3), last + dt.timedelta(days=1)]
    assert check_online_and_training(root, everything, times) > 0
    # materialize --overwrite recomputes the views from the log, the streamed events included
    assert main(["materialize", "--project", str(root), "--overwrite"]) == 0
    assert check_online_and_training(root, everything, times, online=False) > 0
