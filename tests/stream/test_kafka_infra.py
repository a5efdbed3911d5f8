"""The streaming infrastructure on the real components: the jars `make kafka` fetched match the
pins, a real broker takes events from a real client, and Spark Structured Streaming's own Kafka
source (`format("kafka")`) reads each of them exactly once, resumes from its checkpoint, and
reports a topic that does not exist."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from featql.engines.kafka_jars import (
    KafkaJarsMissing,
    broker_classpath,
    connector_version,
    kafka_jars,
    spark_kafka_conf,
)

from .broker import create_topic

REPO = Path(__file__).resolve().parents[2]
EVENTS = 1_000
PARTITIONS = 3
QUERY_TIMEOUT_S = 120


def _pom_property(pom: Path, name: str) -> str:
    match = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", pom.read_text())
    assert match, f"{pom} has no <{name}>"
    return match.group(1)


def test_connector_matches_the_pinned_pyspark() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["optional-dependencies"]["spark"] if d.startswith("pyspark")]
    assert len(pins) == 1 and "==" in pins[0], f"pyspark must be pinned exactly: {pins}"
    pinned = pins[0].split("==")[1]
    pom = _pom_property(REPO / "jvm" / "spark-kafka" / "pom.xml", "spark.version")
    assert pom == pinned
    assert metadata.version("pyspark") == pinned
    jars = [Path(j) for j in kafka_jars(REPO)]
    assert connector_version(jars) == pinned
    assert spark_kafka_conf(REPO)["spark.jars"].split(",") == [str(j) for j in jars]


def test_connector_brings_no_second_copy_of_a_pyspark_jar() -> None:
    import pyspark

    def artifact(name: str) -> str:  # "kafka-clients-3.9.2.jar" -> "kafka-clients"
        return re.sub(r"-\d+(\.\d+)+[\w.\-]*\.jar$", "", name)

    shipped = {artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    ours = {artifact(Path(j).name) for j in kafka_jars(REPO)}
    assert {"spark-sql-kafka-0-10_2.13", "kafka-clients", "commons-pool2"} <= ours
    assert ours & shipped == set()


def test_missing_jars_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(KafkaJarsMissing, match=r"run `make test` \(or `make kafka`\)"):
        kafka_jars(tmp_path)
    with pytest.raises(KafkaJarsMissing, match="the Kafka broker is not in"):
        broker_classpath(tmp_path)


def _produce(bootstrap: str, topic: str, first: int, count: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 5})
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for i in range(first, first + count):
        event = {"id": i, "user": f"u{i % 37}", "amount": round(i * 0.25, 2),
                 "ts": f"2026-12-01T00:{(i // 60) % 60:02d}:{i % 60:02d}Z"}
        producer.produce(topic, key=event["user"].encode(), value=json.dumps(event).encode(),
                         on_delivery=delivered)
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0 and failures == [], (remaining, failures[:5])


def _run_available_now(spark: Any, bootstrap: str, topic: str, out: Path,
                       checkpoint: Path) -> list[int]:
    """One `availableNow` run of the Kafka source into Parquet, a folder per batch id (a
    replayed batch overwrites its own folder); returns the batch ids this run wrote. A failed
    query raises pyspark's StreamingQueryException from `awaitTermination`."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    schema = StructType([StructField("id", LongType()), StructField("user", StringType()),
                         StructField("amount", DoubleType()), StructField("ts", StringType())])
    events = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", bootstrap)
              .option("subscribe", topic)
              .option("startingOffsets", "earliest")
              .option("failOnDataLoss", "true")
              .load()
              .select(F.from_json(F.col("value").cast("string"), schema).alias("e"),
                      "partition", "offset")
              .select("e.*", "partition", "offset"))
    batches: list[int] = []

    def write(batch: Any, batch_id: int) -> None:
        batch.write.mode("overwrite").parquet(str(out / f"batch={batch_id}"))
        batches.append(batch_id)

    query = (events.writeStream.foreachBatch(write)
             .option("checkpointLocation", str(checkpoint))
             .trigger(availableNow=True)
             .start())
    try:
        finished = query.awaitTermination(QUERY_TIMEOUT_S)
    finally:
        query.stop()
    assert finished, f"the availableNow query did not finish within {QUERY_TIMEOUT_S} s"
    assert query.exception() is None, query.exception()
    return batches


def _read(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for folder in sorted(out.glob("batch=*")):
        rows.extend(pq.read_table(folder).to_pylist())
    return rows


@pytest.mark.slow
def test_spark_reads_every_event_exactly_once_and_resumes(
        kafka_spark: Any, kafka_broker: str, tmp_path: Path) -> None:
    topic = "events-once"
    create_topic(kafka_broker, topic, PARTITIONS)
    _produce(kafka_broker, topic, 0, EVENTS)
    out, checkpoint = tmp_path / "out", tmp_path / "checkpoint"

    first = _run_available_now(kafka_spark, kafka_broker, topic, out, checkpoint)
    rows = _read(out)
    assert first, "the first run wrote no batch"
    assert sorted(r["id"] for r in rows) == list(range(EVENTS))
    assert len({(r["partition"], r["offset"]) for r in rows}) == EVENTS
    assert {r["partition"] for r in rows} == set(range(PARTITIONS))
    assert all(r["user"] == f"u{r['id'] % 37}" and r["amount"] == round(r["id"] * 0.25, 2)
               for r in rows)

    # a restart from the checkpoint with nothing new reads nothing and writes no batch
    again = _run_available_now(kafka_spark, kafka_broker, topic, out, checkpoint)
    assert again == []
    assert len(_read(out)) == EVENTS

    # new events after the restart: exactly those, in batches after the first run's
    _produce(kafka_broker, topic, EVENTS, 50)
    third = _run_available_now(kafka_spark, kafka_broker, topic, out, checkpoint)
    assert third and min(third) > max(first)
    rows = _read(out)
    assert sorted(r["id"] for r in rows) == list(range(EVENTS + 50))


@pytest.mark.slow
def test_a_topic_that_does_not_exist(kafka_spark: Any, kafka_broker: str,
                                     tmp_path: Path) -> None:
    """Spark's Kafka source (4.2, with the broker's auto.create.topics.enable=false) fails the
    query at its first batch with UnknownTopicOrPartitionException: no silent empty stream."""
    from pyspark.errors import StreamingQueryException

    with pytest.raises(StreamingQueryException) as failed:
        _run_available_now(kafka_spark, kafka_broker, "no-such-topic", tmp_path / "out",
                           tmp_path / "checkpoint")
    message = str(failed.value)
    assert "UnknownTopicOrPartitionException" in message
    assert "This server does not host this topic-partition" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_broker_that_cannot_start_says_why(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker's port is taken: the start fails (bounded) with the broker's own log tail."""
    import socket

    from . import broker as broker_module

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((broker_module.HOST, 0))
        taken.listen(1)
        port = int(taken.getsockname()[1])
        ports = iter([port, broker_module.free_port()])
        monkeypatch.setattr(broker_module, "free_port", lambda: next(ports))
        broker = broker_module.KafkaBroker(tmp_path)
        with pytest.raises(broker_module.BrokerFailed) as failed:
            broker.start(attempts=1)
    message = str(failed.value)
    assert "the Kafka broker exited with code" in message
    assert "Address already in use" in message
    assert broker.process is None
