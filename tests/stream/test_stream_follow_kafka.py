"""A Kafka stream view applied while a files-only `featql stream` runs (issue 13).

What happened before: the stream's SparkSession was built with Spark's Kafka connector only
when a Kafka view ran at the start, so a Kafka view an apply added later got a query whose
`format("kafka")` failed (`AnalysisException: Failed to find data source: kafka`), which ended
the command as an internal error (exit 2). The command test below runs `featql stream` in a
process of its own (the test session's one SparkSession always has the connector), and fails
that way on the old `_session`. Now the connector is on every stream session when it was
fetched (`_session`), and a session without it refuses the Kafka view with a `StreamError`
(exit 1) saying to fetch it and restart `featql stream`."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featql.core.config import ProjectConfig
from featql.jobs import stream as stream_module
from featql.jobs.stream import StreamError, _session, _ViewRun, run_stream
from featql.registry import load_applied

from .broker import create_topic
from .project import SCHEMA, START, USERS, close, expected, make_events, message, produce
from .running import RunningStream
from .test_stream_e2e import _check_aggs
from .test_stream_files import _files_project
from .test_stream_follow import _apply, _drop

TOPIC = "txns-follow"
FEATQL = [sys.executable, "-m", "featql.cli"]


def _add_kafka_view(root: Path, bootstrap: str, topic: str = TOPIC) -> None:
    """A second source `ktxns` over a Kafka topic (its batch log empty) and `user_aggs` over
    it, served alone by `aggs`."""
    (root / "data/ktxns").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([], schema=SCHEMA), root / "data/ktxns/part-0.parquet")
    (root / "sources/ktxns.sql").write_text(
        "-- @source(name = ktxns, timestamp = event_ts, created = created_ts,\n"
        "--         batch = parquet('data/ktxns/'),\n"
        f"--         stream = kafka(topic = '{topic}', bootstrap = '{bootstrap}', "
        "format = json),\n"
        "--         lateness = '1h', key = txn_id)\n"
        "CREATE TABLE ktxns (txn_id BIGINT, user_id BIGINT, amount DOUBLE, channel STRING,\n"
        "                    event_ts TIMESTAMP, created_ts TIMESTAMP);\n")
    aggs = (root / "views/user_aggs.sql")
    aggs.write_text(aggs.read_text().replace("FROM txns", "FROM ktxns"))
    (root / "services/aggs.sql").write_text(
        "-- @feature_service(name = aggs, features = [user_aggs.*])\n")


@pytest.mark.slow
def test_a_kafka_view_applied_to_a_running_files_stream(kafka_spark: Any, kafka_broker: str,
                                                        tmp_path: Path) -> None:
    root = _files_project(tmp_path / "proj")
    aggs_sql = (root / "views/user_aggs.sql").read_text()
    (root / "views/user_aggs.sql").unlink()  # first applied: user_last over the files alone
    (root / "services/svc.sql").write_text(
        "-- @feature_service(name = svc, features = [user_last.*])\n")
    _apply(root)
    rng = random.Random(23)
    files = make_events(rng, 0, 80, START, 3)
    _drop(root, "part-1.json", files)
    running = RunningStream(root, kafka_spark).start()
    try:
        running.until(lambda: running.counts("user_last")[1] == 80, "user_last streams part-1")
        create_topic(kafka_broker, TOPIC, 2)
        (root / "views/user_aggs.sql").write_text(aggs_sql)
        _add_kafka_view(root, kafka_broker)
        _apply(root)
        running.until(lambda: running.noted("user_aggs added"), "user_aggs noticed")
        kafka = make_events(rng, 10_000, 150, START + dt.timedelta(hours=1), 4)
        produce(kafka_broker, TOPIC, [(str(e["user_id"]).encode(), message(e)) for e in kafka])
        more = make_events(rng, 500, 20, START + dt.timedelta(hours=3), 1)
        _drop(root, "part-2.json", more)
        running.until(lambda: running.counts("user_aggs")[1] == len(kafka)
                      and running.counts("user_last")[1] == 100, "both stream on")
    finally:
        running.stop()
    report = running.stop()
    assert [(s.view, s.source, s.events, s.ingested, s.duplicates, s.dead)
            for s in report.sources] == [("user_aggs", "ktxns", 150, 150, 0, 0),
                                         ("user_last", "txns", 100, 100, 0, 0)]
    assert report.of("user_aggs").location == f"kafka topic '{TOPIC}' on {kafka_broker}"
    assert len(report.reloads) == 1 and "user_aggs added" in report.reloads[0]

    # completion: an --until-idle run over the head apply finds nothing left to read
    latest = load_applied(root, None)
    idle = run_stream(root, latest.run_manifest, latest.workspace, until_idle=True,
                      spark=kafka_spark, applied_id=latest.apply_id)
    assert [(s.view, s.events, s.ingested) for s in idle.sources] == [
        ("user_aggs", 0, 0), ("user_last", 0, 0)]

    # the Kafka view's values, online and in a training set, equal the oracle over its events
    last = max(e["event_ts"] for e in kafka)
    times = [last + dt.timedelta(microseconds=1), last + dt.timedelta(minutes=11),
             last.replace(minute=0, second=0) + dt.timedelta(hours=1),
             last + dt.timedelta(hours=2, minutes=30), START + dt.timedelta(hours=2, minutes=7)]
    assert _check_aggs(root, kafka, times) > 0
    # the files view went on beside it: its values are those of the files' events
    from featql.api import Project

    at = max(e["event_ts"] for e in files + more) + dt.timedelta(minutes=1)
    rows = Project(root).online("svc", [{"user_id": u} for u in USERS], at=at)
    for u, row in zip(USERS, rows, strict=True):
        want = {k: v for k, v in expected(files + more, u, at).items()
                if k.startswith("user_last.")}
        assert all(close(row[k], v) for k, v in want.items()), (u, row, want)



def _streamed(root: Path, source: str, view: str) -> int:
    """Messages the view's checkpoint has read and committed (its state after its last batch)."""
    try:
        state = json.loads((root / f".featql/stream/dev/{source}/{view}/state.json").read_text())
    except (OSError, ValueError):
        return 0
    return int(state["after"]["events"])


