"""Checkpoints per workspace and view (issue 13): each view's micro-batches apply their events
to that view only, once, whatever its siblings did; a replay of one view's batch changes
nothing; a push after a partial stream fills in the views that miss the events; a view whose
first run comes after its siblings streamed applies what they logged since it was marked,
and skips what its backfill held. The ledger and the write path need no Spark; the last test
runs `featql stream --view` on a files stream."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest

from featql.cli.main import main
from featql.jobs.ingest import ingest_events
from featql.jobs.stream_state import identity, mark_since, since, view_folder
from featql.registry import load_applied

from .project import START, check_online_and_training, make_events, message, write_project


def _json(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(message(e)) for e in events]


def test_each_view_counts_each_event_once(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", "txns", "127.0.0.1:9", [])
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    applied = load_applied(root, None)
    m, ws = applied.run_manifest, applied.workspace
    rng = random.Random(5)
    first = make_events(rng, 0, 60, START, 4)
    a = ingest_events(root, m, ws, "txns", _json(first), None, "s:a:0", view="user_aggs")
    assert (a.ingested, a.logged) == (60, 60)
    assert set(a.views) == {"user_aggs"}  # only its view's cells
    b = ingest_events(root, m, ws, "txns", _json(first), None, "s:b:0", view="user_last")
    assert (b.ingested, b.logged, b.duplicates) == (60, 0, 0)  # logged once, applied to it
    assert set(b.views) == {"user_last"}
    # a replay of one view's batch, and a re-read under another batch id: nothing changes
    assert ingest_events(root, m, ws, "txns", _json(first), None, "s:a:0",
                         view="user_aggs").replayed
    again = ingest_events(root, m, ws, "txns", _json(first[:20]), None, "s:a:1",
                          view="user_aggs")
    assert (again.ingested, again.duplicates) == (0, 20)

    # streamed to one view only, then pushed: the push fills in the other view only
    second = make_events(rng, 1000, 40, START + dt.timedelta(hours=4), 2)
    ingest_events(root, m, ws, "txns", _json(second[:25]), None, "s:a:2", view="user_aggs")
    push = ingest_events(root, m, ws, "txns", _json(second))
    assert (push.ingested, push.logged) == (40, 15)
    # and the other view's stream reading them later finds them applied
    late = ingest_events(root, m, ws, "txns", _json(second), None, "s:b:1", view="user_last")
    assert (late.ingested, late.duplicates) == (0, 40)
    everything = first + second
    last = max(e["event_ts"] for e in everything)
    assert check_online_and_training(root, everything, [last + dt.timedelta(minutes=3),
                                                        last + dt.timedelta(hours=2)]) > 0


def test_since_is_marked_once_and_kept_by_a_reset(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", "txns", "127.0.0.1:9", [])
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    applied = load_applied(root, None)
    m, ws = applied.run_manifest, applied.workspace
    folder = view_folder(root, ws, "txns", "user_last")
    mark_since(folder, root)
    assert since(folder) == 0
    ingest_events(root, m, ws, "txns", _json(make_events(random.Random(1), 0, 5, START, 1)))
    mark_since(folder, root)
    assert since(folder) == 0  # marked once: the first run's
    other = view_folder(root, ws, "txns", "user_aggs")
    src = m.source("txns")
    assert src is not None
    ident, reset = identity(other, src, root)
    assert not reset and since(other) == 1  # a view first streamed now: after the push
    (other / "checkpoint").mkdir()
    (other / "deadletter").mkdir()
    again, reset = identity(other, src, root, reset=True)
    assert reset and again != ident and since(other) == 1
    assert not (other / "checkpoint").exists() and not (other / "deadletter").exists()


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
def test_stream_one_view_then_its_sibling(spark: Any, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from featql.jobs.stream import run_stream

    root = _files_project(tmp_path / "proj")
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    applied = load_applied(root, None)
    m, ws = applied.run_manifest, applied.workspace
    rng = random.Random(3)
    first = make_events(rng, 0, 80, START, 3)
    (root / "data/txns_stream/part-1.json").write_bytes(
        b"\n".join(message(e) for e in first) + b"\n")

    def stream(*views: str, reset: bool = False) -> Any:
        return run_stream(root, m, ws, list(views) or None, until_idle=True, spark=spark,
                          reset=reset)

    only = stream("user_aggs")
    assert [s.view for s in only.sources] == ["user_aggs"]
    assert (only.of("user_aggs").events, only.of("user_aggs").ingested) == (80, 80)
    assert not (view_folder(root, ws, "txns", "user_last") / "checkpoint").exists()
    # the sibling's first run: what user_aggs logged after user_last was marked is applied
    # to user_last (its backfill did not hold it), and user_aggs is not touched
    second = make_events(rng, 500, 20, START + dt.timedelta(hours=3), 1)
    (root / "data/txns_stream/part-2.json").write_bytes(
        b"\n".join(message(e) for e in second) + b"\n")
    both = stream()
    assert (both.of("user_last").events, both.of("user_last").ingested) == (100, 100)
    assert (both.of("user_aggs").events, both.of("user_aggs").ingested) == (20, 20)
    # a reset of one view reads everything again and counts nothing twice
    redo = stream("user_last", reset=True)
    assert [s.view for s in redo.sources] == ["user_last"]
    stats = redo.of("user_last")
    assert stats.reset and (stats.events, stats.ingested, stats.duplicates) == (100, 0, 100)
    everything = first + second
    last = max(e["event_ts"] for e in everything)
    assert check_online_and_training(root, everything, [last + dt.timedelta(minutes=9),
                                                        last + dt.timedelta(hours=1)]) > 0
    # the command: one line per view checkpoint
    capsys.readouterr()
    assert main(["stream", "--project", str(root), "--until-idle", "--view", "user_aggs"]) == 0
    out = capsys.readouterr().out
    assert "✓ user_aggs ← txns (json files in 'data/txns_stream/'): 0 batch(es)" in out, out
    assert "user_last" not in out
