"""`format = avro` Kafka streams (issue 13): plain Avro binary produced with fastavro, decoded by
Spark's own `from_avro` (the spark-avro jar `make kafka` fetches), applied through the one write
path. End to end on the real broker: online values and a training set equal the brute-force
oracle of the JSON test (ties, NULLs, duplicates, the hand-over from the backfill, 3
partitions); messages that are not Avro records of the schema (JSON text, a truncated record,
an empty message, no value at all) and a record without its key are counted dead letters."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from featql.cli.main import main
from featql.core.errors import UserError
from featql.jobs.stream_avro import (
    NOT_AVRO,
    avro_schema,
    avro_type,
    decode_batch,
    decoded_frame,
)

from .broker import create_topic
from .project import START, check_online_and_training, make_events, produce, write_project

PARTITIONS = 3


def _avro_project(root: Path, topic: str, bootstrap: str, history: list[dict[str, Any]]
                  ) -> Path:
    write_project(root, topic, bootstrap, history)
    src = root / "sources/txns.sql"
    text = src.read_text()
    assert text.count("format = json)") == 1
    src.write_text(text.replace("format = json)", "format = avro)"))
    return root


def _source(root: Path) -> Any:
    from featql.registry import load_applied

    manifest = load_applied(root, None).run_manifest
    (source,) = [s for s in manifest.sources if s.name == "txns"]
    return source


def _encoder(schema: dict[str, Any]) -> Any:
    import fastavro

    parsed = fastavro.parse_schema(schema)

    def encode(record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, record)
        return out.getvalue()

    return encode


def test_the_schema_of_a_source() -> None:
    """The source's columns, in order, each a nullable union (hand-written expectation)."""
    from featql.core.ir import Column

    cols = [Column(name, t) for name, t in (
        ("id", "BIGINT"), ("n", "INT"), ("x", "DOUBLE"), ("f", "FLOAT"), ("s", "STRING"),
        ("b", "BOOLEAN"), ("ts", "TIMESTAMP"), ("d", "DATE"), ("raw", "BINARY"),
        ("tags", "ARRAY<STRING>"))]

    class Src:
        name = "events"
        columns = tuple(cols)

    schema = avro_schema(Src())  # type: ignore[arg-type]
    assert schema["type"] == "record" and schema["name"] == "events"
    assert [f["name"] for f in schema["fields"]] == [c.name for c in cols]
    assert all(f["default"] is None and f["type"][0] == "null" for f in schema["fields"])
    assert [f["type"][1] for f in schema["fields"]] == [
        "long", "int", "double", "float", "string", "boolean",
        {"type": "long", "logicalType": "timestamp-micros"},
        {"type": "int", "logicalType": "date"}, "bytes",
        {"type": "array", "items": ["null", "string"]}]
    with pytest.raises(UserError, match="no Avro type for MAP<STRING, INT>"):
        avro_type("MAP<STRING, INT>", "column 'm'")

    class Odd:
        name = "events"
        columns = (Column("id", "BIGINT"), Column("1st", "INT"))

    with pytest.raises(UserError, match="column name '1st' is not an Avro name"):
        avro_schema(Odd())  # type: ignore[arg-type]


