"""Where the Kafka jars are: Spark's Kafka connector (for `format("kafka")`), Spark's Avro
functions (`from_avro`, for `format = avro` streams) and the test broker.

`make kafka` (part of `make test`) fetches them through Maven, from `jvm/spark-kafka/pom.xml`,
`jvm/spark-avro/pom.xml` and `jvm/kafka/pom.xml`, into `.cache/jars/spark-kafka/`,
`.cache/jars/spark-avro/` and `.cache/jars/kafka/` of the featql checkout, each with a `.stamp`
once complete. pyspark ships neither the connector nor spark-avro, and a jar of another Spark
version fails at run time in obscure ways, so `kafka_jars` and `avro_jars` check that the cached
jar's version is the installed pyspark's. `kafka_jars` adds the Avro jar when it was fetched
(a JSON stream does not need it), so a session started with `spark_kafka_conf()` reads both.

The folder holding `spark-kafka/` and `kafka/` is, in order: `root/.cache/jars` when a root is
given, `$FEATQL_JARS` when set, else the first `.cache/jars` found from the working directory
upwards or beside featql's own source checkout.
"""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

from featql.core.errors import UserError

ENV = "FEATQL_JARS"
SPARK_KAFKA = "spark-kafka"
SPARK_AVRO = "spark-avro"
BROKER = "kafka"
STAMP = ".stamp"
_CONNECTOR = re.compile(r"^spark-sql-kafka-0-10_(?P<scala>[0-9.]+)-(?P<version>.+)\.jar$")
_AVRO = re.compile(r"^spark-avro_(?P<scala>[0-9.]+)-(?P<version>.+)\.jar$")
_CONNECTOR_NAME = "Spark's Kafka connector"
_AVRO_NAME = "Spark's Avro functions (spark-avro)"
_BROKER_NAME = "the Kafka broker"


def _hint(what: str = _CONNECTOR_NAME) -> str:
    return f"run `make test` (or `make kafka`) to fetch {what}"


class KafkaJarsMissing(UserError):
    """The jars `make kafka` fetches are not there (or are for another pyspark)."""


def jars_folder(root: Path | None = None) -> Path:
    """The folder holding `spark-kafka/` and `kafka/` (it may not exist yet)."""
    if root is not None:
        return Path(root) / ".cache" / "jars"
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    candidates = [here / ".cache" / "jars" for here in (Path.cwd(), *Path.cwd().parents)]
    candidates.append(Path(__file__).resolve().parents[2] / ".cache" / "jars")
    for folder in candidates:
        if (folder / SPARK_KAFKA / STAMP).is_file() or (folder / BROKER / STAMP).is_file():
            return folder
    return candidates[-1]


def _complete(folder: Path, what: str) -> list[Path]:
    if not (folder / STAMP).is_file():
        raise KafkaJarsMissing(f"{what} is not in {folder}: {_hint(what)}")
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise KafkaJarsMissing(f"{folder} holds no jars: {_hint(what)}")
    return jars


def connector_version(jars: list[Path]) -> str:
    """The Spark version of the `spark-sql-kafka-0-10` jar among `jars`."""
    for jar in jars:
        match = _CONNECTOR.match(jar.name)
        if match:
            return match.group("version")
    raise KafkaJarsMissing(
        f"no spark-sql-kafka-0-10 jar among {[j.name for j in jars]}: {_hint()}")


def installed_pyspark() -> str | None:
    """The installed pyspark's version, read without importing it (None when not installed)."""
    try:
        return metadata.version("pyspark")
    except metadata.PackageNotFoundError:
        return None


def _same_spark(version: str, what: str, pom: str) -> None:
    pyspark = installed_pyspark()
    if pyspark is not None and pyspark != version:
        raise KafkaJarsMissing(
            f"the cached {what} is for Spark {version} but pyspark {pyspark} is "
            f"installed: install the pinned pyspark (pip install -e '.[spark]'), or pin "
            f"jvm/{pom}/pom.xml to {pyspark} if Maven Central serves it, then "
            f"{_hint(what)}")


def avro_jars(root: Path | None = None) -> list[str]:
    """The absolute path of Spark's `spark-avro` jar (its dependencies are pyspark's own).

    Raises `KafkaJarsMissing` when it was not fetched or is for another Spark version."""
    jars = _complete(jars_folder(root) / SPARK_AVRO, _AVRO_NAME)
    match = next((m for m in map(_AVRO.match, (j.name for j in jars)) if m), None)
    if match is None:
        raise KafkaJarsMissing(
            f"no spark-avro jar among {[j.name for j in jars]}: {_hint(_AVRO_NAME)}")
    _same_spark(match.group("version"), "Avro jar (spark-avro)", SPARK_AVRO)
    return [str(jar.resolve()) for jar in jars]


def kafka_jars(root: Path | None = None) -> list[str]:
    """The absolute paths of Spark's Kafka connector and its dependencies, for `spark.jars`,
    and of `spark-avro` when it was fetched (`avro_jars`).

    Raises `KafkaJarsMissing` (a `UserError`) when the connector was not fetched, or when it is
    for a Spark version other than the installed pyspark's."""
    jars = _complete(jars_folder(root) / SPARK_KAFKA, _CONNECTOR_NAME)
    _same_spark(connector_version(jars), "Kafka connector", SPARK_KAFKA)
    out = [str(jar.resolve()) for jar in jars]
    if (jars_folder(root) / SPARK_AVRO / STAMP).is_file():
        out += avro_jars(root)
    return out


def spark_kafka_conf(root: Path | None = None, avro: bool = False) -> dict[str, str]:
    """The SparkSession settings that put the connector on its classpath (before it starts);
    with `avro`, `spark-avro` must be among them (`KafkaJarsMissing` when it was not fetched)."""
    jars = kafka_jars(root)
    if avro and not any(_AVRO.match(Path(j).name) for j in jars):
        jars += avro_jars(root)  # raises, saying how to fetch it
    return {"spark.jars": ",".join(jars)}


def broker_classpath(root: Path | None = None) -> str:
    """The `java -cp` value that runs the Apache Kafka broker (`kafka.Kafka`)."""
    folder = jars_folder(root) / BROKER
    jars = _complete(folder, _BROKER_NAME)
    if not any(jar.name.startswith("kafka_2.13-") for jar in jars):
        raise KafkaJarsMissing(f"no kafka_2.13 jar in {folder}: {_hint(_BROKER_NAME)}")
    return str(folder.resolve() / "*")
