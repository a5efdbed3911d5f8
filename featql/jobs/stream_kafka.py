"""The Kafka side of `featql stream` that Spark does not say clearly: a topic that does not
exist, and a broker that is not (or no longer) there.

Spark's Kafka source reports a missing topic only at its first batch and a vanished broker only
after its client's timeouts, in a Java stack trace. With confluent-kafka installed (the
`stream` extra), `check_topics` asks each broker for its topics before the queries start, and
`BrokerWatch` asks again every few seconds while they run (a Kafka view an apply adds is
watched from its start): a broker that has not answered for `BROKER_GONE_S` stops the stream
with an error naming it, while a query still reads from it. Without confluent-kafka both are
skipped and Spark's own failure is explained instead (`featql.jobs.stream.explain`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from featql.core.ir import Source

CHECK_TIMEOUT_S = 10.0
WATCH_EVERY_S = 2.0


def _admin(bootstrap: str) -> Any:
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:
        return None
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0,
                        "socket.timeout.ms": int(CHECK_TIMEOUT_S * 1000)})


def _topics(admin: Any, timeout: float) -> set[str] | None:
    """The broker's topics, or None when it does not answer within `timeout`."""
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # confluent_kafka.KafkaException: no broker answered
        return None
    if not metadata.brokers:
        return None
    return set(metadata.topics)


def check_topics(sources: Sequence[Source]) -> None:
    """Raise `StreamError` for a broker that does not answer or a topic it does not have."""
    from featql.jobs.stream import StreamError, broker_gone, topic_missing

    for source in sources:
        stream = source.stream
        assert stream is not None and stream.bootstrap is not None
        admin = _admin(stream.bootstrap)
        if admin is None:
            return
        topics = _topics(admin, CHECK_TIMEOUT_S)
        if topics is None:
            raise StreamError(broker_gone(source))
        if stream.topic not in topics:
            raise StreamError(topic_missing(source))


class BrokerWatch:
    """A thread asking every Kafka source's broker for its topics; `gone()` names a source
    whose broker has not answered for `gone_after` seconds."""

    def __init__(self, sources: Sequence[Source], gone_after: float | None = None) -> None:
        from featql.jobs.stream import BROKER_GONE_S

        self.gone_after = BROKER_GONE_S if gone_after is None else gone_after
        self._admins: list[tuple[Source, Any]] = []
        self._last_answer: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for source in sources:
            self.add(source)

    def add(self, source: Source) -> None:
        """Watch `source`'s broker too (a Kafka view applied while the stream runs); a source
        watched already, or not over Kafka, changes nothing."""
        stream = source.stream
        if stream is None or stream.bootstrap is None or source.name in self._last_answer:
            return
        admin = _admin(stream.bootstrap)
        if admin is None:
            return
        self._last_answer[source.name] = time.monotonic()
        self._admins = [*self._admins, (source, admin)]  # a new list: the thread reads it
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="featql-broker-watch",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(WATCH_EVERY_S):
            for source, admin in self._admins:
                if _topics(admin, WATCH_EVERY_S) is not None:
                    self._last_answer[source.name] = time.monotonic()

    def gone(self) -> Source | None:
        now = time.monotonic()
        for source, _ in self._admins:
            if now - self._last_answer[source.name] > self.gone_after:
                return source
        return None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=WATCH_EVERY_S + 1)
