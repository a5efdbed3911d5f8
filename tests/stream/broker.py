"""A real Apache Kafka broker for the stream tests: one KRaft node (broker and controller in one
JVM) on 127.0.0.1, run from the jars `make kafka` fetched into `.cache/jars/kafka/`.

`KafkaBroker(folder).start()` formats a log folder, starts `kafka.Kafka`, waits (bounded) until a
client sees the broker and returns; a failed start raises with the tail of the broker's log.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from featql.engines.kafka_jars import broker_classpath

HOST = "127.0.0.1"
HEAP = "-Xmx512m"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class BrokerFailed(RuntimeError):
    """The broker did not start (or did not stop) in time; the message has its log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise BrokerFailed("no `java` on PATH: run `make test` (it installs a Java runtime)")
    return found


class KafkaBroker:
    """One broker process; `bootstrap` is `127.0.0.1:PORT` once started."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self.controller_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "broker.log"
        self.out = folder / "broker.out"

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def _properties(self) -> Path:
        data = self.folder / "data"
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            # topics are created explicitly: a missing topic must stay missing (an error case)
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "log.cleaner.enable": "false",
        }
        path = self.folder / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        return path

    def _command(self, main: str, *args: str) -> list[str]:
        log4j = self.folder / "log4j2.properties"
        log4j.write_text(_LOG4J2.format(log=self.log))
        return [java(), HEAP, "-Xms128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
                "-cp", broker_classpath(), main, *args]

    def tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.out, self.log):
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts) or "(the broker wrote no log)"

    def launch(self) -> None:
        """Choose ports, format the log folder and start the broker process (without waiting)."""
        self.port, self.controller_port = free_port(), free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        shutil.rmtree(self.folder / "data", ignore_errors=True)
        for path in (self.log, self.out):
            path.unlink(missing_ok=True)
        properties = self._properties()
        fmt = subprocess.run(
            self._command("kafka.tools.StorageTool", "format", "-t", cluster_id(),
                          "-c", str(properties)),
            capture_output=True, timeout=START_TIMEOUT_S, check=False)
        if fmt.returncode != 0:
            raise BrokerFailed("formatting the broker's log folder failed:\n"
                               + (fmt.stdout + fmt.stderr).decode(errors="replace")[-3000:])
        with self.out.open("wb") as out:
            self.process = subprocess.Popen(
                self._command("kafka.Kafka", str(properties)),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start(self, attempts: int = 3) -> None:
        """Launch (unless launched) and wait until ready; a port taken between choosing and
        binding is retried with new ports."""
        for attempt in range(attempts):
            if self.process is None:
                self.launch()
            try:
                self._wait_ready()
                return
            except BrokerFailed:
                in_use = "Address already in use" in self.tail(200)
                self.stop()
                if not in_use or attempt == attempts - 1:
                    raise

    def _wait_ready(self) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + START_TIMEOUT_S
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise BrokerFailed(
                    f"the Kafka broker exited with code {self.process.returncode} while "
                    f"starting:\n{self.tail()}")
            try:
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    return
            except Exception:  # the client's KafkaException while the broker is not up yet
                pass
            time.sleep(0.5)
        raise BrokerFailed(
            f"the Kafka broker did not answer on {self.bootstrap} within {START_TIMEOUT_S:.0f} s:"
            f"\n{self.tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


def create_topic(bootstrap: str, name: str, partitions: int, timeout_s: float = 30.0) -> None:
    """Create a topic and wait until every partition has a leader."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=1)])
    futures[name].result(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if (topic is not None and topic.error is None and len(topic.partitions) == partitions
                and all(p.leader >= 0 for p in topic.partitions.values())):
            return
        time.sleep(0.2)
    raise BrokerFailed(f"topic {name} has no leader for every partition after {timeout_s} s")
