"""`featql stream` over a `files(...)` stream: JSON-lines files arriving in the stream folder,
read by Spark's files source, applied through the ingest path (a bad line is a dead letter);
a second run reads only the new file; the online store and a training set equal the oracle."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest

from featql.cli.main import main
from featql.jobs.stream import run_stream
from featql.registry import load_applied

from .project import START, check_online_and_training, make_events, message, write_project


def _files_project(root: Path) -> Path:
    write_project(root, "unused", "127.0.0.1:9", [])
    src = root / "sources/txns.sql"
    text = src.read_text()
    start = text.index("stream = kafka(")
    end = text.index("),", start) + 1
    src.write_text(text[:start] + "stream = files('data/txns_stream/', format = json)"
                   + text[end:])
    (root / "data/txns_stream").mkdir(parents=True)
    return root


@pytest.mark.slow
def test_a_files_stream(spark: Any, tmp_path: Path) -> None:
    root = _files_project(tmp_path / "proj")
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    rng = random.Random(7)
    first = make_events(rng, 0, 120, START, 5)
    lines = b"\n".join(message(e) for e in first) + b"\n{broken\n"
    (root / "data/txns_stream/part-1.json").write_bytes(lines)
    applied = load_applied(root, None)

    def stream() -> Any:
        # a checkpoint per view: both read every file; their counts agree
        report = run_stream(root, applied.run_manifest, applied.workspace, until_idle=True,
                            spark=spark)
        aggs, last = report.of("user_aggs"), report.of("user_last")
        assert (aggs.events, aggs.ingested, aggs.duplicates, aggs.dead) == \
            (last.events, last.ingested, last.duplicates, last.dead)
        return aggs

    stats = stream()
    assert (stats.events, stats.ingested, stats.dead) == (121, 120, 1)
    second = make_events(rng, 1000, 30, START + dt.timedelta(hours=5), 1)
    (root / "data/txns_stream/part-2.json").write_bytes(
        b"\n".join(message(e) for e in second + first[:3]))
    stats = stream()
    assert (stats.events, stats.ingested, stats.duplicates) == (33, 30, 3)
    everything = first + second
    last = max(e["event_ts"] for e in everything)
    assert check_online_and_training(root, everything, [last + dt.timedelta(minutes=5),
                                                        last + dt.timedelta(hours=3)]) > 0
