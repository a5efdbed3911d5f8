"""Fresh windows (issue 13 item 4): a lookup at t aggregates `[floor(t,S) - W, t)` (tiles for
the tail, the exact events of the head), and a training-set row at t over the same events gives
the same value; both equal a brute-force oracle, at >= 200 random times, inside the head slide
and exactly at tile boundaries, for every aggregate function of the semantics core."""

from __future__ import annotations

import datetime as dt
import math
import os
import random
from typing import Any

import pyarrow as pa

from featql.core.config import load_config
from featql.core.diagnostics import Diagnostics
from featql.jobs.ingest import ingest_events
from featql.jobs.training import training_set
from featql.online import codec
from featql.online.lookup import OnlineService
from featql.online.stores import open_store
from featql.semantics.aggregates import FUNCTIONS

from .oracle import aggregate, window_events
from .project import WINDOWS, aggregate_calls

SLIDE = 3600
_SECONDS = {"1h": 3600, "2h": 7200, "1d": 86400}
USERS = (1, 2, 3)


def _events(rng: random.Random, n: int, start: dt.datetime, hours: int) -> list[dict[str, Any]]:
    used: set[int] = set()
    out = []
    for i in range(n):
        while True:
            off = rng.randrange(hours * 3600 * 1_000_000)
            if off not in used:
                used.add(off)
                break
        out.append({"event_id": i, "user_id": rng.choice(USERS),
                    "amount": None if rng.random() < 0.1 else round(rng.uniform(-5, 50), 2),
                    "kind": rng.choice(["a", "b", "b", "test", None]),
                    "ts": start + dt.timedelta(microseconds=off)})
    return out


def _json(e: dict[str, Any]) -> dict[str, Any]:
    return {**e, "ts": e["ts"].isoformat()}


def _times(rng: random.Random, events: list[dict[str, Any]], start: dt.datetime, hours: int,
           n: int) -> list[dt.datetime]:
    times = [start + dt.timedelta(hours=h) for h in range(hours + 3)]  # tile boundaries
    for e in rng.sample(events, 30):  # at an event, and just after it
        times += [e["ts"], e["ts"] + dt.timedelta(microseconds=1)]
    last = max(e["ts"] for e in events)
    head = last.replace(minute=0, second=0, microsecond=0)
    while len(times) < n:  # inside the newest (head) slide, and anywhere
        if rng.random() < 0.4:
            times.append(head + dt.timedelta(microseconds=rng.randrange(3600 * 1_000_000)))
        else:
            times.append(start + dt.timedelta(microseconds=rng.randrange(
                (hours + 2) * 3600 * 1_000_000)))
    return times


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_lookup_training_set_and_oracle_agree_on_fresh_windows(stream_project) -> None:
    root, manifest = stream_project()
    rng = random.Random(13)
    start, hours = dt.datetime(2024, 3, 2), 10
    events = _events(rng, 400, start, hours)
    pushed = list(events)
    rng.shuffle(pushed)  # out of order: late events land in older tiles
    for i in range(0, len(pushed), 37):
        ingest_events(root, manifest, "dev", "events", [_json(e) for e in pushed[i:i + 37]])
    # a replayed call changes nothing
    again = ingest_events(root, manifest, "dev", "events", [_json(e) for e in pushed[:37]])
    assert (again.ingested, again.duplicates) == (0, 37)

    config = load_config(root, "featql.toml", Diagnostics())
    store = open_store(config, root, "dev")
    online = OnlineService(manifest, store, root)
    times = _times(rng, events, start, hours, 240)
    spine_users, spine_times, online_rows = [], [], []
    for t in times:
        for u in USERS:
            rows, _ = online.lookup("aggs", [{"user_id": u}], None, codec.to_micros(t))
            online_rows.append(rows[0])
            spine_users.append(u)
            spine_times.append(t)
    spine = pa.table({"user_id": pa.array(spine_users, pa.int64()),
                      "ts": pa.array(spine_times, pa.timestamp("us"))})
    train = training_set(root, manifest, config, "aggs", spine, workspace="dev", use_store=False)

    calls = aggregate_calls()
    view = manifest.view("user_aggs")
    functions = {a.name: a.function for a in view.aggregations}
    aggs = {a.name: a for a in view.aggregations}
    assert set(functions) == set(calls)  # every function of FUNCTIONS is in the view
    assert len(calls) == len(FUNCTIONS) + 1 or os.environ.get("FEATQL_TEST_FUNCTIONS")
    checked = 0
    heads = 0
    for r, (u, t, got) in enumerate(zip(spine_users, spine_times, online_rows, strict=True)):
        for w in WINDOWS:
            evs = window_events(events, u, t, _SECONDS[w], SLIDE)
            if any(e["ts"] >= t.replace(minute=0, second=0, microsecond=0) for e in evs):
                heads += 1
            for agg, function in functions.items():
                column = "kind" if function in ("top_k", "approx_count_distinct") else "amount"
                values = [1 for _ in evs] if agg == "n_events" else [e[column] for e in evs]
                name = "count_star" if agg == "n_events" else function
                want = aggregate(name, values, tuple(getattr(aggs[agg], "args", ())) or
                                 ((3,) if name.endswith("_n") else (2,)), aggs[agg])
                feature = f"{agg}_{w}"
                on = got[f"user_aggs.{feature}"]
                off = train.column(f"user_aggs__{feature}")[r].as_py()
                assert _same(on, want), (u, t, feature, on, want)
                assert _same(off, want), (u, t, feature, off, want)
                checked += 1
    assert checked >= 200 * len(functions)
    assert heads > 100  # many windows have events in their head slide
    # the row-level view, after the newest event: the newest row, last-writer-wins
    after = max(e["ts"] for e in events) + dt.timedelta(minutes=1)
    for u in USERS:
        rows, _ = online.lookup("svc", [{"user_id": u}], None, codec.to_micros(after))
        newest = max((e for e in events if e["user_id"] == u), key=lambda e: e["ts"])
        assert rows[0]["user_last.last_amount"] == newest["amount"]
        assert rows[0]["user_last.last_kind"] == newest["kind"]
