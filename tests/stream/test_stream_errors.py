"""Bad input for `featql stream` on the real components: a topic that does not exist, the
broker going away mid-run, a view that is not a stream view or does not exist; each a clear
error (a `StreamError`, a `UserError`: exit 1 from the CLI), never a crash without a message.
Dead letters (malformed JSON, a missing key, wrong types) are in test_stream_e2e.py and
test_stream_events.py."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from featql.cli.main import main
from featql.jobs.stream import StreamError, run_stream, stream_targets
from featql.registry import load_applied

from .broker import KafkaBroker, create_topic
from .project import START, make_events, message, produce, write_project


def _applied(tmp_path: Path, topic: str, bootstrap: str) -> tuple[Path, Any]:
    root = write_project(tmp_path / "proj", topic, bootstrap, [])
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    return root, load_applied(root, None)


@pytest.mark.slow
def test_a_topic_that_does_not_exist(kafka_spark: Any, kafka_broker: str,
                                     tmp_path: Path) -> None:
    root, applied = _applied(tmp_path, "no-such-topic", kafka_broker)
    with pytest.raises(StreamError) as failed:
        run_stream(root, applied.run_manifest, applied.workspace, until_idle=True,
                   spark=kafka_spark)
    assert str(failed.value) == (
        f"topic 'no-such-topic' does not exist on the Kafka broker {kafka_broker} (source "
        "'txns'): create it, or fix stream = kafka(topic = ...)")
    # the CLI says the same and exits 1 (a user error, no traceback)
    assert main(["stream", "--project", str(root), "--until-idle"]) == 1


@pytest.mark.slow
def test_a_broker_that_is_not_there(kafka_spark: Any, tmp_path: Path) -> None:
    from .broker import free_port

    bootstrap = f"127.0.0.1:{free_port()}"
    root, applied = _applied(tmp_path, "txns", bootstrap)
    started = time.monotonic()
    with pytest.raises(StreamError, match=rf"the Kafka broker {bootstrap} of source 'txns' "
                       "does not answer: start it"):
        run_stream(root, applied.run_manifest, applied.workspace, until_idle=True,
                   spark=kafka_spark)
    assert time.monotonic() - started < 60


@pytest.mark.slow
def test_the_broker_going_away_mid_run(kafka_spark: Any, tmp_path: Path) -> None:
    (tmp_path / "broker").mkdir()
    broker = KafkaBroker(tmp_path / "broker")
    broker.start()
    try:
        create_topic(broker.bootstrap, "txns", 2)
        events = make_events(random.Random(5), 0, 200, START, 4)
        produce(broker.bootstrap, "txns", [(None, message(e)) for e in events])
        root, applied = _applied(tmp_path, "txns", broker.bootstrap)
        seen: list[int] = []

        def progress(stats: Any) -> None:
            seen.append(stats[0].events)
            if stats[0].events >= len(events) and broker.process is not None:
                threading.Thread(target=broker.stop, daemon=True).start()

        started = time.monotonic()
        with pytest.raises(StreamError, match="does not answer"):
            run_stream(root, applied.run_manifest, applied.workspace, until_idle=False,
                       trigger_seconds=1.0, spark=kafka_spark, on_progress=progress,
                       max_seconds=150)
        assert time.monotonic() - started < 120
        assert max(seen) == len(events)  # what was read before stayed applied
        from featql.jobs.ingest import ingested_count

        assert ingested_count(root, "txns") == len(events)
    finally:
        broker.stop()


def test_views_that_cannot_be_streamed(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", "txns", "127.0.0.1:9", [])
    from featql.compiler.project import compile_project

    manifest = compile_project(root).manifest
    with pytest.raises(StreamError, match=r"^unknown feature view 'user_lst': did you mean "
                       r"'user_last'\?$"):
        stream_targets(manifest, ["user_lst"])
    (src,) = stream_targets(manifest, ["user_last"])
    assert src[0].name == "txns" and [v.name for v in src[1]] == ["user_last"]
    batch_only = manifest.__class__(
        manifest.project, tuple(s.__class__(**{**s.__dict__, "stream": None})
                                for s in manifest.sources),
        manifest.entities, manifest.views, manifest.transforms, manifest.services)
    with pytest.raises(StreamError, match="is not a stream view"):
        stream_targets(batch_only, ["user_last"])
    with pytest.raises(StreamError, match="nothing to stream"):
        stream_targets(batch_only, None)