@pytest.mark.slow
def test_spark_decodes_every_type(kafka_spark: Any) -> None:
    """fastavro's bytes through Spark's from_avro (the frame `featql stream` builds) and back to
    the push path's records: every type, NULLs, and a malformed message as None with a reason."""
    from featql.core.ir import Column
    from featql.jobs.ingest_records import records_table

    cols = (Column("id", "BIGINT"), Column("n", "INT"), Column("x", "DOUBLE"),
            Column("s", "STRING"), Column("b", "BOOLEAN"), Column("ts", "TIMESTAMP"),
            Column("d", "DATE"), Column("tags", "ARRAY<STRING>"))

    class Src:
        name = "events"
        columns = cols
        timestamp = "ts"
        key = "id"

    encode = _encoder(avro_schema(Src()))  # type: ignore[arg-type]
    rows: list[dict[str, Any]] = [{"id": 1, "n": -7, "x": 2.5, "s": "é", "b": True,
             "ts": dt.datetime(2024, 3, 1, 12, 30, 15, 123456), "d": dt.date(2024, 2, 29),
             "tags": ["a", None, "b"]},
            {"id": 2, "n": None, "x": None, "s": None, "b": False,
             "ts": dt.datetime(1999, 12, 31, 23, 59, 59), "d": None, "tags": None}]
    values = [encode(r) for r in rows] + [b'{"id": 3}', encode(rows[0])[:5], None]
    frame = kafka_spark.createDataFrame(
        [(v, 0, i) for i, v in enumerate(values)], "value BINARY, partition INT, offset LONG")
    raw = decoded_frame(frame, Src()).orderBy("offset").toArrow()  # type: ignore[arg-type]
    assert raw.column("origin").to_pylist() == [f"0:{i}" for i in range(len(values))]
    assert raw.column("value").to_pylist()[:4] == [base64.b64encode(v).decode()
                                                   for v in values[:4]]
    decoded = decode_batch(raw)
    assert [why for _, why in decoded[2:]] == [NOT_AVRO] * 2 + ["the message has no value"]
    assert NOT_AVRO.startswith("not an Avro record of the source's schema")
    records = [rec for rec, _ in decoded[:2]]
    assert all(r is not None for r in records)
    table = records_table(Src(), records)  # type: ignore[arg-type]
    want = [{c.name: r.get(c.name) for c in cols} for r in rows]
    assert table.to_pylist() == want


