"""Fixtures of the stream tests: one real Kafka broker per test session, and the session's one
SparkSession with Spark's Kafka connector on its classpath.

The connector must be on the classpath before the JVM starts, and the suite has one SparkSession
(tests/conftest.py's `spark`), which may start before any stream test runs. So when this file is
collected, and no Spark has started yet, it puts the connector jars into PYSPARK_SUBMIT_ARGS
(`--jars`), which whichever fixture starts Spark first then uses. `kafka_spark` checks that the
connector is there and says how to get it when it is not.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from featql.engines.kafka_jars import KafkaJarsMissing, kafka_jars

from .broker import KafkaBroker

SUBMIT_ARGS = "PYSPARK_SUBMIT_ARGS"


def _spark_started() -> bool:
    try:
        from pyspark import SparkContext
    except ImportError:
        return False
    return SparkContext._active_spark_context is not None


def _preload_connector() -> str | None:
    """Put the connector on the (not yet started) Spark JVM's classpath; the reason if not."""
    try:
        jars = kafka_jars()
    except KafkaJarsMissing as missing:
        return str(missing)
    if _spark_started():
        return None  # `kafka_spark` checks whether the running session has them
    current = os.environ.get(SUBMIT_ARGS)
    if current is None:
        os.environ[SUBMIT_ARGS] = f"--jars {','.join(jars)} pyspark-shell"
    elif "spark-sql-kafka" not in current:
        return f"{SUBMIT_ARGS} is already set ({current!r}), so the connector was not added"
    return None


_NOT_LOADED = _preload_connector()


@pytest.fixture(scope="session")
def _broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """The session's broker process, launched but not waited for (it boots while Spark does)."""
    broker = KafkaBroker(Path(tmp_path_factory.mktemp("kafka")))
    broker.launch()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_broker(_broker: KafkaBroker) -> str:
    """One Apache Kafka broker (KRaft, broker + controller in one JVM, -Xmx512m, log folders
    in a temporary folder) on a free 127.0.0.1 port for the whole session; its bootstrap
    address `127.0.0.1:PORT`. A failed start fails with the tail of the broker's log."""
    _broker.start()
    return _broker.bootstrap


@pytest.fixture(scope="session")
def kafka_spark(_broker: KafkaBroker, spark: Any) -> Any:
    """The session's SparkSession (tests/conftest.py), with the Kafka connector loaded."""
    if _NOT_LOADED is not None:
        pytest.fail(f"Spark's Kafka connector is not loaded: {_NOT_LOADED}")
    loaded = spark.sparkContext.getConf().get("spark.jars", "")
    if "spark-sql-kafka-0-10" not in loaded:
        pytest.fail("the SparkSession started without Spark's Kafka connector (it started "
                    "before tests/stream/conftest.py was loaded); pass "
                    "featql.engines.kafka_jars.spark_kafka_conf() to the session that starts "
                    f"first. spark.jars = {loaded!r}")
    return spark
