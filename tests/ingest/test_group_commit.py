"""Group commit (featql.jobs.ingest_group): pushes waiting on the ingest lock together are
applied in one pass, and that pass gives what the calls applied one by one give: every event
once in the log and online (duplicates across the calls of a group counted once, a batch id
repeated within a group replayed), online values equal to a brute-force oracle, each call
answered only once the online store holds its values, and a call whose records make a view's
SQL fail refused alone."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from featql.core.config import load_config
from featql.core.diagnostics import Diagnostics
from featql.jobs.ingest import IngestReport, ingest_events
from featql.jobs.ingest_group import _queue
from featql.jobs.ingest_log import locked
from featql.online import codec
from featql.online.lookup import OnlineService, RequestError
from featql.online.stores import open_store

from .oracle import aggregate, window_events
from .test_batch_source_pushes import CODES
from .test_fresh_parity import _same

USERS = (1, 2, 3, 4)
START = dt.datetime(2024, 3, 2)


def _events(n: int) -> list[dict[str, Any]]:
    rng = random.Random(29)
    return [{"event_id": i, "user_id": rng.choice(USERS),
             "amount": None if rng.random() < 0.1 else round(rng.uniform(-5, 50), 2),
             "kind": rng.choice(["a", "b", "test", None]),
             "ts": START + dt.timedelta(seconds=rng.randrange(6 * 3600), microseconds=i)}
            for i in range(n)]


def _json(e: dict[str, Any]) -> dict[str, Any]:
    return {**e, "ts": e["ts"].isoformat()}


def _held_group(root: Path, calls: list[dict[str, Any]], store: Any, manifest: Any
                ) -> list[IngestReport | BaseException]:
    """Run every call in its own thread while the test holds the ingest lock, release it once
    all are queued (the first thread leads, the others wait in its queue): one group, for sure."""
    out: list[IngestReport | BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            out[i] = ingest_events(root, manifest, "dev", "events", calls[i]["records"],
                                   batch_id=calls[i].get("batch_id"), store=store)
        except BaseException as e:  # the test looks at it
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    q = _queue(root)
    with locked(root):
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(q.pending) < len(calls) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(q.pending) == len(calls), "the calls were not all queued"
        assert all(o is None for o in out)  # nobody answered while the lock is held
    for t in threads:
        t.join(60)
    assert all(o is not None for o in out)
    return [o for o in out if o is not None]


def test_a_group_applies_each_event_once_and_matches_the_oracle(stream_project) -> None:
    root, manifest = stream_project()
    config = load_config(root, "featql.toml", Diagnostics())
    store = open_store(config, root, "dev")
    events = _events(240)
    rng = random.Random(3)
    calls: list[dict[str, Any]] = []
    for i in range(0, 200, 20):  # 10 calls; each repeats 5 events of the call before it
        part = events[i:i + 20] + (events[i - 5:i] if i else [])
        rng.shuffle(part)
        calls.append({"records": [_json(e) for e in part]})
    calls.append({"records": [_json(e) for e in events[200:220]], "batch_id": "b-1"})
    calls.append({"records": [_json(e) for e in events[200:220]], "batch_id": "b-1"})
    reports = _held_group(root, calls, store, manifest)
    assert not [r for r in reports if isinstance(r, BaseException)], reports
    done = [r for r in reports if isinstance(r, IngestReport)]
    assert sorted(r.replayed for r in done[-2:]) == [False, True]  # one b-1, in one group
    assert sum(r.ingested for r in done) == 220  # every event once
    assert sum(r.duplicates for r in done) == sum(len(c["records"]) for c in calls) - 220
    assert len({r.seq for r in done if not r.replayed}) == 1  # one batch: one commit
    files = sorted((root / "data/events/ingest").rglob("*.parquet"))
    assert len(files) == 1  # one log file (the events share one day)
    logged = sorted(i for f in files for i in pq.read_table(f).column("event_id").to_pylist())
    assert logged == list(range(220))
    with locked(root) as ledger:
        assert ledger.counts("events") == 220 and not ledger.unfinished()
        assert ledger.replayed("events", "dev", "b-1")

    # a second group on top: the newest rows move, the windows grow, still the oracle's
    more = [{"records": [_json(e) for e in events[j:j + 10]]} for j in range(220, 240, 10)]
    assert all(isinstance(r, IngestReport) and r.ingested == 10
               for r in _held_group(root, more, store, manifest))
    online = OnlineService(manifest, store, root)
    view = manifest.view("user_aggs")
    aggs = {a.name: a for a in view.aggregations if a.name in ("n_events", "f_sum", "f_max")}
    checked = 0
    for h in range(0, 8):
        for minute in (0, 17, 59):
            t = START + dt.timedelta(hours=h, minutes=minute)
            for u in USERS:
                rows, _ = online.lookup("aggs", [{"user_id": u}], None, codec.to_micros(t))
                for w, seconds in (("1h", 3600), ("2h", 7200)):
                    evs = window_events(events, u, t, seconds, 3600)
                    for name, agg in aggs.items():
                        values = [1] * len(evs) if name == "n_events" else \
                            [e["amount"] for e in evs]
                        fn = "count_star" if name == "n_events" else agg.function
                        want = aggregate(fn, values, (), agg)
                        got = rows[0][f"user_aggs.{name}_{w}"]
                        assert _same(got, want), (u, t, name, w, got, want)
                        checked += 1
    assert checked == 8 * 3 * len(USERS) * 2 * 3
    after = max(e["ts"] for e in events) + dt.timedelta(minutes=1)
    for u in USERS:
        rows, _ = online.lookup("svc", [{"user_id": u}], None, codec.to_micros(after))
        newest = max((e for e in events if e["user_id"] == u), key=lambda e: e["ts"])
        assert rows[0]["user_last.last_amount"] == newest["amount"]
    store.close()


def test_a_call_failing_a_view_is_refused_alone(stream_project) -> None:
    root, manifest = stream_project(extra={"views/user_codes.sql": CODES})
    config = load_config(root, "featql.toml", Diagnostics())
    store = open_store(config, root, "dev")

    def rec(i: int, kind: str) -> dict[str, Any]:
        return {"event_id": i, "user_id": 5, "amount": 1.0, "kind": kind,
                "ts": f"2024-03-02T10:{i:02d}:00"}

    calls = [{"records": [rec(1, "1"), rec(2, "2")]}, {"records": [rec(3, "x")]},
             {"records": [rec(4, "4"), rec(1, "1")]}]
    reports = _held_group(root, calls, store, manifest)
    assert isinstance(reports[1], RequestError) and reports[1].status == 422
    assert "user_codes" in reports[1].message
    ok = [r for r in reports if isinstance(r, IngestReport)]
    assert sorted((r.ingested, r.duplicates) for r in ok) == [(1, 1), (2, 0)]
    with locked(root) as ledger:
        assert ledger.counts("events") == 3 and not ledger.unfinished()
    rows, _ = OnlineService(manifest, store, root).lookup(
        "svc", [{"user_id": 5}], None, codec.to_micros(dt.datetime(2024, 3, 2, 11)))
    assert rows[0]["user_last.last_kind"] == "4"
    store.close()


@pytest.mark.parametrize("threads", [6])
def test_concurrent_pushes_are_each_answered_after_their_values_are_online(
        stream_project, threads: int) -> None:
    """Free-running threads (no lock held by the test): each call, once answered, reads its own
    newest event back from the online store (read-after-write), and the log holds every event
    once."""
    root, manifest = stream_project()
    config = load_config(root, "featql.toml", Diagnostics())
    store = open_store(config, root, "dev")
    online = OnlineService(manifest, store, root)
    errors: list[str] = []

    def client(c: int) -> None:
        for k in range(15):
            first = (c * 15 + k) * 4
            recs = [{"event_id": first + i, "user_id": 100 + c, "amount": float(first + i),
                     "kind": "a", "ts": (START + dt.timedelta(seconds=first + i)).isoformat()}
                    for i in range(4)]
            ingest_events(root, manifest, "dev", "events", recs, store=store)
            rows, _ = online.lookup("svc", [{"user_id": 100 + c}], None,
                                    codec.to_micros(START + dt.timedelta(hours=1)))
            if rows[0]["user_last.last_amount"] != float(first + 3):
                errors.append(f"client {c} call {k}: {rows[0]['user_last.last_amount']}")

    pool = [threading.Thread(target=client, args=(c,)) for c in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not errors, errors[:3]
    files = sorted((root / "data/events/ingest").rglob("*.parquet"))
    logged = sorted(i for f in files for i in pq.read_table(f).column("event_id").to_pylist())
    assert logged == list(range(threads * 15 * 4))
    store.close()