@pytest.mark.slow
@pytest.mark.parametrize("fetched", [True, False], ids=["connector", "no-connector"])
def test_the_command_takes_a_kafka_view_applied_while_it_streams_files(
        kafka_broker: str, tmp_path: Path, fetched: bool) -> None:
    """The real `featql stream` in a process of its own (its own SparkSession, built by the
    command from a files-only workspace). Before the fix it ended with exit 2, `internal
    error: AnalysisException: Failed to find data source: kafka`, once the Kafka view was
    applied. Now the view streams; with the connector not fetched (`FEATQL_JARS` an empty
    folder) the command stops with exit 1 saying to fetch it and restart."""
    topic = f"txns-follow-cmd-{fetched}"
    root = _files_project(tmp_path / "proj")
    aggs_sql = (root / "views/user_aggs.sql").read_text()
    (root / "views/user_aggs.sql").unlink()
    (root / "services/svc.sql").write_text(
        "-- @feature_service(name = svc, features = [user_last.*])\n")
    _apply(root)
    rng = random.Random(29)
    _drop(root, "part-1.json", make_events(rng, 0, 40, START, 2))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYSPARK_SUBMIT_ARGS", None)  # the command builds its own session
    if not fetched:
        (tmp_path / "no-jars").mkdir()
        env["FEATQL_JARS"] = str(tmp_path / "no-jars")
    err_path, out_path = tmp_path / "stream.err", tmp_path / "stream.out"
    with err_path.open("wb") as err, out_path.open("wb") as out:
        proc = subprocess.Popen([*FEATQL, "stream", "--trigger", "0.5", "--max-seconds", "400",
                                 "--project", str(root)], env=env, stdout=out, stderr=err)

    def until(what: Callable[[], bool], why: str) -> None:
        deadline = time.monotonic() + 180
        while not what():
            assert proc.poll() is None, (why, proc.returncode, err_path.read_text()[-3000:])
            assert time.monotonic() < deadline, (why, err_path.read_text()[-3000:])
            time.sleep(0.2)

    kafka = make_events(rng, 10_000, 60, START + dt.timedelta(hours=1), 2)
    try:
        until(lambda: _streamed(root, "txns", "user_last") == 40, "user_last streams part-1")
        create_topic(kafka_broker, topic, 2)
        (root / "views/user_aggs.sql").write_text(aggs_sql)
        _add_kafka_view(root, kafka_broker, topic)
        _apply(root)
        if not fetched:  # refused: a clear error, exit 1, what was streamed stays
            assert proc.wait(timeout=120) == 1, err_path.read_text()[-3000:]
            text = err_path.read_text()
            assert "internal error" not in text, text[-3000:]
            assert ("source 'ktxns' (kafka topic 'txns-follow-cmd-False' on "
                    f"{kafka_broker}): Spark's Kafka connector is not on this stream's "
                    "SparkSession") in text, text[-3000:]
            assert "then restart `featql stream`" in text, text[-3000:]
            assert _streamed(root, "txns", "user_last") == 40
            return
        until(lambda: "user_aggs added" in err_path.read_text(), "user_aggs noticed")
        produce(kafka_broker, topic, [(str(e["user_id"]).encode(), message(e)) for e in kafka])
        until(lambda: _streamed(root, "ktxns", "user_aggs") == 60, "user_aggs streams")
        proc.send_signal(signal.SIGTERM)  # the command stops between micro-batches
        assert proc.wait(timeout=60) == 0, err_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    lines = out_path.read_text().splitlines()
    assert lines[0].startswith(f"✓ user_aggs ← ktxns (kafka topic '{topic}' on "
                               f"{kafka_broker}): "), lines
    assert lines[0].endswith(" batch(es), 60 event(s) read, 60 ingested, 0 duplicate(s), 0 "
                             "late, 0 dead letter(s)"), lines
    assert lines[1].startswith("✓ user_last ← txns") and "40 ingested" in lines[1], lines
    last = max(e["event_ts"] for e in kafka)
    assert _check_aggs(root, kafka, [last + dt.timedelta(microseconds=1),
                                     last + dt.timedelta(minutes=30),
                                     START + dt.timedelta(hours=2, minutes=1)]) > 0


