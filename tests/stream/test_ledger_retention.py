"""The ingest ledger is bounded (issue 13): identities are forgotten once their event time is a
retention behind the source's newest event, and an event that old is set aside and counted,
never applied a second time nor dropped without a word. No Spark: the push path and a
micro-batch's split are the two callers of the ledger."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from featql.cli.main import main
from featql.jobs.ingest import ingest_events
from featql.jobs.ingest_log import RETENTION_S, locked, retention_us
from featql.jobs.stream_events import split_batch
from featql.registry import load_applied

from .project import START, check_online_and_training, make_events, message, write_project

DAYS = 40
PER_DAY = 30


def _json(e: dict[str, Any]) -> dict[str, Any]:
    return json.loads(message(e))


def _logged_ids(root: Path) -> list[int]:
    ids: list[int] = []
    for path in sorted((root / "data/txns/ingest").rglob("*.parquet")):
        ids.extend(pq.read_table(path, columns=["txn_id"]).column("txn_id").to_pylist())
    return ids


def test_a_long_run_keeps_the_ledger_bounded_and_counts_every_event_once(
        tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", "txns", "127.0.0.1:9", [])
    assert main(["apply", "--project", str(root), "--yes"]) == 0
    applied = load_applied(root, None)
    manifest, ws = applied.run_manifest, applied.workspace
    source = manifest.source("txns")
    assert source is not None and retention_us(source) == RETENTION_S * 1_000_000
    rng = random.Random(29)
    kept: list[dict[str, Any]] = []
    sizes: list[int] = []
    redelivered = 0
    for day in range(DAYS):
        wave = make_events(rng, 100_000 + day * 1000, PER_DAY, START + dt.timedelta(days=day),
                           24)
        # re-deliveries of events from the last six days: inside the retention, deduplicated
        recent = [e for e in kept if e["event_ts"] >= START + dt.timedelta(days=day - 6)]
        again = rng.sample(recent, min(5, len(recent)))
        rep = ingest_events(root, manifest, ws, "txns", [_json(e) for e in wave + again])
        assert (rep.ingested, rep.duplicates, rep.expired) == (len(wave), len(again), 0), day
        redelivered += len(again)
        kept += wave
        with locked(root) as ledger:
            sizes.append(ledger.remembered("txns"))
            assert ledger.remembered("txns", ws) == sizes[-1]
    # bounded: about a retention (7 days) of events plus the newest day, never the whole run
    assert max(sizes) <= (RETENTION_S // 86_400 + 2) * PER_DAY, sizes
    # a steady state: the last days hold a retention's worth each, not a growing count
    assert all(6 * PER_DAY <= n <= 9 * PER_DAY for n in sizes[-20:]), sizes[-20:]
    assert sizes[-1] < len(kept) // 4
    assert redelivered > 100

    # an event older than the retention: set aside and counted, whether it is a re-delivery
    # (its key was forgotten) or new; nothing of it is applied or logged
    old_again = kept[3]
    old_new = dict(kept[4], txn_id=999_999)
    fresh = make_events(rng, 900_000, 4, START + dt.timedelta(days=DAYS - 1), 20)
    rep = ingest_events(root, manifest, ws, "txns", [_json(e) for e in
                                                     [old_again, old_new, *fresh]])
    assert (rep.received, rep.ingested, rep.expired, rep.duplicates) == (6, 4, 2, 0)
    assert rep.to_json()["expired"] == 2
    assert sorted(rep.expired_rows.column("txn_id").to_pylist()) == [old_again["txn_id"],
                                                                       999_999]
    kept += fresh
    ids = _logged_ids(root)
    assert sorted(ids) == sorted(e["txn_id"] for e in kept), "an event logged twice or lost"
    last = max(e["event_ts"] for e in kept)
    assert check_online_and_training(root, kept, [last + dt.timedelta(minutes=7),
                                                  last + dt.timedelta(hours=3)]) > 0


def test_a_micro_batch_sets_aside_what_is_past_the_horizon(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", "txns", "127.0.0.1:9", [])
    from featql.compiler.project import compile_project

    src = compile_project(root).manifest.source("txns")
    assert src is not None
    events = [{"txn_id": i, "user_id": 1, "amount": 1.0, "channel": "web",
               "event_ts": START + dt.timedelta(hours=i), "created_ts": None}
              for i in range(6)]
    raw = pa.table({"value": [message(e).decode() for e in events] + ["{bad"],
                    "origin": [f"0:{i}" for i in range(7)]})
    horizon = START + dt.timedelta(hours=2, minutes=30)
    split = split_batch(src, raw, None, horizon)
    assert split.events is not None
    assert split.events.column("txn_id").to_pylist() == [3, 4, 5]
    reasons = {d.origin: d.reason for d in split.dead}
    assert set(reasons) == {"0:0", "0:1", "0:2", "0:6"}
    assert all("retention" in reasons[f"0:{i}"] for i in range(3))
    assert "not JSON" in reasons["0:6"]
    assert split_batch(src, raw, None, None).events.num_rows == 6  # type: ignore[union-attr]