@pytest.mark.slow
def test_an_avro_stream_equals_the_oracle(kafka_spark: Any, kafka_broker: str,
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from featql.jobs.stream import run_stream
    from featql.registry import load_applied

    rng = random.Random(1313)
    topic = "txns-avro"
    create_topic(kafka_broker, topic, PARTITIONS)
    history = make_events(rng, 0, 150, START, 24)
    root = _avro_project(tmp_path / "proj", topic, kafka_broker, history)
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    assert main(["materialize", "--project", str(root), "--online"]) == 0
    encode = _encoder(avro_schema(_source(root)))

    live = make_events(rng, 10_000, 300, START + dt.timedelta(hours=24), 6)
    dupes = rng.sample(live, 10)
    handed_over = history[-8:]  # the topic also holds the newest events of the batch log
    good = encode(live[0])
    no_key = encode({**live[1], "txn_id": None})
    bad: list[tuple[bytes | None, bytes | None]] = [
        (None, json.dumps({"txn_id": 1}).encode()),  # JSON text on an Avro topic
        (None, good[:4]),  # a truncated record
        (None, b""),  # an empty message
        (b"1", None),  # no value at all (a tombstone)
        (None, no_key)]  # a record of the schema without its key
    messages: list[tuple[bytes | None, bytes | None]] = [
        (str(e["user_id"]).encode(), encode(e)) for e in handed_over + live + dupes]
    produce(kafka_broker, topic, messages + bad)  # type: ignore[arg-type]

    applied = load_applied(root, None)
    report = run_stream(root, applied.run_manifest, applied.workspace, until_idle=True,
                        spark=kafka_spark)
    assert len(report.sources) == 2  # a checkpoint per view, each reading every message
    for stats in report.sources:
        assert stats.events == len(messages) + len(bad)
        assert stats.dead == len(bad)
        assert stats.ingested == len(live), (stats.view, stats.ingested, len(live))
        assert stats.duplicates == len(dupes) + len(handed_over)
    letters = [json.loads(line) for f in sorted(
        (root / ".featql/stream/dev/txns/user_aggs/deadletter").glob("*.jsonl"))
        for line in f.open()]
    reasons = sorted(d["reason"] for d in letters)
    assert len(letters) == len(bad)
    assert sum("not an Avro record" in r for r in reasons) == 3, reasons
    assert sum(r == "the message has no value" for r in reasons) == 1, reasons
    assert sum("txn_id is missing" in r for r in reasons) == 1, reasons
    # a dead letter keeps the message's bytes (base64)
    kept = {d["value"] for d in letters}
    assert base64.b64encode(no_key).decode() in kept and None in kept

    everything = history + live  # each event once
    last = max(e["event_ts"] for e in everything)
    times = [last + dt.timedelta(microseconds=1), last + dt.timedelta(minutes=17),
             last.replace(minute=0, second=0) + dt.timedelta(hours=1),
             last + dt.timedelta(hours=2, minutes=3), last + dt.timedelta(days=1)]
    assert check_online_and_training(root, everything, times) > 0

    # a second run reads only what is new
    more = make_events(rng, 30_000, 30, last, 1)
    produce(kafka_broker, topic, [(str(e["user_id"]).encode(), encode(e)) for e in more])
    for stats in run_stream(root, applied.run_manifest, applied.workspace, until_idle=True,
                            spark=kafka_spark).sources:
        assert (stats.events, stats.ingested, stats.dead) == (len(more), len(more), 0)
    everything += more
    last = max(e["event_ts"] for e in everything)
    assert check_online_and_training(root, everything, [last + dt.timedelta(minutes=1),
                                                        last + dt.timedelta(hours=5)]) > 0

    # the command itself (its SparkSession asks for spark-avro): nothing new, nothing read
    capsys.readouterr()
    assert main(["stream", "--project", str(root), "--until-idle"]) == 0
    done = [x for x in capsys.readouterr().out.splitlines() if x.startswith("✓ ")]
    assert len(done) == 2, done  # one line per view's checkpoint
    for line in done:
        view = line.split(" ")[1]
        assert line.startswith(f"✓ {view} ← txns (kafka topic '{topic}' on {kafka_broker}): "
                               "0 batch(es), 0 event(s) read"), line


def test_missing_or_mismatched_avro_jars_say_how_to_get_them(tmp_path: Path) -> None:
    from featql.engines.kafka_jars import KafkaJarsMissing, avro_jars, spark_kafka_conf

    kafka = tmp_path / ".cache/jars/spark-kafka"
    kafka.mkdir(parents=True)
    from importlib import metadata

    version = metadata.version("pyspark")
    (kafka / f"spark-sql-kafka-0-10_2.13-{version}.jar").write_bytes(b"")
    (kafka / ".stamp").touch()
    assert spark_kafka_conf(tmp_path)["spark.jars"].endswith(f"-{version}.jar")  # JSON: enough
    with pytest.raises(KafkaJarsMissing, match=r"spark-avro.*run `make test` \(or `make kafka`\)"):
        spark_kafka_conf(tmp_path, avro=True)
    avro = tmp_path / ".cache/jars/spark-avro"
    avro.mkdir()
    (avro / "spark-avro_2.13-3.5.1.jar").write_bytes(b"")
    (avro / ".stamp").touch()
    with pytest.raises(KafkaJarsMissing, match=f"is for Spark 3.5.1 but pyspark {version}"):
        avro_jars(tmp_path)
    (avro / "spark-avro_2.13-3.5.1.jar").rename(avro / f"spark-avro_2.13-{version}.jar")
    jars = spark_kafka_conf(tmp_path, avro=True)["spark.jars"].split(",")
    assert [Path(j).name for j in jars] == [f"spark-sql-kafka-0-10_2.13-{version}.jar",
                                            f"spark-avro_2.13-{version}.jar"]


_NO_AVRO = """
from featql.core.ir import Column
from featql.engines.spark import spark_session
from featql.jobs.stream import StreamError, _avro_frame

class Src:
    name = "events"
    columns = (Column("id", "BIGINT"), Column("ts", "TIMESTAMP"))

spark = spark_session("local[1]", {})
frame = spark.createDataFrame([(b"", 0, 0)], "value BINARY, partition INT, offset LONG")
try:
    _avro_frame(frame, Src())
except StreamError as e:
    print("StreamError:", e)
else:
    print("no error")
"""


@pytest.mark.slow
def test_a_session_without_spark_avro_is_a_clear_error(tmp_path: Path) -> None:
    """A SparkSession started without the spark-avro jar (its own process: this one has it)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_SUBMIT_ARGS"}
    done = subprocess.run([sys.executable, "-c", _NO_AVRO], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith(
        "StreamError: source 'events' (format = avro): Spark's Avro functions (spark-avro) are "
        "not on the SparkSession's classpath: run `make kafka`"), done.stdout