class _NoKafka:
    """A SparkSession's `readStream` as Spark answers it without the Kafka connector."""

    @property
    def readStream(self) -> _NoKafka:  # Spark's name
        return self

    def format(self, name: str) -> _NoKafka:
        assert name == "kafka"
        return self

    def option(self, key: str, value: str) -> _NoKafka:
        return self

    def load(self) -> Any:
        from pyspark.errors import AnalysisException

        # the message pyspark 4 gives (a fresh process, the session made by `_session`)
        raise AnalysisException("Failed to find data source: kafka. Please deploy the "
                                "application as per the deployment section of Structured "
                                "Streaming + Kafka Integration Guide.")


def test_a_session_without_the_connector_refuses_a_kafka_view(tmp_path: Path) -> None:
    from featql.compiler.project import compile_project

    root = tmp_path / "proj"
    root.mkdir()
    _files_project(root)
    _add_kafka_view(root, "127.0.0.1:9")
    manifest = compile_project(root).manifest
    assert manifest is not None
    view = manifest.view("user_aggs")
    assert view is not None
    source = manifest.stream_source(view)
    assert source is not None and source.name == "ktxns"
    run = _ViewRun(root, manifest, "dev", source, view, None)
    with pytest.raises(StreamError) as refused:
        run.frame(_NoKafka())
    text = str(refused.value)
    assert text.startswith("source 'ktxns' (kafka topic 'txns-follow' on 127.0.0.1:9): "
                           "Spark's Kafka connector is not on this stream's SparkSession")
    assert "make kafka" in text and "restart `featql stream`" in text


def test_every_stream_session_gets_the_connector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files-only or not, the stream's session has the connector's jars (fetched: this suite's
    conftest needs them), the project's own `spark.jars` kept; without them a files-only
    stream still starts, a Kafka one is refused."""
    from featql.engines import kafka_jars as jars_module
    from featql.engines import spark as spark_engine

    made: list[dict[str, str]] = []

    def session(master: str, conf: dict[str, str]) -> str:
        made.append(conf)
        return "session"

    monkeypatch.setattr(spark_engine, "spark_session", session)
    assert _session(None, kafka=False) == "session"
    connector = jars_module.kafka_jars()
    assert made[-1]["spark.jars"].split(",") == connector
    own = ProjectConfig(spark_conf={"spark.jars": "/opt/mine.jar",
                                    "spark.sql.shuffle.partitions": "3"})
    _session(own, kafka=False)
    assert made[-1]["spark.jars"].split(",") == ["/opt/mine.jar", *connector]
    assert made[-1]["spark.sql.shuffle.partitions"] == "3"

    def missing(root: Any = None, avro: bool = False) -> dict[str, str]:
        raise jars_module.KafkaJarsMissing("not fetched")

    monkeypatch.setattr(jars_module, "spark_kafka_conf", missing)
    _session(own, kafka=False)
    assert made[-1]["spark.jars"] == "/opt/mine.jar"
    with pytest.raises(jars_module.KafkaJarsMissing):
        _session(own, kafka=True)
    assert stream_module._no_connector(RuntimeError("[DATA_SOURCE_NOT_FOUND] kafka"))
